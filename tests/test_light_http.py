"""The light HTTP clients (SSE, long and short polling on asyncio Protocols) and the shared
response reader they and the Locust users parse with.

Against real ``pushbench serve`` processes of every stack: each client records exactly
the published sequence, its byte counters agree with the bytes it wrote and read, and
after a forced disconnect it resumes (SSE with ``Last-Event-ID``, polls with ``since``)
losing nothing and receiving nothing twice. Against a scripted server: sized, chunked and
until-close poll answers, and a server that closes the keep-alive connection. And the
reader itself, fed every framing in every chunking (hypothesis).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from conftest import ServerProcess, start_server
from hypothesis import given, settings
from hypothesis import strategies as st

from pushbench import registry
from pushbench.clients.common import ConnStats
from pushbench.clients.http_light import HttpProtocol, LightHttpClient
from pushbench.clients.poll import LongPollClient, ShortPollClient, ShortPollSchedule, _PollProtocol
from pushbench.clients.recorder import Recorder
from pushbench.clients.sse import SseClient, _SseProtocol
from pushbench.contract import Envelope, encode
from pushbench.schema.worker import WorkerSpec
from pushbench.wire.http_response import BadResponse, ResponseReader, request

pytestmark = pytest.mark.timeout(60)

STACKS = tuple(s.name for s in registry.stacks() if s.module is not None)
LIGHT: dict[str, type[LightHttpClient]] = {
    "sse": SseClient,
    "longpoll": LongPollClient,
    "shortpoll": ShortPollClient,
}
COUNT = 200
RATE = 1000
STEP = 10.0
POLL_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    logs = tmp_path_factory.mktemp("light-http")
    started: dict[str, ServerProcess] = {}
    try:
        for stack in STACKS:
            started[stack] = start_server(
                logs / f"{stack}.stderr", "--sse-retry-ms", "50", stack=stack
            )
        yield started
        # uvicorn does not cancel a held long poll whose client went away: let those end
        # by their timeout, so the stop finds no request running (it logs those).
        time.sleep(POLL_TIMEOUT_S + 0.2)
    finally:
        for server in started.values():
            server.stop()
    for server in started.values():
        server.check()


async def eventually(check: Callable[[], bool], what: str, seconds: float = STEP) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Running:
    """Light clients of one kind, each with the protocols (connections) it made."""

    clients: list[LightHttpClient]
    recorder: Recorder
    stop: asyncio.Event
    tasks: list[asyncio.Future[None]]
    made: list[list[HttpProtocol]] = field(default_factory=list)

    def stats(self, conn: int) -> ConnStats:
        return self.clients[conn].stats

    def seqs(self, conn: int) -> list[int]:
        arrays = self.recorder.arrays()
        got: list[int] = arrays["seq"][arrays["conn"] == conn].tolist()
        return got

    async def finish(self) -> None:
        self.stop.set()
        done, pending = await asyncio.wait(self.tasks, timeout=STEP)
        assert not pending, "clients did not stop"
        for task in done:
            task.result()


async def start(transport: str, base_url: str, topic: str, n: int = 2, **spec: Any) -> Running:
    spec.setdefault("poll_interval_s", 0.01)
    spec.setdefault("poll_timeout_s", POLL_TIMEOUT_S)
    full = WorkerSpec.from_dict(
        {
            "transport": transport,
            "base_url": base_url,
            "topic": topic,
            "connections": n,
            "capacity": 10_000,
            **spec,
        }
    )
    recorder = Recorder(full.capacity)
    stop = asyncio.Event()
    kind = LIGHT[transport]
    clients = [kind(i, full, recorder, ConnStats(i)) for i in range(n)]
    running = Running(clients, recorder, stop, [])
    for client in clients:
        made: list[HttpProtocol] = []
        running.made.append(made)
        make = client.make_protocol

        def collect(make: Callable[[], HttpProtocol] = make, made: list[HttpProtocol] = made):
            protocol = make()
            made.append(protocol)
            return protocol

        client.make_protocol = collect  # type: ignore[method-assign]
        running.tasks.append(asyncio.ensure_future(client.run(stop)))
    await asyncio.wait_for(asyncio.gather(*(c.stats.settled.wait() for c in clients)), STEP)
    return running


async def ticker(server: ServerProcess, topic: str, count: int = COUNT, rate: int = RATE) -> None:
    query = f"topic={topic}&rate={rate}&count={count}&size=100"
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url(f"/control/ticker?{query}")) as resp,
    ):
        assert resp.status == 200, await resp.text()


# --- against every stack ----------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("transport", list(LIGHT))
def test_light_client_records_exactly_and_counts_every_byte(
    servers: dict[str, ServerProcess], stack: str, transport: str
) -> None:
    server = servers[stack]
    topic = f"exact-{transport}"

    async def main() -> None:
        run = await start(transport, server.url("").rstrip("/"), topic)
        await ticker(server, topic)
        await eventually(lambda: all(run.stats(c).messages >= COUNT for c in range(2)), "all")
        await asyncio.sleep(0.2)  # quiet: every byte sent has been read and acknowledged
        await run.finish()
        for conn in range(2):
            s = run.stats(conn)
            assert sorted(run.seqs(conn)) == list(range(1, COUNT + 1)), f"conn {conn}"
            assert (s.connects, s.reconnects, s.errors) == (1, 0, 0), s.last_error
            assert s.messages == s.last_seq == COUNT and s.bytes_source == "tcp_info"
            (protocol,) = run.made[conn]
            # The kernel's counts are exactly what the client wrote and read…
            kernel_in = s.handshake_bytes_in + s.bytes_in
            client = run.clients[conn]
            if transport == "sse":
                assert kernel_in == protocol.received
                # …the request was the whole handshake out, nothing followed it…
                assert isinstance(protocol, _SseProtocol)
                assert s.handshake_bytes_out == protocol.sent == len(protocol.request)
                assert s.bytes_out == 0
                assert s.bytes_in > COUNT * 100 and s.handshake_bytes_in > 0
            else:
                # …and a poll's handshake is its first exchange. A poll never goes quiet:
                # the last request may be out, unacknowledged, when the client stops, or its
                # response already in the kernel (counted there) but not yet read.
                first = request(client.netloc, client.spec.target("/poll", timeout=0.0))
                assert s.handshake_bytes_out == len(first)
                assert 0 <= protocol.sent - (s.handshake_bytes_out + s.bytes_out) < 400
                assert 0 <= kernel_in - protocol.received < 400
                assert s.requests >= 2 and s.bytes_out > 0
                assert s.bytes_in > COUNT * 100
        assert run.recorder.parse_errors == run.recorder.slow_parses == 0

    asyncio.run(main())


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("transport", list(LIGHT))
def test_light_client_resumes_after_a_forced_disconnect(
    servers: dict[str, ServerProcess], stack: str, transport: str
) -> None:
    """The client's connection is cut mid-stream: SSE reconnects with Last-Event-ID, the
    polls with since=<cursor>, and the sequence stays exact (nothing lost, nothing twice)."""
    server = servers[stack]
    topic = f"resume-{transport}"
    count = 300

    async def main() -> None:
        run = await start(transport, server.url("").rstrip("/"), topic, n=1)
        await ticker(server, topic, count=count, rate=500)
        await eventually(lambda: run.stats(0).messages >= 50, "50 messages")
        client = run.clients[0]
        protocol = client.protocol
        assert protocol is not None and protocol.transport is not None
        # h45: the compiled receive loop (the default) or the asyncio transport has it
        (protocol.handed or protocol.transport).abort()
        if isinstance(client, SseClient):
            resume_at = client.last_event_id
        else:
            assert isinstance(client, LongPollClient | ShortPollClient)
            resume_at = str(client.cursor)
        await eventually(lambda: len(run.made[0]) == 2, "a new connection")
        await eventually(lambda: run.stats(0).messages >= count, f"{count} messages")
        await run.finish()
        assert sorted(run.seqs(0)) == list(range(1, count + 1))
        s = run.stats(0)
        assert (s.connects, s.reconnects, s.messages) == (2, 1, count)
        assert s.errors <= (0 if transport == "sse" else 1), s.last_error  # a poll in flight
        second = run.made[0][1]
        if isinstance(second, _SseProtocol):
            assert int(resume_at) >= 50
            assert f"\r\nLast-Event-ID: {resume_at}\r\n".encode() in second.request
        else:
            assert isinstance(second, _PollProtocol)
            assert int(resume_at) >= 50
            assert f"&since={resume_at}&timeout=0.0".encode() in second.first_request
        assert run.recorder.parse_errors == 0

    asyncio.run(main())


# --- against a scripted server: every framing, and keep-alive ends ------------------------------


def _envelope(seq: int) -> bytes:
    return encode(Envelope("t", seq, 1000 + seq, 2000 + seq, "x" * 10))


def _poll_body(last: int, seqs: list[int]) -> bytes:
    return b'{"last":%d,"messages":[' % last + b",".join(map(_envelope, seqs)) + b"]}"


def _sized(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in (f"Content-Length: {len(body)}", *headers))
    return f"HTTP/1.1 200 OK\r\n{head}\r\n".encode() + body


def _chunked(*parts: bytes, end: bool = True, status: int = 200) -> bytes:
    out = f"HTTP/1.1 {status} OK\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    out += b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts)
    return out + (b"0\r\n\r\n" if end else b"")


@dataclass
class Scripted:
    """A server that answers the n-th request (over all connections) with ``script[n]``:
    (bytes, then close the connection?); past the script it holds every request."""

    script: list[tuple[bytes, bool]]
    heads: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                self.heads.append(await reader.readuntil(b"\r\n\r\n"))
                n = len(self.heads) - 1
                if n >= len(self.script):
                    await reader.read()  # hold until the client goes
                    return
                data, close = self.script[n]
                writer.write(data)
                await writer.drain()
                if close:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def run(self, check: Callable[[Running], Any], transport: str, want: int) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            run = await start(transport, f"http://127.0.0.1:{port}", "t", n=1)
            await eventually(lambda: run.stats(0).messages >= want, f"{want} messages")
            await asyncio.sleep(0.05)
            await run.finish()
            check(run)


def test_long_poll_reads_sized_chunked_and_until_close_answers_and_reconnects() -> None:
    """Each answer's framing is the server's choice; a server closing the keep-alive
    connection (Connection: close, or an until-close body) is a reconnect, not an error,
    and every connection starts with a short poll from the cursor reached."""
    second = _poll_body(2, [1, 2])
    script = [
        (_sized(_poll_body(0, [])), False),  # the first, connecting, short poll
        (_chunked(second[:7], second[7:30], second[30:]), False),
        (_sized(_poll_body(3, [3]), "Connection: close"), True),
        (b"HTTP/1.1 200 OK\r\n\r\n" + _poll_body(5, [4, 5]), True),  # until close
        (_sized(_poll_body(6, [6])), False),
    ]
    scripted = Scripted(script)

    def check(run: Running) -> None:
        s = run.stats(0)
        assert run.seqs(0) == [1, 2, 3, 4, 5, 6]
        assert (s.connects, s.reconnects, s.errors) == (3, 2, 0), s.last_error
        assert (s.requests, s.empty_polls, s.last_seq) == (5, 1, 6)
        targets = [re.search(rb"\?(\S*)", h)[1] for h in scripted.heads]  # type: ignore[index]
        assert targets == [
            b"topic=t&timeout=0.0",
            b"topic=t&since=0&timeout=1.0",
            b"topic=t&since=2&timeout=1.0",
            b"topic=t&since=3&timeout=0.0",  # a new connection: a short poll first
            b"topic=t&since=5&timeout=0.0",
            b"topic=t&since=6&timeout=1.0",  # held until the client stops
        ]
        assert s.bytes_source == "tcp_info"

    asyncio.run(scripted.run(check, "longpoll", 6))


def test_sse_reads_chunked_and_sized_streams_and_resumes_with_last_event_id() -> None:
    """A chunked stream that ends, a sized one, a refusal (an error, then back-off), and
    every reconnection carries the last event id; retry: sets the reconnection delay."""
    first = b"retry: 10\n\nid: 1\ndata: " + _envelope(1) + b"\n\nid: 2\ndata: " + _envelope(2)
    script = [
        (_chunked(first[:20], first[20:] + b"\n\n:comment\n\n"), False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),  # an empty stream
        (_sized(b"id: 3\ndata: " + _envelope(3) + b"\n\nid: 4\ndata: cut"), True),
        (_chunked(status=503), True),
        (_chunked(b"id: 4\ndata: " + _envelope(4) + b"\n\n", end=False), False),
    ]
    scripted = Scripted(script)

    def check(run: Running) -> None:
        s = run.stats(0)
        assert run.seqs(0) == [1, 2, 3, 4]
        assert (s.connects, s.reconnects, s.errors) == (4, 3, 1)
        assert s.last_error is not None and "503" in s.last_error
        ids = [re.search(rb"Last-Event-ID: (\S+)", h) for h in scripted.heads]
        assert [m[1] if m else None for m in ids] == [None, b"2", b"2", b"3", b"3"]
        client = run.clients[0]
        assert isinstance(client, SseClient) and client.retry_ms == 10

    asyncio.run(scripted.run(check, "sse", 4))


def test_short_poll_schedule_skips_and_counts_overrun_slots() -> None:
    stats = ConnStats(0)
    ms = 1_000_000
    schedule = ShortPollSchedule(0, 0.01)  # connection 0: no phase offset
    assert schedule.wait_ns(0, stats) == 0  # slot 0, now
    assert schedule.wait_ns(5 * ms, stats) == 5 * ms  # slot 1 at 10 ms
    assert schedule.wait_ns(35 * ms, stats) == 0  # slot 2 (20 ms) late; slot 3 skipped
    assert stats.missed_polls == 1
    assert schedule.wait_ns(36 * ms, stats) == 4 * ms  # slot 4 at 40 ms
    assert ShortPollSchedule(1, 0.01).phase_ns == int(0.6180339887498949 * 10 * ms)


# --- the response reader, in every chunking ----------------------------------------------------


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Keep-alive responses (sized, chunked, empty) and maybe a last until-close one →
    (the bytes on the wire, each response's body)."""
    wire = b""
    bodies: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.binary(max_size=200))
        framing = draw(st.sampled_from(["length", "chunked", "no-content"]))
        if framing == "no-content":
            wire += b"HTTP/1.1 204 No Content\r\n\r\n"
            body = b""
        elif framing == "length":
            wire += b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        else:
            cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
            parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
            wire += b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            wire += b"".join(b"%X\r\n%s\r\n" % (len(p), p) for p in parts if p)
            wire += b"0\r\nX-Trailer: 1\r\n\r\n" if draw(st.booleans()) else b"0\r\n\r\n"
        bodies.append(body)
    if draw(st.booleans()):
        body = draw(st.binary(max_size=200))
        wire += b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body
        bodies.append(body)
    return wire, bodies


def _read_all(wire: bytes, cuts: list[int], whole_first: bool = False) -> list[bytes]:
    """The bodies read from ``wire`` cut at ``cuts``; ``whole_first``: as the poll client
    reads, each read first offered to ``whole`` (when no body is under way), else fed."""
    reader = ResponseReader()
    bodies: list[bytes] = []
    body = b""
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        got = reader.whole(wire[a:b]) if whole_first and not body else None
        if got is not None:
            bodies.append(got[1])
            continue
        body += reader.feed(wire[a:b])
        while reader.done:
            bodies.append(body)
            body = reader.next_response()
    if reader.head is not None:
        reader.feed_eof()
        assert reader.done and not reader.keep_alive
        bodies.append(body)
    else:
        assert not body and not reader.buffered
    return bodies


@settings(max_examples=300, deadline=None)
@given(responses(), st.data())
def test_reader_reads_every_framing_in_every_chunking(
    got: tuple[bytes, list[bytes]], data: st.DataObject
) -> None:
    wire, bodies = got
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(wire)), max_size=12))))
    assert _read_all(wire, cuts) == bodies
    assert _read_all(wire, list(range(1, len(wire)))) == bodies  # a byte at a time


@settings(max_examples=300, deadline=None)
@given(responses(), st.data())
def test_whole_answers_read_as_feed_reads_them(
    got: tuple[bytes, list[bytes]], data: st.DataObject
) -> None:
    wire, bodies = got
    _read_all(wire, [])  # every head now seen once: whole() may take the next ones
    ends, reader = [], ResponseReader()  # where each response ends: whole() applies there
    for i in range(len(wire)):
        reader.feed(wire[i : i + 1])
        if reader.done:
            ends.append(i + 1)
            reader.next_response()
    cuts = sorted({*data.draw(st.lists(st.integers(1, len(wire)), max_size=6)), *ends})
    assert _read_all(wire, cuts, whole_first=True) == bodies


def test_whole_takes_one_whole_sized_response_with_a_head_already_read() -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Whole: %d\r\nContent-Length: 5\r\n\r\n" % time.monotonic_ns()
    reader = ResponseReader()
    assert reader.whole(head + b"hello") is None  # a head never read: the general path
    assert reader.feed(head + b"hello") == b"hello" and reader.done
    assert reader.next_response() == b""
    got = reader.whole(head + b"again")
    assert got is not None and got[0].status == 200 and got[1:] == (b"again", True)
    assert reader.head is None and not reader.buffered and not reader.done
    for odd in (head + b"shor", head + b"toolong", head[:-2], b"", head + b"hello" + head):
        assert reader.whole(odd) is None, odd  # cut, too long, no head end, two responses
    assert reader.feed(head[:10]) == b""  # a response under way: whole() stays out
    assert reader.whole(head + b"hello") is None
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    other = ResponseReader()
    other.feed(chunked + b"1\r\na\r\n0\r\n\r\n")
    other.next_response()
    assert other.whole(chunked + b"1\r\na\r\n0\r\n\r\n") is None  # not sized


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_reader_refuses_garbage_with_bad_response_only(junk: bytes) -> None:
    reader = ResponseReader()
    try:
        reader.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + junk)
        reader.feed_eof()
    except BadResponse:
        pass


def test_request_bytes_are_prepared_once_per_kind() -> None:
    spec = WorkerSpec.from_dict(
        {
            "transport": "longpoll",
            "base_url": "http://h:1/base",
            "topic": "t",
            "connections": 1,
            "token": "a b",
            "poll_timeout_s": 2.5,
        }
    )
    client = LongPollClient(0, spec, Recorder(10), ConnStats(0))
    assert client.poll_request(42) == request("h:1", spec.target("/poll", since=42, timeout=2.5))
    assert client.poll_request(42) == (
        b"GET /base/poll?topic=t&since=42&timeout=2.5&token=a%20b HTTP/1.1\r\nHost: h:1\r\n\r\n"
    )
    sse = SseClient(0, spec, Recorder(10), ConnStats(0))
    assert b"Last-Event-ID" not in sse.request_bytes()
    sse.last_event_id = "7"
    assert sse.request_bytes().endswith(b"\r\nLast-Event-ID: 7\r\n\r\n")
    assert b"\r\nAccept: text/event-stream\r\n" in sse.request_bytes()


def test_an_unanswered_poll_times_out_and_the_client_reconnects() -> None:
    """A poll held past its timeout + slack is an error (the watchdog), then a reconnect."""

    async def main() -> None:
        scripted = Scripted([(_sized(_poll_body(0, [])), False)])  # then holds every request
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            spec = WorkerSpec.from_dict(
                {
                    "transport": "longpoll",
                    "base_url": f"http://127.0.0.1:{port}",
                    "topic": "t",
                    "connections": 1,
                    "poll_timeout_s": 0.1,
                }
            )
            client = LongPollClient(0, spec, Recorder(10), ConnStats(0))
            client.read_timeout_s = 0.3
            stop = asyncio.Event()
            task = asyncio.ensure_future(client.run(stop))
            await eventually(lambda: len(scripted.heads) >= 3, "a reconnection after a timeout")
            stop.set()
            await asyncio.wait_for(task, STEP)
        s = client.stats
        assert s.connects == 1 and s.errors >= 1
        assert s.last_error is not None and "no answer within 0.3 s" in s.last_error
        assert b"timeout=0.0" in scripted.heads[2]  # a new connection's short poll

    asyncio.run(main())


@pytest.mark.parametrize("transport", list(LIGHT))
def test_unreachable_server_counts_errors_and_leaves_no_timers(transport: str) -> None:
    async def main() -> None:
        import socket

        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            run = await start(transport, url, "t", n=2)
            await eventually(lambda: all(c.stats.errors >= 2 for c in run.clients), "retries")
            await run.finish()
        for client in run.clients:
            assert not client.stats.connected and client.stats.bytes_source == "unavailable"
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        scheduled = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
        assert not [h for h in scheduled if "_PollProtocol" in repr(h)], scheduled

    asyncio.run(main())

"""The Starlette/uvicorn stack, served in-process on port 0 and driven with aiohttp.

Each test runs its own event loop (``asyncio.Runner``, so uvloop can be chosen)
with a fresh hub and service, starts :func:`pushbench.servers.starlette_stack.run` as a
task, waits for ``on_ready`` and always stops the server, every wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
from base64 import b64encode
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import uvloop

from pushbench import registry
from pushbench.auth import make_token
from pushbench.contract import Envelope, decode
from pushbench.hub import Hub
from pushbench.servers.base import StackOptions
from pushbench.servers.starlette_stack import STACK, run
from pushbench.service import PushService, ServerConfig
from pushbench.sse import Event, EventParser

WAIT = 5.0  # bound on every single wait in these tests
TEST_CONFIG = ServerConfig(
    ping_interval=5.0,
    heartbeat_interval=5.0,
    sse_retry_ms=1500,
    max_publish_bytes=1024,
    default_poll_timeout=2.0,
    max_poll_timeout=10.0,
)
WS_IMPLS = ("websockets-sansio", "websockets", "wsproto")

# uvicorn's legacy "websockets" implementation is deprecated, and says so; it is
# still tested because it is still selectable.
pytestmark = [
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:remove second argument of ws_handler:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated"),
]


def payload(i: int) -> str:
    return f"msg {i} héllo ✓"  # non-ASCII: the bytes must survive every transport


@dataclass
class Server:
    base: str
    hub: Hub
    service: PushService
    http: aiohttp.ClientSession
    stop: asyncio.Event  # set it to stop the server early
    task: asyncio.Task[None]  # run(); done once the server stopped

    def url(self, path: str) -> str:
        return self.base + path

    def ws_url(self, path: str) -> str:
        return "ws" + self.base.removeprefix("http") + path


@contextlib.asynccontextmanager
async def serving(
    config: ServerConfig = TEST_CONFIG,
    *,
    loop: str = "asyncio",
    ws: str = "websockets-sansio",
    hub: Hub | None = None,
) -> AsyncIterator[Server]:
    """The stack on 127.0.0.1:0 plus an aiohttp session; stopped however the test ends."""
    hub = hub or Hub()
    service = PushService(hub, config)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run(service, "127.0.0.1", 0, ready.set_result, stop, StackOptions(loop=loop, ws=ws))
    )
    try:
        waiting: list[asyncio.Future[Any]] = [task, ready]
        await asyncio.wait(waiting, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        port = ready.result()
        async with aiohttp.ClientSession() as http:
            yield Server(f"http://127.0.0.1:{port}", hub, service, http, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


def run_async(test: Callable[[], Coroutine[Any, Any, None]], loop: str = "asyncio") -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(test(), 30))


async def until(cond: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``cond`` until true, failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def publish(srv: Server, topic: str, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        async with srv.http.post(srv.url(f"/publish?topic={topic}"), data=payload(i)) as r:
            assert r.status == 200, await r.text()
            assert await r.json() == {"seq": i}


async def ws_messages(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[Envelope]:
    out: list[Envelope] = []
    async with asyncio.timeout(WAIT):
        while len(out) < n:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            out.append(decode(msg.data))
    return out


async def sse_events(
    resp: aiohttp.ClientResponse, n: int, parser: EventParser | None = None
) -> list[Event]:
    parser = parser or EventParser()
    out: list[Event] = []
    async with asyncio.timeout(WAIT):
        while len(out) < n:
            chunk = await resp.content.readany()
            assert chunk, "SSE stream ended early"
            out += parser.feed(chunk)
    return out


def check_seqs(envs: list[Envelope], first: int, last: int, topic: str = "t") -> None:
    assert [e.seq for e in envs] == list(range(first, last + 1))
    assert [e.payload for e in envs] == [payload(i) for i in range(first, last + 1)]
    assert {e.topic for e in envs} == {topic}


def check_events(events: list[Event], first: int, last: int) -> None:
    assert [e.id for e in events] == [str(i) for i in range(first, last + 1)]
    check_seqs([decode(e.data) for e in events], first, last)


# --- delivery -----------------------------------------------------------------


def test_stack_entry() -> None:
    assert STACK.name == "starlette"
    row = registry.stack(STACK.name)  # what it serves is its registry row's, nowhere else
    assert row.module == "pushbench.servers.starlette_stack"
    assert set(row.serves) == {"ws", "sse", "longpoll", "shortpoll", "echo"}


def test_every_transport_delivers_in_order() -> None:
    async def test() -> None:
        async with serving() as srv:
            ws = await srv.http.ws_connect(srv.ws_url("/ws?topic=t"))
            sse_resp = await srv.http.get(srv.url("/sse?topic=t"))
            assert sse_resp.status == 200
            await until(lambda: srv.hub.stats.subscribers == 2, "2 live subscribers")
            await publish(srv, "t", 20)

            check_seqs(await ws_messages(ws, 20), 1, 20)
            check_events(await sse_events(sse_resp, 20), 1, 20)

            # Long poll: follow the cursor until the last message.
            got: list[Envelope] = []
            cursor = 0
            for _ in range(25):
                url = srv.url(f"/poll?topic=t&since={cursor}&timeout=1")
                async with srv.http.get(url) as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"] == "application/json"
                    assert r.headers["Cache-Control"] == "no-cache"
                    body = await r.json()
                got += [decode(json.dumps(m)) for m in body["messages"]]
                cursor = body["last"]
                if cursor == 20:
                    break
            check_seqs(got, 1, 20)

            # Short poll: everything after since at once, and nothing held.
            async with srv.http.get(srv.url("/poll?topic=t&since=0&timeout=0")) as r:
                body = await r.json()
            assert body["last"] == 20
            check_seqs([decode(json.dumps(m)) for m in body["messages"]], 1, 20)
            async with srv.http.get(srv.url("/poll?topic=t&since=20&timeout=0")) as r:
                assert await r.json() == {"last": 20, "messages": []}

            await ws.close()
            sse_resp.close()
            await until(lambda: srv.service.stats.connections_open == 0, "sessions closed")
            assert srv.service.stats.messages_delivered >= 80

    run_async(test)


def test_responses_are_not_held_by_delayed_acks() -> None:
    """Regression: a listening socket made with proto 0 gets no TCP_NODELAY from
    asyncio, and every response written in two parts then waits ~40 ms."""

    async def test() -> None:
        async with serving() as srv:
            start = asyncio.get_running_loop().time()
            for _ in range(20):
                async with srv.http.get(srv.url("/health")) as r:
                    assert await r.read() == b"ok"
            assert asyncio.get_running_loop().time() - start < 0.4

    run_async(test)


def test_long_poll_waits_for_the_next_message() -> None:
    async def test() -> None:
        async with serving() as srv:
            await publish(srv, "t", 1)
            poll = asyncio.create_task(srv.http.get(srv.url("/poll?topic=t&since=1&timeout=5")))
            await until(lambda: srv.hub.stats.subscribers == 1, "the poll waiting")
            assert not poll.done()
            await publish(srv, "t", 1, start=2)
            async with await poll as r:
                body = await r.json()
            assert body["last"] == 2
            check_seqs([decode(json.dumps(m)) for m in body["messages"]], 2, 2)
            # Timeout: an empty answer with the cursor unchanged.
            async with srv.http.get(srv.url("/poll?topic=t&since=2&timeout=0.2")) as r:
                assert await r.json() == {"last": 2, "messages": []}

    run_async(test)


def test_resume_from_since_and_last_event_id() -> None:
    async def test() -> None:
        async with serving() as srv:
            await publish(srv, "t", 20)
            async with srv.http.ws_connect(srv.ws_url("/ws?topic=t&since=5")) as ws:
                check_seqs(await ws_messages(ws, 15), 6, 20)
            headers = {"Last-Event-ID": "5"}
            async with srv.http.get(srv.url("/sse?topic=t"), headers=headers) as r:
                check_events(await sse_events(r, 15), 6, 20)
            # The header wins over since; lastEventId is the query-string fallback.
            headers = {"Last-Event-ID": "18"}
            async with srv.http.get(srv.url("/sse?topic=t&since=2"), headers=headers) as r:
                check_events(await sse_events(r, 2), 19, 20)
            async with srv.http.get(srv.url("/sse?topic=t&lastEventId=10")) as r:
                check_events(await sse_events(r, 10), 11, 20)

    run_async(test)


@pytest.mark.parametrize("ws_impl", WS_IMPLS)
def test_ws_client_publish_reaches_other_subscribers(ws_impl: str) -> None:
    async def test() -> None:
        async with serving(ws=ws_impl) as srv:
            async with (
                srv.http.ws_connect(srv.ws_url("/ws?topic=t")) as reader,
                srv.http.ws_connect(srv.ws_url("/ws?topic=t")) as writer,
            ):
                await until(lambda: srv.hub.stats.subscribers == 2, "2 subscribers")
                for i in range(1, 4):
                    await writer.send_str(payload(i))
                check_seqs(await ws_messages(reader, 3), 1, 3)
                check_seqs(await ws_messages(writer, 3), 1, 3)  # the sender subscribes too

                # Over max_publish_bytes → 1009; the other subscriber is unaffected.
                await writer.send_str("x" * 1025)
                async with asyncio.timeout(WAIT):
                    msg = await writer.receive()
                assert msg.type == aiohttp.WSMsgType.CLOSE
                assert writer.close_code == 1009
                await until(lambda: srv.hub.stats.subscribers == 1, "writer unsubscribed")
                await publish(srv, "t", 1, start=4)
                check_seqs(await ws_messages(reader, 1), 4, 4)

            async with srv.http.ws_connect(srv.ws_url("/ws?topic=t")) as ws:
                await ws.send_bytes(b"binary publish")
                async with asyncio.timeout(WAIT):
                    msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 1003
            await until(lambda: srv.service.stats.connections_open == 0, "sessions closed")

    run_async(test)


async def stuck_ws(port: int, target: str) -> socket.socket:
    """A WebSocket opened by hand that reads nothing after the 101 (a tiny receive buffer)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = b64encode(os.urandom(16)).decode()
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: nothing past the head
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def test_slow_consumers_are_dropped() -> None:
    async def test() -> None:
        async with serving(hub=Hub(queue_limit=5)) as srv:
            # SSE is pulled by sse-starlette's own loop, one batch per wake-up: a burst
            # with no await between publishes overflows its queue.
            sse_resp = await srv.http.get(srv.url("/sse?topic=t"))
            await until(lambda: srv.hub.stats.subscribers == 1, "1 subscriber")
            for i in range(1, 11):
                await srv.hub.publish("t", payload(i))
            async with asyncio.timeout(WAIT):
                rest = await sse_resp.content.read()  # the stream ends
            assert rest == b"retry: 1500\n\n"  # dropped before anything was sent
            assert srv.hub.stats.slow_consumers_dropped == 1
            sse_resp.close()
            # A WebSocket is written to from the publish while its transport takes bytes:
            # only a peer that stops reading falls queue_limit behind.
            sock = await stuck_ws(int(srv.base.rsplit(":", 1)[1]), "/ws?topic=flood")
            try:
                await until(lambda: srv.hub.stats.subscribers == 1, "the stuck subscriber")
                for i in range(5000):
                    await srv.hub.publish("flood", "x" * 1024)
                    if srv.hub.stats.slow_consumers_dropped == 2:
                        break
                    if i % 10 == 0:
                        await asyncio.sleep(0)  # let the stack write between bursts
                assert srv.hub.stats.slow_consumers_dropped == 2
            finally:
                sock.close()
            await until(lambda: srv.service.stats.connections_open == 0, "sessions closed")

    run_async(test)


@pytest.mark.parametrize("ws_impl", WS_IMPLS)
def test_echo_keeps_the_opcode(ws_impl: str) -> None:
    async def test() -> None:
        async with serving(ws=ws_impl) as srv, srv.http.ws_connect(srv.ws_url("/echo")) as ws:
            await ws.send_str("héllo")
            msg = await asyncio.wait_for(ws.receive(), WAIT)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, "héllo")
            await ws.send_bytes(b"\x00\xffbin")
            msg = await asyncio.wait_for(ws.receive(), WAIT)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.BINARY, b"\x00\xffbin")

    run_async(test)


def test_ticker_publishes_on_schedule() -> None:
    async def test() -> None:
        async with serving() as srv, srv.http.ws_connect(srv.ws_url("/ws?topic=t")) as ws:
            await until(lambda: srv.hub.stats.subscribers == 1, "subscriber")
            url = srv.url("/control/ticker?topic=t&rate=200&count=50&size=10")
            async with srv.http.post(url) as r:
                assert r.status == 200
                assert (await r.json())["count"] == 50
            envs = await ws_messages(ws, 50)
            assert [e.seq for e in envs] == list(range(1, 51))
            assert all(e.payload == "x" * 10 for e in envs)
            gaps = {b.scheduled_ns - a.scheduled_ns for a, b in itertools.pairwise(envs)}
            assert gaps == {5_000_000}  # 200/s, stamped with the schedule
            async with srv.http.delete(srv.url("/control/ticker")) as r:
                status = await r.json()
            assert status["sent"] == 50
            assert status["running"] is False
            async with srv.http.post(srv.url("/control/ticker?topic=a%20b")) as r:
                assert r.status == 400

    run_async(test)


# --- SSE specifics ---------------------------------------------------------------


def test_sse_headers_retry_and_heartbeats() -> None:
    config = ServerConfig(heartbeat_interval=0.2, sse_retry_ms=1234)

    async def test() -> None:
        async with serving(config) as srv, srv.http.get(srv.url("/sse?topic=t")) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/event-stream"
            assert r.headers["Cache-Control"] == "no-cache"
            assert r.headers["X-Accel-Buffering"] == "no"
            parser = EventParser()
            raw = b""
            async with asyncio.timeout(WAIT):
                while parser.comments < 3:
                    chunk = await r.content.readany()
                    assert chunk
                    raw += chunk
                    assert parser.feed(chunk) == []  # idle: no events, only comments
            assert parser.retry_ms == 1234
            assert raw.startswith(b"retry: 1234\n\n")
            assert b":\n\n" in raw  # the same heartbeat bytes as every stack
            await publish(srv, "t", 1)
            check_events(await sse_events(r, 1, parser), 1, 1)

    run_async(test)


def test_sse_head_does_not_leak_a_connection() -> None:
    async def test() -> None:
        async with serving() as srv:
            async with srv.http.head(srv.url("/sse?topic=t")) as r:
                assert r.status == 200
            await until(
                lambda: srv.service.stats.connections_open == 0 and srv.hub.stats.subscribers == 0,
                "HEAD released",
            )

    run_async(test)


# --- refusals ------------------------------------------------------------------

BAD_QUERIES = [
    ("", 400),  # missing topic
    ("topic=", 400),
    ("topic=" + "a" * 65, 400),
    ("topic=a%20b", 400),
    ("topic=t&since=-1", 400),
    ("topic=t&since=abc", 400),
    ("topic=t&since=99999999999999999999999", 400),
    ("topic=t&since=%C2%B2", 400),  # "²": str.isdigit() but not an integer
    ("topic=t&timeout=1e9", 400),
    ("topic=t&timeout=nan", 400),
]


async def status_of(srv: Server, kind: str, query: str, **kw: Any) -> tuple[int, Any]:
    """The HTTP status (and JSON body, if any) one endpoint answers ``query`` with."""
    if kind == "ws":
        try:
            ws = await srv.http.ws_connect(srv.ws_url(f"/ws?{query}"), **kw)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, None
        await ws.close()
        return 101, None
    method, path = {"sse": ("GET", "/sse"), "poll": ("GET", "/poll"), "pub": ("POST", "/publish")}[
        kind
    ]
    if kind == "poll":
        query += "&timeout=0" if "timeout" not in query else ""
    async with srv.http.request(method, srv.url(f"{path}?{query}"), data=b"p", **kw) as r:
        body = await r.json() if r.content_type == "application/json" and r.status != 200 else None
        return r.status, body


@pytest.mark.parametrize(("query", "status"), BAD_QUERIES)
def test_bad_parameters_are_refused_alike(query: str, status: int) -> None:
    async def test() -> None:
        async with serving() as srv:
            for kind in ("sse", "poll", "pub", "ws"):
                got, body = await status_of(srv, kind, query)
                assert got == status, (kind, query)
                if kind != "ws":
                    assert isinstance(body, dict)
                    assert set(body) == {"error"}
            assert srv.service.stats.bad_requests == 4
            assert srv.service.stats.connections_open == 0

    run_async(test)


def test_publish_limits_and_unknown_paths() -> None:
    async def test() -> None:
        async with serving() as srv:
            url = srv.url("/publish?topic=t")
            async with srv.http.post(url, data=b"x" * 1024) as r:
                assert r.status == 200  # exactly the limit is fine
            async with srv.http.post(url, data=b"x" * 1025) as r:  # Content-Length says so
                assert r.status == 413
                assert await r.json() == {"error": "payload over 1024 bytes"}

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(100):
                    yield b"y" * 100

            async with srv.http.post(url, data=chunks()) as r:  # chunked: cut off past the limit
                assert r.status == 413
            async with srv.http.post(srv.url("/publish?topic=a%20b"), data=b"x" * 5000) as r:
                assert r.status == 400  # the query is still checked first
            async with srv.http.post(url, data=b"\xff\xfe") as r:
                assert r.status == 400
                assert await r.json() == {"error": "payload must be UTF-8"}
            async with srv.http.get(srv.url("/nope")) as r:
                assert r.status == 404
                assert r.content_type == "application/json"
                assert await r.json() == {"error": "not found"}
            async with srv.http.get(url) as r:
                assert r.status == 405
                assert await r.json() == {"error": "method not allowed"}
            async with srv.http.get(srv.url("/health")) as r:
                assert (r.status, await r.text()) == (200, "ok")
            async with srv.http.get(srv.url("/stats")) as r:
                stats = await r.json()
            assert stats["published"] == 1
            assert stats["bad_requests"] == 4  # 404/405 are the router's, not the service's

    run_async(test)


def test_tokens_are_checked_on_every_transport() -> None:
    secret = b"k"
    config = ServerConfig(auth_secret=secret)

    async def test() -> None:
        async with serving(config) as srv:
            bad = {
                "missing": "",
                "forged": make_token(b"other", "t"),
                "expired": make_token(secret, "t", ttl_s=-10),
                "other topic": make_token(secret, "u"),
            }
            failures = 0
            for kind in ("sse", "poll", "pub", "ws"):
                for why, token in bad.items():
                    got, body = await status_of(srv, kind, f"topic=t&token={token}")
                    assert got == 401, (kind, why)  # ws too: an HTTP 401, not a close
                    if body is not None:
                        assert body["error"].startswith("token ")
                    failures += 1
                good = make_token(secret, "t")
                got, _ = await status_of(srv, kind, f"topic=t&token={good}")
                assert got in (200, 101), kind
            async with srv.http.get(srv.url("/stats")) as r:
                assert (await r.json())["auth_failures"] == failures
            assert srv.service.stats.connections_open == 0

    run_async(test)


@pytest.mark.parametrize("ws_impl", WS_IMPLS)
def test_ws_refusals_are_http_statuses(ws_impl: str) -> None:
    config = ServerConfig(auth_secret=b"k", max_connections=1, origins=("http://ok",))

    async def test() -> None:
        async with serving(config, ws=ws_impl) as srv:
            token = make_token(b"k", "t")
            assert (await status_of(srv, "ws", "topic=t"))[0] == 401
            q = f"topic=t&token={token}"
            evil = {"Origin": "http://evil"}
            assert (await status_of(srv, "ws", q, headers=evil))[0] == 403
            async with srv.http.ws_connect(srv.ws_url(f"/ws?{q}"), origin="http://ok"):
                await until(lambda: srv.service.stats.connections_open == 1, "one open")
                assert (await status_of(srv, "ws", q))[0] == 429  # max_connections
                async with srv.http.get(srv.url(f"/sse?{q}")) as r:
                    assert r.status == 429
            assert srv.service.stats.connections_refused == 2

    run_async(test)


# --- lifecycle ------------------------------------------------------------------------


async def raw_open(port: int, request: bytes) -> asyncio.StreamWriter:
    """A bare TCP client that sent ``request`` and read the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] in (b"101", b"200"), head
    return writer


def test_abrupt_disconnects_release_everything() -> None:
    async def test() -> None:
        async with serving() as srv:
            port = int(srv.base.rsplit(":", 1)[1])
            key = b64encode(os.urandom(16))
            ws_req = (
                b"GET /ws?topic=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            sse_req = b"GET /sse?topic=t HTTP/1.1\r\nHost: x\r\n\r\n"
            writers = [await raw_open(port, ws_req if i % 2 else sse_req) for i in range(20)]
            await until(lambda: srv.hub.stats.subscribers == 20, "20 subscribers")
            assert srv.service.stats.connections_open == 20
            await publish(srv, "t", 3)
            for w in writers:  # RST, no close handshake, no FIN
                w.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                w.transport.abort()
            await publish(srv, "t", 3, start=4)  # writes to dead peers must not wedge anything
            await until(
                lambda: srv.hub.stats.subscribers == 0 and srv.service.stats.connections_open == 0,
                "all sessions released",
            )

    run_async(test)


def test_stop_closes_websockets_with_1001_and_ends_sse() -> None:
    async def test() -> None:
        async with serving() as srv:
            ws = await srv.http.ws_connect(srv.ws_url("/ws?topic=t"))
            echo = await srv.http.ws_connect(srv.ws_url("/echo"))
            sse_resp = await srv.http.get(srv.url("/sse?topic=t"))
            await until(lambda: srv.service.stats.connections_open == 3, "3 sessions")
            srv.stop.set()
            async with asyncio.timeout(WAIT):
                for sock in (ws, echo):
                    msg = await sock.receive()
                    assert msg.type == aiohttp.WSMsgType.CLOSE, msg
                    assert sock.close_code == 1001
                rest = await sse_resp.content.read()  # ends: not left hanging
                await srv.task
            assert rest == b"retry: 1500\n\n"
            sse_resp.close()
            assert srv.service.stats.connections_open == 0
            assert srv.hub.stats.subscribers == 0

    run_async(test)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_ws_on_each_event_loop(loop: str) -> None:
    async def test() -> None:
        running = type(asyncio.get_running_loop()).__module__
        assert running.startswith("uvloop") == (loop == "uvloop")
        async with serving(loop=loop) as srv:
            async with srv.http.ws_connect(srv.ws_url("/ws?topic=t")) as ws:
                await until(lambda: srv.hub.stats.subscribers == 1, "subscriber")
                await publish(srv, "t", 20)
                check_seqs(await ws_messages(ws, 20), 1, 20)
            async with srv.http.ws_connect(srv.ws_url("/ws?topic=t&since=5")) as ws:
                check_seqs(await ws_messages(ws, 15), 6, 20)

    run_async(test, loop)


@pytest.mark.parametrize(("asked", "actual"), [("uvloop", "asyncio"), ("asyncio", "uvloop")])
def test_run_refuses_a_loop_other_than_options_loop(asked: str, actual: str) -> None:
    async def test() -> None:
        never: Callable[[int], None] = lambda port: pytest.fail("must not listen")  # noqa: E731
        with pytest.raises(ValueError, match="loop"):
            await run(
                PushService(Hub()),
                "127.0.0.1",
                0,
                never,
                asyncio.Event(),
                StackOptions(loop=asked),
            )

    run_async(test, actual)

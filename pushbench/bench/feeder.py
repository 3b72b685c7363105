"""The firehose feeder of ``pushbench bench-client``: a process that only sends.

``python -m pushbench.bench.feeder JSON`` (``JSON``: a :class:`FeederSpec`)
serves the three shapes of push the clients under test receive, chosen by the
request's path as on a real server, each made of envelopes
(:mod:`pushbench.contract`) with a ``payload``-byte payload, all encoded once
before sending, so its core goes to writing and little else: the client under
test, not the feeder, should set the pace.

- ``/ws``: answers the WebSocket upgrade (:mod:`pushbench.wire.handshake`), then
  sends text frames; answers a Close with a Close and a Ping with a Pong.
- ``/sse``: a ``200`` event stream, chunked as aiohttp and uvicorn send it, of
  events ``id: N`` / ``data: <envelope>``.
- ``/poll``: keep-alive poll answers ``{"last":N,"messages":[…]}`` with a
  Content-Length, one per request. A connection's first request is answered at
  once and empty (the client's connecting poll); after that, at saturation every
  request is answered at once with ``batch`` messages, one prebuilt response
  written from the callback that received the request (:class:`_FastPolls`: no
  task wakes per request, so the client's ceiling is what is measured); at an offered rate a
  request is held until a message of its connection's share is due, and then
  carries every message due (at most :data:`MAX_POLL_BATCH`), as a long-poll
  server's answers grow when its client falls behind.

Streams are sent back to back (``rate`` 0, as fast as the socket takes them, in
writes of about 64 KiB) or at a total rate (each connection its share, sent
every 10 ms, the connections' ticks staggered). Sending starts once
``connections`` connections are up (or 30 s after the first).

It is its own module so the process imports only what it runs, and so the
measuring side (:mod:`pushbench.bench.client_runner`, which starts it pinned to its
own CPU and reads its ready line, :data:`FEEDER_READY`) stays about measuring.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["FEEDER_READY", "MAX_POLL_BATCH", "TOPIC", "FeederSpec", "main"]

TOPIC = "bench"
FEEDER_READY = "feeder listening on port "
SEND_CHUNK = 64 * 1024  # bytes per write at saturation: one syscall per ~400 small frames
TICK_S = 0.01  # offered mode: each connection sends what is due every 10 ms
FEEDER_START_TIMEOUT_S = 30.0  # send even if not every expected connection arrived
MAX_POLL_BATCH = 1000  # the most messages one poll answer carries (a server's history)
_SEQ0 = 10**9  # first sequence number: every envelope has as many digits


@dataclass(frozen=True)
class FeederSpec:
    """What the feeder sends: ``rate`` total msgs/s over ``connections`` (0: back to back);
    ``batch``: messages per poll answer at saturation."""

    connections: int
    payload: int
    rate: float = 0.0
    topic: str = TOPIC
    batch: int = 1

    def envelopes(self, count: int) -> list[bytes]:
        """``count`` envelopes of equal length, sequence numbers from 10^9 (so all have
        the same number of digits: a prefix of ``k`` items is exactly ``k`` lengths)."""
        from pushbench.contract import Envelope, encode

        now = time.monotonic_ns()
        return [
            encode(Envelope(self.topic, _SEQ0 + i, now, now, "x" * self.payload))
            for i in range(count)
        ]

    def frames(self, count: int) -> tuple[bytes, int]:
        """``count`` WebSocket text frames of envelopes, joined → (bytes, frame length)."""
        from pushbench.wire import Opcode, encode_frame

        frames = [encode_frame(Opcode.TEXT, e) for e in self.envelopes(count)]
        return b"".join(frames), len(frames[0])

    def events(self, count: int) -> tuple[bytes, int]:
        """``count`` SSE events (``id`` and ``data``), joined → (bytes, event length)."""
        from pushbench import sse

        events = [sse.event(e, _SEQ0 + i) for i, e in enumerate(self.envelopes(count))]
        return b"".join(events), len(events[0])

    def poll_answers(self) -> PollAnswers:
        """The poll answers of every size up to :data:`MAX_POLL_BATCH`, ready to slice."""
        envelopes = self.envelopes(max(MAX_POLL_BATCH, self.batch))
        return PollAnswers(b",".join(envelopes), len(envelopes[0]))


@dataclass(frozen=True)
class PollAnswers:
    """Whole HTTP responses carrying the first ``n`` of a run of equal-length envelopes."""

    joined: bytes  # the envelopes, comma-separated
    length: int  # of one envelope

    def answer(self, n: int) -> bytes:
        """A keep-alive ``200`` whose body is the poll answer of ``n`` messages."""
        items = self.joined[: n * (self.length + 1) - 1] if n else b""
        body = b'{"last":%d,"messages":[%s]}' % (_SEQ0 + n - 1 if n else 0, items)
        return POLL_HEAD % len(body) + body


POLL_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pushbench.bench.feeder JSON``: serve until SIGTERM or SIGINT.

    ``JSON`` holds the fields of a :class:`FeederSpec`. Binds 127.0.0.1 on a
    free port, prints ``feeder listening on port N`` on stdout, serves every
    connection by its path (the module docstring), and once ``connections``
    connections are up (or 30 s after the first) sends on all of them. As every
    process entry point, it applies the settings its environment carries
    (:mod:`pushbench.settings`).
    """
    from pushbench.settings import Settings

    Settings.from_environ(os.environ).apply()
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m pushbench.bench.feeder JSON", file=sys.stderr)
        return 2
    spec = FeederSpec(**json.loads(args[0]))
    # uvloop when installed: the feeder is harness, not the client under test, and a
    # cheaper loop leaves more of its core for writing.
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        sent = runner.run(_feed(spec))
    print(f"feeder: sent {sent:,} messages on {spec.connections} connections", file=sys.stderr)
    return 0


class _Heads:
    """Counts the request heads arriving on a poll connection: the feeder answers
    requests, it never needs to read them (the clients send GETs without a body)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.pending = 0
        self._tail = b""  # bytes after the last complete head: a head split across reads

    async def next(self) -> bool:
        """Wait for the next request → False at the end of the connection."""
        while self.pending == 0:
            data = await self.reader.read(65536)
            if not data:
                return False
            data = self._tail + data
            self.pending += data.count(b"\r\n\r\n")
            last = data.rfind(b"\r\n\r\n")
            self._tail = (data[last + 4 :] if last >= 0 else data)[-3:]
        self.pending -= 1
        return True


class _FastPolls:
    """Answers the polls of one connection at saturation from the protocol's callback.

    No task wakes per request: every complete request head that arrives is
    answered at once with the prebuilt answer, in the callback that received it
    (after ``start``: before every connection is up, they are counted and
    answered together when sending starts).
    """

    def __init__(
        self, transport: asyncio.WriteTransport, answer: bytes, batch: int, sent: list[int]
    ) -> None:
        self.transport = transport
        self.answer = answer
        self.batch = batch
        self.sent = sent  # the feeder's count of messages sent, kept current
        self.started = False
        self.pending = 0
        self._tail = b""

    def feed(self, data: bytes) -> None:
        data = self._tail + data
        heads = data.count(b"\r\n\r\n")
        last = data.rfind(b"\r\n\r\n")
        self._tail = (data[last + 4 :] if last >= 0 else data)[-3:]
        if not heads:
            return
        if not self.started:
            self.pending += heads
            return
        self.transport.write(self.answer * heads if heads > 1 else self.answer)
        self.sent[0] += heads * self.batch

    def start(self) -> None:
        self.started = True
        if self.pending:
            self.transport.write(self.answer * self.pending)
            self.sent[0] += self.pending * self.batch
            self.pending = 0


class _FeederProtocol(asyncio.StreamReaderProtocol):
    """The streams protocol, plus a switch: once ``fast`` is set, received bytes go to
    it (:class:`_FastPolls`) instead of the stream reader."""

    fast: _FastPolls | None = None

    def data_received(self, data: bytes) -> None:
        fast = self.fast
        if fast is None:
            super().data_received(data)
        else:
            fast.feed(data)


@dataclass(frozen=True)
class _Stream:
    """What a streaming connection (WebSocket or SSE) sends: ``whole`` is one
    back-to-back write of ``count`` items of ``unit`` bytes (``items``, joined),
    ``wrap`` frames a prefix of ``items`` for a paced write."""

    items: bytes
    count: int
    unit: int
    wrap: Callable[[bytes], bytes]

    @property
    def whole(self) -> bytes:
        return self.wrap(self.items)


def _streams(spec: FeederSpec) -> dict[str, _Stream]:
    """The two streaming shapes, encoded once: about :data:`SEND_CHUNK` bytes per write."""
    _, frame_len = spec.frames(1)
    n = max(1, SEND_CHUNK // frame_len)
    frames, _ = spec.frames(n)
    _, event_len = spec.events(1)
    m = max(1, SEND_CHUNK // event_len)
    events, _ = spec.events(m)
    return {
        "ws": _Stream(frames, n, frame_len, bytes),
        "sse": _Stream(events, m, event_len, chunk),
    }


async def _feed(spec: FeederSpec) -> int:
    """The feeder's event loop → messages sent."""
    import signal

    from pushbench.wire import FrameReader, Opcode, encode_frame
    from pushbench.wire.errors import HandshakeError, ProtocolError
    from pushbench.wire.handshake import accept, parse_request, reject

    loop = asyncio.get_running_loop()
    streams = _streams(spec)
    answers = spec.poll_answers()
    full_answer = answers.answer(spec.batch)
    per_conn = spec.rate / spec.connections
    stop = asyncio.Event()
    go = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    writers: set[asyncio.StreamWriter] = set()  # open connections
    joined = [0]  # connections up so far: the next one's index
    sent = [0]
    go_at = [0.0]

    async def join(writer: asyncio.StreamWriter) -> int:
        """A connection is up: count it, wait until every one is → its index."""
        index = joined[0]
        joined[0] += 1
        writers.add(writer)
        if joined[0] >= spec.connections:
            go_at[0] = loop.time()
            go.set()
        elif joined[0] == 1:
            loop.call_later(FEEDER_START_TIMEOUT_S, go.set)
        await go.wait()
        if not go_at[0]:
            go_at[0] = loop.time()
        return index

    async def back_to_back(writer: asyncio.StreamWriter, stream: _Stream) -> None:
        whole = stream.whole
        while True:
            writer.write(whole)
            sent[0] += stream.count
            await writer.drain()  # blocks while the client's socket buffer is full

    async def paced(writer: asyncio.StreamWriter, index: int, stream: _Stream) -> None:
        # Open loop: what is due by now is sent every tick, late or not; the ticks
        # of the connections are spread over the 10 ms so they do not all burst at once.
        start = go_at[0] + (index % spec.connections) / spec.connections * TICK_S
        done = 0
        k = 0
        while True:
            k += 1
            await asyncio.sleep(max(0.0, start + k * TICK_S - loop.time()))
            due = int(per_conn * (loop.time() - start)) - done
            while due > 0:
                n = min(due, stream.count)
                writer.write(stream.wrap(stream.items[: n * stream.unit]))
                done += n
                due -= n
                sent[0] += n
                await writer.drain()

    async def ws_control(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bytes | None:
        """Read what the client sends until its Close (→ its code) or EOF (→ None)."""
        frames = FrameReader(masked=True)
        while data := await reader.read(65536):
            for frame in frames.feed(data):
                if frame.opcode == Opcode.CLOSE:
                    return bytes(frame.payload[:2])
                if frame.opcode == Opcode.PING:
                    writer.write(encode_frame(Opcode.PONG, frame.payload))
        return None

    async def stream(kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A WebSocket or SSE connection whose head was answered: send until it ends."""
        index = await join(writer)
        how = streams[kind]
        sender = asyncio.ensure_future(
            paced(writer, index, how) if spec.rate > 0 else back_to_back(writer, how)
        )
        try:
            if kind == "ws":
                code = await ws_control(reader, writer)
                sender.cancel()
                await asyncio.wait({sender})
                if code is not None:
                    writer.write(encode_frame(Opcode.CLOSE, code))
            else:
                while await reader.read(65536):  # an SSE client says nothing: until EOF
                    pass
        finally:
            sender.cancel()

    async def fast_poll(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A poll connection at saturation: answered from the protocol's callback."""
        protocol = writer.transport.get_protocol()
        assert isinstance(protocol, _FeederProtocol)
        fast = protocol.fast = _FastPolls(writer.transport, full_answer, spec.batch, sent)
        writer.write(answers.answer(0))  # the client's connecting poll: at once, empty
        await join(writer)
        fast.start()
        await reader.read()  # EOF: the stream reader still hears of the connection's end

    async def poll(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A poll connection whose first request arrived: answer every request."""
        if spec.rate <= 0:
            await fast_poll(reader, writer)
            return
        heads = _Heads(reader)
        writer.write(answers.answer(0))  # the client's connecting poll: at once, empty
        await join(writer)
        start = go_at[0]
        done = 0
        while await heads.next():
            if spec.rate <= 0:
                n = spec.batch
                writer.write(full_answer)
            else:  # held until a message of this connection's share is due
                due = int(per_conn * (loop.time() - start)) - done
                if due <= 0:
                    await asyncio.sleep(max(0.0, (done + 1) / per_conn - (loop.time() - start)))
                    due = max(1, int(per_conn * (loop.time() - start)) - done)
                n = min(due, MAX_POLL_BATCH)
                writer.write(answers.answer(n))
            done += n
            sent[0] += n
            await writer.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            try:
                request = parse_request(head)
                path = request.path.rsplit("/", 1)[-1]
                if path == "ws":
                    writer.write(accept(request).serialize())
                elif path == "sse":
                    writer.write(SSE_HEAD)
                elif path != "poll":
                    raise HandshakeError(404, f"no {request.path} here")
            except HandshakeError as exc:
                writer.write(reject(exc).serialize())
                return
            if path == "poll":
                await poll(reader, writer)
            else:
                await stream(path, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ProtocolError as exc:
            print(f"feeder: protocol error from a client: {exc}", file=sys.stderr)
        finally:
            writers.discard(writer)
            writer.close()

    def protocol() -> _FeederProtocol:
        return _FeederProtocol(asyncio.StreamReader(limit=1 << 16, loop=loop), handle, loop=loop)

    server = await loop.create_server(protocol, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"{FEEDER_READY}{port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()  # unsent messages are of no use to anyone
    return sent[0]


if __name__ == "__main__":
    sys.exit(main())

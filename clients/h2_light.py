"""The light HTTP/2 clients (issue 18 item 3): SSE and long polling as streams of one
connection, on the sans-I/O ``h2`` library and an asyncio Protocol.

What HTTP/2 changes is the connection, not the client: every subscriber of a worker is
still one :class:`~.common.Client` (its own ``ConnStats``, cursor or last event id,
reconnects), but its requests are *streams* of a connection the worker's clients share
(:class:`H2Pool`: one per event loop and origin), as a browser multiplexes every
EventSource of an origin over one connection. A connection takes streams up to the
server's ``SETTINGS_MAX_CONCURRENT_STREAMS``; past it the pool opens another.

- ``sse-h2``: ``GET /sse`` as one stream; DATA frames go through the same
  :class:`pushbench.sse.EventParser` as the HTTP/1.1 client, each event to
  :meth:`Recorder.record`; the stream ending is EventSource's reconnect (with
  ``Last-Event-ID``, after ``retry``).
- ``longpoll-h2``: each poll is a stream (HTTP/2 has no keep-alive per request: the
  connection is kept); the first a short poll that fetches the cursor, then long polls,
  every answer to :meth:`Recorder.record_batch` — :class:`~.poll.PollClient`'s
  accounting.

The connection is h2c with prior knowledge on ``http://`` (the preface, no Upgrade) and
h2 by ALPN on ``https://`` (a TLS cell: its own context offering only ``h2``, so the
HTTP/1.1 publish pool keeps its own). The clock is read first in every read, as in
:mod:`.http_light`. Flow control: the client announces a 16 MiB window and returns what
it consumed at once, so a stream is never held back by the receiver.

Bytes are the kernel's (:class:`~.tcpinfo.TcpMeter`, one per TCP connection): the
handshake is the preface and the SETTINGS exchange; everything after — HEADERS with
HPACK, DATA framing, WINDOW_UPDATE, PING — counts as bytes after the handshake. The meter
is accounted to the ``ConnStats`` of the client that opened the connection (so the
worker's sums are the connection's bytes, counted once); the others are marked
``bytes_elsewhere``. ``H2Pool.opened`` counts the TCP connections (the tests assert one).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import weakref
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from pushbench.schema.worker import WorkerSpec
from pushbench.sse import EventParser
from pushbench.tls import client_context

from .common import Client, ConnStats, SessionEnded, clock
from .http_light import read_buffer
from .poll import READ_SLACK_S, PollClient
from .recorder import Recorder
from .sse import DEFAULT_RETRY_MS, eventsource_delay
from .sse import HEADERS as SSE_HEADERS
from .tcpinfo import TcpMeter
from .tlsconn import Phases, connect

__all__ = ["H2Conn", "H2Pool", "LongPollH2Client", "SseH2Client", "pool", "run_long", "run_sse"]

WINDOW = 16 * 1024 * 1024  # the receive window announced (connection and streams)
Headers = list[tuple[str, str]]


@functools.cache
def _h2_context(ca_file: str) -> ssl.SSLContext:
    """A verifying TLS context offering only ``h2`` (one per process and CA)."""
    context = client_context(Path(ca_file))
    context.set_alpn_protocols(["h2"])
    return context


class Stream:
    """One request on an :class:`H2Conn`: what a client does with its answer."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.id = 0
        self.status = 0
        self.done: asyncio.Future[None] = loop.create_future()

    def on_headers(self, status: int, now: int) -> None:
        self.status = status

    def on_data(self, data: bytes, now: int) -> None:
        """A DATA frame's bytes arrived at ``now``."""

    def on_end(self, now: int) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def on_fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class H2Conn(asyncio.BufferedProtocol):
    """One TCP connection speaking HTTP/2 as a client: streams opened by many clients."""

    def __init__(self, owner: ConnStats, limit_hint: int) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.owner = owner
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.meter = TcpMeter()
        self.ready: asyncio.Future[None] = loop.create_future()  # server SETTINGS arrived
        self.transport: asyncio.Transport | None = None
        self.made_ns = 0
        self.streams: dict[int, Stream] = {}
        self.reserved = 0  # slots promised to clients still waiting for ``ready``
        self.users = 0  # clients holding it (:meth:`H2Pool.release`: the last one closes it)
        self.limit = limit_hint
        self.closed = False
        self.phases: Phases | None = None  # h43: its TCP connect and TLS handshake times
        self._buffer = read_buffer()

    # --- capacity ----------------------------------------------------------------------

    def has_room(self) -> bool:
        return not self.closed and len(self.streams) + self.reserved < self.limit

    # --- asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made_ns = clock()
        self.transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
        self.h2.increment_flow_control_window(WINDOW - 65535)
        self._flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        now = clock()  # first: the arrival time of everything in this read
        try:
            events = self.h2.receive_data(self._buffer[:nbytes].tobytes())
            for event in events:
                self._event(event, now)
        except Exception as exc:
            self._fail_all(exc)
            if self.transport is not None:
                self.transport.abort()
            return
        self._flush()

    def _event(self, event: h2.events.Event, now: int) -> None:
        if isinstance(event, h2.events.DataReceived):
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is not None and event.data:
                stream.on_data(event.data, now)
            if event.stream_ended is not None:
                self._end(event.stream_id, now)
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            status = dict(cast(Headers, event.headers)).get(":status", "0")
            if stream is not None:
                stream.on_headers(int(status), now)
            if event.stream_ended is not None:
                self._end(event.stream_id, now)
        elif isinstance(event, h2.events.StreamEnded):
            self._end(event.stream_id, now)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.on_fail(SessionEnded(f"stream reset by the server ({event.error_code})"))
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            limit = self.h2.remote_settings.max_concurrent_streams
            self.limit = min(self.limit, limit) if limit else self.limit
            if not self.ready.done():
                transport = self.transport
                sock = transport.get_extra_info("socket") if transport else None
                self.owner.start_meter(self.meter, sock)  # the handshake ends here
                self.ready.set_result(None)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._fail_all(SessionEnded(f"GOAWAY from the server ({event.error_code})"))
            self.closed = True

    def _end(self, stream_id: int, now: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None:
            stream.on_end(now)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.owner.add_meter(self.meter)
        self._fail_all(exc or SessionEnded("the HTTP/2 connection closed"))
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionResetError("closed before SETTINGS"))

    # --- streams -----------------------------------------------------------------------

    def open(self, stream: Stream, headers: Headers) -> None:
        """Send ``headers`` (a GET, END_STREAM) as a new stream handled by ``stream``."""
        if self.closed:
            raise SessionEnded("the HTTP/2 connection is closed")
        stream_id = self.h2.get_next_available_stream_id()
        stream.id = stream_id
        self.streams[stream_id] = stream
        self.h2.send_headers(stream_id, headers, end_stream=True)
        self._flush()

    def cancel(self, stream: Stream) -> None:
        """The client leaves: reset its stream if it is still open (RST_STREAM CANCEL)."""
        if self.streams.pop(stream.id, None) is None or self.closed:
            return
        try:
            self.h2.reset_stream(stream.id, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            return
        self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.owner.add_meter(self.meter)
            self.closed = True
            self.transport.close()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail_all(self, exc: BaseException) -> None:
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.on_fail(exc)


def check_alpn(conn: H2Conn) -> None:
    """A TLS connection must have agreed on ``h2`` by ALPN (h43): a server or proxy that
    answers HTTP/1.1 only (nginx without ``http2`` on its listener) is refused here with
    what it chose, not mistaken for a broken HTTP/2 peer."""
    transport = conn.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return  # h2c with prior knowledge
    chosen = ssl_object.selected_alpn_protocol()
    if chosen != "h2":
        conn.close()
        raise SessionEnded(f"TLS peer did not agree on h2 by ALPN (it chose {chosen!r})")


class H2Pool:
    """The HTTP/2 connections of one event loop to one origin, shared by its clients."""

    def __init__(self) -> None:
        self.conns: list[H2Conn] = []
        self.opened = 0  # TCP connections made (the tests assert one for many streams)
        self.limit_hint = 10_000  # until a server's SETTINGS say otherwise

    async def acquire(
        self, client: Client, host: str, port: int, tls: ssl.SSLContext | None
    ) -> H2Conn:
        """A connection with room for one more stream; the slot is reserved until
        the caller opens its stream (or gives up)."""
        self.conns = [c for c in self.conns if not c.closed]
        conn = next((c for c in self.conns if c.has_room()), None)
        if conn is None:
            conn = H2Conn(client.stats, self.limit_hint)
            self.conns.append(conn)
            self.opened += 1
            conn.reserved += 1
            try:
                conn.phases = await connect(lambda: conn, conn, host, port, tls, clock(), clock)
                check_alpn(conn)
            except BaseException:
                conn.closed = True
                conn.reserved -= 1
                if not conn.ready.done():
                    conn.ready.cancel()
                raise
        else:
            conn.reserved += 1
        try:
            await conn.ready
        except BaseException:
            conn.reserved -= 1
            raise
        client.stats.bytes_elsewhere = conn.owner is not client.stats
        conn.users += 1
        return conn

    def release(self, conn: H2Conn) -> None:
        """A client leaves ``conn`` (it stops, or moved to another): the last one closes
        it, which finishes its byte count."""
        conn.users -= 1
        if conn.users <= 0:
            conn.close()
            if conn in self.conns:
                self.conns.remove(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns = []


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, H2Pool]] = (
    weakref.WeakKeyDictionary()
)


def pool(base_url: str) -> H2Pool:
    """The pool of the running loop for ``base_url``'s origin."""
    loop = asyncio.get_running_loop()
    pools = _POOLS.setdefault(loop, {})
    origin = urlsplit(base_url)._replace(path="", query="", fragment="").geturl()
    return pools.setdefault(origin, H2Pool())


class _H2Client(Client):
    """What both HTTP/2 clients share: the pool, request headers, the publisher."""

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        url = urlsplit(spec.base_url)
        self.scheme = url.scheme
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.netloc = url.netloc
        self.tls = None if spec.ca_file is None else _h2_context(spec.ca_file)
        self.pool = pool(spec.base_url)
        self.conn: H2Conn | None = None  # the connection of the live session

    def headers(self, target: str, extra: tuple[tuple[str, str], ...] = ()) -> Headers:
        return [
            (":method", "GET"),
            (":scheme", self.scheme),
            (":authority", self.netloc),
            (":path", target),
            *((k.lower(), v) for k, v in extra),
        ]

    async def stream(self, stream: Stream, headers: Headers) -> H2Conn:
        """Open ``stream`` on a pooled connection (reserving, then using, its slot)."""
        conn = self.conn
        if conn is None or conn.closed:
            if conn is not None:
                self.conn = None
                self.pool.release(conn)
            conn = self.conn = await self.pool.acquire(self, self.host, self.port, self.tls)
        else:
            conn.reserved += 1
        try:
            conn.open(stream, headers)
        finally:
            conn.reserved -= 1
        return conn

    def phases(self, conn: H2Conn) -> Phases | None:
        """The connect phases to report (h43): the connection's, for the client that
        opened it (one figure per TCP connection, as its bytes); None for the others."""
        return conn.phases if conn.owner is self.stats else None

    async def close(self) -> None:
        """The client stops: leave its connection (the last to leave closes it)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            self.pool.release(conn)


class _SseStream(Stream):
    def __init__(self, client: SseH2Client) -> None:
        super().__init__()
        self.client = client
        self.parser = EventParser(client.last_event_id)
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_headers(self, status: int, now: int) -> None:
        super().on_headers(status, now)
        if status != 200:
            self.on_fail(SessionEnded(f"/sse answered {status}"))
        elif not self.opened.done():
            self.opened.set_result(now)

    def on_data(self, data: bytes, now: int) -> None:
        client = self.client
        events = self.parser.feed(data)
        if events:
            stats = client.stats
            record = client.recorder.record
            conn = client.conn_id
            last = 0
            for event in events:
                seq = record(conn, event.data, now)
                last = max(last, seq)
            stats.messages += len(events)
            stats.last_seq = max(stats.last_seq, last)
        client.last_event_id = self.parser.last_event_id

    def on_end(self, now: int) -> None:
        self.parser.feed_eof()
        super().on_end(now)

    def on_fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        super().on_fail(exc)


class SseH2Client(_H2Client):
    """``GET /sse`` as one stream; ``Last-Event-ID`` on reconnect; honours ``retry:``."""

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        self.last_event_id = ""
        self.retry_ms = DEFAULT_RETRY_MS
        self.target = spec.target("/sse")

    def retry_delay(self, failures: int) -> float:
        return eventsource_delay(self.retry_ms, failures)

    async def session(self) -> None:
        stream = _SseStream(self)
        extra = SSE_HEADERS
        if self.last_event_id:
            extra = (*SSE_HEADERS, ("Last-Event-ID", self.last_event_id))
        t0 = clock()
        conn: H2Conn | None = None
        try:
            async with asyncio.timeout(self.spec.connect_timeout_s):
                conn = await self.stream(stream, self.headers(self.target, extra))
                opened = await stream.opened
            self.stats.established(opened - t0, self.phases(conn))
            async with self.publishing(self.publish_http):
                await stream.done
        finally:
            if conn is not None:
                conn.cancel(stream)
            for future in (stream.opened, stream.done):
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved
            if stream.parser.retry_ms is not None:
                self.retry_ms = stream.parser.retry_ms


class _PollStream(Stream):
    def __init__(self) -> None:
        super().__init__()
        self.body = bytearray()
        self.end_ns = 0

    def on_data(self, data: bytes, now: int) -> None:
        self.body += data

    def on_end(self, now: int) -> None:
        self.end_ns = now
        super().on_end(now)


class LongPollH2Client(_H2Client, PollClient):
    """Each poll a stream: a short poll for the cursor, then long polls; the cursor,
    counting and recording are :class:`~.poll.PollClient`'s (:meth:`answered`), its
    HTTP/1.1 connection unused (:meth:`session` is this class's)."""

    LONG = True

    def _target(self, timeout: float) -> str:
        if self.cursor is None:
            return self.spec.target("/poll", timeout=timeout)
        return self.spec.target("/poll", since=self.cursor, timeout=timeout)

    async def _poll(self, timeout: float) -> int:
        """One poll as a stream → the clock reading at its answer's end."""
        stream = _PollStream()
        conn = await self.stream(stream, self.headers(self._target(timeout)))
        try:
            async with asyncio.timeout(timeout + READ_SLACK_S):
                await stream.done
        finally:
            conn.cancel(stream)
        self.answered(stream.status, bytes(stream.body), stream.end_ns)
        return stream.end_ns

    async def session(self) -> None:
        t0 = clock()
        async with asyncio.timeout(self.spec.connect_timeout_s):
            opened = await self._poll(0.0)
        conn = self.conn
        self.stats.established(opened - t0, None if conn is None else self.phases(conn))
        async with self.publishing(self.publish_http):
            while True:
                await self._poll(self.timeout_s)


run_sse = SseH2Client.serve
run_long = LongPollH2Client.serve

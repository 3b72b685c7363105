"""The light HTTP clients' publish path: ``POST /publish`` on keep-alive asyncio Protocols.

A chat cell's SSE and polling clients publish over HTTP. Through aiohttp, one POST cost
the client a ``ClientSession`` request (its tracing hooks, a response object and a
stream reader, two awaits) and carried aiohttp's default headers; in a chat cell that
made the publishing client the costlier side. Here, as in the light receive paths
(:mod:`.http_light`): the request bytes are prepared once but for the scheduled time,
each connection is an ``asyncio.Protocol`` reading its answers with
:class:`~pushbench.wire.http_response.ResponseReader`, and a publish is one write and
one future.

The contract is :meth:`.common.Client.publish_http`'s, so the open-loop publisher
(:meth:`.common.Client.publishing`) drives either: up to
:data:`~.common.PUBLISH_IN_FLIGHT` publishes in flight, each on a keep-alive connection
of its own (one request at a time per connection, as aiohttp's pool does; no
pipelining), opened when none is idle. Every connection is metered by the kernel
(:class:`~.tcpinfo.TcpMeter`) from before its connect, so all its bytes count as the
publishes' (there is no handshake), as with aiohttp's metered sockets. The request
carries what the server needs — Host, Content-Type, Content-Length — and no
``Accept``/``Accept-Encoding``/``User-Agent``, so its bytes on the wire are those of a
minimal client (the aiohttp variants, ``sse-aiohttp`` and the aiohttp polls, still
publish through aiohttp).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from pushbench.schema.worker import WorkerSpec
from pushbench.wire.http_response import BadResponse, ResponseReader

from .common import SessionEnded, clock
from .tcpinfo import TcpMeter
from .tlsconn import connect

if TYPE_CHECKING:
    import ssl

    from .common import ConnStats

__all__ = ["LightPublisher", "publish_request"]


def publish_request(spec: WorkerSpec, netloc: str, body: bytes) -> tuple[bytes, bytes]:
    """``POST /publish?…&sched=`` as (the bytes before the scheduled time, the bytes
    after it): a publish due at ``due`` is ``before + b"%d" % due + after``."""
    before = f"POST {spec.target('/publish')}&sched=".encode()
    after = (
        f" HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return before, after


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request written, its answer's status awaited."""

    def __init__(self, stats: ConnStats) -> None:
        self.stats = stats
        self.reader = ResponseReader()
        self.meter = TcpMeter()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None  # the answer's status, once whole
        self.usable = True  # keep-alive, and nothing went wrong
        self.made_ns = 0  # connected (TLS included): what tlsconn.connect times

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made_ns = clock()
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future[int]:
        """Write ``request`` → its answer's status (one request at a time)."""
        assert self.waiter is None and self.transport is not None
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return waiter

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        try:
            if self.waiter is None:
                raise BadResponse("bytes arrived with no publish awaiting an answer")
            got = reader.whole(data)  # an answer in one read, its head seen before
            if got is not None:
                status, keep_alive = got[0].status, got[2]
            else:
                reader.feed(data)
                if not reader.done:
                    return
                assert reader.head is not None
                status, keep_alive = reader.head.status, reader.keep_alive
                if reader.next_response() or reader.buffered:
                    raise BadResponse("bytes after a publish's answer")
        except BadResponse as exc:
            self.fail(SessionEnded(f"publish: {exc}"))
            return
        waiter, self.waiter = self.waiter, None
        self.usable = self.usable and keep_alive
        if not waiter.done():
            waiter.set_result(status)

    def eof_received(self) -> bool | None:
        self.usable = False
        return None  # close; connection_lost fails a publish still awaiting its answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self.stats.add_meter(self.meter)  # the socket is closed after this returns
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc or ConnectionResetError("closed before the answer"))

    def fail(self, exc: BaseException) -> None:
        self.usable = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class LightPublisher:
    """A publishing client's pool of ``POST /publish`` connections (see the module)."""

    def __init__(
        self,
        spec: WorkerSpec,
        stats: ConnStats,
        host: str,
        port: int,
        netloc: str,
        tls: ssl.SSLContext | None,
        body: bytes,
    ) -> None:
        self.spec = spec
        self.stats = stats
        self.host = host
        self.port = port
        self.tls = tls
        self.before, self.after = publish_request(spec, netloc, body)
        self.idle: list[_Connection] = []
        self.connections: set[_Connection] = set()  # every one opened and not yet closed

    async def publish(self, due_ns: int) -> None:
        """Publish the payload scheduled at ``due_ns``; raises when it was not taken."""
        conn = None
        while self.idle:  # the most recently used first; one the server closed is dropped
            conn = self.idle.pop()
            if conn.usable:
                break
            self._drop(conn)
            conn = None
        if conn is None:
            conn = await self._connect()
        try:
            status = await conn.send(self.before + b"%d" % due_ns + self.after)
        except BaseException:
            conn.fail(ConnectionAbortedError("publish abandoned"))  # never reused
            self.connections.discard(conn)
            raise
        if conn.usable:
            self.idle.append(conn)
        else:
            self._drop(conn)
        if status != 200:
            raise SessionEnded(f"publish answered {status}")

    async def _connect(self) -> _Connection:
        """A new connection, metered from before its connect (:func:`.tlsconn.connect`)."""
        conn = _Connection(self.stats)

        def metered(sock: socket.socket) -> None:
            self.stats.start_meter(conn.meter, sock)

        try:
            async with asyncio.timeout(self.spec.connect_timeout_s):
                await connect(
                    lambda: conn, conn, self.host, self.port, self.tls, 0, clock,
                    on_socket=metered,
                )  # fmt: skip
        except BaseException:
            self.stats.add_meter(conn.meter)  # what the attempt moved (a duplicate fd)
            raise
        self.connections.add(conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if conn.transport is not None:
            conn.transport.close()

    def close(self) -> None:
        """Close every connection, each metered before its socket goes."""
        for conn in self.connections:
            self.stats.add_meter(conn.meter)
            if conn.transport is not None:
                conn.transport.close()
        self.connections.clear()
        self.idle.clear()

"""What the light HTTP clients share: one ``asyncio.BufferedProtocol`` per TCP connection
reading responses with :class:`pushbench.wire.http_response.ResponseReader`, and the
session around it (connect, wait for the first answer, publish, end).

The light SSE and polling clients (:mod:`.sse`, :mod:`.poll`) are built like the
light WebSocket client (:mod:`.ws_light`): request bytes prepared ahead, no
streams, no futures and no ``await`` per message or per answer. The kernel copies
received bytes into one preallocated 16 KiB buffer shared by all connections of
the thread (16 KiB for the reason :mod:`.ws_light` gives: what one read hands to
the recorder stays below the collector's generation-0 threshold);
:meth:`HttpProtocol.buffer_updated` reads the clock first, then hands the bytes
to the transport's :meth:`~HttpProtocol.on_data`. Bytes on the wire are counted
by the kernel (:class:`~.tcpinfo.TcpMeter`): the snapshot that ends the
handshake is taken by the subclass (:meth:`HttpProtocol.start_meter`), the
last one when the connection ends or the client stops.

With an ``https://`` base URL (a TLS cell) every connection is TLS, verified against
the run's CA, its TCP and TLS phases timed (:mod:`.tlsconn`).

``sent`` and ``received`` count the bytes this protocol wrote and read, which
the tests compare with the kernel's counters.
"""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod
from typing import cast
from urllib.parse import urlsplit

from pushbench.schema.worker import WorkerSpec
from pushbench.wire.http_response import ResponseReader

from .common import Client, ConnStats, clock
from .publisher import LightPublisher
from .recorder import Recorder
from .rxengine import Handed
from .tcpinfo import TcpMeter
from .tlsconn import connect, context_for

__all__ = ["READ_SIZE", "HttpProtocol", "LightHttpClient", "read_buffer"]

READ_SIZE = 16384  # see the module docstring

_buffers = threading.local()


def read_buffer() -> memoryview:
    """This thread's receive buffer: every read is handled before the next one starts,
    so the connections of one event loop (HTTP and WebSocket alike) can share it."""
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        view = _buffers.view = memoryview(bytearray(READ_SIZE))
    return view


class HttpProtocol(asyncio.BufferedProtocol):
    """One TCP connection of a light HTTP client.

    ``opened`` resolves to the clock reading at which the connection counts as
    established (an SSE response head, the first poll answer); ``closed`` when
    the connection is gone. ``failure`` is why it ended, if that was not clean.
    Subclasses say what to send first (:meth:`on_connected`), what to do with
    received bytes (:meth:`on_data`, raising ends the connection as a failure)
    and with the end of the input (:meth:`on_eof`).
    """

    def __init__(self, client: LightHttpClient) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.client = client
        self.reader = ResponseReader()
        self.meter = TcpMeter()
        self.opened: asyncio.Future[int] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.made_ns = 0  # connection_made: TCP up, or the TLS handshake done
        self.failure: BaseException | None = None
        self.sent = 0
        self.received = 0
        self.stats = client.stats
        self._buffer = read_buffer()
        self.handed: Handed | None = None  # h45: the connection, once the compiled loop has it

    # --- what a transport says -------------------------------------------------------

    @abstractmethod
    def on_connected(self) -> None:
        """TCP is up: write the first request."""

    @abstractmethod
    def on_data(self, data: bytes, now: int) -> None:
        """Bytes arrived at ``now``; raise to end the connection as a failure."""

    @abstractmethod
    def on_eof(self) -> None:
        """The server closed its side; raise if that cut a response short."""

    async def handed_session(self, handed: Handed) -> None:
        """The session after :attr:`handed` was set (h45: only the SSE client hands over)."""
        raise NotImplementedError

    # --- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made_ns = clock()
        # A TCP transport (uvloop's does not subclass asyncio.Transport: no isinstance).
        self.transport = cast(asyncio.Transport, transport)
        self.on_connected()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        now = clock()  # first: the arrival time of everything in this read
        self.received += nbytes
        try:
            self.on_data(self._buffer[:nbytes].tobytes(), now)
        except Exception as exc:
            self.fail(exc)

    def eof_received(self) -> bool | None:
        try:
            self.on_eof()
        except Exception as exc:
            self.fail(exc)
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.add_meter(self.meter)
        if exc is not None and self.failure is None:
            self.failure = exc
        if not self.opened.done():
            self.opened.set_exception(
                self.failure or ConnectionResetError("closed before the first response")
            )
        if not self.closed.done():
            self.closed.set_result(None)

    # --- helpers ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.sent += len(data)
            transport.write(data)

    def start_meter(self) -> None:
        """The handshake is over: take the kernel's first byte snapshot."""
        transport = self.transport
        self.stats.start_meter(
            self.meter, transport.get_extra_info("socket") if transport else None
        )

    def fail(self, exc: BaseException) -> None:
        """End the connection because of ``exc`` (kept as ``failure``)."""
        if self.failure is None:
            self.failure = exc
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def end(self) -> None:
        """End the connection cleanly from our side (the response is over)."""
        if self.transport is not None:
            self.stats.add_meter(self.meter)  # before our FIN
            self.transport.close()

    def shutdown(self) -> None:
        """The client stops (or the session is over): final byte count, close."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.stats.add_meter(self.meter)
        transport.close()


class LightHttpClient(Client):
    """A light HTTP client: one :class:`HttpProtocol` per session, connected until it ends.

    :meth:`session` opens the connection, counts it established when the
    protocol's ``opened`` resolves, runs the publisher (``spec.publish``, over
    ``POST /publish`` as every HTTP client does) while the connection lives, and
    raises the protocol's ``failure`` when it ended badly.
    """

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        url = urlsplit(spec.base_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.netloc = url.netloc
        self.tls = context_for(spec)  # https:// (a TLS cell), verified against the run's CA
        self.protocol: HttpProtocol | None = None  # the live connection (tests look at it)
        self.publisher: LightPublisher | None = None  # POST /publish (chat cells), once used

    async def publish_light(self, due_ns: int) -> None:
        """:meth:`~.common.Client.publish_http` on the light publish path (:mod:`.publisher`):
        the same contract, without aiohttp."""
        if self.publisher is None:
            self.publisher = LightPublisher(
                self.spec, self.stats, self.host, self.port, self.netloc, self.tls,
                self.publish_body,
            )  # fmt: skip
        await self.publisher.publish(due_ns)

    async def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()

    @abstractmethod
    def make_protocol(self) -> HttpProtocol:
        """The protocol of the next connection."""

    def finished(self, protocol: HttpProtocol) -> None:
        """After each connection (also a failed one): keep what outlives it."""

    async def session(self) -> None:
        protocol = self.make_protocol()
        t0 = clock()
        try:
            async with asyncio.timeout(self.spec.connect_timeout_s):
                phases = await connect(
                    lambda: protocol,
                    protocol,
                    self.host,
                    self.port,
                    self.tls,
                    t0,
                    clock,
                    self.spec.source_for(self.stats.conn),  # issue 18 item 2
                )
                opened = await protocol.opened
            self.stats.established(opened - t0, phases)
            if protocol.handed is not None:  # h45: the compiled loop receives
                self.protocol = protocol
                return await protocol.handed_session(protocol.handed)
            self.protocol = protocol
            async with self.publishing(self.publish_light):
                await protocol.closed
        finally:
            self.protocol = None
            protocol.shutdown()
            if protocol.opened.done() and not protocol.opened.cancelled():
                protocol.opened.exception()  # retrieved: no "never retrieved" warning
            self.finished(protocol)
        if protocol.failure is not None:
            raise protocol.failure

"""The light WebSocket client: an ``asyncio.BufferedProtocol`` on the project's own codec.

The kernel copies received bytes into one preallocated buffer shared by all
connections of the thread (:meth:`_WsProtocol.get_buffer`);
:meth:`_WsProtocol.buffer_updated` reads the clock first, then decodes with
:meth:`pushbench.wire.Connection.receive_payloads` and hands the read's data
messages to :meth:`Recorder.record_many`: one clock read and one call per read.
With the compiled helpers (:mod:`pushbench.wire.speedups`) the codec's C parser
turns each whole message into its payload bytes and nothing else (no frame or
event objects), and the recorder's C scanner writes the receipt rows of the
whole list at once; without them the same calls run in pure Python. Pings are
answered by the codec (``auto_pong``); what it queues is written after each
read.

Reads are at most ``http_light.READ_SIZE`` (16 KiB, into one buffer per thread
shared with the light HTTP clients) rather than asyncio's 256 KiB, for two
reasons. The codec returns every frame of a call as live tuples at once, and
over ~700 live container objects (generation 0's threshold) a collection
starts, promotes them, and later full collections walk them: 256 KiB reads of
small messages did that thousands of times per second, while 16 KiB (at most
~230 envelopes) stays below the threshold, so a steady run triggers no
collection at all. And one event-loop pass over many busy connections stays
short, so connections are served fairly and the loop-lag monitor keeps
sampling under heavy load.

No streams, no futures per message, no ``await`` in the receive path: this is
the client meant to receive ≥ 250,000 messages/s on one core.

With an ``https://`` base URL (a TLS cell) the connection is wss://, verified against
the run's CA, and its TCP and TLS phases are timed (:mod:`.tlsconn`).
With ``compression = "deflate"`` (``spec.compression``) the upgrade offers
permessage-deflate (:data:`CLIENT_OFFER`); when the server accepts, the codec inflates
what arrives (compressed frames leave the C payloads-only path for the reader's
frame path) and compresses what the client publishes.

Reconnects resume with ``since=<last seq received>`` so a dropped connection
loses nothing the server still holds in its history.

Publishing (``spec.publish``) sends masked text frames ``{"sch":N,"p":"…"}``
(:meth:`Client.publish_text`): the payload and the time N the message was
scheduled, which the server keeps in the envelope beside its own publish time,
so chat latency is measured from the client's schedule (corrected) and from the
server's publish (uncorrected); how late the client's sends ran against their
schedule is reported beside it (``publish_lag_*``).
"""

from __future__ import annotations

import asyncio
from typing import cast
from urllib.parse import urlsplit

from pushbench.schema.worker import WorkerSpec
from pushbench.wire import Connection, ProtocolError, Role, State
from pushbench.wire.deflate import DeflateParams, accept_response, offer
from pushbench.wire.handshake import check_response, client_request, find_head_end, parse_response

from .common import Client, ConnStats, SessionEnded, clock
from .http_light import read_buffer
from .recorder import Recorder
from .rxengine import CLOSED, COMPILED, EOF, Handed, choice, close_frame
from .tcpinfo import TcpMeter
from .tlsconn import connect, context_for

__all__ = ["WsLightClient", "run"]

#: h25 (compression): what the client offers with ``compression = "deflate"``: the
#: plain offer, letting the server limit our window (client_max_window_bits).
CLIENT_OFFER = DeflateParams(client_window_offered=True)
CLOSE_WAIT_S = 2.0  # after the close handshake, how long the server may take to close TCP
_NORMAL_CLOSES = frozenset({1000, 1001})


class _WsProtocol(asyncio.BufferedProtocol):
    """One connection: the upgrade, then frames into the recorder."""

    def __init__(
        self,
        client: WsLightClient,
        request: bytes,
        key: str,
        offered: DeflateParams | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.client = client
        self.request = request
        self.key = key
        self.offered = offered  # the permessage-deflate offer sent, if any (h25)
        self.opened: asyncio.Future[int] = loop.create_future()  # → time of the 101
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.made_ns = 0  # connection_made: TCP up, or the TLS handshake done
        self.ws: Connection | None = None
        self.meter = TcpMeter()
        self.close_code: int | None = None
        self.failure: BaseException | None = None
        self._head = b""
        self._close_timer: asyncio.TimerHandle | None = None
        self._record_many = client.recorder.record_many
        self._conn = client.conn_id
        self._stats = client.stats
        self._buffer = read_buffer()
        self.handed: Handed | None = None  # h45: the connection, once the loop has it

    # --- asyncio callbacks -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's does not subclass asyncio.Transport: no isinstance).
        self.made_ns = clock()
        self.transport = tr = cast(asyncio.Transport, transport)
        tr.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        now = clock()  # first: the arrival time of every message in this read
        data = self._buffer[:nbytes].tobytes()
        ws = self.ws
        if ws is not None:
            self._frames(ws, data, now)
        else:
            self._handshake(data, now)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._stats.add_meter(self.meter)
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self.ws is not None:
            self.ws.receive_eof()
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionResetError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        if exc is not None and self.failure is None:
            self.failure = exc

    # --- the two phases ----------------------------------------------------------

    def _handshake(self, data: bytes, now: int) -> None:
        buf = self._head + data
        try:
            end = find_head_end(buf)
            if end < 0:
                self._head = buf
                return
            # h27: what came back on the wire, kept whether the upgrade passed or not (a
            # proxy in front may answer it itself, or drop the Upgrade header on its way).
            self._stats.upgrade_answer(buf[:end])
            response = parse_response(buf[:end])
            offered = self.offered
            check_response(response, self.key, extensions_offered=offered is not None)
            agreed = response.get("Sec-WebSocket-Extensions")
            deflate = accept_response(agreed, offered) if agreed and offered else None
        except Exception as exc:
            self._fail(exc)
            return
        self._head = b""
        self.ws = ws = Connection(Role.CLIENT, deflate=deflate)
        transport = self.transport
        assert transport is not None
        self._stats.start_meter(self.meter, transport.get_extra_info("socket"))
        self.opened.set_result(now)
        if self.client.rx_engine == COMPILED and deflate is None:  # h45: to the loop
            meter, self.meter = self.meter, TcpMeter()
            rec = self.client.recorder
            self.handed = Handed(rec, transport, self._conn, self._stats, meter, buf[end:], now)
            return
        if end < len(buf):
            self._frames(ws, buf[end:], now)

    def _frames(self, ws: Connection, data: bytes, now: int) -> None:
        try:
            payloads = ws.receive_payloads(data)
        except ProtocolError as exc:
            payloads = ws.payloads_after_error()
            self.failure = exc
        if payloads:
            last, count = self._record_many(self._conn, payloads, now)
            stats = self._stats
            stats.messages += count
            if last > stats.last_seq:
                stats.last_seq = last
        close = ws.close_received
        if close is not None and self.close_code is None:
            self.close_code = close.code
        self._flush(ws)

    # --- sending and closing ----------------------------------------------------------

    def _flush(self, ws: Connection) -> None:
        transport = self.transport
        out = ws.data_to_send()
        if transport is None or transport.is_closing():
            return
        if out:
            transport.write(out)
        if ws.closes_transport:
            transport.close()
        elif ws.state is State.CLOSED and self._close_timer is None:
            # The server closes TCP after the close handshake; do not wait forever.
            self._close_timer = asyncio.get_running_loop().call_later(CLOSE_WAIT_S, transport.abort)

    def send_text(self, payload: bytes) -> None:
        ws = self.ws
        if ws is None or ws.state is not State.OPEN:
            raise SessionEnded("WebSocket not open")
        ws.send_text(payload)
        self._flush(ws)

    def _fail(self, exc: BaseException) -> None:
        self.failure = exc
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def shutdown(self) -> None:
        """End the connection from our side (stop): Close 1000, final byte count, close."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        ws = self.ws
        self._stats.add_meter(self.meter)  # before our Close frame and FIN
        if ws is not None and ws.state is State.OPEN:
            ws.send_close(1000)
            transport.write(ws.data_to_send())
        transport.close()


class WsLightClient(Client):
    """``GET /ws?topic=`` over :mod:`pushbench.wire`; resumes with ``since`` on reconnect."""

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        url = urlsplit(spec.base_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.netloc = url.netloc
        self.tls = context_for(spec)  # wss:// (a TLS cell), verified against the run's CA
        self._protocol: _WsProtocol | None = None
        self.rx_engine = choice(spec, recorder)  # h45: the compiled loop receives, or asyncio

    def target(self) -> str:
        since = self.stats.last_seq
        return self.spec.target("/ws", since=since) if since else self.spec.target("/ws")

    async def session(self) -> None:
        offered = CLIENT_OFFER if self.spec.compression == "deflate" else None
        extra = (("Sec-WebSocket-Extensions", offer(offered)),) if offered else ()
        request, key = client_request(self.netloc, self.target(), extra_headers=extra)
        protocol = _WsProtocol(self, request, key, offered)
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
            if protocol.handed is not None:
                return await _handed_session(protocol.handed)
            self._protocol = protocol
            async with self.publishing(self._publish):
                await protocol.closed
        finally:
            self._protocol = None
            protocol.shutdown()
        if protocol.failure is not None:
            raise protocol.failure
        code = protocol.close_code
        if code is None:
            raise SessionEnded("connection closed without a Close frame")
        if code not in _NORMAL_CLOSES:
            raise SessionEnded(f"closed by the server with {code}")

    async def _publish(self, due_ns: int) -> None:
        protocol = self._protocol
        if protocol is None:
            raise SessionEnded("WebSocket not open")
        protocol.send_text(self.publish_text(due_ns).encode())


async def _handed_session(handed: Handed) -> None:
    """The rest of a session the compiled loop received (h45): the same endings as the
    asyncio path — our stop sends Close 1000; a server's Close is answered with its code."""
    goodbye = close_frame(1000)  # cancelled: the worker stops
    try:
        ending = await handed.wait()
        goodbye = b""
        if ending.status == CLOSED:
            goodbye = close_frame(None if ending.code == 1005 else ending.code)
    finally:
        handed.close(goodbye)
    failure = ending.exception()
    if failure is not None:
        raise failure
    if ending.status == EOF:
        raise SessionEnded("connection closed without a Close frame")
    if ending.code not in _NORMAL_CLOSES:
        raise SessionEnded(f"closed by the server with {ending.code}")


run = WsLightClient.serve

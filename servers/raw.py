"""The raw stack: plain asyncio Protocols around the :mod:`pushbench.wire` codec.

All WebSocket logic lives in the codec; this module is only the I/O shell
around it: bytes from ``data_received`` go into the parser, whatever the codec
queued goes to ``transport.write``. What the codec cannot do without a clock
or a socket is done here, and only here:

- keepalive: a Ping every ``ping_interval``; a peer that sends nothing at all
  within ``ping_timeout`` after it is aborted (``dead_peers``);
- timeouts on closing: once we sent Close, or the close handshake finished,
  the transport is aborted if it is not gone within ``close_timeout``;
- flow control: when a transport's write buffer is over its high-water mark
  we stop reading from that peer (its requests cannot pile up replies), and a
  broadcast that would take a buffer past ``write_buffer_limit`` drops that
  slow consumer with Close 1013 instead of queueing without bound.

Routes: ``GET /health`` and ``GET /stats`` answer plain HTTP and close; ``/echo``
echoes each message; ``/ws`` is one broadcast :class:`Group`. A later hub
(topics, sequence numbers) calls :meth:`Group.broadcast` with frames it encoded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Protocol, cast

from pushbench.wire import (
    CloseCode,
    Connection,
    HandshakeError,
    Message,
    ProtocolError,
    Role,
    State,
    encode_frame,
)
from pushbench.wire.handshake import (
    Request,
    Response,
    accept,
    find_head_end,
    parse_request,
    reject,
)

from . import Settings, Stats

__all__ = ["App", "Echo", "Group", "Server", "Subscriber", "WebSocket", "start"]


# --- applications: what a WebSocket path does with messages ----------------


class Subscriber(Protocol):
    """Anything a :class:`Group` can push an encoded frame to."""

    def push(self, frame: bytes) -> bool:
        """Queue ``frame``; False if the subscriber is closing or was dropped."""
        ...


class App(Protocol):
    """The behaviour behind one WebSocket path."""

    def join(self, ws: WebSocket) -> None: ...

    def leave(self, ws: WebSocket) -> None: ...

    def on_message(self, ws: WebSocket, message: Message) -> None: ...


class Echo:
    """``/echo``: every data message goes back unchanged, same opcode."""

    def join(self, ws: WebSocket) -> None:
        pass

    def leave(self, ws: WebSocket) -> None:
        pass

    def on_message(self, ws: WebSocket, message: Message) -> None:
        ws.send(encode_frame(message.opcode, message.data))


class Group:
    """A broadcast group: one encoded frame, the same bytes to every member.

    As the ``/ws`` app, any data message a member sends is broadcast to all
    members, the sender included.
    """

    def __init__(self) -> None:
        # A dict keeps join order, so delivery order is reproducible.
        self._members: dict[Subscriber, None] = {}

    def __len__(self) -> int:
        return len(self._members)

    def join(self, ws: WebSocket) -> None:
        self._members[ws] = None

    def leave(self, ws: WebSocket) -> None:
        self._members.pop(ws, None)

    def on_message(self, ws: WebSocket, message: Message) -> None:
        self.broadcast(encode_frame(message.opcode, message.data))

    def broadcast(self, frame: bytes) -> int:
        """Push one already-encoded frame to every member → how many took it."""
        delivered = 0
        # A snapshot: pushing may drop a slow member, which leaves the group.
        for member in tuple(self._members):
            if member.push(frame):
                delivered += 1
        return delivered


# --- one WebSocket connection ------------------------------------------------


class WebSocket(asyncio.Protocol):
    """The asyncio glue for one upgraded connection: codec in, transport out."""

    __slots__ = (
        "_abort_timer",
        "_app",
        "_conn",
        "_joined",
        "_keepalive",
        "_last_rx",
        "_limit",
        "_loop",
        "_paused",
        "_ping_at",
        "_server",
        "_settings",
        "_stats",
        "_transport",
    )

    def __init__(self, server: Server, app: App, transport: asyncio.Transport) -> None:
        settings = server.settings
        self._server = server
        self._settings = settings
        self._stats = server.stats
        self._app = app
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._conn = Connection(
            Role.SERVER,
            # A single frame can never be longer than the message it carries.
            max_frame_size=settings.max_message_size,
            max_message_size=settings.max_message_size,
        )
        self._limit = settings.write_buffer_limit
        self._joined = False
        self._paused = False
        self._last_rx = self._loop.time()
        self._ping_at = 0.0
        self._keepalive: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        # Past half the drop limit we stop reading from this peer, so its own
        # traffic (echoes, pongs) cannot be what fills its buffer.
        transport.set_write_buffer_limits(high=max(1, self._limit // 2))

    # -- lifecycle -----------------------------------------------------------

    def start(self, early_data: bytes) -> None:
        """Called once the 101 is written; ``early_data`` followed the request head."""
        stats = self._stats
        stats.connections_open += 1
        stats.connections_total += 1
        self._server.websockets.add(self)
        self._joined = True
        self._app.join(self)
        if self._settings.ping_interval > 0:
            self._keepalive = self._loop.call_later(self._settings.ping_interval, self._ping)
        if early_data:
            self.data_received(early_data)

    def data_received(self, data: bytes) -> None:
        # Any byte proves the peer alive: a large message may take longer than
        # ping_timeout to arrive, and its frames are events only once complete.
        self._last_rx = self._loop.time()
        conn = self._conn
        if conn.state is State.CLOSED:
            return  # closing: what the peer still sends is read and dropped
        try:
            events = conn.receive_data(data)
        except ProtocolError:
            # The codec queued a Close with the RFC code; send it and hang up.
            self._stats.protocol_errors += 1
            self._finish()
            return
        # Not joined any more: we sent Close, so what still arrives is ignored.
        # Messages before a Close *received* in this batch are still delivered.
        for event in events:
            if isinstance(event, Message) and self._joined:
                self._stats.messages_in += 1
                self._app.on_message(self, event)
        self._flush()  # pongs, echoes and the Close reply, in codec order
        if conn.closes_transport:
            self._finish()

    def eof_received(self) -> bool | None:
        self._conn.receive_eof()
        self._leave()
        return None  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._keepalive, self._abort_timer):
            if timer is not None:
                timer.cancel()
        self._conn.receive_eof()
        self._leave()
        self._stats.connections_open -= 1
        self._server.forget(self._transport)
        self._server.websockets.discard(self)

    def pause_writing(self) -> None:
        if self._conn.state is not State.CLOSED:
            self._paused = True
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._paused:
            self._paused = False
            self._transport.resume_reading()

    # -- sending -------------------------------------------------------------

    def send(self, frame: bytes) -> bool:
        """Queue an encoded data frame; written at the end of the current read.

        For replies to what the peer sent (the echo): the peer is throttled by
        pause_reading, so no size check is needed here.
        """
        if self._conn.state is not State.OPEN:
            return False
        self._conn.send_raw(frame)
        self._stats.messages_out += 1
        return True

    def push(self, frame: bytes) -> bool:
        """Write an encoded data frame now, or drop this slow consumer.

        An empty buffer always takes one frame, however large, so one message
        over the limit does not drop every member; otherwise buffered bytes
        never exceed ``write_buffer_limit``.
        """
        conn = self._conn
        if conn.state is not State.OPEN:
            return False
        buffered = self._transport.get_write_buffer_size()
        if buffered and buffered + len(frame) > self._limit:
            self._stats.slow_consumers_dropped += 1
            self.close(CloseCode.TRY_AGAIN_LATER, "slow consumer")
            return False
        conn.send_raw(frame)
        self._stats.messages_out += 1
        self._flush()
        return True

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the close handshake; abort if it is not done in close_timeout."""
        if self._conn.state is not State.OPEN:
            return
        self._conn.send_close(code, reason)
        self._flush()
        self._leave()
        self._arm_abort()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data:
            self._transport.write(data)
            self._stats.bytes_out += len(data)

    def _finish(self) -> None:
        """Both Close frames are exchanged, or the connection failed: close TCP.

        A half-close (FIN after the queued bytes) rather than close(): bytes the
        peer still sends are read and dropped instead of answered with a RST,
        which would destroy our Close frame before the peer reads it.
        """
        self._flush()
        self._leave()
        transport = self._transport
        if transport.can_write_eof():
            transport.write_eof()
        else:  # pragma: no cover - TCP transports can
            transport.close()
        self.resume_writing()  # keep reading, or the peer's EOF is never seen
        self._arm_abort()

    def _leave(self) -> None:
        if self._joined:
            self._joined = False
            self._app.leave(self)

    def _arm_abort(self) -> None:
        if self._abort_timer is None:
            self._abort_timer = self._loop.call_later(
                self._settings.close_timeout, self._transport.abort
            )

    # -- keepalive -----------------------------------------------------------

    def _ping(self) -> None:
        if self._conn.state is not State.OPEN:
            return
        self._conn.send_ping()
        self._flush()
        self._ping_at = self._loop.time()
        self._keepalive = self._loop.call_later(self._settings.ping_timeout, self._check_alive)

    def _check_alive(self) -> None:
        # While we are not reading (write backpressure) silence proves nothing.
        # Such a peer costs bounded memory, and on /ws the next broadcast past
        # the limit drops it as a slow consumer instead.
        if self._last_rx < self._ping_at and not self._paused:
            self._stats.dead_peers += 1
            self._transport.abort()
            return
        delay = max(0.0, self._ping_at + self._settings.ping_interval - self._loop.time())
        self._keepalive = self._loop.call_later(delay, self._ping)


# --- HTTP until the upgrade ---------------------------------------------------


_TEXT = "text/plain; charset=utf-8"


def _plain(status: int, reason: str, body: bytes, content_type: str = _TEXT) -> Response:
    headers = (
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    )
    return Response(status, reason, headers, body)


class HttpProtocol(asyncio.Protocol):
    """Reads one request head; answers it or hands the transport to a WebSocket.

    No keep-alive: after a plain response the connection is closed, which is
    all the health and stats probes need.
    """

    def __init__(self, server: Server) -> None:
        self._server = server
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._done = False
        self._abort_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server.track(self._transport)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return  # the response is out; drain whatever else arrives
        self._buf += data
        try:
            end = find_head_end(self._buf)  # raises 400 past MAX_HEAD_SIZE
            if end < 0:
                return
            request = parse_request(bytes(self._buf[:end]))
        except HandshakeError as exc:
            self._respond(reject(exc))
            return
        early_data = bytes(self._buf[end:])
        self._buf = bytearray()
        self._route(request, early_data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # Only reached before an upgrade: after it the WebSocket gets this call.
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self._transport is not None:
            self._server.forget(self._transport)

    def _route(self, request: Request, early_data: bytes) -> None:
        server = self._server
        app = server.apps.get(request.path)
        if app is not None:
            self._upgrade(request, app, early_data)
            return
        page = server.pages.get(request.path)
        if page is None:
            self._respond(_plain(404, "Not Found", b"not found\n"))
        elif request.method != "GET":
            self._respond(_plain(405, "Method Not Allowed", b"GET only\n"))
        else:
            self._respond(page())

    def _upgrade(self, request: Request, app: App, early_data: bytes) -> None:
        try:
            response = accept(request)
        except HandshakeError as exc:
            self._respond(reject(exc))
            return
        transport = self._transport
        assert transport is not None
        self._done = True
        ws = WebSocket(self._server, app, transport)
        transport.set_protocol(ws)
        transport.write(response.serialize())
        ws.start(early_data)

    def _respond(self, response: Response) -> None:
        transport = self._transport
        assert transport is not None
        self._done = True
        self._buf = bytearray()
        transport.write(response.serialize())
        # Half-close, as WebSocket._finish does: unread request bytes must not
        # turn into a RST that destroys the response; abort if the peer lingers.
        transport.write_eof()
        self._abort_timer = self._server.loop.call_later(
            self._server.settings.close_timeout, transport.abort
        )


# --- the server -----------------------------------------------------------------


class Server:
    """One listening socket, its routes, its connections and its counters."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.group = Group()
        self.apps: dict[str, App] = {"/echo": Echo(), "/ws": self.group}
        self.pages: dict[str, Callable[[], Response]] = {
            "/health": lambda: _plain(200, "OK", b"ok\n"),
            "/stats": self._stats_page,
        }
        self.websockets: set[WebSocket] = set()
        self.loop = asyncio.get_running_loop()
        self._transports: set[asyncio.Transport] = set()
        self._all_gone: asyncio.Future[None] | None = None
        self._server: asyncio.Server | None = None

    async def listen(self, host: str, port: int) -> None:
        self._server = await self.loop.create_server(
            lambda: HttpProtocol(self), host, port, backlog=1024
        )

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None and self._server.sockets
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def track(self, transport: asyncio.Transport) -> None:
        self._transports.add(transport)

    def forget(self, transport: asyncio.Transport) -> None:
        self._transports.discard(transport)
        gone = self._all_gone
        if not self._transports and gone is not None and not gone.done():
            gone.set_result(None)

    async def shutdown(self) -> None:
        """Stop accepting, Close 1001 to every WebSocket, wait ≤ close_timeout."""
        if self._server is not None:
            self._server.close()
        for ws in tuple(self.websockets):
            ws.close(CloseCode.GOING_AWAY, "server shutdown")
        for transport in tuple(self._transports):
            if isinstance(transport.get_protocol(), HttpProtocol):
                transport.close()
        if self._transports:
            self._all_gone = self.loop.create_future()
            try:
                await asyncio.wait_for(self._all_gone, self.settings.close_timeout)
            except TimeoutError:
                for transport in tuple(self._transports):
                    transport.abort()
                await asyncio.sleep(0)  # let the connection_lost callbacks run
        if self._server is not None:
            await self._server.wait_closed()

    def _stats_page(self) -> Response:
        body = json.dumps(self.stats.as_dict()).encode()
        return _plain(200, "OK", body, "application/json")


async def start(settings: Settings, host: str, port: int) -> Server:
    """Start the raw stack listening on (host, port); port 0 picks a free one."""
    server = Server(settings)
    await server.listen(host, port)
    return server

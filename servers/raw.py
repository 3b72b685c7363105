"""The raw stack: plain asyncio Protocols around the :mod:`pushbench.wire` codec.

All WebSocket logic lives in the codec and everything else the stacks share
lives in :class:`~pushbench.service.PushService` and
:func:`~pushbench.sessions.push_loop`; this module is only the I/O shell:
bytes from ``data_received`` go into the HTTP head parser or the codec,
whatever must go out goes to ``transport.write``. It serves the URL scheme of
:mod:`pushbench.service` like every other stack, with the knobs of
:class:`~pushbench.service.ServerConfig`. What needs a clock or a socket is
done here, and only here:

- keepalive: a Ping every ``ping_interval``; a peer that sends nothing at all
  within ``ping_timeout`` after it is aborted (counted as ``dead_peers``);
- timeouts on closing: once we sent Close, or the close handshake finished,
  or a plain response is out, the transport is half-closed (FIN after the
  queued bytes, so unread input cannot turn into a RST that destroys them) and
  aborted if the peer has not closed within ``close_timeout``;
- flow control: each transport pauses at half of ``write_buffer_limit``; then
  a WebSocket stops reading from its peer (its own traffic, echoes and
  pongs, cannot be what fills its buffer) and a push write waits until the
  buffer drains, so a connection buffers at most that much plus one batch.
  A subscriber that falls ``queue_limit`` items behind is dropped by the hub
  (``slow_consumers_dropped``): Close 1013, or an abort when the peer is so
  stuck that even the Close could not be written;
- request heads are bounded (16 KiB, else 400), as is every body we read.

Plain HTTP keeps connections alive like the other stacks (HTTP/1.1 without
``Connection: close``; idle ones close after :data:`KEEPALIVE_TIMEOUT`), so a
poll costs the same round trips everywhere. Errors are answered with
``Connection: close`` and the connection is closed; so is an SSE stream,
which is delimited by that close and so needs neither a length nor chunking.
Request bodies (POST /publish only) must have a Content-Length. Query strings
are parsed like Starlette's (:func:`parse_query`): when a name repeats, its
last value wins.

Extra counters in ``GET /stats``: ``dead_peers`` and ``protocol_errors``
(WebSockets failed with 1002/1007/1009 by the codec).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from http import HTTPStatus
from typing import Protocol, cast
from urllib.parse import parse_qsl

from pushbench import client_page, sse
from pushbench.hub import Item, Subscription
from pushbench.service import HttpError, PushService, sse_frame
from pushbench.sessions import push_loop
from pushbench.wire import (
    CloseCode,
    Connection,
    HandshakeError,
    Message,
    Opcode,
    ProtocolError,
    Role,
    State,
    encode_frame,
)
from pushbench.wire.handshake import (
    MAX_HEAD_SIZE,
    Request,
    Response,
    accept,
    find_head_end,
    parse_request,
)

from .base import OnReady, Stack, StackOptions

__all__ = ["STACK", "HttpConnection", "WebSocket", "parse_query", "run"]

log = logging.getLogger(__name__)

Query = dict[str, str]

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_SSE_HEADERS = (
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),  # nginx and friends: do not buffer the stream
    ("Connection", "close"),  # the stream ends when the connection does
)
_NO_CACHE = (("Cache-Control", "no-cache"),)
_HEARTBEAT = sse.comment(b"hb")
_MAX_CONTENT_LENGTH_DIGITS = 19
KEEPALIVE_TIMEOUT = 75.0  # s an idle connection waits for its next request head (as aiohttp)
# A /ws client whose publishes are this many messages ahead of the hub is not
# read from until they are through: its input cannot queue without bound.
_MAX_PENDING_PUBLISHES = 64
_EXTRA_COUNTERS = ("dead_peers", "protocol_errors")


def parse_query(query: str) -> Query:
    """A query string → name → value, as the other stacks see it.

    ``parse_qsl`` with blank values kept: ``+`` is a space, a bad
    %-escape decodes to U+FFFD, ``a`` alone is ``a=""``, and a repeated
    name keeps its last value (Starlette's ``QueryParams`` does the same).
    """
    return dict(parse_qsl(query, keep_blank_values=True))


def _ws_frame(item: Item) -> bytes:
    """An item as one unmasked text frame; cached on the item, so encoded once per message."""
    return encode_frame(Opcode.TEXT, item.data)


def _response(
    status: int,
    body: bytes,
    content_type: str,
    headers: tuple[tuple[str, str], ...] = (),
    *,
    close: bool = True,
) -> bytes:
    """A complete response with a Content-Length; ``close``: the connection ends after it."""
    return Response(
        status,
        _phrase(status),
        (
            *headers,
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *((("Connection", "close"),) if close else ()),
        ),
        body,
    ).serialize()


def _persistent(request: Request) -> bool:
    """Whether the client lets the connection serve another request (HTTP/1.1 default)."""
    tokens = {t.strip().lower() for t in (request.get("Connection") or "").split(",")}
    return request.version == "HTTP/1.1" and "close" not in tokens


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _Drain:
    """asyncio's write flow control as something a coroutine can wait on.

    The protocol forwards ``pause_writing`` / ``resume_writing`` here;
    :meth:`wait` returns at once while the transport takes more, waits while
    it is paused, and raises ConnectionError once the connection is lost.
    """

    __slots__ = ("_lost", "_waiter", "paused")

    def __init__(self) -> None:
        self.paused = False
        self._lost = False
        self._waiter: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def lost(self) -> None:
        self._lost = True
        self.paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("connection lost"))

    async def wait(self) -> None:
        while self.paused:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        if self._lost:
            raise ConnectionError("connection lost")


# --- WebSocket applications: what a path does with messages ----------------


class App(Protocol):
    """The behaviour behind one WebSocket path, attached once the 101 is out."""

    def start(self, ws: WebSocket) -> None: ...

    def on_message(self, ws: WebSocket, message: Message) -> None: ...

    def stop(self) -> None:
        """The WebSocket is closing or gone: release everything, never raise."""
        ...


class _Echo:
    """``/echo``: every data message goes back unchanged, same opcode."""

    def start(self, ws: WebSocket) -> None:
        pass

    def on_message(self, ws: WebSocket, message: Message) -> None:
        ws.send(encode_frame(message.opcode, message.data))

    def stop(self) -> None:
        pass


def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a helper task, unless it is the one running (it is finishing anyway)."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()


class _TopicSession:
    """``/ws?topic=``: the topic's items out, one text frame each; text in = publishes.

    Items go out through :func:`push_loop`, framed once per message for every
    raw subscriber (:meth:`Item.framed`); a batch is one transport write. The
    client's text messages are published in order by one task; a refused one
    closes the socket (over ``max_publish_bytes`` → 1009), binary → 1003.
    """

    __slots__ = ("_inbox", "_publisher", "_pusher", "_service", "_sub", "_topic")

    def __init__(self, service: PushService, topic: str, sub: Subscription) -> None:
        self._service = service
        self._topic = topic
        self._sub = sub
        self._inbox: deque[str] = deque()
        self._pusher: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None

    def start(self, ws: WebSocket) -> None:
        self._pusher = asyncio.get_running_loop().create_task(self._push(ws))

    async def _push(self, ws: WebSocket) -> None:
        async def send_batch(items: list[Item]) -> int:
            return await ws.send_frames(b"".join([item.framed("ws", _ws_frame) for item in items]))

        reason = await push_loop(self._service, self._sub, send_batch, abort=ws.abort)
        self._pusher = None
        if reason == "slow-consumer":
            ws.close(CloseCode.TRY_AGAIN_LATER, "slow consumer")
        # "disconnected": the transport is gone, connection_lost cleans up.

    def on_message(self, ws: WebSocket, message: Message) -> None:
        if message.opcode != Opcode.TEXT:
            ws.close(CloseCode.UNSUPPORTED_DATA, "publish with text messages")
            return
        self._inbox.append(message.data.decode())  # the codec checked the UTF-8
        if len(self._inbox) >= _MAX_PENDING_PUBLISHES:
            ws.hold_reading(True)
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish(ws))

    async def _publish(self, ws: WebSocket) -> None:
        inbox = self._inbox
        try:
            while inbox:
                try:
                    await self._service.publish_text(self._topic, inbox.popleft())
                except HttpError as exc:
                    code = CloseCode.MESSAGE_TOO_BIG if exc.status == 413 else 1008
                    ws.close(code, exc.error)
                    return
                except OSError as exc:  # the hub's backend (Redis) failed
                    log.warning("raw stack: publish on /ws failed: %s", exc)
                    ws.close(CloseCode.INTERNAL_ERROR, "publish failed")
                    return
        finally:
            self._publisher = None
            ws.hold_reading(False)

    def stop(self) -> None:
        _cancel(self._pusher)
        _cancel(self._publisher)
        self._inbox.clear()
        self._sub.close()


# --- one WebSocket connection ------------------------------------------------


class WebSocket(asyncio.Protocol):
    """The asyncio glue for one upgraded connection: codec in, transport out."""

    __slots__ = (
        "_abort_timer",
        "_app",
        "_config",
        "_conn",
        "_drain",
        "_hold",
        "_joined",
        "_keepalive",
        "_last_rx",
        "_loop",
        "_ping_at",
        "_reading_paused",
        "_server",
        "_stats",
        "transport",
    )

    def __init__(
        self, server: _Server, transport: asyncio.Transport, app: App, max_message_size: int
    ) -> None:
        self._server = server
        self._config = server.service.config
        self._stats = server.service.stats.extra
        self._app = app
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._conn = Connection(
            Role.SERVER,
            # A single frame can never be longer than the message it carries.
            max_frame_size=max_message_size,
            max_message_size=max_message_size,
        )
        self._drain = _Drain()
        self._hold = False  # the app asked us to stop reading (see hold_reading)
        self._reading_paused = False
        self._joined = False
        self._last_rx = self._loop.time()
        self._ping_at = 0.0
        self._keepalive: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, early_data: bytes) -> None:
        """Called once the 101 is written; ``early_data`` followed the request head."""
        self._joined = True
        self._app.start(self)
        if self._config.ping_interval > 0:
            self._keepalive = self._loop.call_later(self._config.ping_interval, self._ping)
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
            self._stats["protocol_errors"] += 1
            self._finish()
            return
        # Not joined any more: we sent Close, so what still arrives is ignored.
        # Messages before a Close *received* in this batch are still delivered.
        for event in events:
            if isinstance(event, Message) and self._joined:
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
        self._drain.lost()
        self._leave()
        self._server.service.close_connection()
        self._server.forget(self)

    # -- flow control ----------------------------------------------------------

    def pause_writing(self) -> None:
        self._drain.pause()
        self._update_reading()

    def resume_writing(self) -> None:
        self._drain.resume()
        self._update_reading()

    def hold_reading(self, hold: bool) -> None:
        """Stop (True) or resume (False) reading for the app, e.g. while publishes queue."""
        self._hold = hold
        self._update_reading()

    def _update_reading(self) -> None:
        # Once both Close frames are exchanged we always read: the peer's EOF must be seen.
        pause = (self._drain.paused or self._hold) and self._conn.state is not State.CLOSED
        if pause != self._reading_paused and not self.transport.is_closing():
            self._reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # -- sending -------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue an encoded data frame; written at the end of the current read.

        For replies to what the peer sent (the echo): the peer is throttled by
        pause_reading, so no flow control is needed here.
        """
        if self._conn.state is State.OPEN:
            self._conn.send_raw(frame)

    async def send_frames(self, frames: bytes) -> int:
        """Write already-encoded data frames in one write, once the transport takes
        more → bytes written; ConnectionError when the socket is closing or gone."""
        await self._drain.wait()
        if self._conn.state is not State.OPEN:
            raise ConnectionError("WebSocket is closing")
        self._conn.send_raw(frames)
        self._flush()
        return len(frames)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the close handshake; abort if it is not done in close_timeout."""
        if self._conn.state is not State.OPEN:
            return
        self._conn.send_close(code, reason)
        self._flush()
        self._leave()
        self._arm_abort()

    def abort(self) -> None:
        self.transport.abort()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data:
            self.transport.write(data)

    def _finish(self) -> None:
        """Both Close frames are exchanged, or the connection failed: close TCP.

        A half-close (FIN after the queued bytes) rather than close(): bytes the
        peer still sends are read and dropped instead of answered with a RST,
        which would destroy our Close frame before the peer reads it.
        """
        self._flush()
        self._leave()
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
        else:  # pragma: no cover - TCP transports can
            transport.close()
        self._update_reading()  # keep reading, or the peer's EOF is never seen
        self._arm_abort()

    def _leave(self) -> None:
        if self._joined:
            self._joined = False
            self._app.stop()

    def _arm_abort(self) -> None:
        if self._abort_timer is None:
            self._abort_timer = self._loop.call_later(
                self._config.close_timeout, self.transport.abort
            )

    # -- keepalive -----------------------------------------------------------

    def _ping(self) -> None:
        if self._conn.state is not State.OPEN:
            return
        self._conn.send_ping()
        self._flush()
        self._ping_at = self._loop.time()
        self._keepalive = self._loop.call_later(self._config.ping_timeout, self._check_alive)

    def _check_alive(self) -> None:
        # While we are not reading (backpressure) silence proves nothing. Such a
        # peer costs bounded memory, and on /ws the hub drops it once it falls
        # queue_limit items behind.
        if self._last_rx < self._ping_at and not self._reading_paused:
            self._stats["dead_peers"] += 1
            self.transport.abort()
            return
        delay = max(0.0, self._ping_at + self._config.ping_interval - self._loop.time())
        self._keepalive = self._loop.call_later(delay, self._ping)

    # -- shutdown --------------------------------------------------------------

    def shutdown(self) -> None:
        self.close(CloseCode.GOING_AWAY, "server shutdown")


# --- HTTP until the response or the upgrade -----------------------------------

Handler = Callable[["HttpConnection", Request, Query], Awaitable[None]]


class HttpConnection(asyncio.Protocol):
    """One TCP connection until it closes, or until the WebSocket upgrade.

    Phases: ``head`` (waiting for / reading a request head), ``body``
    (reading a Content-Length body), ``busy`` (the handler runs; input is
    kept for the next request, and reading pauses once that is more than a
    head's worth), ``upgrade`` (a WebSocket handshake awaits the hub; reading
    is paused and early frames are kept), ``done`` (the last response is out,
    half-closed, waiting for the peer to close).

    Keep-alive: after a successful response to an HTTP/1.1 request without
    ``Connection: close`` (and without a body left unread), the connection
    goes back to ``head`` for the next request, pipelined ones included. It is
    closed after every error, after an SSE stream, and when idle for
    :data:`KEEPALIVE_TIMEOUT`.
    """

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._service = server.service
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._phase = "head"
        self._drain = _Drain()
        self._abort_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._reset()

    def _reset(self) -> None:
        """Per-request state, fresh for each request on the connection."""
        self._request: Request | None = None
        self._keep_alive = False  # whether the connection may serve another request
        self._body_length = 0
        self._held = False  # a long poll or an SSE stream: shutdown interrupts it
        self._interrupted = False
        self._started = False  # a response head is out: errors can no longer be answered

    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None
        return self._transport

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = t = cast(asyncio.Transport, transport)
        # Past half the limit writes pause (see the module docstring).
        t.set_write_buffer_limits(high=max(1, self._service.config.write_buffer_limit // 2))
        self._server.track(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        phase = self._phase
        if phase == "done":
            return  # closing: what the peer still sends is read and dropped
        self._buf += data
        if phase == "head":
            self._parse_head()
        elif phase == "body":
            self._body_arrived()
        elif phase == "busy" and len(self._buf) > MAX_HEAD_SIZE:
            self.transport.pause_reading()  # the next request waits for this response
        # upgrade: kept for the WebSocket (reading is paused)

    def eof_received(self) -> bool | None:
        return None  # the client is gone (or done): close, which cancels a handler

    def connection_lost(self, exc: Exception | None) -> None:
        # Not called after an upgrade: the WebSocket gets it then.
        for timer in (self._abort_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._drain.lost()
        if self._task is not None:
            self._task.cancel()
        self._server.forget(self)

    def pause_writing(self) -> None:
        self._drain.pause()

    def resume_writing(self) -> None:
        self._drain.resume()

    # -- requests ------------------------------------------------------------------

    def _parse_head(self) -> None:
        try:
            end = find_head_end(self._buf)  # raises 400 past MAX_HEAD_SIZE
            if end < 0:
                return
            request = parse_request(bytes(self._buf[:end]))
        except HandshakeError as exc:
            self._send_error(exc.status, exc.reason, exc.headers)
            return
        del self._buf[:end]
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._route(request)

    def _arm_idle(self) -> None:
        """Close the connection if no complete request head arrives in time."""
        self._idle_timer = self._server.loop.call_later(KEEPALIVE_TIMEOUT, self._idle)

    def _idle(self) -> None:
        self._idle_timer = None
        if self._phase == "head":
            self.transport.close()

    def _route(self, request: Request) -> None:
        self._request = request
        self._keep_alive = _persistent(request)
        route = _ROUTES.get(request.path)
        if route is None:
            self._send_error(404, "not found")
            return
        methods, handler = route
        if request.method not in methods:
            self._send_error(405, "method not allowed", (("Allow", ", ".join(methods)),))
            return
        if handler is HttpConnection._publish:
            if self._expect_body(request):
                self._phase = "body"
                self._body_arrived()
            return
        if request.get("Transfer-Encoding") is not None or request.get("Content-Length") not in (
            None,
            "0",
        ):
            self._keep_alive = False  # a body we never read must not pass for the next request
        if handler is HttpConnection._ws or handler is HttpConnection._echo:
            self._phase = "upgrade"
            self.transport.pause_reading()
        else:
            self._phase = "busy"
        self._task = self._server.loop.create_task(self._dispatch(handler, request))

    def _expect_body(self, request: Request) -> bool:
        """Check a publish body's framing → whether to read it (False: answered already)."""
        declared = request.get("Content-Length")
        if request.get("Transfer-Encoding") is not None or declared is None:
            self._send_error(411, "Content-Length required")
            return False
        if not (
            declared.isascii()
            and declared.isdigit()
            and len(declared) <= _MAX_CONTENT_LENGTH_DIGITS
        ):
            self._send_error(400, "malformed Content-Length")
            return False
        length = int(declared)
        if length > self._service.config.max_publish_bytes:
            # Never read: answered at once (400/401 first, as publish would), then closed.
            try:
                error = self._service.publish_too_large(parse_query(request.query))
            except HttpError as exc:
                error = exc
            self._send_error(error.status, error.error)
            return False
        self._body_length = length
        return True

    def _body_arrived(self) -> None:
        if len(self._buf) < self._body_length:
            return
        request = self._request
        assert request is not None
        self._phase = "busy"
        self._task = self._server.loop.create_task(self._dispatch(HttpConnection._publish, request))

    async def _dispatch(self, handler: Handler, request: Request) -> None:
        """Run a handler; what it refuses becomes its status with the JSON error body."""
        try:
            await handler(self, request, parse_query(request.query))
        except HttpError as exc:
            self._send_error(exc.status, exc.error)
        except HandshakeError as exc:
            self._send_error(exc.status, exc.reason, exc.headers)
        except ConnectionError:
            self.transport.abort()  # the client went away
        except Exception:
            # The path only: the query may hold a token, which must never reach a log.
            log.exception("raw stack: %s %s failed", request.method, request.path)
            self._send_error(500, "internal error")

    # -- responses -------------------------------------------------------------------

    def _respond(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Write a whole response; then the next request, or close after an error."""
        if self._phase == "done":
            return  # already ended (the client went away mid-request)
        keep = self._keep_alive and status < 400 and not self._server.closing
        self._started = True
        self.transport.write(_response(status, body, content_type, headers, close=not keep))
        if keep:
            self._next_request()
        else:
            self._end()

    def _send_error(
        self, status: int, error: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        if self._started:  # a stream was already under way: all we can do is end it
            self._end()
            return
        self._respond(status, HttpError(status, error).body(), _JSON, headers)

    def _next_request(self) -> None:
        """Keep-alive: back to reading a head; a pipelined request may be buffered already."""
        self._reset()
        self._task = None  # the finishing handler's; connection_lost must not cancel it now
        self._phase = "head"
        self.transport.resume_reading()  # no-op unless a pipelined request paused it
        self._arm_idle()
        if self._buf:
            self._parse_head()

    def _end(self) -> None:
        """The last response is out: half-close, as WebSocket._finish does, and read
        until the peer closes; unread request bytes must not turn into a RST that
        destroys the response. Abort if the peer lingers past close_timeout."""
        if self._phase == "done":
            return
        self._phase = "done"
        self._buf.clear()
        transport = self.transport
        if transport.is_closing():
            return
        transport.resume_reading()  # no-op unless an upgrade paused it
        transport.write_eof()
        self._abort_timer = self._server.loop.call_later(
            self._service.config.close_timeout, transport.abort
        )

    async def _write(self, data: bytes) -> None:
        """Stream part of a response once the transport takes more (ConnectionError if gone)."""
        await self._drain.wait()
        if self.transport.is_closing():
            raise ConnectionError("client gone")
        self.transport.write(data)

    # -- handlers: plain requests ---------------------------------------------------

    async def _health(self, request: Request, query: Query) -> None:
        self._respond(200, b"ok", _TEXT)

    async def _stats(self, request: Request, query: Query) -> None:
        self._respond(200, self._service.stats_body(), _JSON, _NO_CACHE)

    async def _clock(self, request: Request, query: Query) -> None:
        self._respond(200, self._service.clock_body(), _JSON, _NO_CACHE)

    async def _page(self, request: Request, query: Query) -> None:
        """``GET /client``, ``/client.js``: the browser client (:mod:`pushbench.client_page`)."""
        page = client_page.asset(request.path)
        self._respond(200, page.body, page.content_type, page.headers)

    async def _ticker(self, request: Request, query: Query) -> None:
        body = await self._service.control_ticker(request.method, query)
        self._respond(200, body, _JSON)

    async def _publish(self, request: Request, query: Query) -> None:
        body = bytes(self._buf[: self._body_length])
        del self._buf[: self._body_length]  # what follows is the next request
        self._respond(200, await self._service.publish(query, body), _JSON)

    async def _poll(self, request: Request, query: Query) -> None:
        """``GET /poll``: long (timeout > 0) or short; shutdown answers a held one at once."""
        service = self._service
        params = service.params(query)
        if params.timeout > 0:
            body = await self._hold(service.poll(params))
            if body is None:  # interrupted by shutdown: whatever is there now
                body = await service.poll(replace(params, timeout=0.0))
        else:
            body = await service.poll(params)
        self._respond(200, body, _JSON, _NO_CACHE)

    async def _hold(self, aw: Awaitable[bytes]) -> bytes | None:
        """Await a request that waits for messages; None if shutdown interrupted it."""
        if self._server.closing:  # too late to wait: answer at once
            if asyncio.iscoroutine(aw):
                aw.close()
            return None
        self._held = True
        try:
            return await aw
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._interrupted and task is not None and task.uncancel() == 0:
                return None
            raise
        finally:
            self._held = False

    # -- handlers: streams ------------------------------------------------------------

    async def _sse(self, request: Request, query: Query) -> None:
        """``GET /sse``: the topic as an event stream; Last-Event-ID / lastEventId resume."""
        service = self._service
        params = service.params(query, request.get("Last-Event-ID"))
        service.open_connection()  # 429 when full
        sub: Subscription | None = None
        try:
            await service.hub.ensure_topic(params.topic)
            if self._server.closing:
                raise HttpError(503, "server shutting down")
            sub = service.hub.subscribe(params.topic, params.since)
            head = Response(200, "OK", _SSE_HEADERS).serialize()
            self._started = True
            self.transport.write(head + service.sse_prelude())
            self._held = True
            await push_loop(
                service,
                sub,
                self._send_events,
                self._heartbeat,
                service.config.heartbeat_interval,
                abort=self.transport.abort,
            )
        finally:
            if sub is not None:
                sub.close()
            service.close_connection()
            if self._started:  # else an error is still answered, by _dispatch
                self._end()  # a stream ends by closing the connection, however it ended

    async def _send_events(self, items: list[Item]) -> int:
        data = b"".join([item.framed("sse", sse_frame) for item in items])
        await self._write(data)
        return len(data)

    async def _heartbeat(self) -> int:
        await self._write(_HEARTBEAT)
        return len(_HEARTBEAT)

    async def _ws(self, request: Request, query: Query) -> None:
        """``GET /ws``: refusals are HTTP statuses before the 101; then the topic session."""
        service = self._service
        params = service.params(query)  # 400 / 401
        service.check_origin(request.get("Origin"))  # 403
        response = accept(request)  # 400 / 426: not a valid upgrade
        service.open_connection()  # 429 when full
        try:
            await service.hub.ensure_topic(params.topic)
            if self._server.closing:
                raise HttpError(503, "server shutting down")
            # Subscribed before the 101 goes out: a client that saw the upgrade
            # complete may publish at once and must receive its message.
            sub = service.hub.subscribe(params.topic, params.since)
        except BaseException:
            service.close_connection()
            raise
        session = _TopicSession(service, params.topic, sub)
        self._upgrade(response, session, service.config.max_publish_bytes)

    async def _echo(self, request: Request, query: Query) -> None:
        """``GET /echo``: every message back with its own opcode."""
        service = self._service
        service.check_origin(request.get("Origin"))
        response = accept(request)
        if self._server.closing:
            raise HttpError(503, "server shutting down")
        service.open_connection()
        self._upgrade(response, _Echo(), service.config.max_message_size)

    def _upgrade(self, response: Response, app: App, max_message_size: int) -> None:
        """Write the 101 and hand the transport to a WebSocket (which now owns the
        connection's slot in ``connections_open``)."""
        transport = self.transport
        early_data = bytes(self._buf)
        self._buf.clear()
        self._phase = "upgraded"
        self._task = None
        ws = WebSocket(self._server, transport, app, max_message_size)
        self._server.replace(self, ws)
        transport.set_protocol(ws)
        transport.write(response.serialize())
        transport.resume_reading()
        ws.start(early_data)

    # -- shutdown ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Idle: close. Held (SSE, long poll): interrupt, the handler ends its response.
        Anything else is answered soon and ends by itself (or is aborted at the deadline)."""
        if self._phase in ("head", "body"):
            self.transport.close()
        elif self._held and self._task is not None:
            self._interrupted = True
            self._task.cancel()


_ROUTES: dict[str, tuple[tuple[str, ...], Handler]] = {
    "/ws": (("GET",), HttpConnection._ws),
    "/echo": (("GET",), HttpConnection._echo),
    "/sse": (("GET",), HttpConnection._sse),
    "/poll": (("GET",), HttpConnection._poll),
    "/publish": (("POST",), HttpConnection._publish),
    "/health": (("GET",), HttpConnection._health),
    "/stats": (("GET",), HttpConnection._stats),
    "/clock": (("GET",), HttpConnection._clock),
    **{path: (("GET",), HttpConnection._page) for path in client_page.PATHS},
    "/control/ticker": (("POST", "DELETE"), HttpConnection._ticker),
}


# --- the server -----------------------------------------------------------------

_Conn = HttpConnection | WebSocket


class _Server:
    """One listening socket and its connections, for :func:`run` to shut down."""

    def __init__(self, service: PushService) -> None:
        self.service = service
        self.loop = asyncio.get_running_loop()
        self.closing = False
        self.connections: set[_Conn] = set()
        self._all_gone: asyncio.Future[None] | None = None
        self._server: asyncio.Server | None = None

    async def listen(self, host: str, port: int) -> int:
        """Listen on (host, port) → the port bound (real even when 0 was asked)."""
        self._server = await self.loop.create_server(
            lambda: HttpConnection(self), host, port, backlog=2048
        )
        return int(self._server.sockets[0].getsockname()[1])

    def track(self, conn: _Conn) -> None:
        self.connections.add(conn)

    def replace(self, old: _Conn, new: _Conn) -> None:
        self.connections.add(new)
        self.connections.discard(old)

    def forget(self, conn: _Conn) -> None:
        self.connections.discard(conn)
        gone = self._all_gone
        if not self.connections and gone is not None and not gone.done():
            gone.set_result(None)

    async def shutdown(self) -> None:
        """Stop accepting, Close 1001 to every WebSocket, end held requests, and
        wait at most close_timeout for the peers before aborting what is left."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for conn in tuple(self.connections):
            conn.shutdown()
        if self.connections:
            self._all_gone = self.loop.create_future()
            try:
                await asyncio.wait_for(self._all_gone, self.service.config.close_timeout)
            except TimeoutError:
                for conn in tuple(self.connections):
                    conn.transport.abort()
                await asyncio.sleep(0)  # let the connection_lost callbacks run
        if self._server is not None:
            await self._server.wait_closed()


async def run(
    service: PushService,
    host: str,
    port: int,
    on_ready: OnReady,
    stop_event: asyncio.Event,
    options: StackOptions,
) -> None:
    """Serve on ``host:port`` until ``stop_event`` is set, then shut down gracefully.

    ``options`` has nothing for this stack: the event loop (asyncio or uvloop)
    is whatever loop this coroutine runs on. OSError (e.g. the port is taken)
    propagates before ``on_ready``.
    """
    for name in _EXTRA_COUNTERS:
        service.stats.extra.setdefault(name, 0)
    server = _Server(service)
    bound = await server.listen(host, port)
    try:
        on_ready(bound)
        await stop_event.wait()
    finally:
        await server.shutdown()


STACK = Stack("raw", run, ("ws", "sse", "longpoll", "shortpoll", "echo"))

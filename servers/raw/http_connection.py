"""One connection of the raw stack while it speaks HTTP/1.1: requests in, responses out.

The requests are read by the sans-I/O :class:`pushbench.wire.http11.RequestReader`
(heads, bodies, pipelining, limits, keep-alive); this module is the asyncio
shell around it and the URL scheme of :mod:`pushbench.service` on top:
:data:`ROUTES` maps a path to its methods and its handler. Plain requests are
answered whole with a Content-Length; polls without a task, in the callback that
read them (a long one held by a :class:`~.polls.HeldPoll` until a message, its
timeout or shutdown); SSE streams until the connection
closes (it needs neither a length nor chunking); ``/ws`` and ``/echo`` hand the
transport to a :class:`~.websocket.WebSocket` once the 101 is out.

Plain HTTP keeps connections alive like the other stacks (HTTP/1.1 without
``Connection: close``; idle ones, and unfinished heads, close after the
``head_timeout`` of :class:`~pushbench.service.ServerConfig`), so a
poll costs the same round trips everywhere. Errors are answered with
``Connection: close`` and the connection is closed. Request bodies (POST
/publish only) must have a Content-Length. Query strings are parsed like
Starlette's (:func:`pushbench.query.parse_query`): when a name repeats, its last value wins.

After the last response the connection is half-closed (FIN after the queued
bytes, so that unread input cannot turn into a RST that destroys them) and
aborted if the peer has not closed within ``close_timeout``. Streamed writes
wait while the transport's buffer is over its mark (:class:`~.flow.Drain`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from pushbench import client_page, sse
from pushbench.deadline import LazyDeadline
from pushbench.hub import Item, Lane, Subscription
from pushbench.query import Query, parse_query
from pushbench.service import HttpError, Params, sse_frame
from pushbench.sessions import push_loop
from pushbench.wire import HandshakeError
from pushbench.wire.deflate import PerMessageDeflate, negotiate
from pushbench.wire.handshake import Request, Response, accept
from pushbench.wire.http11 import (
    BodyReceived,
    Phase,
    RequestReader,
    RequestReceived,
    encode_response,
)

from .flow import Drain
from .lanes import lane_for
from .listener import Listener
from .polls import HeldPoll
from .websocket import App, WebSocket
from .ws_apps import Echo, TopicSession

__all__ = ["ROUTES", "HttpConnection"]

log = logging.getLogger(__name__)


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


Handler = Callable[["HttpConnection", Request, Query], Awaitable[None]]


class HttpConnection(asyncio.Protocol):
    """One TCP connection until it closes, or until the WebSocket upgrade.

    The requests themselves are read by a :class:`~pushbench.wire.http11.RequestReader`,
    whose phase is the connection's: HEAD (waiting for a request head), BODY
    (a publish body), RESPONDING (the handler runs; input is kept for the next
    request, and reading pauses once that is more than a head's worth),
    UPGRADING (a WebSocket handshake awaits the hub; reading is paused and early
    frames are kept), DONE (the last response is out, half-closed, waiting for
    the peer to close).

    Keep-alive: after a successful response to an HTTP/1.1 request without
    ``Connection: close`` (and without a body left unread), the connection
    goes back to HEAD for the next request, pipelined ones included. It is
    closed after every error, after an SSE stream, and when waiting for a
    whole head for ``config.head_timeout``.
    """

    def __init__(self, server: Listener) -> None:
        self._server = server
        self._service = server.service
        self._http = RequestReader()
        self._transport: asyncio.Transport | None = None
        self._drain = Drain()
        self._abort_timer: asyncio.TimerHandle | None = None
        self._head_clock = LazyDeadline(server.loop)  # the head timeout (_arm_idle)
        self._task: asyncio.Task[None] | None = None
        self._lane: Lane | None = None  # an SSE stream the hub writes to itself (hub.Lane)
        self._poll_clock: LazyDeadline | None = None  # its long polls' timeouts, made at the first
        self._reset()

    def _reset(self) -> None:
        """Per-request state, fresh for each request on the connection."""
        self._request: Request | None = None
        self._body = b""  # a publish's body, once read
        self._held = False  # a long poll or an SSE stream: shutdown interrupts it
        self._started = False  # a response head is out: errors can no longer be answered
        self._held_poll: HeldPoll | None = None  # a long poll held without a task

    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None
        return self._transport

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = t = cast(asyncio.Transport, transport)
        # Past half the limit writes pause (see the package docstring).
        t.set_write_buffer_limits(high=max(1, self._service.config.write_buffer_limit // 2))
        self._server.track(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        http = self._http
        http.receive_data(data)  # dropped once DONE: read only so that it cannot cause a RST
        phase = http.phase
        if phase is Phase.HEAD or phase is Phase.BODY:
            self._advance()
        elif http.should_pause:
            self.transport.pause_reading()  # the next request waits for this response
        # UPGRADING: kept for the WebSocket (reading is paused)

    def eof_received(self) -> bool | None:
        return None  # the client is gone (or done): close, which cancels a handler

    def connection_lost(self, exc: Exception | None) -> None:
        # Not called after an upgrade: the WebSocket gets it then.
        if self._lane is not None:  # before asyncio closes the socket: its fd may be reused
            self._lane.closed = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        self._head_clock.close()
        self._drain.lost()
        if self._task is not None:
            self._task.cancel()
        if self._held_poll is not None:
            self._held_poll.cancel()
        if self._poll_clock is not None:
            self._poll_clock.close()
        self._server.forget(self)

    def pause_writing(self) -> None:
        self._drain.pause()

    def resume_writing(self) -> None:
        self._drain.resume()

    # -- requests ------------------------------------------------------------------

    def _advance(self) -> None:
        """Act on the reader's next event: route a head, run a publish whose body is in,
        or answer what it refused (a bad or oversized head)."""
        event = self._http.next_event()
        if event is None:
            return
        if isinstance(event, RequestReceived):
            self._route(event.request)
        elif isinstance(event, BodyReceived):
            request = self._request
            assert request is not None
            self._body = event.body
            self._task = self._server.loop.create_task(
                self._dispatch(HttpConnection._publish, request)
            )
        else:
            self._send_error(event.status, event.reason, event.headers)

    def _arm_idle(self) -> None:
        """Close the connection if no complete request head arrives in time.

        One timer per connection, re-armed lazily (:class:`~pushbench.deadline.LazyDeadline`):
        a request only moves the deadline. Every way back to waiting for a head comes
        here (:meth:`_next_request`), so a connection answering a request when the
        deadline passes is left alone, and its next wait sets a new one.
        """
        loop = self._server.loop
        self._head_clock.expire_at(loop.time() + self._service.config.head_timeout, self._idle)

    def _idle(self) -> None:
        if self._http.phase is Phase.HEAD:  # still waiting for the head: too long
            self.transport.close()
        # else: answering, ending (its own abort timer) or upgraded: not HTTP's to close

    def _route(self, request: Request) -> None:
        self._request = request
        route = ROUTES.get(request.path)
        if route is None:
            self._send_error(404, "not found")
            return
        methods, handler = route
        if request.method not in methods:
            self._send_error(405, "method not allowed", (("Allow", ", ".join(methods)),))
            return
        if handler is HttpConnection._publish:
            self._read_body(request)
            return
        if handler is HttpConnection._poll:
            self._http.handle()
            self._poll_request(request)
            return
        # Any other body is never read: the reader then does not keep the connection.
        if handler is HttpConnection._ws or handler is HttpConnection._echo:
            self._http.upgrade()
            self.transport.pause_reading()
        else:
            self._http.handle()
        self._task = self._server.loop.create_task(self._dispatch(handler, request))

    def _read_body(self, request: Request) -> None:
        """A publish: read its body by its Content-Length, or refuse its framing."""
        refused = self._http.read_body(self._service.config.max_publish_bytes)
        if refused is None:
            self._advance()  # the body may be here already
            return
        if refused.status == 413:
            # Never read: answered at once (400/401 first, as publish would), then closed.
            try:
                error = self._service.publish_too_large(parse_query(request.query))
            except HttpError as exc:
                error = exc
            self._send_error(error.status, error.error)
            return
        self._send_error(refused.status, refused.reason, refused.headers)

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
        http = self._http
        if http.phase is Phase.DONE or http.phase is Phase.SWITCHED:
            return  # already ended (the client went away mid-request)
        keep = http.keep_alive and status < 400 and not self._server.closing
        self._started = True
        self.transport.write(encode_response(status, body, content_type, headers, close=not keep))
        if keep:
            http.responded(keep=True)
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
        self.transport.resume_reading()  # no-op unless a pipelined request paused it
        self._arm_idle()
        if self._http.buffered:
            self._advance()

    def _end(self) -> None:
        """The last response is out: half-close, as WebSocket._finish does, and read
        until the peer closes; unread request bytes must not turn into a RST that
        destroys the response. Abort if the peer lingers past close_timeout."""
        http = self._http
        if http.phase is Phase.DONE or http.phase is Phase.SWITCHED:
            return
        http.responded(keep=False)  # DONE: what the peer still sends is dropped
        transport = self.transport
        if transport.is_closing():
            return
        transport.resume_reading()  # no-op unless an upgrade paused it
        if not transport.can_write_eof():  # TLS: no half-close; close_notify after the data
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:  # the peer reset the connection first: nothing left to finish
            transport.abort()
            return
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
        auth = request.get("Authorization")
        body = await self._service.control_ticker(request.method, query, auth)
        self._respond(200, body, _JSON)

    async def _publish(self, request: Request, query: Query) -> None:
        body, self._body = self._body, b""
        self._respond(200, await self._service.publish(query, body), _JSON)

    async def _poll(self, request: Request, query: Query) -> None:
        """``GET /poll`` (its route): answered by :meth:`_poll_request`, without a task."""
        raise AssertionError("routed to _poll_request")

    def _poll_request(self, request: Request) -> None:
        """``GET /poll``: long (timeout > 0) or short, answered in the callback that read
        the request — at once, or by a :class:`~.polls.HeldPoll` (a message, the timeout,
        shutdown) — with no task unless the hub must first load the topic."""
        service = self._service
        try:
            params = service.params(parse_query(request.query))
        except HttpError as exc:
            self._send_error(exc.status, exc.error)
            return
        if service.hub.topic_ready(params.topic):
            self._poll_ready(params)
        else:
            self._task = self._server.loop.create_task(self._poll_later(request, params))

    async def _poll_later(self, request: Request, params: Params) -> None:
        """A poll whose topic the hub must load first (a backend's history)."""
        try:
            await self._service.hub.ensure_topic(params.topic)
        except Exception:
            log.exception("raw stack: %s %s failed", request.method, request.path)
            self._send_error(500, "internal error")
            return
        self._task = None
        self._poll_ready(params)

    def _poll_ready(self, params: Params) -> None:
        service = self._service
        since = service.poll_since(params)
        items = service.hub.since(params.topic, since)
        if items or params.timeout <= 0 or self._server.closing:
            self._poll_answer(service.poll_answer(items, since))
            return
        clock = self._poll_clock
        if clock is None:
            clock = self._poll_clock = LazyDeadline(self._server.loop)
        self._held_poll = HeldPoll(
            service, params.topic, since, params.timeout, self._poll_answer, clock
        )

    def _poll_answer(self, body: bytes) -> None:
        self._held_poll = None
        self._respond(200, body, _JSON, _NO_CACHE)

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
            sub.lane = self._lane = lane_for(self.transport, "sse", sse_frame, service.stats)
            await push_loop(
                service,
                sub,
                self._send_events,
                self._heartbeat,
                service.config.heartbeat_interval,
                abort=self.transport.abort,
                try_send=self._try_event,
            )
        finally:
            if self._lane is not None:
                self._lane.closed = True
            if sub is not None:
                sub.close()
            service.close_connection()
            if self._started:  # else an error is still answered, by _dispatch
                self._end()  # a stream ends by closing the connection, however it ended

    def _try_event(self, items: list[Item]) -> int | None:
        """The direct path: write the items' events now (one write) if the transport
        takes more."""
        transport = self._transport
        if self._drain.paused or transport is None or transport.is_closing():
            return None
        if len(items) == 1:
            data = items[0].framed("sse", sse_frame)
        else:
            data = b"".join([item.framed("sse", sse_frame) for item in items])
        transport.write(data)
        return len(data)

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
        response, deflate = self._accept(request)  # 400 / 426: not a valid upgrade
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
        session = TopicSession(service, params.topic, sub)
        self._upgrade(response, session, service.config.max_publish_bytes, deflate)

    async def _echo(self, request: Request, query: Query) -> None:
        """``GET /echo``: every message back with its own opcode."""
        service = self._service
        service.check_control(query, request.get("Authorization"))  # 401 / 403
        service.check_origin(request.get("Origin"))
        response, deflate = self._accept(request)
        if self._server.closing:
            raise HttpError(503, "server shutting down")
        service.open_connection()
        self._upgrade(response, Echo(), service.config.max_message_size, deflate)

    def _accept(self, request: Request) -> tuple[Response, PerMessageDeflate | None]:
        """The 101 (or HandshakeError), with permessage-deflate when the server has it on
        and the client offered it acceptably (h25: compression)."""
        prefs = self._server.deflate
        agreed = negotiate(request.get("Sec-WebSocket-Extensions"), prefs) if prefs else None
        if agreed is None:
            return accept(request), None
        return accept(request, extensions=agreed[0]), agreed[1]

    def _upgrade(
        self,
        response: Response,
        app: App,
        max_message_size: int,
        deflate: PerMessageDeflate | None = None,
    ) -> None:
        """Write the 101 and hand the transport to a WebSocket (which now owns the
        connection's slot in ``connections_open``)."""
        transport = self.transport
        early_data = self._http.switched()
        self._task = None
        self._head_clock.close()
        ws = WebSocket(self._server, transport, app, max_message_size, deflate)
        self._server.replace(self, ws)
        transport.set_protocol(ws)
        transport.write(response.serialize())
        transport.resume_reading()
        ws.start(early_data)

    # -- shutdown ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Idle: close. Held (SSE, long poll): interrupt, the handler ends its response.
        Anything else is answered soon and ends by itself (or is aborted at the deadline)."""
        if self._http.phase in (Phase.HEAD, Phase.BODY):
            self.transport.close()
        elif self._held_poll is not None:
            self._held_poll.finish()  # answered with what is there
        elif self._held and self._task is not None:
            self._task.cancel()


#: path → (the methods it allows, its handler)
ROUTES: dict[str, tuple[tuple[str, ...], Handler]] = {
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

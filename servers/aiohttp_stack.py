"""The aiohttp stack: aiohttp.web adapted to :class:`~pushbench.service.PushService`.

A thin adapter on purpose. Parameter checks, auth, error bodies, poll batches,
SSE framing and counters are the service's (:mod:`pushbench.service`), the
push loop with its heartbeats and slow-consumer outcome is
:func:`pushbench.sessions.push_loop`; this module only turns aiohttp requests
into those calls and their results into aiohttp writes, so a benchmark compares
aiohttp's I/O, not a different implementation of the same rules.

What is aiohttp-specific, and why:

- permessage-deflate is off (``compress=False``): every stack must send the
  same bytes, and compression would make the comparison about zlib — except on
  ``compression = "deflate"`` cells (``StackOptions.compression``), where aiohttp's own
  ``compress=True`` negotiates it (with context takeover, aiohttp's default) and every
  frame goes through aiohttp's writer (no shared pre-encoded frames);
- keepalive is aiohttp's own ``heartbeat`` (Ping every ``ping_interval``,
  connection closed when no Pong arrives within half of it);
- a client's text message on ``/ws`` is a publish to the socket's topic;
  aiohttp enforces the size (``max_msg_size``, close 1009) and UTF-8 (1007);
- access logging is off: tokens ride in query strings and must never reach a
  log, and logging every request would be measured as the stack's cost;
- ``handler_cancellation``: a handler whose client went away is cancelled at
  once, so an idle SSE stream or a held long poll does not keep its
  subscription until the next write or the poll timeout;
- the data path is shared bytes: each message's text frame and SSE event (in
  its HTTP/1.1 chunk when the response is chunked) are framed once per message
  (:meth:`~pushbench.hub.Item.framed`) and, while the connection's transport
  is not paused, written straight to it from the publish (the ``try_send`` of
  :func:`~pushbench.sessions.push_loop`): the bytes aiohttp's own writer would
  produce for each subscriber, without a task wake-up, a frame header or a
  chunk header per subscriber. Under backpressure items queue and go out
  through aiohttp's writer (``send_frame`` / ``write``) with its flow control.
  Handshakes, headers, pings, pongs, closes and reading stay aiohttp's;
- shutdown (``stop`` set): WebSockets get Close 1001 (a peer too stuck to take
  it is aborted after ``CLOSE_TIMEOUT``); held SSE streams and long polls are
  interrupted and end their responses normally (a long poll answers with
  whatever is there, possibly nothing); what is still running after
  ``SHUTDOWN_TIMEOUT`` is cancelled by aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.web_request import BaseRequest

from pushbench import client_page, sse
from pushbench.hub import Item, Subscription
from pushbench.service import HttpError, PushService, sse_frame, ws_frame
from pushbench.sessions import TrySend, push_loop

from .aiohttp_routes import JSON_HEADERS as _JSON_HEADERS
from .aiohttp_routes import Route, add_routes
from .aiohttp_routes import error_response as _error
from .base import OnReady, Stack, StackOptions
from .slow_close import close_slow_consumer

__all__ = ["CLOSE_TIMEOUT", "SHUTDOWN_TIMEOUT", "STACK", "make_app", "run"]

CLOSE_TIMEOUT = 2.0  # s to wait for the peer's Close after ours, then the socket is closed
SHUTDOWN_TIMEOUT = 3.0  # s aiohttp lets handlers finish after stop, before cancelling them

_SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
}
_POLL_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-cache"}
_HEARTBEAT = sse.comment(b"hb")


_T = TypeVar("_T")


def _ws_frame_size(n: int) -> int:
    """Bytes on the wire of an unmasked server frame with an ``n``-byte payload."""
    return n + (2 if n < 126 else 4 if n < 65536 else 10)


def _sse_chunk(item: Item) -> bytes:
    """An item's SSE event as one HTTP/1.1 chunk, as aiohttp's chunked writer frames it."""
    event = item.framed("sse", sse_frame)
    return b"%x\r\n" % len(event) + event + b"\r\n"


def _direct(
    request: web.Request,
    frame: Callable[[Item], bytes],
    key: str,
    ws: web.WebSocketResponse | None = None,
) -> TrySend:
    """``try_send`` for :func:`push_loop`: the item's shared bytes straight to the
    transport while aiohttp's protocol is not paused (else None: queue it). On a
    WebSocket, never once our Close is on its way (``ws.closed``)."""
    protocol = request.protocol
    transport = request.transport

    def try_send(items: list[Item]) -> int | None:
        if (
            transport is None
            or protocol.writing_paused
            or transport.is_closing()
            or (ws is not None and ws.closed)
        ):
            return None
        if len(items) == 1:
            data = items[0].framed(key, frame)
        else:
            data = b"".join([item.framed(key, frame) for item in items])
        transport.write(data)
        return len(data)

    return try_send


class _Server:
    """The handlers, plus what shutdown needs: open sockets and held requests."""

    def __init__(self, service: PushService, compress: bool = False) -> None:
        self.service = service
        self.compress = compress  # h25 (compression): aiohttp's own permessage-deflate
        # open WebSockets → their transports (aborted if a Close cannot be delivered)
        self.sockets: dict[web.WebSocketResponse, asyncio.Transport | None] = {}
        self.held: set[asyncio.Task[object]] = set()  # SSE streams and long polls
        self.closing = False

    # --- WebSocket ------------------------------------------------------------

    def _websocket(self, max_msg_size: int) -> web.WebSocketResponse:
        return web.WebSocketResponse(
            compress=self.compress,
            heartbeat=self.service.config.ping_interval or None,
            max_msg_size=max_msg_size,
            timeout=CLOSE_TIMEOUT,
        )

    async def ws(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``: push the topic, one text frame per message; client text = publish."""
        service = self.service
        params = service.params(request.query)  # 400 / 401 before any upgrade
        service.check_origin(request.headers.get("Origin"))
        _require_upgrade(request)
        # aiohttp refuses a message whose size is >= max_msg_size, hence the + 1.
        ws = self._websocket(service.config.max_publish_bytes + 1)
        service.open_connection()  # 429 when full
        try:
            await service.hub.ensure_topic(params.topic)
            # Subscribed before the 101 goes out: a client that saw the upgrade
            # complete may publish at once and must receive its message.
            sub = service.hub.subscribe(params.topic, params.since)
            try:
                await ws.prepare(request)
                await self._serve_ws(ws, request, params.topic, sub)
            except ConnectionError:
                pass  # gone during the handshake; aiohttp ends the exchange
            finally:
                sub.close()
        finally:
            service.close_connection()
        return ws

    async def _serve_ws(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        topic: str,
        sub: Subscription,
    ) -> None:
        service = self.service
        if self.closing:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
            return
        transport = request.transport
        self.sockets[ws] = transport

        async def send_batch(items: list[Item]) -> int:
            n = 0
            for item in items:
                data = item.data
                await ws.send_frame(data, WSMsgType.TEXT)
                n += _ws_frame_size(len(data))
            return n

        pushing = True  # False once the pusher left push_loop and closes the socket itself

        async def push() -> None:
            nonlocal pushing
            reason = await push_loop(
                service,
                sub,
                send_batch,
                abort=lambda: close_slow_consumer(transport, CLOSE_TIMEOUT),
                # compressed (negotiated): every frame through aiohttp's writer
                try_send=None if ws.compress else _direct(request, ws_frame, "ws", ws),
            )
            pushing = False
            if reason == "slow-consumer":
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"slow consumer")
            else:  # a write failed: make sure the reading side ends too
                await ws.close(code=WSCloseCode.GOING_AWAY)

        pusher = asyncio.create_task(push())
        try:
            async for msg in ws:  # ends on Close, on a closed socket, and when we close it
                if msg.type is WSMsgType.TEXT:
                    try:
                        await service.publish_text(topic, msg.data)
                    except HttpError as exc:
                        code = service.publish_close_code(exc.status)
                        await ws.close(code=code, message=exc.error.encode())
                        break
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(
                        code=WSCloseCode.UNSUPPORTED_DATA, message=b"publish with text messages"
                    )
                    break
                else:  # ERROR: aiohttp already closed with the matching code
                    break
        finally:
            self.sockets.pop(ws, None)
            if pushing:
                pusher.cancel()
            await _reap(pusher)

    async def echo(self, request: web.Request) -> web.StreamResponse:
        """``GET /echo``: every message back with its own opcode (handshake / RTT tests)."""
        service = self.service
        service.check_control(request.query, request.headers.get("Authorization"))
        service.check_origin(request.headers.get("Origin"))
        _require_upgrade(request)
        # Messages over max_message_size are refused with 1009 (aiohttp: >= max_msg_size).
        ws = self._websocket(service.config.max_message_size + 1)
        service.open_connection()
        try:
            try:
                await ws.prepare(request)
            except ConnectionError:
                return ws  # gone during the handshake; aiohttp ends the exchange
            if self.closing:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                return ws
            self.sockets[ws] = request.transport
            try:
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        await ws.send_str(msg.data)
                    elif msg.type is WSMsgType.BINARY:
                        await ws.send_bytes(msg.data)
                    else:
                        break
            except ConnectionError:
                pass  # the peer went away mid-echo
            finally:
                self.sockets.pop(ws, None)
        finally:
            service.close_connection()
        return ws

    # --- SSE and polling -------------------------------------------------------

    async def sse(self, request: web.Request) -> web.StreamResponse:
        """``GET /sse``: the topic as an event stream; Last-Event-ID / lastEventId resume."""
        service = self.service
        params = service.params(request.query, request.headers.get("Last-Event-ID"))
        resp = web.StreamResponse(headers=_SSE_HEADERS)
        service.open_connection()
        try:
            await service.hub.ensure_topic(params.topic)
            sub = service.hub.subscribe(params.topic, params.since)  # before the headers go out
            try:
                await resp.prepare(request)
                await resp.write(service.sse_prelude())
                chunked = resp.headers.get("Transfer-Encoding") == "chunked"

                async def send_batch(items: list[Item]) -> int:
                    data = b"".join([item.framed("sse", sse_frame) for item in items])
                    await resp.write(data)
                    return len(data)

                async def heartbeat() -> int:
                    await resp.write(_HEARTBEAT)
                    return len(_HEARTBEAT)

                transport = request.transport
                await self._hold(
                    push_loop(
                        service,
                        sub,
                        send_batch,
                        heartbeat,
                        service.config.heartbeat_interval,
                        abort=lambda: close_slow_consumer(transport, CLOSE_TIMEOUT),
                        try_send=(
                            _direct(request, _sse_chunk, "sse-chunk")
                            if chunked
                            else _direct(request, sse_frame, "sse")
                        ),
                    )
                )
            except ConnectionError:
                pass  # gone before the stream started; aiohttp ends the exchange
            finally:
                sub.close()
        finally:
            service.close_connection()
        return resp

    async def poll(self, request: web.Request) -> web.StreamResponse:
        """``GET /poll``: long poll (timeout > 0) or short poll (timeout=0), JSON batch."""
        service = self.service
        params = service.params(request.query)
        if params.timeout > 0:
            body = await self._hold(service.poll(params))
            if body is None:  # interrupted by shutdown: answer with what is there now
                body = await service.poll(params._replace(timeout=0.0))
        else:
            body = await service.poll(params)
        return web.Response(body=body, headers=_POLL_HEADERS)

    async def _hold(self, aw: Awaitable[_T]) -> _T | None:
        """Await a request that waits for messages; None if shutdown interrupted it.

        Shutdown cancels the held tasks; the cancellation is caught here (and
        only when it is ours) so the handler can still end its response
        properly rather than have aiohttp cut the connection.
        """
        task = asyncio.current_task()
        if task is None or self.closing:
            if asyncio.iscoroutine(aw):
                aw.close()
            return None
        self.held.add(task)
        try:
            return await aw
        except asyncio.CancelledError:
            if self.closing and task.uncancel() == 0:
                return None
            raise
        finally:
            self.held.discard(task)

    # --- plain requests --------------------------------------------------------

    async def publish(self, request: web.Request) -> web.StreamResponse:
        """``POST /publish``: the body is the payload; never reads past the limit + 1 byte."""
        service = self.service
        limit = service.config.max_publish_bytes
        length = request.content_length
        if length is not None and length > limit:
            resp = _error(413, service.publish_too_large(request.query).body())
            resp.force_close()  # the body stays unread
            return resp
        try:
            body = await request.content.readexactly(limit + 1)
        except asyncio.IncompleteReadError as exc:
            body = exc.partial  # the whole body: it ended within the limit
        try:
            answer = await service.publish(request.query, body)
        except HttpError as exc:
            resp = _error(exc.status, exc.body())
            if not request.content.at_eof():
                resp.force_close()
            return resp
        return web.Response(body=answer, headers=_JSON_HEADERS)

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.service.stats_body(), headers=_JSON_HEADERS)

    async def clock(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.service.clock_body(), headers=_POLL_HEADERS)

    async def page(self, request: web.Request) -> web.StreamResponse:
        """``GET /client``, ``/client.js``: the browser client (:mod:`pushbench.client_page`)."""
        page = client_page.asset(request.path)
        headers = {**dict(page.headers), "Content-Type": page.content_type}
        return web.Response(body=page.body, headers=headers)

    async def ticker(self, request: web.Request) -> web.StreamResponse:
        body = await self.service.control_ticker(
            request.method, request.query, request.headers.get("Authorization")
        )
        return web.Response(body=body, headers=_JSON_HEADERS)

    # --- shutdown --------------------------------------------------------------

    async def shutdown(self, app: web.Application) -> None:
        """on_shutdown: Close 1001 to every socket, end held SSE streams and polls.

        A peer that reads nothing cannot even be sent its Close (the write
        blocks on flow control); after ``CLOSE_TIMEOUT`` its transport is
        aborted so shutdown never waits on a client.
        """
        self.closing = True
        for task in list(self.held):
            task.cancel()
        closes = {
            asyncio.ensure_future(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
            ): transport
            for ws, transport in list(self.sockets.items())
        }
        if not closes:
            return
        _, pending = await asyncio.wait(closes, timeout=CLOSE_TIMEOUT)
        for fut in pending:
            transport = closes[fut]
            if transport is not None:
                transport.abort()  # wakes the blocked write; close() then returns
        if pending:
            _, pending = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
            for fut in pending:
                fut.cancel()


def _require_upgrade(request: web.Request) -> None:
    """A plain GET on a WebSocket path: 400 in our JSON shape rather than aiohttp's text."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise HttpError(400, "expected a WebSocket upgrade")
    # aiohttp base64-decodes the key unguarded: a non-ASCII key raised ValueError → 500.
    if not request.headers.get("Sec-WebSocket-Key", "").isascii():
        raise HttpError(400, "malformed Sec-WebSocket-Key")


async def _reap(task: asyncio.Task[None]) -> None:
    """Wait for a helper task that was cancelled (or is finishing) without losing our own
    cancellation: the helper's CancelledError is swallowed, ours propagates."""
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class _Handler(web.RequestHandler):
    """aiohttp's per-connection protocol, answering its own errors in the contract's shape.

    aiohttp answers a request it cannot parse (and a handler's crash) with a plain-text
    body that quotes the parser's message, i.e. the first bytes of the input, and logs
    that message with a traceback per bad request; here the answer is the contract's
    JSON ``{"error": ...}`` naming the status only, and a bad request is logged at
    debug level without the input (a crash of ours still logs its traceback).
    """

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # a crash of ours: aiohttp logs its traceback
            self.log_exception("Error handling request", exc_info=exc)
        else:  # a peer's garbage: aiohttp's log line would quote the input, at any rate
            self.log_debug("Bad request (%d)", status)
        if request.writer.output_size > 0:  # as aiohttp: too late for an answer
            raise ConnectionError("response already started, cannot send the error")
        reason = "bad request" if status == 400 else "internal server error"
        resp = _error(status, HttpError(status, reason).body())
        resp.force_close()
        return resp


class _WebServer(web.Server):
    """aiohttp's Server building our :class:`_Handler` per connection."""

    def __call__(self) -> web.RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """AppRunner serving through :class:`_WebServer` (aiohttp has no handler-class option)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        kwargs: dict[str, Any] = dict(server._kwargs)
        return _WebServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **kwargs,
        )


def make_app(service: PushService, compress: bool = False) -> web.Application:
    """The aiohttp application serving the URL scheme of :mod:`pushbench.service`
    (``compress``: accept permessage-deflate when a client offers it)."""
    server = _Server(service, compress)
    app = web.Application()  # no middleware: see .aiohttp_routes
    routes: dict[str, dict[str, Route]] = {
        "/ws": {"GET": server.ws},
        "/echo": {"GET": server.echo},
        "/sse": {"GET": server.sse},
        "/poll": {"GET": server.poll},
        "/publish": {"POST": server.publish},
        "/health": {"GET": server.health, "HEAD": server.health},
        "/stats": {"GET": server.stats, "HEAD": server.stats},
        "/clock": {"GET": server.clock, "HEAD": server.clock},
        "/control/ticker": {"POST": server.ticker, "DELETE": server.ticker},
    }
    for path in client_page.PATHS:
        routes[path] = {"GET": server.page, "HEAD": server.page}
    add_routes(app, routes)
    app.on_shutdown.append(server.shutdown)
    return app


async def run(
    service: PushService,
    host: str,
    port: int,
    on_ready: OnReady,
    stop: asyncio.Event,
    options: StackOptions,
) -> None:
    """Serve on ``host:port`` until ``stop`` is set, then shut down gracefully.

    The event loop (asyncio or uvloop) is whatever loop this coroutine runs on;
    ``options.ssl``, when set, is the site's ``ssl_context`` (https:// and wss://);
    ``compression = "deflate"`` turns on aiohttp's own permessage-deflate.
    """
    runner = _Runner(
        make_app(service, options.compression == "deflate"),
        access_log=None,  # tokens are in query strings; and logging is not free
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        # aiohttp closes a connection still waiting for a whole head this long after it
        # connected or its last response (its default, 3630 s, held a slowloris).
        keepalive_timeout=service.config.head_timeout,
        # head size: aiohttp's own limits (request/header line 8190 bytes, 128 headers),
        # beyond which it answers 400 (through _Handler: JSON).
    )
    await runner.setup()
    try:
        sites: list[web.BaseSite] = [  # h44: --reuse-port's sockets, else host:port
            web.SockSite(runner, sock, ssl_context=options.ssl) for sock in options.sockets
        ] or [web.TCPSite(runner, host, port, reuse_address=True, ssl_context=options.ssl)]
        for site in sites:
            await site.start()
        on_ready(int(runner.addresses[0][1]))
        await stop.wait()
    finally:
        await runner.cleanup()


STACK = Stack("aiohttp", run)

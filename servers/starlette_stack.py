"""The framework stack: Starlette (with sse-starlette) served by uvicorn.

A thin adapter: every decision — parameter checks, tokens, Origin, limits,
error bodies, poll batches, SSE framing, counters and the push loop itself —
is :mod:`pushbench.service` / :mod:`pushbench.sessions`; this module only maps
Starlette's request, response and WebSocket objects onto them, so what it
measures is the cost of the framework, not different logic.

How each transport is served:

- ``/ws``: the query is validated *before* the handshake and a refusal is an
  HTTP response with the same status and JSON body as every other stack (the
  ASGI WebSocket denial-response extension, which all of uvicorn's WebSocket
  implementations support). Messages go out through
  :func:`~pushbench.sessions.push_loop`, one text frame each; text frames from
  the client are publishes to the socket's topic (over the limit → close
  1009, malformed → 1008, binary → 1003); a dropped slow consumer gets close 1013.
  On uvicorn's sans-I/O implementations (``websockets-sansio``, ``wsproto``),
  whose ASGI send waits only for a paused transport and then writes without
  waiting again, each message is sent from the publish itself
  (:func:`_send_now`, the ``try_send`` of ``push_loop``) rather than by waking
  this handler's task per message: the send runs to its end at once, or it
  would wait before writing a byte, and is then abandoned and the message
  queued for the loop. On ``websockets-sansio`` (the default) the publish writes the
  message's one shared frame instead (:func:`~.uvicorn_ws.shared_frame_sender`).
- ``/sse``: sse-starlette's :class:`EventSourceResponse` pulls its body from an
  iterator, so it is fed by :func:`~pushbench.sessions.push_stream`, the
  pull-style twin of ``push_loop``, with the events pre-framed once per
  message (:func:`~pushbench.service.sse_frame`). Keepalive comments are
  sse-starlette's own ``ping`` (sent every ``heartbeat_interval`` whether or
  not events flowed — the library's behaviour), with the same bytes as the
  other stacks' heartbeat (``:\\n\\n``).
- ``/poll``, ``/publish``, ``/health``, ``/stats``, ``/clock``, ``/client``,
  ``/control/ticker``: plain endpoints; a publish body is read only up to the limit.

uvicorn runs programmatically on the *running* event loop: ``run`` does not
create a loop, so the loop choice (``options.loop``) is applied by the caller,
e.g. ``asyncio.run(main(), loop_factory=uvloop.new_event_loop)``; ``run``
refuses to start on a loop that does not match ``options.loop``, so a result
can never be labelled with a loop it did not use. Signals belong to the caller
too (uvicorn's own handlers are not installed): serving stops when
``stop_event`` is set, after every WebSocket got close 1001, every SSE
stream ended and every held long poll was answered (with what is there, as a
timeout would: left to uvicorn, it would be cancelled after the graceful
period, a 500 and a logged traceback each). Compression is off and access
logging is off (tokens ride in URLs and must never reach a log).

``options.ws`` picks uvicorn's WebSocket implementation; ``options.extra`` may
set ``http`` (uvicorn's HTTP implementation, default ``httptools``) and
``ws_max_size`` (uvicorn's cap on one incoming message, by default the config's
``max_message_size``, for /echo; /ws publishes stop at ``max_publish_bytes``
regardless). Keepalive is uvicorn's: ``ping_interval`` and ``ping_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any

import uvicorn
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from pushbench import client_page, sse
from pushbench.hub import Item, Subscription
from pushbench.query import asgi_query
from pushbench.servers.base import OnReady, Stack, StackOptions
from pushbench.service import HttpError, PushService, sse_frame
from pushbench.sessions import push_loop, push_stream

from .slow_close import close_slow_consumer
from .uvicorn_http import bounded_protocol
from .uvicorn_ws import TRANSPORT_SCOPE_KEY, shared_frame_sender, ws_protocol

__all__ = ["STACK", "PushApp", "run"]

JSON = "application/json"
NO_CACHE = {"Cache-Control": "no-cache"}
SSE_HEADERS = {
    # Given explicitly so the type stays exactly text/event-stream (Starlette
    # appends "; charset=utf-8" to a text/* media_type) and sse-starlette does
    # not put in its default "no-store".
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
HEARTBEAT = sse.comment()
STOP_TIMEOUT = 2.0  # seconds for open sessions to send their close / end, at stop
GRACEFUL_SHUTDOWN = 1  # then uvicorn cancels what is still running (a request stuck on a peer)
#: uvicorn's WebSocket implementations whose ASGI send awaits nothing after it starts
#: writing (only ``writable.wait()`` before): safe for :func:`_send_now`.
SLOW_CLOSE_TIMEOUT = 2.0  # s a dropped slow consumer has to read its 1013, then TCP is aborted
SEND_NOW_WS = frozenset({"websockets-sansio", "wsproto"})


def _error(exc: HttpError, headers: dict[str, str] | None = None) -> Response:
    return Response(exc.body(), exc.status, headers=headers, media_type=JSON)


def _json(body: bytes) -> Response:
    return Response(body, headers=NO_CACHE, media_type=JSON)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Any :class:`HttpError` an endpoint raises → its status and JSON body."""
    assert isinstance(exc, HttpError)
    return _error(exc)


async def _on_starlette_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path 404, wrong method 405) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    error = HttpError(exc.status_code, exc.detail.lower())  # "not found", "method not allowed"
    return _error(error, dict(exc.headers) if exc.headers else None)


def _sse_chunk(items: list[Item]) -> bytes:
    """A batch as one body chunk: each item's event, framed once per message (a batch
    of one, the usual case below saturation, without the join)."""
    if len(items) == 1:
        return items[0].framed("sse", sse_frame)
    return b"".join([item.framed("sse", sse_frame) for item in items])


def _send_now(send: Coroutine[Any, Any, None]) -> bool:
    """Run an ASGI send to its end without the event loop → True; False if it would
    have to wait (or failed) — on :data:`SEND_NOW_WS` that is before it wrote
    anything, so the message can go through the queue instead, written once."""
    try:
        send.send(None)
    except StopIteration:
        return True
    except Exception:  # the peer is gone: the queued path meets it again and ends
        return False
    send.close()  # suspended on the paused transport, nothing written: abandon
    return False


class _Heartbeat(ServerSentEvent):
    """sse-starlette's ping event, encoded as the shared heartbeat comment."""

    def encode(self) -> bytes:
        return HEARTBEAT


class _Session:
    """One open WebSocket or SSE stream, so that stopping the server can end it.

    :meth:`end` marks the subscription dropped and closes it — what
    :meth:`Hub.stop` does — which returns the push loop; the handler then
    closes with ``close_code`` (``None``: the peer is already gone).
    """

    __slots__ = ("close_code", "ended", "sub", "task", "websocket")

    def __init__(self, sub: Subscription | None, websocket: WebSocket | None = None) -> None:
        self.sub = sub
        self.websocket = websocket  # for /echo, which has no subscription to end
        self.task: asyncio.Task[Any] | None = asyncio.current_task()
        self.ended = False
        self.close_code: int | None = None

    def end(self, close_code: int | None) -> None:
        if self.ended:
            return
        self.ended = True
        self.close_code = close_code
        if self.sub is not None:
            self.sub.dropped = True
            self.sub.close()


class _SseResponse(EventSourceResponse):
    """EventSourceResponse that releases its connection slot however it ends.

    The cleanup cannot live in the body iterator alone: sse-starlette never
    starts the iterator for HEAD, and a response can fail before it does.
    """

    def __init__(
        self, body: AsyncIterator[bytes], on_close: Callable[[], None], **kwargs: Any
    ) -> None:
        super().__init__(body, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class PushApp:
    """The Starlette application over one :class:`PushService` (``.asgi``)."""

    def __init__(self, service: PushService, send_now: bool = False) -> None:
        self.service = service
        self.send_now = send_now  # uvicorn's ws implementation allows _send_now
        self.stopping = False
        self._sessions: set[_Session] = set()
        self.asgi = Starlette(
            routes=[
                WebSocketRoute("/ws", self.ws),
                WebSocketRoute("/echo", self.echo),
                Route("/sse", self.sse, methods=["GET"]),
                Route("/poll", self.poll, methods=["GET"]),
                Route("/publish", self.publish, methods=["POST"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/stats", self.stats, methods=["GET"]),
                Route("/clock", self.clock, methods=["GET"]),
                *(Route(path, self.page, methods=["GET"]) for path in client_page.PATHS),
                Route("/control/ticker", self.control_ticker, methods=["POST", "DELETE"]),
            ],
            exception_handlers={HttpError: _on_http_error, HTTPException: _on_starlette_error},
        )

    # --- WebSocket ----------------------------------------------------------

    async def ws(self, websocket: WebSocket) -> None:
        """GET /ws: push the topic from ``since``; client text frames are publishes."""
        service = self.service
        try:
            params = service.params(websocket.query_params)
            service.check_origin(websocket.headers.get("origin"))
            service.open_connection()
        except HttpError as exc:
            await websocket.send_denial_response(_error(exc))
            return
        try:
            await service.hub.ensure_topic(params.topic)  # complete history (Redis) for since
            await websocket.accept()
            sub = service.hub.subscribe(params.topic, params.since)
            session = _Session(sub)
            self._sessions.add(session)
            reader = asyncio.create_task(self._read_publishes(websocket, params.topic, session))
            shared = shared_frame_sender(websocket.scope, service.stats.extra)  # one frame

            async def send_batch(items: list[Item]) -> int:
                n = 0
                try:
                    for item in items:
                        # ASGI text frames are str: uvicorn encodes it back to the same bytes.
                        await websocket.send_text(item.text)
                        n += len(item.data)
                except WebSocketDisconnect as exc:  # Starlette's wrapper of the OSError
                    raise ConnectionError(f"peer gone ({exc.code})") from exc
                except WebSocketDisconnected as exc:  # a direct send met the OSError first
                    raise ConnectionError("peer gone") from exc
                return n

            def try_send(items: list[Item]) -> int | None:
                if len(items) > 1:
                    return None  # a send may wait between them: a burst goes by the queue
                item = items[0]
                return len(item.data) if _send_now(websocket.send_text(item.text)) else None

            def drop() -> None:  # dropped while a send waits on a peer that stopped reading
                close_slow_consumer(websocket.scope.get(TRANSPORT_SCOPE_KEY), SLOW_CLOSE_TIMEOUT)

            try:
                outcome = await push_loop(
                    service,
                    sub,
                    send_batch,
                    abort=drop,
                    try_send=shared or (try_send if self.send_now else None),
                )
            finally:
                self._sessions.discard(session)
                reader.cancel()
                await asyncio.wait([reader])
            if session.ended:  # ended from outside the loop: peer left, bad frame, stop
                code = session.close_code
            else:
                code = 1013 if outcome == "slow-consumer" else None
            if code is not None:
                await _close_quietly(websocket, code)
        finally:
            service.close_connection()

    async def _read_publishes(self, websocket: WebSocket, topic: str, session: _Session) -> None:
        """Client → server half of /ws; ends the session when the client goes or misbehaves."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                session.end(None)
                return
            text = message.get("text")
            if text is None:
                session.end(1003)  # binary: unsupported data
                return
            try:
                await self.service.publish_text(topic, text)
            except HttpError as exc:
                session.end(self.service.publish_close_code(exc.status))
                return

    async def echo(self, websocket: WebSocket) -> None:
        """GET /echo: every message straight back with the same opcode."""
        service = self.service
        try:
            service.check_control(websocket.query_params, websocket.headers.get("authorization"))
            service.check_origin(websocket.headers.get("origin"))
            service.open_connection()
        except HttpError as exc:
            await websocket.send_denial_response(_error(exc))
            return
        try:
            await websocket.accept()
            session = _Session(None, websocket)
            self._sessions.add(session)
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    text = message.get("text")
                    if text is not None:
                        await websocket.send_text(text)
                    else:
                        await websocket.send_bytes(message["bytes"])
            except WebSocketDisconnect:
                return
            except RuntimeError:
                # Stopping closed the socket under a send (Starlette's WebSocketDisconnected
                # or uvicorn's "after sending 'websocket.close'"); anything else is a bug.
                if not self.stopping:
                    raise
            finally:
                self._sessions.discard(session)
        finally:
            service.close_connection()

    # --- SSE ----------------------------------------------------------------

    async def sse(self, request: Request) -> Response:
        """GET /sse: events from ``since`` (Last-Event-ID / lastEventId win), until gone."""
        service = self.service
        params = service.params(request.query_params, request.headers.get("last-event-id"))
        await service.hub.ensure_topic(params.topic)  # complete history (Redis) for resume
        service.open_connection()
        sub = service.hub.subscribe(params.topic, params.since)
        session = _Session(sub)
        self._sessions.add(session)

        def on_close() -> None:
            self._sessions.discard(session)
            sub.close()
            service.close_connection()

        try:
            return _SseResponse(
                push_stream(service, sub, _sse_chunk, service.sse_prelude()),
                on_close,
                headers=SSE_HEADERS,
                ping=service.config.heartbeat_interval,
                ping_message_factory=self._heartbeat,
                sep="\n",
            )
        except BaseException:
            on_close()
            raise

    def _heartbeat(self) -> ServerSentEvent:
        """sse-starlette calls this right before each ping it writes; count it like push_loop."""
        self.service.count(0, len(HEARTBEAT))
        return _Heartbeat()

    # --- plain HTTP -----------------------------------------------------------

    async def poll(self, request: Request) -> Response:
        """GET /poll: long poll (timeout > 0) or short poll (timeout=0)."""
        params = self.service.params(asgi_query(request.scope))
        return _json(await self.service.poll(params))

    async def publish(self, request: Request) -> Response:
        """POST /publish: the body is the payload, read no further than the limit."""
        service = self.service
        query = asgi_query(request.scope)
        limit = service.config.max_publish_bytes
        declared = request.headers.get("content-length", "")
        over = declared.isascii() and declared.isdigit() and int(declared) > limit
        body = bytearray()
        if not over:
            try:
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        over = True
                        break
            except ClientDisconnect:  # body cut short by EOF: nobody is left to answer
                return _error(HttpError(400, "incomplete body"), {"Connection": "close"})
        if over:
            # The rest of the body is never read: close rather than drain it.
            try:
                error = service.publish_too_large(query)
            except HttpError as exc:
                error = exc
            return _error(error, {"Connection": "close"})
        return _json(await service.publish(query, bytes(body)))

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def stats(self, request: Request) -> Response:
        return _json(self.service.stats_body())

    async def clock(self, request: Request) -> Response:
        return _json(self.service.clock_body())

    async def page(self, request: Request) -> Response:
        """GET /client, /client.js: the browser client (:mod:`pushbench.client_page`)."""
        page = client_page.asset(request.url.path)
        return Response(
            page.body, headers={**dict(page.headers), "Content-Type": page.content_type}
        )

    async def control_ticker(self, request: Request) -> Response:
        auth = request.headers.get("authorization")
        return _json(await self.service.control_ticker(request.method, request.query_params, auth))

    # --- lifecycle --------------------------------------------------------------

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End every open session: WebSockets get close 1001, SSE streams finish, held
        long polls answer now with what is there (uvicorn would otherwise cancel them
        after its graceful period: a 500 and a logged CancelledError each)."""
        self.stopping = True
        self.service.hub.end_waits()
        sessions = list(self._sessions)
        for session in sessions:
            session.end(1001)
        # /echo has no loop to return: close it from here.
        closers = [
            asyncio.create_task(_close_quietly(s.websocket, 1001))
            for s in sessions
            if s.websocket is not None
        ]
        handlers = [s.task for s in sessions if s.task is not None]
        # Bounded: a peer that stopped reading blocks its close; uvicorn's shutdown
        # then cuts it off.
        if handlers or closers:
            await asyncio.wait([*handlers, *closers], timeout=timeout)
        for closer in closers:
            closer.cancel()


async def _close_quietly(websocket: WebSocket, code: int) -> None:
    """Close, unless the peer or another close got there first (Starlette reports that
    as WebSocketDisconnect, uvicorn's legacy "websockets" as RuntimeError)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(code)


class _Server(uvicorn.Server):
    """uvicorn's Server that reports when it listens and leaves signals to the caller."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # `pushbench serve` owns SIGINT/SIGTERM and sets stop_event; uvicorn's handlers
        # would replace its handlers and shut down without the 1001 closes.
        yield


class _SpuriousDenialError(logging.Filter):
    """Drops the ERROR uvicorn's websockets-sansio logs after every denial response.

    uvicorn 0.54 never marks a handshake answered with ``websocket.http.response``
    as complete, so each refused WebSocket (bad token, full server) logs "ASGI
    callable returned without completing handshake" though the client got the
    right status (Kludex/uvicorn PR #3138). Our handlers always either accept
    or send a denial, so here that message means nothing else.
    """

    MESSAGE = "ASGI callable returned without completing handshake."

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.MESSAGE


_DENIAL_LOG_FILTER = _SpuriousDenialError()


def _check_loop(name: str) -> None:
    """Refuse to serve on another loop than the one the results will name."""
    if name not in ("asyncio", "uvloop"):
        raise ValueError(f"loop must be 'asyncio' or 'uvloop', not {name!r}")
    running = type(asyncio.get_running_loop()).__module__.split(".")[0]
    if (running == "uvloop") != (name == "uvloop"):
        raise ValueError(
            f"options.loop is {name!r} but the running loop is {running!r}: the caller must "
            "create it, e.g. asyncio.run(..., loop_factory=uvloop.new_event_loop)"
        )


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0 → any free port), so the real port is known.

    ``proto`` must be IPPROTO_TCP, not 0 (as ``socket.create_server`` leaves it):
    asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP, and
    without it every response written in two parts waits out a delayed ACK (~40 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def run(
    service: PushService,
    host: str,
    port: int,
    on_ready: OnReady,
    stop_event: asyncio.Event,
    options: StackOptions,
) -> None:
    """Serve on the running loop until ``stop_event`` is set (see the module docstring)."""
    _check_loop(options.loop)
    cfg = service.config
    app = PushApp(service, send_now=options.ws in SEND_NOW_WS)
    tls = options.ssl
    config = uvicorn.Config(
        app.asgi,
        host=host,
        port=port,
        loop=options.loop,  # informational: serve() runs on the caller's loop
        # default: httptools bounded by our layer (head timeout and size, JSON 400s);
        # extra http="httptools"/"h11" selects uvicorn's own, unbounded protocol.
        http=options.extra.get("http") or bounded_protocol(cfg.head_timeout),
        ws=ws_protocol(options.ws),
        ws_max_size=int(options.extra.get("ws_max_size", cfg.max_message_size)),
        ws_ping_interval=cfg.ping_interval or None,
        ws_ping_timeout=cfg.ping_timeout,
        # h25 (compression): off as on every stack, unless the cell asks for deflate
        # (then uvicorn's websockets implementation negotiates it when offered)
        ws_per_message_deflate=options.compression == "deflate",
        lifespan="off",
        access_log=False,  # tokens are in URLs
        log_config=None,  # leave the process's logging setup alone
        log_level="warning",
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        # TLS (options.ssl): uvicorn wraps our bounded httptools and ws protocols itself
        ssl_context_factory=None if tls is None else (lambda _c, _d: tls),
    )
    socks = list(options.sockets) or [_listen(host, port)]  # h44: --reuse-port's, else own
    server = _Server(config)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(_DENIAL_LOG_FILTER)
    serving = asyncio.create_task(server.serve(sockets=socks))
    try:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait([serving, listening], return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if serving.done():
            serving.result()  # raises what stopped it
            raise RuntimeError("uvicorn stopped before listening")
        on_ready(socks[0].getsockname()[1])
        stopped = asyncio.create_task(stop_event.wait())
        await asyncio.wait([serving, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
    finally:
        await app.stop()
        server.should_exit = True
        try:
            await serving
        finally:
            for sock in socks:
                sock.close()
            uvicorn_log.removeFilter(_DENIAL_LOG_FILTER)


STACK = Stack("starlette", run)

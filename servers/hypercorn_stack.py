"""The HTTP/2 stack: the same Starlette application served by Hypercorn (issue 18 item 3).

:class:`~pushbench.servers.starlette_stack.PushApp` — every route, every decision of
:mod:`pushbench.service` — on Hypercorn instead of uvicorn, because Hypercorn speaks
HTTP/2 (the ``h2`` library) and uvicorn does not. One listening socket serves both:

- HTTP/1.1, as uvicorn would (the ``sse``, ``longpoll``, ``shortpoll`` transports): the
  same framework on another server, the fair HTTP/1.1 twin of the HTTP/2 cells;
- h2c with prior knowledge (RFC 9113 §3.3: the client starts with the connection
  preface, no Upgrade), which Hypercorn detects on a plaintext socket: the ``sse-h2``
  and ``longpoll-h2`` transports, many streams on one connection;
- over TLS (``options.ssl``, a TLS cell) ALPN offers ``h2`` then ``http/1.1``, so a
  browser negotiates HTTP/2 (Chromium speaks h2 only over TLS).

Not WebSocket: the application's ``/ws`` relies on uvicorn's protocol hooks
(:mod:`.uvicorn_ws`: the slow-consumer close), and WebSocket over HTTP/2 is RFC 8441's
extended CONNECT, which no client of this project (nor the harness's h2 client)
speaks; the registry row serves the HTTP protocols only.

The server's stream limit (SETTINGS_MAX_CONCURRENT_STREAMS) is raised from Hypercorn's
100 to :data:`MAX_STREAMS` (``options.extra["h2_max_streams"]`` overrides it), so one
worker's subscribers fit on one connection as a browser's EventSources would; the
client opens another connection when a server allows fewer. Access logs are off (tokens
ride in URLs); keep-alive and graceful periods are Hypercorn's settings below.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import cast

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import Framework
from hypercorn.utils import wrap_app
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pushbench.servers.base import OnReady, Stack, StackOptions
from pushbench.service import PushService

from .starlette_stack import PushApp, _check_loop, _listen

__all__ = ["ALPN", "MAX_STREAMS", "STACK", "run"]

MAX_STREAMS = 10_000  # SETTINGS_MAX_CONCURRENT_STREAMS announced (Hypercorn's default: 100)
ALPN = ["h2", "http/1.1"]
GRACEFUL_S = 1.0  # then Hypercorn cancels what still runs (as the uvicorn stack's period)
READY_SPINS = 20  # loop turns given to Hypercorn to attach to the listening socket


class _Config(Config):
    """Hypercorn's Config with the TLS context made by the run (:mod:`pushbench.tls`)
    instead of certificate files, ALPN offering h2 first."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__()
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return self._context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        if self._context is not None:
            self._context.set_alpn_protocols(ALPN)
        return self._context


def _close_after_denial(app: ASGIApp) -> Framework:
    """Hypercorn closes the connection after refusing a WebSocket handshake with an HTTP
    response (``websocket.http.response``) but does not say so: add ``Connection: close``
    so an HTTP/1.1 client does not reuse a connection that is gone (the statuses stay the
    application's, as on every stack)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "websocket.http.response.start":
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, closing)

    return cast(Framework, wrapped)


def config_for(service: PushService, options: StackOptions) -> Config:
    """The Hypercorn settings of a run (tests read them)."""
    config = _Config(options.ssl)
    config.accesslog = None  # tokens are in URLs
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = GRACEFUL_S
    config.h2_max_concurrent_streams = int(options.extra.get("h2_max_streams", MAX_STREAMS))
    config.alpn_protocols = list(ALPN)
    config.include_date_header = True
    config.include_server_header = True
    return config


async def run(
    service: PushService,
    host: str,
    port: int,
    on_ready: OnReady,
    stop_event: asyncio.Event,
    options: StackOptions,
) -> None:
    """Serve on the running loop until ``stop_event`` is set: the sessions end first (SSE
    streams finish, held long polls answer), then Hypercorn closes its connections."""
    _check_loop(options.loop)
    app = PushApp(service)
    config = config_for(service, options)
    sock = _listen(host, port)
    sockets = Sockets([sock], [], []) if options.ssl is not None else Sockets([], [sock], [])

    async def shutdown() -> None:
        await stop_event.wait()
        await app.stop()

    serving = asyncio.create_task(
        worker_serve(
            wrap_app(_close_after_denial(app.asgi), config.wsgi_max_body_size, "asgi"),
            config,
            sockets=sockets,
            shutdown_trigger=shutdown,
        )
    )
    try:
        # The socket listens already (connections wait in its backlog): let Hypercorn's
        # lifespan and start_server run, and fail here if they did.
        for _ in range(READY_SPINS):
            await asyncio.sleep(0)
            if serving.done():
                serving.result()
                raise RuntimeError("hypercorn stopped before listening")
        on_ready(sock.getsockname()[1])
        await serving
    finally:
        if not serving.done():
            stop_event.set()
            await asyncio.wait({serving}, timeout=GRACEFUL_S + 2)
            serving.cancel()
        sock.close()


STACK = Stack("starlette-hypercorn", run)

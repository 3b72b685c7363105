"""The raw stack: plain asyncio Protocols around the :mod:`pushbench.wire` codecs.

All protocol logic lives in the sans-I/O codecs — HTTP/1.1 requests in
:mod:`pushbench.wire.http11`, WebSocket frames, messages and the close
handshake in :class:`pushbench.wire.Connection` — and everything the stacks
share lives in :class:`~pushbench.service.PushService` and
:func:`~pushbench.sessions.push_loop`; this package is only the I/O shell:
bytes from ``data_received`` go into a codec, whatever must go out goes to
``transport.write``, and what needs a clock or a socket (keepalive pings,
idle and close timeouts, flow control) is done here, and only here. It serves
the URL scheme of :mod:`pushbench.service` like every other stack, with the
knobs of :class:`~pushbench.service.ServerConfig`.

- :mod:`.listener`: the listening socket, the open connections, graceful shutdown;
- :mod:`.http_connection`: a connection while it speaks HTTP/1.1 — the routes,
  plain responses, polls, publishes and SSE streams, and the WebSocket upgrade;
- :mod:`.websocket`: a connection once upgraded (keepalive, close timeouts,
  reading paused under backpressure); :mod:`.ws_apps`: ``/echo`` and ``/ws``;
- :mod:`.polls`: long polls held without a task (a subscription and a timer);
- :mod:`.flow`: waiting for a transport's buffer to drain.

Per message and per request nothing is spent that a hand-written server would
not spend: a published message is written to each WebSocket and SSE stream
from the publish itself while its transport takes bytes (its frame or event
encoded once for all), a poll is answered in the callback that read it or,
held, from the publish; tasks and queues are for backpressure, handlers that
must await, and connections (one per WebSocket or stream, not per message).

Flow control: each transport pauses at half of ``write_buffer_limit``; then a
WebSocket stops reading from its peer and a push write waits until the buffer
drains, so a connection buffers at most that much plus one batch. A subscriber
that falls ``queue_limit`` items behind is dropped by the hub
(``slow_consumers_dropped``): Close 1013, or an abort when the peer is so
stuck that even the Close could not be written. Request heads are bounded
(16 KiB, else 400), as is every body read.

Extra counters in ``GET /stats``: ``dead_peers``, ``protocol_errors``
(WebSockets failed with 1002/1007/1009 by the codec) and ``fanout_deliveries``
(deliveries the hub wrote through its compiled fan-out, :class:`pushbench.hub.Lane`:
a plain-TCP WebSocket or SSE subscriber whose transport had nothing buffered gets a
publish from one compiled call for all of them, not from its Python sink).
"""

from __future__ import annotations

import asyncio

from pushbench.hub import FANOUT_COUNTER
from pushbench.service import PushService
from pushbench.wire.deflate import DeflateParams

from ..base import OnReady, Stack, StackOptions
from .http_connection import HttpConnection
from .listener import Listener
from .websocket import WebSocket

__all__ = ["STACK", "HttpConnection", "WebSocket", "run"]

_EXTRA_COUNTERS = ("dead_peers", "protocol_errors", FANOUT_COUNTER)


async def run(
    service: PushService,
    host: str,
    port: int,
    on_ready: OnReady,
    stop_event: asyncio.Event,
    options: StackOptions,
) -> None:
    """Serve on ``host:port`` until ``stop_event`` is set, then shut down gracefully.

    The event loop (asyncio or uvloop) is whatever loop this coroutine runs on;
    ``options.ssl``, when set, makes every connection TLS (asyncio's own SSL transport);
    ``compression = "deflate"`` accepts permessage-deflate with :data:`RAW_DEFLATE`.
    OSError (e.g. the port is taken) propagates before ``on_ready``.
    """
    for name in _EXTRA_COUNTERS:
        service.stats.extra.setdefault(name, 0)
    listener = Listener(service, RAW_DEFLATE if options.compression == "deflate" else None)
    factory = lambda: HttpConnection(listener)  # noqa: E731
    bound = await listener.listen(host, port, factory, options.ssl, options.sockets)
    try:
        on_ready(bound)
        await stop_event.wait()
    finally:
        await listener.shutdown()


#: h25 (compression): the raw stack always asks for server_no_context_takeover, so a
#: pushed message compresses the same for every subscriber and is compressed once for
#: all of them (``ws_apps``), as it is framed once; clients keep their context takeover.
RAW_DEFLATE = DeflateParams(server_no_context_takeover=True)

STACK = Stack("raw", run)

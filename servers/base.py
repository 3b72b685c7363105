"""The contract between `pushbench serve` and a server stack.

A stack module (named by its row in :mod:`pushbench.registry`) exposes
``STACK: Stack``. ``run`` serves the URL scheme of
:mod:`pushbench.service` on ``host:port`` until ``stop`` is set, calling
``on_ready(port)`` once it is listening (with the real port when 0 was asked).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pushbench.service import PushService

OnReady = Callable[[int], None]


@dataclass(frozen=True)
class StackOptions:
    """Stack-specific knobs, recorded in results (e.g. uvicorn's loop and ws impl)."""

    loop: str = "asyncio"  # asyncio | uvloop (uvicorn's --loop)
    ws: str = "websockets-sansio"  # uvicorn's --ws implementation
    # h25 (compression): "deflate" lets the stack accept permessage-deflate (RFC 7692)
    # when a client offers it: the raw stack's own codec, aiohttp's compress=True,
    # uvicorn's ws_per_message_deflate; "off" (the default) never negotiates it.
    compression: str = "off"
    extra: dict[str, str] = field(default_factory=dict)
    # issue 12 item 2 (TLS): serve https:// and wss:// with this context (None: plaintext)
    ssl: ssl.SSLContext | None = None
    # issue 18 item 2 (h44, several processes on one port): sockets already bound and
    # listening (pushbench.servers.reuseport) that the stack serves on instead of binding
    # host:port itself, the shared SO_REUSEPORT one first; () (the default): it binds
    sockets: tuple[socket.socket, ...] = ()


@dataclass(frozen=True)
class Stack:
    """A stack's entry point. What it serves is its row in :mod:`pushbench.registry`
    (``serves``), the one place that says it; ``name`` is that row's name."""

    name: str
    run: Callable[[PushService, str, int, OnReady, asyncio.Event, StackOptions], Awaitable[None]]

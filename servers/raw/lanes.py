"""Which raw connections the hub may write to itself (:class:`pushbench.hub.Lane`).

A lane is a plain-TCP socket: the hub's compiled fan-out sends the shared bytes of a
publish straight to its descriptor, so a TLS transport (whose socket carries records,
not our bytes) never gets one, nor does a transport without a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pushbench.hub import Counters, Item, Lane

__all__ = ["lane_for"]


def lane_for(
    transport: asyncio.Transport,
    key: str,
    frame: Callable[[Item], bytes],
    counters: Counters,
) -> Lane | None:
    """A lane on ``transport``'s socket, or None when it is TLS or has no socket."""
    if transport.get_extra_info("sslcontext") is not None:
        return None
    if transport.get_extra_info("ssl_object") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        return None
    return Lane(key, frame, sock.fileno(), transport, counters)

"""uvicorn's WebSocket implementations, each with its transport reachable from the app.

ASGI gives an application no handle on the connection's transport, yet only
the transport can deliver a dropped slow consumer's 1013 and bound how long
its socket stays open (:mod:`pushbench.servers.slow_close`): uvicorn's own
``websocket.close`` waits for a drain that a peer which stopped reading never
allows. :func:`ws_protocol` subclasses the chosen implementation to put its
transport in the connection's scope under :data:`TRANSPORT_SCOPE_KEY`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import import_from_string

__all__ = ["TRANSPORT_SCOPE_KEY", "ws_protocol"]

TRANSPORT_SCOPE_KEY = "pushbench.transport"


def ws_protocol(name: str) -> type[asyncio.Protocol] | str:
    """uvicorn's WebSocket implementation ``name`` (as ``--ws`` names it), subclassed
    to record its transport in the scope; ``"none"`` is returned as is."""
    target = WS_PROTOCOLS.get(name, name)
    if target is None:  # "none": no WebSocket support
        return name
    base: type[Any] = import_from_string(target)

    async def run_asgi(self: Any) -> None:
        self.scope[TRANSPORT_SCOPE_KEY] = self.transport
        await base.run_asgi(self)

    return type(f"Pushbench{base.__name__}", (base,), {"run_asgi": run_asgi})

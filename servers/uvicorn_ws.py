"""uvicorn's WebSocket implementations, each with its transport reachable from the app.

ASGI gives an application no handle on the connection's transport, yet only
the transport can deliver a dropped slow consumer's 1013 and bound how long
its socket stays open (:mod:`pushbench.servers.slow_close`): uvicorn's own
``websocket.close`` waits for a drain that a peer which stopped reading never
allows. :func:`ws_protocol` subclasses the chosen implementation to put its
transport in the connection's scope under :data:`TRANSPORT_SCOPE_KEY`.

It also answers an upgrade request that the sans-I/O parser rejects. uvicorn 0.54's
``websockets-sansio`` only writes what the parser produced when it yields a
request or a frame: a head with a header line over websockets' 8 KiB limit (or
too many headers) makes the parser queue a 431 and set ``handshake_exc`` with no
event, so the client got no answer and the connection stayed open for good
(issue 17; 50 of them took 60 MiB). The subclass writes that queued answer and
closes the transport. (``wsproto`` accepts such a head with a 101; the legacy
``websockets`` answers 400.)
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

    methods: dict[str, Any] = {"run_asgi": run_asgi}
    if name == "websockets-sansio":
        methods["data_received"] = _answer_rejected_handshake(base)
    return type(f"Pushbench{base.__name__}", (base,), methods)


def _answer_rejected_handshake(base: type[Any]) -> Any:
    """``base.data_received``, then: if the handshake failed to parse (no request
    event came out, ``conn.handshake_exc`` is set), write the parser's answer (431 or
    nothing, per websockets) and close the transport, which uvicorn leaves open."""

    def data_received(self: Any, data: bytes) -> None:
        base.data_received(self, data)
        if self.handshake_initiated or self.conn.handshake_exc is None:
            return
        if not self.transport.is_closing():
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

    return data_received

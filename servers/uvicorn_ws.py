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

On ``websockets-sansio`` the protocol object is in the scope too
(:data:`PROTOCOL_SCOPE_KEY`), for :func:`shared_frame_sender`: the push path's
``try_send`` that writes each message's one shared text frame
(:func:`pushbench.service.ws_frame`, the bytes websockets would frame for every
subscriber) straight to the transport while websockets' connection is open with no
extension and the transport is not paused, as the aiohttp stack does with aiohttp's
writer. The issue this answers (16) measured uvicorn framing the text again for each
subscriber as most of the per-message cost at 100 subscribers.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import import_from_string
from websockets.protocol import State

from pushbench.hub import Item
from pushbench.service import ws_frame
from pushbench.sessions import TrySend

__all__ = [
    "PROTOCOL_SCOPE_KEY",
    "SHARED_FRAME_COUNTER",
    "TRANSPORT_SCOPE_KEY",
    "shared_frame_sender",
    "ws_protocol",
]

TRANSPORT_SCOPE_KEY = "pushbench.transport"
PROTOCOL_SCOPE_KEY = "pushbench.ws-sansio-protocol"
#: ``/stats`` counter of the messages :func:`shared_frame_sender` wrote
SHARED_FRAME_COUNTER = "shared_frame_deliveries"


def ws_protocol(name: str) -> type[asyncio.Protocol] | str:
    """uvicorn's WebSocket implementation ``name`` (as ``--ws`` names it), subclassed
    to record its transport in the scope; ``"none"`` is returned as is."""
    target = WS_PROTOCOLS.get(name, name)
    if target is None:  # "none": no WebSocket support
        return name
    base: type[Any] = import_from_string(target)

    async def run_asgi(self: Any) -> None:
        self.scope[TRANSPORT_SCOPE_KEY] = self.transport
        if name == "websockets-sansio":
            self.scope[PROTOCOL_SCOPE_KEY] = self
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


def shared_frame_sender(
    scope: MutableMapping[str, Any], counters: dict[str, int]
) -> TrySend | None:
    """A ``try_send`` writing the items' shared frames to a ``websockets-sansio``
    connection's transport (call it once accepted), or None: another implementation,
    or an extension (permessage-deflate) was negotiated, so frames are per connection.

    It writes only while uvicorn itself would write at once: its ``writable`` event set
    (the transport not paused), no Close sent, not disconnected, websockets' state
    OPEN (no Close received either) and the transport not closing; else None, and
    the items go by the queue and ``websocket.send_text``. Each message it writes
    is counted in ``counters`` (the service's extra ``/stats``) under
    :data:`SHARED_FRAME_COUNTER`."""
    protocol = scope.get(PROTOCOL_SCOPE_KEY)
    if protocol is None or protocol.conn.extensions:
        return None
    conn, transport, writable = protocol.conn, protocol.transport, protocol.writable
    counters.setdefault(SHARED_FRAME_COUNTER, 0)

    def try_send(items: list[Item]) -> int | None:
        if (
            not writable.is_set()
            or protocol.close_sent
            or protocol.disconnected
            or conn.state is not State.OPEN
            or transport.is_closing()
        ):
            return None
        counters[SHARED_FRAME_COUNTER] += len(items)
        if len(items) == 1:
            item = items[0]
            transport.write(item.framed("ws", ws_frame))
            return len(item.data)
        transport.write(b"".join([item.framed("ws", ws_frame) for item in items]))
        return sum(len(item.data) for item in items)

    return try_send

"""What the raw stack's WebSocket paths do with messages: ``/echo`` and ``/ws?topic=``.

Each is an :class:`~.websocket.App` that the HTTP connection attaches to its
:class:`~.websocket.WebSocket` once the 101 is out. ``/ws`` pushes the topic's
items through :func:`pushbench.sessions.push_loop`, as every stack does, and
publishes the client's text messages; ``/echo`` sends every message back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from pushbench.hub import Item, Subscription
from pushbench.service import HttpError, PushService, ws_frame
from pushbench.sessions import push_loop
from pushbench.wire import CloseCode, Message, Opcode, encode_frame
from pushbench.wire.deflate import compress_once
from pushbench.wire.frames import RSV1

from .websocket import WebSocket

__all__ = ["MAX_PENDING_PUBLISHES", "Echo", "TopicSession"]

log = logging.getLogger(__name__)

# A /ws client whose publishes are this many messages ahead of the hub is not
# read from until they are through: its input cannot queue without bound.
MAX_PENDING_PUBLISHES = 64


def _shared_framing(ws: WebSocket) -> tuple[str, Callable[[Item], bytes]] | None:
    """The key and framing every connection with these settings shares, or None when
    this connection frames for itself.

    Uncompressed: one frame per message for every subscriber. permessage-deflate without
    context takeover on our side (what the raw stack asks for): the compressed frame
    depends only on the message and (window bits, level), so it too is made once per
    message and shared by every subscriber with the same settings (h25: compression).
    With context takeover each connection compresses for itself, in send order, and
    nothing is cached on the item (None).
    """
    deflate = ws.deflate
    if deflate is None:
        return "ws", ws_frame
    shared = deflate.share_key
    if shared is None:
        return None
    bits, level = shared

    def compressed(item: Item) -> bytes:
        return encode_frame(Opcode.TEXT, compress_once(item.data, bits, level), rsv=RSV1)

    return f"ws-deflate-{bits}-{level}", compressed


def _framing(ws: WebSocket) -> Callable[[Item], bytes]:
    """How this connection frames an item: shared and cached on the item when it can be
    (:func:`_shared_framing`), else compressed by the connection itself."""
    shared = _shared_framing(ws)
    if shared is None:
        return lambda item: ws.encode(Opcode.TEXT, item.data)
    key, make = shared
    return lambda item: item.framed(key, make)


class Echo:
    """``/echo``: every data message goes back unchanged, same opcode."""

    def start(self, ws: WebSocket) -> None:
        pass

    def on_message(self, ws: WebSocket, message: Message) -> None:
        ws.send(ws.encode(message.opcode, message.data))

    def stop(self) -> None:
        pass


def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a helper task, unless it is the one running (it is finishing anyway)."""
    if task is not None and task is not asyncio.current_task():
        task.cancel()


class TopicSession:
    """``/ws?topic=``: the topic's items out, one text frame each; text in = publishes.

    Items go out through :func:`push_loop`, framed once per message for every
    raw subscriber (:meth:`Item.framed`); a batch is one transport write. The
    client's text messages are published in order by one task; a refused one
    closes the socket (over ``max_publish_bytes`` → 1009, malformed → 1008), binary → 1003.
    """

    __slots__ = ("_inbox", "_publisher", "_pusher", "_service", "_sub", "_topic")

    def __init__(self, service: PushService, topic: str, sub: Subscription) -> None:
        self._service = service
        self._topic = topic
        self._sub = sub
        self._inbox: deque[str] = deque()
        self._pusher: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None

    def start(self, ws: WebSocket) -> None:
        self._pusher = asyncio.get_running_loop().create_task(self._push(ws))

    async def _push(self, ws: WebSocket) -> None:
        frame = _framing(ws)

        async def send_batch(items: list[Item]) -> int:
            return await ws.send_frames(b"".join([frame(item) for item in items]))

        def try_send(items: list[Item]) -> int | None:
            if len(items) == 1:
                return ws.try_send_frame(frame(items[0]))
            return ws.try_send_frame(b"".join([frame(item) for item in items]))

        def drop() -> None:  # dropped while a write waits: Close now, behind the backlog
            ws.close(CloseCode.TRY_AGAIN_LATER, "slow consumer")

        shared = _shared_framing(ws)
        if shared is not None:  # the hub may write this socket itself (hub.Lane)
            self._sub.lane = ws.lane(*shared, self._service.stats)
        reason = await push_loop(
            self._service, self._sub, send_batch, abort=drop, try_send=try_send
        )
        self._pusher = None
        if reason == "slow-consumer":
            ws.close(CloseCode.TRY_AGAIN_LATER, "slow consumer")
        # "disconnected": the transport is gone, connection_lost cleans up.

    def on_message(self, ws: WebSocket, message: Message) -> None:
        if message.opcode != Opcode.TEXT:
            ws.close(CloseCode.UNSUPPORTED_DATA, "publish with text messages")
            return
        self._inbox.append(message.data.decode())  # the codec checked the UTF-8
        if len(self._inbox) >= MAX_PENDING_PUBLISHES:
            ws.hold_reading(True)
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish(ws))

    async def _publish(self, ws: WebSocket) -> None:
        inbox = self._inbox
        try:
            while inbox:
                try:
                    await self._service.publish_text(self._topic, inbox.popleft())
                except HttpError as exc:
                    code = self._service.publish_close_code(exc.status)
                    ws.close(code, exc.error)
                    return
                except OSError as exc:  # the hub's backend (Redis) failed
                    log.warning("raw stack: publish on /ws failed: %s", exc)
                    ws.close(CloseCode.INTERNAL_ERROR, "publish failed")
                    return
        finally:
            self._publisher = None
            ws.hold_reading(False)

    def stop(self) -> None:
        _cancel(self._pusher)
        _cancel(self._publisher)
        self._inbox.clear()
        self._sub.close()

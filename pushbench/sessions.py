"""The one push loop every long-lived transport runs, whatever the stack.

A WebSocket or SSE handler subscribes, then hands this loop two small
callbacks: how to write a batch of items, and (optionally) how to write a
heartbeat. The loop owns waiting, heartbeats, counting and the slow-consumer
outcome, so stacks differ only in their write calls.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from .hub import Item, Subscription
from .service import PushService

__all__ = ["SendBatch", "push_loop", "push_stream"]

SendBatch = Callable[[list[Item]], Awaitable[int]]  # returns bytes written


async def push_loop(
    service: PushService,
    sub: Subscription,
    send_batch: SendBatch,
    heartbeat: Callable[[], Awaitable[int]] | None = None,
    heartbeat_interval: float | None = None,
    abort: Callable[[], None] | None = None,
) -> str:
    """Deliver until the subscriber is dropped or the peer goes away → why it ended.

    Returns "slow-consumer" when the hub dropped the subscriber (the caller
    closes with 1013 / ends the response), "disconnected" when a write failed.

    ``abort`` (e.g. ``transport.abort``) is called when the hub drops the
    subscriber while a write is still blocked on flow control: a peer that
    stopped reading would otherwise hold that write, and so the connection,
    until it goes away by itself, since the drop is only seen between batches.
    """
    wait = heartbeat_interval if heartbeat is not None else None
    sending = False

    def on_drop() -> None:
        if sending and abort is not None:
            abort()

    if abort is not None:
        sub.on_drop = on_drop
    try:
        while True:
            items = await sub.next_batch(wait)
            if sub.dropped:
                return "slow-consumer"
            sending = True
            if items:
                n = await send_batch(items)
                service.count(len(items), n)
            elif heartbeat is not None:
                service.count(0, await heartbeat())
            sending = False
    except (ConnectionError, OSError):
        return "slow-consumer" if sub.dropped else "disconnected"
    finally:
        sub.on_drop = None
        sub.close()


async def push_stream(
    service: PushService, sub: Subscription, frame: Callable[[list[Item]], bytes]
) -> AsyncGenerator[bytes, None]:
    """:func:`push_loop` for frameworks that pull a response body from an iterator
    (Starlette's StreamingResponse, sse-starlette): one chunk per batch.

    Same outcomes: the stream ends when the hub drops the subscriber (slow
    consumer); a chunk is counted once the consumer asks for the next one, i.e.
    after it was written; the subscription is closed however the stream ends
    (exhausted, closed with ``aclose()``, or cancelled while waiting).
    """
    try:
        while True:
            items = await sub.next_batch()
            if sub.dropped:
                return
            if items:
                chunk = frame(items)
                yield chunk
                service.count(len(items), len(chunk))
    finally:
        sub.close()

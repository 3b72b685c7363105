"""The one push loop every long-lived transport runs, whatever the stack.

A WebSocket or SSE handler subscribes, then hands this loop two small
callbacks: how to write a batch of items, and (optionally) how to write a
heartbeat. The loop owns waiting, heartbeats, counting and the slow-consumer
outcome, so stacks differ only in their write calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .hub import Item, Subscription
from .service import PushService

__all__ = ["SendBatch", "push_loop"]

SendBatch = Callable[[list[Item]], Awaitable[int]]  # returns bytes written


async def push_loop(
    service: PushService,
    sub: Subscription,
    send_batch: SendBatch,
    heartbeat: Callable[[], Awaitable[int]] | None = None,
    heartbeat_interval: float | None = None,
) -> str:
    """Deliver until the subscriber is dropped or the peer goes away → why it ended.

    Returns "slow-consumer" when the hub dropped the subscriber (the caller
    closes with 1013 / ends the response), "disconnected" when a write failed.
    """
    wait = heartbeat_interval if heartbeat is not None else None
    try:
        while True:
            items = await sub.next_batch(wait)
            if sub.dropped:
                return "slow-consumer"
            if items:
                n = await send_batch(items)
                service.count(len(items), n)
            elif heartbeat is not None:
                service.count(0, await heartbeat())
    except (ConnectionError, OSError):
        return "disconnected"
    finally:
        sub.close()

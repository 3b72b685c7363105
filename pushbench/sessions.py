"""The one push loop every long-lived transport runs, whatever the stack.

A WebSocket or SSE handler subscribes, then hands this loop small callbacks:
how to write a batch of items, optionally how to write one item *now* without
waiting (``try_send``), and how to write a heartbeat. The loop owns waiting,
heartbeats, counting and the slow-consumer outcome, so stacks differ only in
their write calls.

The common case costs no task and no timer per message: with ``try_send`` the
loop installs a :attr:`~pushbench.hub.Subscription.sink`, and each publish
writes straight to the connection from the publisher's context while its
transport takes bytes. Only when it does not (flow control paused it, or a
queued batch is still being written) does the item queue, waking this loop,
which writes the queue as one batch once the transport drains — so ordering,
the bounded queue and the slow-consumer drop are what they always were.
Heartbeats come from one timer per connection, re-armed once per interval
(not per message): a tick that finds the connection written to since the last
one just re-arms; one that finds it idle wakes the loop to write the heartbeat.
An idle stream thus gets a heartbeat every interval, a stream that goes quiet
one within two intervals.

A subscription with a :class:`~pushbench.hub.Lane` (the raw stack) is written by the
hub itself while this loop is not writing: the loop marks the lane ``busy`` around
its own batch and heartbeat writes, counts a lane write as "written" for the
heartbeat, and takes the lane away when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable

from .hub import Item, Subscription
from .service import PushService

__all__ = ["SendBatch", "TrySend", "push_loop", "push_stream"]

SendBatch = Callable[[list[Item]], Awaitable[int]]  # returns bytes written
#: Write the items of one publish now (in one write) if the transport takes them → bytes
#: written, or None (not now: queue them). Called in the publisher's context; it must
#: neither wait nor raise, and must write all of the items or none.
TrySend = Callable[[list[Item]], int | None]


async def push_loop(
    service: PushService,
    sub: Subscription,
    send_batch: SendBatch,
    heartbeat: Callable[[], Awaitable[int]] | None = None,
    heartbeat_interval: float | None = None,
    abort: Callable[[], None] | None = None,
    try_send: TrySend | None = None,
) -> str:
    """Deliver until the subscriber is dropped or the peer goes away → why it ended.

    Returns "slow-consumer" when the hub dropped the subscriber (the caller
    closes with 1013 / ends the response), "disconnected" when a write failed.

    ``abort`` (e.g. ``transport.abort``) is called when the hub drops the
    subscriber while a write is still blocked on flow control: a peer that
    stopped reading would otherwise hold that write, and so the connection,
    until it goes away by itself, since the drop is only seen between batches.

    ``try_send``: the direct path (see the module docstring); without it every
    item goes through the queue and this loop.
    """
    stats = service.stats
    loop = asyncio.get_running_loop()
    sending = False  # a batch or a heartbeat is being written by this loop
    written = False  # anything written since the last heartbeat tick
    due = False  # the heartbeat timer found the connection idle
    timer: asyncio.TimerHandle | None = None
    lane = sub.lane

    def on_drop() -> None:
        if sending and abort is not None:
            abort()

    def direct(items: list[Item]) -> bool:
        nonlocal written
        if sending:
            return False  # behind a batch still being written: keep the order
        assert try_send is not None
        n = try_send(items)
        if n is None:
            return False
        stats.messages_delivered += len(items)
        stats.bytes_written += n
        written = True
        return True

    def tick() -> None:
        nonlocal timer, written, due
        if lane is not None and lane.touched:
            lane.touched = False
            written = True
        if written or sending:
            written = False
            assert interval is not None  # the timer runs only with an interval
            timer = loop.call_later(interval, tick)
        else:
            timer = None
            due = True
            sub.wake()

    interval = heartbeat_interval if heartbeat is not None else None
    if interval is not None:
        timer = loop.call_later(interval, tick)
    if abort is not None:
        sub.on_drop = on_drop
    if try_send is not None:
        sub.sink = direct
    try:
        while True:
            items = [] if due else await sub.next_batch()
            if sub.dropped:
                return "slow-consumer"
            if items:
                sending = True
                if lane is not None:
                    lane.busy = True
                n = await send_batch(items)
                sending = False
                if lane is not None:
                    lane.busy = False
                stats.messages_delivered += len(items)
                stats.bytes_written += n
                written = True
                if due:  # the tick found it idle, but this batch made it busy
                    due = False
                    if interval is not None:
                        timer = loop.call_later(interval, tick)
            elif due and heartbeat is not None and interval is not None:
                due = False
                sending = True
                if lane is not None:
                    lane.busy = True
                stats.bytes_written += await heartbeat()
                sending = False
                if lane is not None:
                    lane.busy = False
                written = False
                timer = loop.call_later(interval, tick)
    except (ConnectionError, OSError):
        return "slow-consumer" if sub.dropped else "disconnected"
    finally:
        if timer is not None:
            timer.cancel()
        sub.sink = None
        sub.on_drop = None
        if lane is not None:
            lane.closed = True
        sub.lane = None
        sub.close()


async def push_stream(
    service: PushService,
    sub: Subscription,
    frame: Callable[[list[Item]], bytes],
    prelude: bytes = b"",
) -> AsyncGenerator[bytes, None]:
    """:func:`push_loop` for frameworks that pull a response body from an iterator
    (Starlette's StreamingResponse, sse-starlette): one chunk per batch, after
    ``prelude`` (SSE's ``retry:``; not counted as a delivery) when there is one — the
    framework's iterator itself, not wrapped in another async generator, which cost
    each chunk a second generator resume.

    Same outcomes: the stream ends when the hub drops the subscriber (slow
    consumer); a chunk is counted once the consumer asks for the next one, i.e.
    after it was written; the subscription is closed however the stream ends
    (exhausted, closed with ``aclose()``, or cancelled while waiting).
    """
    try:
        if prelude:
            yield prelude
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

"""The hub: topics, publish, subscribe, bounded history, fan-out, slow consumers.

Every server stack and every transport sits on one :class:`Hub`, so they differ
only in how they put the same bytes on the wire. The hub owns:

- sequence numbers (per topic, monotonic from 1; a backend such as Redis may
  assign them instead so several processes agree);
- encoding: each message is encoded once (:mod:`pushbench.contract`) and the
  same :class:`Item` goes to every subscriber; transports cache their own
  framing of it on the item (:meth:`Item.framed`), again once per message;
- history: the last ``history`` items per topic, for resume (``since``,
  Last-Event-ID) and for polling; a request whose ``since`` is older than the
  history kept is answered from what is left and counted (``history_gaps``,
  ``history_gap_messages``): the history was too small for that subscriber;
- fan-out with a bounded queue per subscriber: a subscriber more than
  ``queue_limit`` items behind is dropped and counted, never allowed to grow
  memory;
- direct delivery: a subscriber whose transport can take bytes right now sets
  :attr:`Subscription.sink`, and the publish writes each item straight to it
  (no task woken, no timer, nothing queued); only when the sink declines (the
  transport is paused, a queued batch is still being written) does the item go
  to the queue, with the same drop rule. Messages published together
  (:meth:`Hub.publish_many`: a ticker catching up) reach each sink as one list,
  so a connection gets them in one write.
- lanes (the raw stack): a subscriber whose plain-TCP socket takes the shared bytes
  of a publish as they are (no per-connection framing) sets :attr:`Subscription.lane`;
  the publish then writes to every such socket whose transport has nothing buffered in
  one compiled call (``pushbench/_fanout.c``), not through each one's sink. A socket
  that does not take it all gets the rest through its transport (which buffers it, in
  order) and is skipped until its buffer is empty again; one that takes nothing falls
  back to the sink or the queue. Without the compiled helper (or with
  ``PUSHBENCH_NO_FANOUT=1``) lanes are ignored and every subscriber takes the sink path.
- held long polls (:meth:`Hub.wait`): not subscribers but a topic's waiters, a future
  and the ``since`` each, woken together by the first publish past their ``since``
  (no subscription, queue or fan-out entry per poll); they count in
  ``stats.subscribers`` while held.

The in-process hub lives here; :mod:`pushbench.hub_redis` feeds the same
fan-out from Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

from .contract import encode_fields, now_ns
from .faults import Faults
from .timers import DeadlineSleeper
from .wire import speedups

__all__ = ["FANOUT_COUNTER", "Counters", "Hub", "HubStats", "Item", "Lane", "Subscription"]

log = logging.getLogger(__name__)


class Item:
    """One published message: its sequence number and its encoded bytes."""

    __slots__ = ("_framed", "_text", "data", "seq", "topic")

    def __init__(self, topic: str, seq: int, data: bytes) -> None:
        self.topic = topic
        self.seq = seq
        self.data = data
        self._framed: dict[str, bytes] = {}
        self._text: str | None = None

    @property
    def text(self) -> str:
        """``data`` as str, decoded once for every subscriber (ASGI text frames need str)."""
        text = self._text
        if text is None:
            text = self._text = self.data.decode()
        return text

    def framed(self, key: str, frame: Callable[[Item], bytes]) -> bytes:
        """This item framed for one transport, computed on first use only."""
        out = self._framed.get(key)
        if out is None:
            out = self._framed[key] = frame(self)
        return out


#: The ``/stats`` counter (the service's ``extra``) of deliveries written by the compiled
#: fan-out: how much of a run took the lanes rather than the sinks.
FANOUT_COUNTER = "fanout_deliveries"


class Counters(Protocol):
    """The server's delivery counters a lane adds to (the service's statistics)."""

    messages_delivered: int
    bytes_written: int
    extra: dict[str, int]


class WriteTransport(Protocol):
    """What a lane needs of its connection's transport."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...


class Lane:
    """A subscriber's plain-TCP socket the hub writes a publish to itself, together with
    every other laned subscriber of the topic, in one compiled call (module docstring).

    ``key``/``frame``: the item's bytes on this connection are ``item.framed(key,
    frame)``, the same for every connection with that key. The connection keeps
    ``closed`` (no byte may follow: a Close was queued, the transport is going away —
    set before its socket is closed, so a reused descriptor is never written) and the
    push loop ``busy`` (it is writing a batch or a heartbeat itself); ``touched``: a
    publish was written through the lane since the push loop last looked (its heartbeat
    timer's "busy" test).
    """

    __slots__ = ("busy", "closed", "counters", "fd", "frame", "key", "touched", "transport")

    def __init__(
        self,
        key: str,
        frame: Callable[[Item], bytes],
        fd: int,
        transport: WriteTransport,
        counters: Counters,
    ) -> None:
        self.key = key
        self.frame = frame
        self.fd = fd
        self.transport = transport
        self.counters = counters
        self.closed = False
        self.busy = False
        self.touched = False


class Subscription:
    """One subscriber's view of a topic: a bounded queue of items not yet taken."""

    __slots__ = ("_event", "_hub", "_items", "dropped", "lane", "on_drop", "sink", "topic")

    def __init__(self, hub: Hub, topic: str, backlog: list[Item]) -> None:
        self._hub = hub
        self.topic = topic
        self._items: list[Item] = backlog
        self._event = asyncio.Event()
        if backlog:
            self._event.set()
        self.dropped = False  # set when this subscriber fell too far behind
        # Called (synchronously, in the publisher's context) right after the hub
        # drops this subscriber for falling behind: lets a transport stuck in a
        # blocked write tear its connection down instead of waiting for the peer.
        self.on_drop: Callable[[], None] | None = None
        # Direct delivery (see the module docstring): called in the publisher's context
        # with the items of one publish (in order; shared, not to be modified) while
        # nothing is queued; True means they are written, False that they must be
        # queued (the transport cannot take them now). It must not raise.
        self.sink: Callable[[list[Item]], bool] | None = None
        # The hub may write to this subscriber's socket itself (:class:`Lane`); set by the
        # raw stack for plain-TCP WebSocket and SSE subscribers, with the sink.
        self.lane: Lane | None = None

    def _push(self, items: list[Item], limit: int) -> bool:
        sink = self.sink
        if sink is not None and not self._items:
            try:
                if sink(items):
                    return True
            except Exception:  # a bug in a sink: never let it stop the publisher's fan-out
                log.exception("hub: a subscriber's sink failed; its items are queued")
        self._items.extend(items)
        self._event.set()
        return len(self._items) <= limit

    def wake(self) -> None:
        """Return a pending :meth:`next_batch` now (with no items, if none are queued):
        e.g. a heartbeat timer handing its turn to the loop that writes."""
        self._event.set()

    async def next_batch(self, timeout: float | None = None) -> list[Item]:
        """Every item queued so far, waiting for at least one (or the timeout → []).

        The timeout is ``asyncio.timeout``, not ``wait_for``: on Python 3.11,
        ``wait_for`` swallows a cancellation that arrives as the event is set
        (a busy topic), so a stopping server's cancel of an SSE stream or a long
        poll was lost and the framework cut the response seconds later instead.
        It also spares a task per wait.
        """
        if not self._items and not self.dropped:
            self._event.clear()
            if timeout is None:
                await self._event.wait()
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await self._event.wait()
                except TimeoutError:
                    return []
        items, self._items = self._items, []
        return items

    def close(self) -> None:
        self._hub._unsubscribe(self)
        self._event.set()


class _DelayLine:
    """The ``delay_ms`` fault: hands each item to ``deliver`` exactly ``delay_ns`` after it
    was put, in order.

    asyncio's own timers wake 0.5–1 ms late (:mod:`pushbench.timers`), which would make a
    5 ms calibration delay read as ≈ 5.5 ms; one task holding on a timerfd until the
    oldest item is due (:meth:`DeadlineSleeper.hold_until`: armed early by the wakes'
    recent lateness, the rest spun, ≤ 0.3 ms a wake) keeps it to µs. The delay is the same
    for every item, so the queue is always in deadline order.
    """

    def __init__(self, delay_ns: int, deliver: Callable[[Item], None]) -> None:
        self.delay_ns = delay_ns
        self._deliver = deliver
        self._queue: deque[tuple[int, Item]] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def put(self, item: Item) -> None:
        self._queue.append((now_ns() + self.delay_ns, item))
        self._ready.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        queue = self._queue
        with DeadlineSleeper() as sleeper:
            while True:
                if not queue:
                    self._ready.clear()
                    await self._ready.wait()
                await sleeper.hold_until(queue[0][0])
                now = now_ns()
                while queue and queue[0][0] <= now:
                    self._deliver(queue.popleft()[1])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None


def _wake(woken: asyncio.Future[None]) -> None:
    """Wake a held :meth:`Hub.wait` (a timeout, or shutdown), unless already woken."""
    if not woken.done():
        woken.set_result(None)


@dataclass
class _Topic:
    history: deque[Item]
    seq: int = 0  # last sequence number delivered
    assigned: int = 0  # last sequence number handed out by publish (≥ seq under a delay fault)
    evicted: int = 0  # sequence number of the newest item pushed out of a full history
    subs: set[Subscription] = field(default_factory=set)
    # held long polls (Hub.wait): the future that wakes each → its ``since``
    waiters: dict[asyncio.Future[None], int] = field(default_factory=dict)


@dataclass
class HubStats:
    published: int = 0
    delivered: int = 0  # items handed to subscriber queues
    slow_consumers_dropped: int = 0
    subscribers: int = 0
    fault_dropped: int = 0  # messages a Faults.drop_every fault discarded
    # Requests (polls, resumes) whose ``since`` was older than the history kept: messages
    # evicted before the subscriber fetched them (history too small for its poll interval).
    history_gaps: int = 0
    history_gap_messages: int = 0  # sequence numbers those requests skipped


class Hub:
    """In-process hub. ``history`` items per topic; ``queue_limit`` per subscriber."""

    backend = "memory"

    def __init__(
        self, *, history: int = 1000, queue_limit: int = 10000, faults: Faults | None = None
    ) -> None:
        self.history = history
        self.queue_limit = queue_limit
        self.faults = faults if faults is not None and faults.any else None
        self._delay: _DelayLine | None = None
        if self.faults is not None and self.faults.delay_ms:
            self._delay = _DelayLine(int(self.faults.delay_ms * 1e6), self._deliver)
        self._topics: dict[str, _Topic] = {}
        self.stats = HubStats()
        self._waits_ended = False  # end_waits was called: long polls no longer wait

    def _topic(self, name: str) -> _Topic:
        t = self._topics.get(name)
        if t is None:
            t = self._topics[name] = _Topic(deque(maxlen=self.history))
        return t

    async def start(self) -> None:
        """Connect to whatever the backend needs (nothing in-process)."""

    async def stop(self) -> None:
        if self._delay is not None:
            await self._delay.stop()
        for t in self._topics.values():
            for sub in list(t.subs):
                sub.dropped = True
                sub.close()

    async def ensure_topic(self, topic: str) -> None:
        """Make local history of ``topic`` complete before ``since``/``subscribe``/``last_seq``.

        Nothing to do in-process; a backend whose history outlives the process
        (Redis) loads it here. Await it before the synchronous calls.
        """

    async def publish(self, topic: str, payload: str, scheduled_ns: int | None = None) -> int:
        """Assign the next sequence number, encode once, fan out → the sequence number.

        ``scheduled_ns``: when the message was due — the ticker's schedule, or the one a
        publishing client sent (``sched``) — kept as the envelope's ``sch``; None: now
        (scheduled = published). A ``delay_ms`` fault holds every message alike, whoever
        published it, after ``pub`` is stamped.
        """
        t = self._topic(topic)
        seq = t.assigned = max(t.assigned, t.seq) + 1
        pub = now_ns()
        sch = pub if scheduled_ns is None else scheduled_ns
        item = Item(topic, seq, encode_fields(topic, seq, sch, pub, payload))
        if self._delay is not None:
            self._delay.put(item)
        else:
            self._deliver(item)
        return seq

    async def publish_many(self, topic: str, payload: str, scheduled: Sequence[int]) -> list[int]:
        """Messages of one payload due at ``scheduled`` (a late ticker's catch-up), each
        numbered, stamped and encoded as :meth:`publish` would, then fanned out together:
        a subscriber's connection takes the lot in one write → their sequence numbers."""
        t = self._topic(topic)
        pub = now_ns()
        items: list[Item] = []
        for due in scheduled:
            seq = t.assigned = max(t.assigned, t.seq) + 1
            items.append(Item(topic, seq, encode_fields(topic, seq, due, pub, payload)))
        if self._delay is not None:
            for item in items:
                self._delay.put(item)
        elif items:
            self._deliver_many(items)
        return [item.seq for item in items]

    def _deliver(self, item: Item) -> None:
        """Append to history and to every subscriber's queue (sequence already assigned)."""
        self._deliver_many([item])

    def _deliver_many(self, items: list[Item]) -> None:
        """:meth:`_deliver` for consecutive items of one topic, fanned out as one list."""
        t = self._topic(items[0].topic)
        history = t.history
        fresh: list[Item] = []
        for item in items:
            if item.seq <= t.seq:
                continue  # a duplicate (e.g. replayed by a backend): never deliver twice
            t.seq = item.seq
            if self.faults is not None and self.faults.drops(item.seq):
                self.stats.fault_dropped += 1
                continue  # deliberately lost, for the loss-accounting self-check
            if len(history) == history.maxlen:
                t.evicted = history[0].seq if history else item.seq  # the append pushes it out
            history.append(item)
            fresh.append(item)
        if not fresh:
            return
        self.stats.published += len(fresh)
        if t.waiters:
            self._wake_waiters(t, fresh[-1].seq)
        if not t.subs:  # nobody to fan out to (short polls read history): done
            return
        limit = self.queue_limit
        slow: list[Subscription] = []
        fanout = speedups.fanout()
        lanes: dict[str, tuple[list[int], list[Subscription]]] = {}
        for sub in t.subs:
            lane = sub.lane
            if (
                lane is not None
                and fanout is not None
                and not lane.closed
                and not lane.busy
                and not sub._items
                and not lane.transport.get_write_buffer_size()
            ):
                group = lanes.get(lane.key)
                if group is None:
                    group = lanes[lane.key] = ([], [])
                group[0].append(lane.fd)
                group[1].append(sub)
                lane.touched = True
            elif not sub._push(fresh, limit):
                slow.append(sub)
        if lanes:
            assert fanout is not None
            for fds, subs in lanes.values():
                self._fan_out(fanout, fds, subs, fresh, limit, slow)
        self.stats.delivered += len(t.subs) * len(fresh)
        for sub in slow:
            sub.dropped = True
            sub.close()
            self.stats.slow_consumers_dropped += 1
            if sub.on_drop is not None:
                sub.on_drop()

    @staticmethod
    def _wake_waiters(t: _Topic, top: int) -> None:
        """Wake the held long polls of ``t`` that ``top`` (the newest seq) is news to.

        Messages up to a poll's ``since`` do not wake it: a client coming from another
        node of a broker hub can be ahead of this one (an empty answer would only send
        it back at once). The answer is read from history when the poll runs, with
        every message published until then; nothing is queued.
        """
        waiters, t.waiters = t.waiters, {}
        for woken, since in waiters.items():
            if since >= top:
                t.waiters[woken] = since  # this node is behind the poll: keep it waiting
            elif not woken.done():
                woken.set_result(None)

    @staticmethod
    def _fan_out(
        fanout: speedups.FanoutFunction,
        fds: list[int],
        subs: list[Subscription],
        items: list[Item],
        limit: int,
        slow: list[Subscription],
    ) -> None:
        """One publish through the lanes of one key: the shared bytes to every socket in
        one compiled call; a socket that took part of them gets the rest through its
        transport (buffered, in order), one that took nothing (or failed) goes the sink
        or queue path, which sees the failure as usual."""
        first = subs[0].lane
        assert first is not None
        key, frame = first.key, first.frame
        if len(items) == 1:
            data = items[0].framed(key, frame)
        else:
            data = b"".join([item.framed(key, frame) for item in items])
        written = len(subs)
        for index, result in fanout(fds, data):
            sub = subs[index]
            lane = sub.lane
            assert lane is not None
            if result > 0:
                lane.transport.write(data[result:])
                continue
            written -= 1
            if not sub._push(items, limit):
                slow.append(sub)
        counters = first.counters
        counters.messages_delivered += written * len(items)
        counters.bytes_written += written * len(data)
        extra = counters.extra
        extra[FANOUT_COUNTER] = extra.get(FANOUT_COUNTER, 0) + written * len(items)

    def since(self, topic: str, since: int) -> list[Item]:
        """Items of ``topic`` with a sequence number above ``since`` still in history."""
        t = self._topics.get(topic)
        if t is None or t.seq <= since:
            return []
        if since < t.evicted:  # messages after ``since`` were evicted before it came
            self.stats.history_gaps += 1
            self.stats.history_gap_messages += t.evicted - since
        # Usually the history after ``since`` is whole: the newest ``seq - since`` items,
        # sliced in C. Kept only when they are exactly since+1 … seq (the ends, the count).
        history = t.history
        want = t.seq - since
        if want <= len(history):
            out = list(islice(reversed(history), want))
            if out[0].seq == t.seq and out[-1].seq == since + 1:
                out.reverse()
                return out
        # Otherwise walk back from the newest: O(items returned), and right even when
        # history has holes (a drop fault, a gap a backend could not fill).
        out = []
        for item in reversed(history):
            if item.seq <= since:
                break
            out.append(item)
        out.reverse()
        return out

    def topic_ready(self, topic: str) -> bool:
        """Whether ``topic`` can be served without awaiting :meth:`ensure_topic` first
        (always in-process; a backend that loads history says so once it has)."""
        return True

    def last_seq(self, topic: str) -> int:
        t = self._topics.get(topic)
        return t.seq if t is not None else 0

    def subscribe(self, topic: str, since: int | None = None) -> Subscription:
        """Live items from now on; with ``since``, first the history after it."""
        t = self._topic(topic)
        backlog = self.since(topic, since) if since is not None else []
        sub = Subscription(self, topic, backlog)
        t.subs.add(sub)
        self.stats.subscribers += 1
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        t = self._topics.get(sub.topic)
        if t is not None and sub in t.subs:
            t.subs.discard(sub)
            self.stats.subscribers -= 1

    async def wait(self, topic: str, since: int, timeout: float) -> list[Item]:
        """Long poll: items after ``since``, waiting up to ``timeout`` s for the first.

        After :meth:`end_waits` it no longer waits: it answers with what is there.
        """
        items = self.since(topic, since)
        if items or self._waits_ended:
            return items
        woken = self.hold(topic, since)
        timer = asyncio.get_running_loop().call_later(timeout, _wake, woken)
        try:
            await woken
        finally:
            timer.cancel()
            self.release(topic, woken)
        return self.since(topic, since)

    def hold(self, topic: str, since: int) -> asyncio.Future[None]:
        """Hold a long poll of ``topic``: a future that the first message published
        past ``since`` sets (or :meth:`end_waits`). Held, it counts in
        ``stats.subscribers``; :meth:`release` it once, when it is answered or gone."""
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._topic(topic).waiters[woken] = since
        self.stats.subscribers += 1
        return woken

    def release(self, topic: str, woken: asyncio.Future[None]) -> None:
        """The held poll ``woken`` of ``topic`` (:meth:`hold`) is answered or gone."""
        self._topic(topic).waiters.pop(woken, None)  # still there after a timeout or shutdown
        self.stats.subscribers -= 1

    def end_waits(self) -> None:
        """Shutdown: every held :meth:`wait` returns now with what is there, and later
        ones do not wait.

        A server that is stopping answers its long polls (possibly with nothing, as a
        timeout would) instead of leaving them to be cancelled by its framework, which
        would cut the response and log the cancellation as an error.
        """
        self._waits_ended = True
        for t in self._topics.values():
            for woken in tuple(t.waiters):
                _wake(woken)

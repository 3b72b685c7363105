"""What every broker-fed hub shares: a topic's order and history live in the broker.

A hub fed by a broker (:mod:`pushbench.hub_redis`, :mod:`pushbench.hub_nats`) lets the
broker number each topic's messages, so every server process behind one load balancer
hands its subscribers the same stream. This base owns what does not depend on the broker:

- **warming**: :meth:`BrokerHub.ensure_topic` loads the broker's history of a topic into
  local history once per process, so the synchronous :meth:`Hub.since` /
  :meth:`Hub.subscribe` can serve ``since=`` — a long-poll or SSE client that reconnects
  to *another* node resumes there, because the history is the broker's;
- **gaps**: a live message whose sequence number jumps is preceded by the missing ones,
  fetched from the broker's history (:meth:`BrokerHub._range`), so subscribers never see
  a gap the broker still holds; one it no longer holds restarts local history there and
  is counted (``unfilled_gaps``);
- **reconciling** after a reconnection: every known topic is caught up to the broker;
- **publishing in batches**: :meth:`BrokerHub.publish_many` (a late ticker's catch-up)
  hands every message to the broker in *one* round trip (:meth:`BrokerHub._send`), which
  numbers them consecutively. Serial round trips capped the publisher at one message per
  event-loop turn: under long polling (a poll answered and re-sent per message per
  subscriber, ~25,000 requests/s at 50 × 500 msg/s) a turn outlasted the 2 ms between
  messages, the ticker fell seconds behind and never caught up, since each message then
  arrived alone and answered every poll alone (10–50 % delivered). A batch reaches every
  node in one read, so held polls answer with all of it, as on the in-process hub.

Every poll and ``since=`` resume is answered from the local history (the mirror the live
feed keeps, :meth:`Hub.since`); the broker is read only to warm a topic, fill a gap or
catch up after a reconnection.

A subclass implements :meth:`_send`, :meth:`start`, :meth:`stop` and :meth:`_range`,
and hands each live message to :meth:`_on_item`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .contract import now_ns
from .hub import Hub, Item

__all__ = ["BrokerHub"]

log = logging.getLogger(__name__)


class BrokerHub(Hub):
    """A :class:`Hub` whose sequence numbers, order and history come from a broker."""

    def __init__(self, *, history: int = 1000, queue_limit: int = 10000) -> None:
        super().__init__(history=history, queue_limit=queue_limit)
        self._warm: set[str] = set()
        self._warming: dict[str, asyncio.Lock] = {}
        self.reconnects = 0  # times the live feed was re-established
        self.unfilled_gaps = 0  # jumps the broker's history could no longer fill
        self.resets = 0  # a topic's broker sequence seen going backwards

    # --- what a broker provides ---------------------------------------------

    async def _send(self, topic: str, bodies: list[bytes]) -> list[int]:
        """Store and publish ``bodies`` (each ``b"<scheduled_ns> <published_ns> " +
        payload``) on ``topic`` in this order, in one round trip to the broker → the
        sequence number it gave each. Nothing is delivered locally: every process,
        the publisher's included, gets them from the live feed."""
        raise NotImplementedError

    async def _range(self, topic: str, after: int, upto: int | None) -> tuple[int, list[Item]]:
        """The broker's current sequence number of ``topic`` and the messages it still
        holds with ``after < seq ≤ upto`` (None: up to the current one), in order."""
        raise NotImplementedError

    def _describe(self) -> str:
        """The broker, for log lines (its URL without secrets)."""
        return self.backend

    # --- shared behaviour ---------------------------------------------------

    async def publish(self, topic: str, payload: str, scheduled_ns: int | None = None) -> int:
        """Hand one message to the broker → its sequence number (``published_ns`` is
        stamped before the round trip, so the broker's time counts as latency)."""
        pub = now_ns()
        sch = pub if scheduled_ns is None else scheduled_ns
        return (await self._send(topic, [b"%d %d " % (sch, pub) + payload.encode()]))[0]

    async def publish_many(self, topic: str, payload: str, scheduled: Sequence[int]) -> list[int]:
        """Messages due at ``scheduled`` (a late ticker's catch-up) in one broker round
        trip, numbered consecutively → their sequence numbers (see the module doc)."""
        if not scheduled:
            return []
        pub = now_ns()
        data = payload.encode()
        return await self._send(topic, [b"%d %d " % (due, pub) + data for due in scheduled])

    async def ensure_topic(self, topic: str) -> None:
        """Load the broker's history of ``topic`` into local history, once per process
        (afterwards the live feed keeps it current). A broker error is logged and local
        history served; the catch-up after a reconnection completes the topic."""
        if topic in self._warm:
            return
        lock = self._warming.setdefault(topic, asyncio.Lock())
        async with lock:
            if topic in self._warm:
                return
            try:
                await self._catch_up(topic)
            except Exception as exc:  # the broker's own errors: logged, served locally
                log.warning("%s hub %s: cannot load %r: %s", self.backend, self._describe(),
                            topic, exc)  # fmt: skip
                return
            self._warm.add(topic)
        self._warming.pop(topic, None)

    def topic_ready(self, topic: str) -> bool:
        return topic in self._warm

    async def wait(self, topic: str, since: int, timeout: float) -> list[Item]:
        """Long poll, after warming the topic from the broker."""
        await self.ensure_topic(topic)
        return await super().wait(topic, since, timeout)

    async def _on_item(self, item: Item) -> None:
        """One live message: fill any gap before it from the broker, then deliver it."""
        t = self._topic(item.topic)  # registered first, so a failed fill is redone later
        if item.seq > t.seq + 1:
            await self._catch_up(item.topic, item.seq - 1)
        self._admit(item)
        self._warm.add(item.topic)

    async def _reconcile(self) -> None:
        """Catch every topic this process knows up to the broker (after a reconnection)."""
        for topic in list(self._topics):
            await self._catch_up(topic)
            self._warm.add(topic)

    async def _catch_up(self, topic: str, upto: int | None = None) -> None:
        """Deliver what the broker holds of ``topic`` after our last seq, up to ``upto``
        (None: the broker's latest); safe beside the live feed (delivery skips sequence
        numbers already delivered). A cold topic only gets history: its live subscribers
        asked for messages from now on."""
        t = self._topic(topic)
        after = t.seq
        if upto is not None and upto <= after:
            return
        cur, items = await self._range(topic, after, upto)
        if upto is None and cur < after:  # the broker lost the topic (restarted empty)
            log.warning("%s hub %s: sequence of %r reset (%d → %d); restarting it",
                        self.backend, self._describe(), topic, t.seq, cur)  # fmt: skip
            self.resets += 1
            t.history.clear()
            t.seq = cur
            return
        admit = self._admit if topic in self._warm else self._remember
        for item in items:
            admit(item)
        if upto is None and cur > t.seq:  # counted further than it keeps history
            t.history.clear()
            t.seq = cur

    def _remember(self, item: Item) -> None:
        """Put ``item`` into local history only, without fan-out (warming a cold topic)."""
        t = self._topic(item.topic)
        if item.seq <= t.seq:
            return
        if item.seq > t.seq + 1:
            t.history.clear()
        t.history.append(item)
        t.seq = item.seq

    def _admit(self, item: Item) -> None:
        """Deliver ``item`` unless already delivered, keeping local history contiguous; a
        jump the broker could not fill restarts local history at ``item`` (counted, and
        a resume from before it counts the loss in ``history_gap_messages``)."""
        t = self._topic(item.topic)
        if item.seq <= t.seq:
            return
        if item.seq > t.seq + 1:
            if t.seq > 0:
                self.unfilled_gaps += 1
                log.warning("%s hub: %r jumped %d → %d, no longer in the broker's history",
                            self.backend, item.topic, t.seq, item.seq)  # fmt: skip
                t.evicted = max(t.evicted, item.seq - 1)
            t.history.clear()
        self._deliver(item)

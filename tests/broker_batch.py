"""One scenario, run on every broker hub (tests/test_hub_redis.py, tests/test_hub_nats.py):
a late ticker's batch published on node A answers a long poll held on node B whole.

Under long polling through a broker, publishing a late ticker's catch-up one broker round
trip at a time let the ticker fall seconds behind (each message then reached the nodes
alone and answered every poll alone: 10–50 % delivered in scaleout). The batch must go
to the broker in one round trip and reach node B as one answer; node B answers that poll
and every later poll or resume in the range from its local mirror, never the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pushbench.contract import decode, now_ns
from pushbench.hub import Item
from pushbench.hub_broker import BrokerHub

__all__ = ["batch_answers_a_poll_on_another_node"]

BATCH = 20


def _count(hub: BrokerHub, name: str) -> list[tuple[Any, ...]]:
    """Record each call of ``hub.<name>`` (an async method), still calling it."""
    calls: list[tuple[Any, ...]] = []
    real: Callable[..., Awaitable[Any]] = getattr(hub, name)

    async def counted(*args: Any) -> Any:
        calls.append(args)
        return await real(*args)

    setattr(hub, name, counted)
    return calls


def _seqs(items: list[Item]) -> list[int]:
    return [item.seq for item in items]


async def batch_answers_a_poll_on_another_node(
    a: BrokerHub, b: BrokerHub, topic: str, *, whole: bool
) -> None:
    """Both hubs started on one broker and namespace; see the module doc. ``whole``: the
    broker hands the batch on at once (a Redis script's PUBLISHes), so one poll answer
    holds all of it; else (JetStream republishes each message as it stores it) the batch
    may take more than one answer, each in order, none empty."""
    first = await a.publish(topic, "first")
    await b.ensure_topic(topic)
    async with asyncio.timeout(5):
        while b.last_seq(topic) < first:  # node B has it (live, or warmed)
            await asyncio.sleep(0.01)
    sends, reads = _count(a, "_send"), _count(b, "_range")
    poll = asyncio.ensure_future(b.wait(topic, first, timeout=5))
    async with asyncio.timeout(5):
        while b.stats.subscribers < 1:  # the poll is held on node B
            await asyncio.sleep(0.01)
    base = now_ns()
    dues = [base + k * 1000 for k in range(BATCH)]
    seqs = await a.publish_many(topic, "batch", dues)
    assert seqs == list(range(first + 1, first + 1 + BATCH))
    assert len(sends) == 1  # one broker round trip for the whole batch
    async with asyncio.timeout(5):
        answer = await poll
        while whole is False and answer and answer[-1].seq < seqs[-1]:
            answer += await b.wait(topic, answer[-1].seq, timeout=5)
    assert _seqs(answer) == seqs  # the whole batch (in one poll answer when ``whole``)
    envs = [decode(item.data) for item in answer]
    assert [(e.seq, e.scheduled_ns, e.payload) for e in envs] == [
        (s, due, "batch") for s, due in zip(seqs, dues, strict=True)
    ]
    assert len({e.published_ns for e in envs}) == 1  # stamped once, before the round trip
    # Every later poll or resume in the range (a client coming from node A): the mirror.
    for since in range(first, seqs[-1] + 1):
        assert _seqs(b.since(topic, since)) == seqs[since - first :]
    assert _seqs(await b.wait(topic, first + 5, timeout=1)) == seqs[5:]
    assert reads == []  # node B never asked the broker for a range
    assert b.stats.history_gaps == 0

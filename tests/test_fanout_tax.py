"""The serving path's structure: what one published message costs per subscriber.

Counted with cProfile (:mod:`fanout_probe`), never timed: encoding happens once
per message, whatever the number of subscribers, and a subscriber whose
transport takes bytes is written to from the publish itself — no task wake-up
(an event-loop handle), no timer, no ``next_batch`` per message per subscriber.
The queued path keeps the old semantics: order, and the slow-consumer drop.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl

import pytest
from fanout_probe import probe_polls, probe_stream

from pushbench import query
from pushbench import service as service_module
from pushbench.contract import decode, now_ns
from pushbench.hub import Hub, Item
from pushbench.schedule import open_loop
from pushbench.service import PushService, ServerConfig
from pushbench.sessions import push_loop

pytestmark = pytest.mark.timeout(60)

SUBSCRIBERS = 10
MESSAGES = 20


@pytest.mark.parametrize(
    ("stack", "transport"),
    [("raw", "ws"), ("raw", "sse"), ("aiohttp_stack", "ws"), ("aiohttp_stack", "sse")],
)
def test_fanout_encodes_once_and_wakes_no_task_per_subscriber(stack: str, transport: str) -> None:
    probe = asyncio.run(probe_stream(stack, transport, subscribers=SUBSCRIBERS, messages=MESSAGES))
    assert probe.delivered == SUBSCRIBERS * MESSAGES
    counts = probe.counts
    # The envelope: one JSON encoding per message, shared by every subscriber (the topic
    # and the payload escaped by json.dumps once, cached: at most twice in all).
    assert counts["json_encode"] == MESSAGES and counts["json_dumps"] <= 2
    # The transport's framing: once per message too (cached on the item).
    framing = counts["ws_frame"] if transport == "ws" else counts["sse_event"]
    assert framing == MESSAGES
    # Nothing per subscriber: no task created or woken, no timer, no queue wait. The
    # probe itself yields once per message (asyncio.sleep(0): one handle each).
    assert counts["create_task"] == 0
    assert counts["call_soon"] <= MESSAGES
    assert counts["call_at"] == 0 and counts["timeout"] == 0 and counts["wait_for"] == 0
    assert counts["next_batch"] == 0 and counts["event_set"] == 0


@pytest.mark.parametrize("kind", ["shortpoll", "longpoll"])
def test_raw_polls_are_answered_without_a_task(kind: str) -> None:
    """The raw stack answers a poll in the callback that read it (short), or from the
    publish (long: a held subscription and its one timeout timer), never via a task."""
    probe = asyncio.run(probe_polls("raw", kind, requests=20))
    counts = probe.counts
    assert counts["create_task"] == 0
    assert counts["next_batch"] == 0 and counts["timeout"] == 0 and counts["wait_for"] == 0
    if kind == "shortpoll":  # no timer either: the keep-alive timer is not re-armed per request
        assert counts["call_at"] == 0


class _Conn:
    """A fake connection: writable or not; records what was written, and how."""

    def __init__(self) -> None:
        self.writable = True
        self.seqs: list[int] = []
        self.direct = 0
        self.batches = 0
        self.drained = asyncio.Event()
        self.drained.set()
        self.aborted = False

    def try_send(self, items: list[Item]) -> int | None:
        if not self.writable:
            return None
        self.seqs.extend(i.seq for i in items)
        self.direct += 1
        return sum(len(i.data) for i in items)

    def abort(self) -> None:
        self.aborted = True
        self.drained.set()

    async def send_batch(self, items: list[Item]) -> int:
        await self.drained.wait()  # flow control: waits while the "transport" is paused
        if self.aborted:
            raise ConnectionError("aborted")
        self.seqs.extend(i.seq for i in items)
        self.batches += 1
        return sum(len(i.data) for i in items)


def test_push_loop_writes_directly_and_queues_in_order_while_paused() -> None:
    async def test() -> None:
        hub = Hub(queue_limit=100)
        service = PushService(hub)
        conn = _Conn()
        sub = hub.subscribe("t")
        loop_task = asyncio.create_task(
            push_loop(service, sub, conn.send_batch, try_send=conn.try_send)
        )
        await asyncio.sleep(0)  # the loop installs its sink
        for _ in range(3):
            await hub.publish("t", "x")
        assert conn.seqs == [1, 2, 3] and conn.direct == 3  # written within publish
        conn.writable = False
        conn.drained.clear()
        for _ in range(3):
            await hub.publish("t", "x")
        await asyncio.sleep(0.01)  # the loop wakes for the queue, waits on the drain
        conn.writable = True  # writable again, but a batch is still pending: queue behind it
        await hub.publish("t", "x")
        assert conn.seqs == [1, 2, 3]
        conn.drained.set()
        while len(conn.seqs) < 7:
            await asyncio.sleep(0.001)
        await hub.publish("t", "x")  # the queue is empty again: direct once more
        assert conn.seqs == [1, 2, 3, 4, 5, 6, 7, 8]
        assert conn.direct == 4 and conn.batches >= 1
        assert service.stats.messages_delivered == 8
        sub.close()
        sub.dropped = True
        sub.wake()
        assert await loop_task == "slow-consumer"

    asyncio.run(asyncio.wait_for(test(), 10))


def test_a_paused_subscriber_past_the_queue_limit_is_dropped_and_counted() -> None:
    async def test() -> None:
        hub = Hub(queue_limit=5)
        service = PushService(hub)
        conn = _Conn()
        conn.writable = False
        conn.drained.clear()
        sub = hub.subscribe("t")
        loop_task = asyncio.create_task(
            push_loop(
                service,
                sub,
                conn.send_batch,
                abort=conn.abort,
                try_send=conn.try_send,
            )
        )
        await asyncio.sleep(0)
        for _ in range(20):
            await hub.publish("t", "x")
            await asyncio.sleep(0)
        assert await loop_task == "slow-consumer"
        assert hub.stats.slow_consumers_dropped == 1
        assert conn.aborted  # the blocked write's connection is torn down
        assert sub.sink is None  # the loop left: publishes no longer call it

    asyncio.run(asyncio.wait_for(test(), 10))


def test_heartbeats_come_from_one_timer_per_connection_not_per_message() -> None:
    async def test() -> None:
        hub = Hub()
        service = PushService(hub, ServerConfig(heartbeat_interval=0.05))
        conn = _Conn()
        beats = 0

        async def heartbeat() -> int:
            nonlocal beats
            beats += 1
            return 3

        sub = hub.subscribe("t")
        loop = asyncio.get_running_loop()
        armed = 0
        call_later = loop.call_later

        def counting_call_later(*args: object) -> asyncio.TimerHandle:
            nonlocal armed
            armed += 1
            return call_later(*args)  # type: ignore[arg-type]

        loop.call_later = counting_call_later  # type: ignore[method-assign]
        try:
            loop_task = asyncio.create_task(
                push_loop(service, sub, conn.send_batch, heartbeat, 0.05, None, conn.try_send)
            )
            await asyncio.sleep(0)
            for _ in range(200):  # many messages within one interval: no timer per message
                await hub.publish("t", "x")
            assert armed == 1 and beats == 0
            while beats < 2:  # idle: the timer writes heartbeats
                await asyncio.sleep(0.01)
            assert service.stats.bytes_written >= 200 + 2 * 3
        finally:
            loop.call_later = call_later  # type: ignore[method-assign]
        sub.dropped = True
        sub.close()
        assert await loop_task == "slow-consumer"

    asyncio.run(asyncio.wait_for(test(), 10))


def test_a_burst_reaches_each_connection_in_one_write() -> None:
    """publish_many (a ticker catching up): every message encoded once, and one
    try_send per subscriber carrying the whole burst, in order."""

    async def test() -> None:
        hub = Hub()
        service = PushService(hub)
        conns = [_Conn() for _ in range(SUBSCRIBERS)]
        subs = [hub.subscribe("t") for _ in conns]
        loops = [
            asyncio.create_task(push_loop(service, sub, c.send_batch, try_send=c.try_send))
            for sub, c in zip(subs, conns, strict=True)
        ]
        await asyncio.sleep(0)
        seqs = await hub.publish_many("t", "x", [10, 20, 30, 40, 50])
        assert seqs == [1, 2, 3, 4, 5]
        assert all(c.seqs == seqs and c.direct == 1 for c in conns)
        assert [i.seq for i in hub.since("t", 0)] == seqs  # history holds each message
        assert [decode(i.data).scheduled_ns for i in hub.since("t", 0)] == [10, 20, 30, 40, 50]
        assert hub.stats.published == 5 and hub.stats.delivered == 5 * SUBSCRIBERS
        for sub in subs:
            sub.dropped = True
            sub.close()
        await asyncio.gather(*loops)

    asyncio.run(asyncio.wait_for(test(), 10))


def test_open_loop_sends_what_is_due_together_when_late() -> None:
    async def test() -> None:
        calls: list[list[int]] = []
        lags: list[int] = []

        async def one(due: int) -> None:
            calls.append([due])

        async def many(dues: list[int]) -> None:
            calls.append(dues)

        interval = 1_000_000  # 1 kHz
        start = now_ns() - 10 * interval  # ten intervals late: 11 messages due at once
        await open_loop(
            one, rate=1000.0, start_ns=start, count=13, on_lag=lags.append, send_many=many
        )
        assert len(calls[0]) >= 11 and calls[0] == [start + i * interval for i in range(11)]
        assert [d for c in calls for d in c] == [start + i * interval for i in range(13)]
        assert len(lags) == 13

    asyncio.run(asyncio.wait_for(test(), 10))


def test_long_polls_answered_by_one_publish_share_one_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The long-poll batch body is built once for every poll the publish answers."""
    built: list[int] = []
    real = service_module.batch

    def counting(items: list[Item], since: int) -> bytes:
        built.append(len(items))
        return real(items, since)

    monkeypatch.setattr(service_module, "batch", counting)

    async def test() -> None:
        service = PushService(Hub())
        params = service.params({"topic": "t", "since": "0", "timeout": "5"})
        polls = [asyncio.create_task(service.poll(params)) for _ in range(SUBSCRIBERS)]
        while service.hub.stats.subscribers < SUBSCRIBERS:
            await asyncio.sleep(0.001)
        await service.hub.publish("t", "x")
        bodies = await asyncio.gather(*polls)
        assert len(set(bodies)) == 1 and b'"last":1' in bodies[0]
        assert built == [1]  # one body for ten answers
        assert service.stats.messages_delivered == SUBSCRIBERS  # each answer still counted
        short = service.params({"topic": "t", "since": "0", "timeout": "0"})
        assert await service.poll(short) == bodies[0] and built == [1]
        await service.hub.publish("t", "y")  # a new message: a new body
        assert b'"last":2' in await service.poll(short) and built == [1, 2]

    asyncio.run(asyncio.wait_for(test(), 10))


def test_a_failing_sink_does_not_stop_the_fan_out(caplog: pytest.LogCaptureFixture) -> None:
    async def test() -> None:
        hub = Hub()
        bad, good = hub.subscribe("t"), hub.subscribe("t")

        def broken(items: list[Item]) -> bool:
            raise RuntimeError("bug")

        got: list[int] = []
        bad.sink = broken
        good.sink = lambda items: got.extend(i.seq for i in items) is None
        assert await hub.publish("t", "x") == 1  # the publisher is unharmed
        assert got == [1]
        assert [i.seq for i in await bad.next_batch(0)] == [1]  # queued instead
        assert "sink failed" in caplog.text

    asyncio.run(asyncio.wait_for(test(), 10))


def test_query_parsing_skips_parse_qsl_when_nothing_needs_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = ["topic=t&since=12&timeout=0", "a&b=&=c&&d=1&d=2", "", "x=1=2&token=ab.cd_e-f"]
    expected = [dict(parse_qsl(q, keep_blank_values=True)) for q in cases]
    calls: list[str] = []

    def spy(query: str, keep_blank_values: bool = False) -> list[tuple[str, str]]:
        calls.append(query)
        return parse_qsl(query, keep_blank_values=keep_blank_values)

    monkeypatch.setattr(query, "parse_qsl", spy)
    assert [query.parse_query(q) for q in cases] == expected
    assert calls == []  # the plain queries were split directly
    assert query.parse_query("topic=a%20b+c") == {"topic": "a b c"}
    assert calls == ["topic=a%20b+c"]  # escapes still decode as everywhere else


@pytest.mark.parametrize(
    "raw",
    ["topic=t&since=12&timeout=0", "a&b=&=c&&d=1&d=2", "", "x=1=2&t=%E2%82%AC+%zz", "k=%2B&k=+"],
)
def test_query_parsing_reads_a_query_as_starlettes_query_params_do(raw: str) -> None:
    """The Starlette stack's /poll and /publish read the query with parse_query: the
    same names and values as ``request.query_params`` (a repeated name: its last value)."""
    from starlette.datastructures import QueryParams

    params = QueryParams(raw.encode("latin-1"))
    assert query.parse_query(raw) == {name: params[name] for name in params}
    assert query.asgi_query({"query_string": raw.encode("latin-1")}) == query.parse_query(raw)

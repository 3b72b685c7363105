"""Unit tests of the stack-independent core: contract, hub, SSE framing, auth, ticker, service."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushbench import sse
from pushbench import ticker as ticker_module
from pushbench.auth import check_token, make_token
from pushbench.contract import (
    MAX_SCHEDULED_AHEAD_NS,
    PUBLISH_FRAME_PREFIX,
    Envelope,
    check_scheduled,
    decode,
    encode,
    now_ns,
    parse_publish_frame,
    publish_frame,
    valid_topic,
)
from pushbench.faults import Faults
from pushbench.hub import Hub, Item
from pushbench.service import HttpError, PushService, ServerConfig, batch
from pushbench.ticker import Ticker

# --- contract -------------------------------------------------------------


@given(
    st.text(alphabet="abcXYZ019_.-", min_size=1, max_size=64),
    st.integers(1, 2**62),
    st.integers(0, 2**63),
    st.text(max_size=200),
)
def test_envelope_round_trip(topic: str, seq: int, t: int, payload: str) -> None:
    env = Envelope(topic, seq, t, t + 1, payload)
    assert decode(encode(env)) == env


@given(
    st.text(min_size=1, max_size=64),
    st.integers(0, 2**63),
    st.integers(-(2**63), 2**63),
    st.text(max_size=200),
)
def test_encode_is_json_dumps_of_the_dict(topic: str, seq: int, t: int, payload: str) -> None:
    """The template writes the very bytes json.dumps would (escapes, non-ASCII, controls)."""
    env = Envelope(topic, seq, t, t + 1, payload)
    fields = {"t": topic, "s": seq, "sch": t, "pub": t + 1, "p": payload}
    assert encode(env) == json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def test_decode_rejects_non_messages() -> None:
    for bad in (b"", b"[]", b'{"t":"a"}', b"not json"):
        with pytest.raises(ValueError):
            decode(bad)


@pytest.mark.parametrize(
    ("topic", "ok"),
    [("a", True), ("news.eu-1_x", True), ("x" * 64, True), ("", False), ("x" * 65, False),
     ("a b", False), ("ä", False), ("a/b", False), ("a\n", False)],
)  # fmt: skip
def test_valid_topic(topic: str, ok: bool) -> None:
    assert valid_topic(topic) is ok


# --- hub --------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    seqs=st.lists(st.integers(1, 60), max_size=40, unique=True).map(sorted),
    since=st.integers(0, 70),
)
def test_since_is_every_item_after_it_whole_or_with_holes(seqs: list[int], since: int) -> None:
    """The C slice (whole history after ``since``) and the walk (holes) agree with a filter,
    for histories with holes anywhere (a drop fault, a gap a backend could not fill)."""
    hub = Hub(history=100)
    topic = hub._topic("t")
    topic.history.extend(Item("t", seq, b"%d" % seq) for seq in seqs)
    topic.seq = seqs[-1] if seqs else 0
    assert [i.seq for i in hub.since("t", since)] == [s for s in seqs if s > since]


def test_hub_sequence_history_and_resume() -> None:
    async def main() -> None:
        hub = Hub(history=5)
        seqs = [await hub.publish("t", f"m{i}") for i in range(8)]
        assert seqs == list(range(1, 9))
        assert [i.seq for i in hub.since("t", 0)] == [4, 5, 6, 7, 8]  # bounded history
        assert [i.seq for i in hub.since("t", 6)] == [7, 8]
        assert hub.since("t", 8) == [] and hub.since("other", 0) == []
        sub = hub.subscribe("t", since=6)
        await hub.publish("t", "m8")
        got = await sub.next_batch()
        assert [i.seq for i in got] == [7, 8, 9]
        assert [decode(i.data).payload for i in got] == ["m6", "m7", "m8"]
        sub.close()
        assert hub.stats.subscribers == 0

    asyncio.run(main())


def test_hub_encodes_once_and_caches_framing() -> None:
    async def main() -> None:
        hub = Hub()
        a, b = hub.subscribe("t"), hub.subscribe("t")
        await hub.publish("t", "x")
        (ia,), (ib,) = await a.next_batch(), await b.next_batch()
        assert ia is ib  # one item, one encoding, shared by every subscriber
        calls: list[int] = []

        def frame(item: object) -> bytes:
            calls.append(1)
            return b"framed"

        assert ia.framed("k", frame) == ib.framed("k", frame) == b"framed"
        assert len(calls) == 1

    asyncio.run(main())


def test_hub_drops_slow_consumer_and_counts_it() -> None:
    async def main() -> None:
        hub = Hub(queue_limit=10)
        slow, fast = hub.subscribe("t"), hub.subscribe("t")
        for i in range(5):
            await hub.publish("t", str(i))
        assert len(await fast.next_batch()) == 5
        for i in range(20):
            await hub.publish("t", str(i))
            if i % 5 == 0:
                await fast.next_batch()
        assert slow.dropped and not fast.dropped
        assert hub.stats.slow_consumers_dropped == 1
        assert hub.stats.subscribers == 1

    asyncio.run(main())


def test_hub_wait_long_poll() -> None:
    async def main() -> None:
        hub = Hub()
        assert await hub.wait("t", 0, 0.05) == []  # timeout, nothing new
        task = asyncio.create_task(hub.wait("t", 0, 5.0))
        await asyncio.sleep(0.01)
        await hub.publish("t", "a")
        assert [i.seq for i in await asyncio.wait_for(task, 2)] == [1]
        assert hub.stats.subscribers == 0

    asyncio.run(main())


def test_hub_wait_wakes_only_its_topic_and_leaves_nothing_held() -> None:
    """Held long polls are a topic's waiters: a publish wakes every poll of its topic at
    once, none of another; a poll that times out is no longer held or counted."""

    async def main() -> None:
        hub = Hub()
        t1, t2 = (asyncio.create_task(hub.wait("t", 0, 5.0)) for _ in range(2))
        other = asyncio.create_task(hub.wait("u", 0, 0.2))
        await asyncio.sleep(0.01)
        assert hub.stats.subscribers == 3
        await hub.publish("t", "a")
        async with asyncio.timeout(2):
            assert [[i.seq for i in await t] for t in (t1, t2)] == [[1], [1]]
        assert not other.done() and hub.stats.subscribers == 1
        async with asyncio.timeout(2):
            assert await other == []
        assert hub.stats.subscribers == 0
        assert not hub._topic("t").waiters and not hub._topic("u").waiters

    asyncio.run(main())


# --- SSE --------------------------------------------------------------------


@settings(max_examples=50)
@given(
    st.lists(st.binary(max_size=50).filter(lambda b: b"\r" not in b), max_size=8),
    st.integers(1, 7),
)
def test_sse_round_trip_any_chunking(datas: list[bytes], step: int) -> None:
    stream = sse.retry(1500) + b"".join(
        sse.event(d, i + 1) + sse.comment(b"hb") for i, d in enumerate(datas)
    )
    parser = sse.EventParser()
    events = []
    for i in range(0, len(stream), step):
        events += parser.feed(stream[i : i + step])
    # An event with empty data and no lines is still dispatched ("data: " + "\n").
    assert [e.data for e in events] == datas
    assert [e.id for e in events] == [str(i + 1) for i in range(len(datas))]
    assert parser.retry_ms == 1500
    assert parser.comments == len(datas)


# --- auth -------------------------------------------------------------------


def test_tokens() -> None:
    secret = b"s3cret"
    tok = make_token(secret, "news", ttl_s=60, now=1000.0)
    assert check_token(secret, "news", tok, now=1000.0) == ""
    assert check_token(secret, "sport", tok, now=1000.0) == "forged"
    assert check_token(b"other", "news", tok, now=1000.0) == "forged"
    assert check_token(secret, "news", tok, now=2000.0) == "expired"
    assert check_token(secret, "news", None) == "missing"
    assert check_token(secret, "news", "12.zz") == "malformed"
    assert check_token(secret, "news", "²." + "0" * 64) == "malformed"


# --- ticker -----------------------------------------------------------------


def test_ticker_stamps_the_schedule_open_loop() -> None:
    async def main() -> None:
        hub = Hub(history=1000)
        sub = hub.subscribe("tick")
        ticker = Ticker(hub, "tick", rate=1000.0, payload_size=10, count=200)
        ticker.start()
        got: list[Envelope] = []
        while len(got) < 200:
            got += [decode(i.data) for i in await asyncio.wait_for(sub.next_batch(), 5)]
        await ticker.stop()
        assert [e.seq for e in got] == list(range(1, 201))
        gaps = {b.scheduled_ns - a.scheduled_ns for a, b in itertools.pairwise(got)}
        assert gaps == {1_000_000}  # exactly the schedule, however late the wake-ups
        assert all(e.published_ns >= e.scheduled_ns for e in got)
        assert all(len(e.payload) == 10 for e in got)
        status = ticker.status()
        assert status["sent"] == 200
        # every publish's lateness is kept: its percentiles lie within [0, max]
        assert 0 <= status["lag_p50_us"] <= status["lag_p99_us"] <= status["lag_max_us"]

    asyncio.run(main())


def test_ticker_lag_ring_keeps_the_most_recent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ticker_module, "LAG_CAPACITY", 4)
    t = Ticker(Hub(), "t", rate=10.0)  # no count: a ring of LAG_CAPACITY
    for lag_ns in (9_000_000, 9_000_000, 1_000, 2_000, 3_000, 4_000):
        t._lag(lag_ns)
    status = t.status()
    assert status["lag_max_us"] == 9000.0  # the max covers every publish
    assert status["lag_p99_us"] <= 4.0  # the percentiles the last four


# --- service ----------------------------------------------------------------

BAD_QUERIES = [
    {},
    {"topic": ""},
    {"topic": "x" * 65},
    {"topic": "a b"},
    {"topic": "t", "since": "-1"},
    {"topic": "t", "since": "abc"},
    {"topic": "t", "since": "9" * 25},
    {"topic": "t", "timeout": "1e9"},
    {"topic": "t", "timeout": "nan"},
    {"topic": "t", "timeout": "-1"},
]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_service_rejects_bad_params(query: dict[str, str]) -> None:
    svc = PushService(Hub())
    with pytest.raises(HttpError) as err:
        svc.params(query)
    assert err.value.status == 400
    assert json.loads(err.value.body())["error"]
    assert svc.stats.bad_requests == 1


def test_service_params_and_last_event_id() -> None:
    svc = PushService(Hub(), ServerConfig(default_poll_timeout=7.0))
    p = svc.params({"topic": "t", "since": "3"})
    assert (p.topic, p.since, p.timeout) == ("t", 3, 7.0)
    assert svc.params({"topic": "t", "since": "3"}, last_event_id="9").since == 9
    assert svc.params({"topic": "t", "lastEventId": "4"}).since == 4


def test_service_auth_and_publish_limits() -> None:
    async def main() -> None:
        svc = PushService(Hub(), ServerConfig(auth_secret=b"k", max_publish_bytes=10))
        for token in (None, "junk", make_token(b"other", "t"), make_token(b"k", "t", -5)):
            query = {"topic": "t"} | ({"token": token} if token else {})
            with pytest.raises(HttpError) as err:
                svc.params(query)
            assert err.value.status == 401
        assert svc.stats.auth_failures == 4
        ok = {"topic": "t", "token": make_token(b"k", "t")}
        assert json.loads(await svc.publish(ok, b"hello")) == {"seq": 1}
        with pytest.raises(HttpError) as err:
            await svc.publish(ok, b"x" * 11)
        assert err.value.status == 413
        with pytest.raises(HttpError) as err:
            await svc.publish(ok, b"\xff\xfe")
        assert err.value.status == 400

    asyncio.run(main())


def test_poll_batch_reuses_encoded_items() -> None:
    async def main() -> None:
        svc = PushService(Hub())
        for i in range(3):
            await svc.hub.publish("t", f"p{i}")
        body = await svc.poll(svc.params({"topic": "t", "since": "1", "timeout": "0"}))
        obj = json.loads(body)
        assert obj["last"] == 3
        assert [m["s"] for m in obj["messages"]] == [2, 3]
        empty = json.loads(batch([], 3))
        assert empty == {"last": 3, "messages": []}
        assert svc.stats.messages_delivered == 2

    asyncio.run(main())


# --- faults (the instrument's self-checks rely on them) ---------------------


def test_fault_drop_every_loses_exactly_those_everywhere() -> None:
    async def main() -> None:
        hub = Hub(history=1000, faults=Faults(drop_every=10))
        sub = hub.subscribe("t")
        for i in range(100):
            assert await hub.publish("t", str(i)) == i + 1  # numbering is unaffected
        live = [i.seq for i in await sub.next_batch()]
        expected = [s for s in range(1, 101) if s % 10]
        assert live == expected
        assert [i.seq for i in hub.since("t", 0)] == expected  # polls lose them too
        assert [i.seq for i in hub.since("t", 55)] == [s for s in expected if s > 55]
        assert hub.stats.fault_dropped == 10

    asyncio.run(main())


def test_fault_delay_holds_every_message() -> None:
    async def main() -> None:
        hub = Hub(faults=Faults(delay_ms=30))
        sub = hub.subscribe("t")
        seqs = [await hub.publish("t", "x") for _ in range(3)]
        assert seqs == [1, 2, 3]  # sequence numbers assigned at publish, not delivery
        assert await sub.next_batch(0.01) == []
        got = await sub.next_batch(1.0)
        got += await sub.next_batch(0.1) if len(got) < 3 else []
        assert [i.seq for i in got] == [1, 2, 3]
        assert all(now_ns() - decode(i.data).published_ns >= 30_000_000 for i in got)

    asyncio.run(main())


def test_fault_parse() -> None:
    assert Faults.parse("delay_ms=5, drop_every=100") == Faults(delay_ms=5.0, drop_every=100)
    assert not Faults.parse("").any
    for bad in ("delay=5", "delay_ms=abc", "drop_every=1.5", "pause_ms=-1"):
        with pytest.raises(ValueError):
            Faults.parse(bad)


# --- a publisher's schedule (chat cells) -------------------------------------


def test_publish_frame_round_trip_and_plain_text() -> None:
    frame = publish_frame('a "quoted" ä\n', 123)
    assert frame.startswith(PUBLISH_FRAME_PREFIX)
    assert parse_publish_frame(frame) == ('a "quoted" ä\n', 123)
    for plain in ("hello", "", '{"p": "x", "sch": 1}', "[1]"):  # not the prefix: a payload
        assert parse_publish_frame(plain) == (plain, None)
    for bad in (
        '{"sch":1',
        '{"sch":1,"p":2}',
        '{"sch":1}',
        '{"sch":1,"p":"x","t":"y"}',
        '{"sch":"1","p":"x"}',
        '{"sch":1.5,"p":"x"}',
        '{"sch":true,"p":"x"}',
    ):
        with pytest.raises(ValueError):
            parse_publish_frame(bad)


def test_check_scheduled_bounds() -> None:
    now = 10**15
    assert check_scheduled("5", now) == 5
    assert check_scheduled(now + MAX_SCHEDULED_AHEAD_NS, now) == now + MAX_SCHEDULED_AHEAD_NS
    for bad in ("abc", "-1", "1.5", "²", "9" * 20, -1, 1.5, True, None, now + 2 * 10**9):
        with pytest.raises(ValueError):
            check_scheduled(bad, now)


def test_service_keeps_a_publishers_schedule() -> None:
    """POST /publish's ``sched`` and a WebSocket ``{"sch":N,"p":…}`` publish become the
    envelope's ``sch``; without one a publish is scheduled on arrival; bad values are
    refused with 400 and counted."""

    async def main() -> None:
        svc = PushService(Hub())
        due = now_ns() - 5_000_000
        await svc.publish({"topic": "t", "sched": str(due)}, b"posted")
        await svc.publish({"topic": "t"}, b"plain")
        await svc.publish_text("t", publish_frame("framed", due + 1))
        await svc.publish_text("t", "text")
        envs = [decode(i.data) for i in svc.hub.since("t", 0)]
        assert [e.payload for e in envs] == ["posted", "plain", "framed", "text"]
        assert (envs[0].scheduled_ns, envs[2].scheduled_ns) == (due, due + 1)
        assert envs[0].published_ns > due
        assert all(e.scheduled_ns == e.published_ns for e in (envs[1], envs[3]))
        future = str(now_ns() + 2 * MAX_SCHEDULED_AHEAD_NS)
        for sched in ("x", "-5", future):
            with pytest.raises(HttpError) as err:
                await svc.publish({"topic": "t", "sched": sched}, b"x")
            assert err.value.status == 400 and "sched" in json.loads(err.value.body())["error"]
        for text in ('{"sch":"1","p":"x"}', '{"sch":' + future + ',"p":"x"}', '{"sch":1,"p":'):
            with pytest.raises(HttpError) as err:
                await svc.publish_text("t", text)
            assert err.value.status == 400
        assert svc.stats.bad_requests == 6
        assert svc.hub.last_seq("t") == 4  # nothing refused was published

    asyncio.run(main())


def test_fault_delay_holds_client_publishes_and_keeps_their_schedule() -> None:
    async def main() -> None:
        svc = PushService(Hub(faults=Faults(delay_ms=30)))
        sub = svc.hub.subscribe("t")
        due = now_ns()
        await svc.publish({"topic": "t", "sched": str(due)}, b"a")
        await svc.publish_text("t", publish_frame("b", due))
        assert await sub.next_batch(0.01) == []
        got = await sub.next_batch(1.0)
        got += await sub.next_batch(0.1) if len(got) < 2 else []
        envs = [decode(i.data) for i in got]
        assert [e.scheduled_ns for e in envs] == [due, due]
        assert all(now_ns() - e.published_ns >= 30_000_000 for e in envs)

    asyncio.run(main())


def test_fault_pause_counts_from_the_first_client_publish() -> None:
    """Chat cells have no ticker: the self-check pause is armed by the first publish a
    client sends (once), so a chat cell can be checked like a ticker cell."""

    async def stalled(seconds: float) -> float:
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        return time.monotonic() - t0

    async def main() -> None:
        svc = PushService(Hub(faults=Faults(pause_ms=150, pause_at_s=0.02)))
        assert await stalled(0.1) < 0.14  # nothing armed before a publish
        await svc.publish_text("t", publish_frame("x", now_ns()))
        assert await stalled(0.1) >= 0.15  # the loop was blocked 150 ms
        await svc.publish({"topic": "t"}, b"y")
        assert await stalled(0.1) < 0.14  # once only

    asyncio.run(main())


def test_fault_delay_is_exact_not_asyncio_timer_late() -> None:
    """The calibration delay is what it says: asyncio's timers would hold each message
    0.5–1 ms longer (whole-millisecond epoll timeouts), reading a 5 ms delay as 5.5."""
    late_us: list[float] = []

    class Timed(Hub):
        def _deliver(self, item: Item) -> None:
            late_us.append((now_ns() - decode(item.data).published_ns) / 1e3 - 5000)
            super()._deliver(item)

    async def main() -> None:
        hub = Timed(faults=Faults(delay_ms=5))
        for _ in range(40):
            await hub.publish("t", "x")
            await asyncio.sleep(0.0023)  # publishes land anywhere in the timers' millisecond
        await asyncio.sleep(0.02)
        await hub.stop()

    asyncio.run(main())
    assert len(late_us) == 40 and min(late_us) >= 0
    assert sorted(late_us)[20] < 250, sorted(late_us)  # median: tens of µs

"""RedisHub against a real redis-server: several hubs (processes) deliver one stream.

The ``redis_url`` fixture starts ``redis-server`` on a free loopback port for this
module and always terminates it. Without redis-server the tests skip, unless the
environment variable CI is set: then they fail, so CI cannot pass vacuously.
Each test uses its own key prefix, so tests sharing the server do not mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from broker_batch import batch_answers_a_poll_on_another_node

from pushbench.contract import Envelope, decode, encode, now_ns
from pushbench.hub import Item, Subscription
from pushbench.hub_redis import RedisHub, RedisHubError, pack_message

REDIS_SERVER = "/usr/bin/redis-server"
PUBLISHER = Path(__file__).with_name("redis_publisher.py")
ROOT = Path(__file__).resolve().parent.parent
TOPIC = "ticks"


# --- fixtures ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh redis-server on a free loopback port → its URL; terminated afterwards."""
    binary = shutil.which("redis-server") or (
        REDIS_SERVER if os.path.exists(REDIS_SERVER) else None
    )
    if binary is None:
        why = "redis-server is not installed (make system-deps, or apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    logfile = workdir / "redis.log"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir)]  # nothing is saved, but never into the cwd
    with open(logfile, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited ({proc.returncode}): {logfile.read_text()}")
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer PING: {logfile.read_text()}")
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test alone; glob characters prove they are escaped."""
    return f"pbtest:{uuid.uuid4().hex[:8]}*?[x]:"


# --- helpers ----------------------------------------------------------------


def run(coro: Coroutine[Any, Any, None], timeout: float = 15.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await coro

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def started(*hubs: RedisHub) -> AsyncIterator[None]:
    """Start the hubs; stop every one that started, whatever happens."""
    async with contextlib.AsyncExitStack() as stack:
        for hub in hubs:
            await hub.start()
            stack.push_async_callback(hub.stop)
        yield


async def collect(sub: Subscription, n: int, timeout: float = 10.0) -> list[Item]:
    """The next ``n`` items of ``sub`` (fails on timeout or if it was dropped)."""
    items: list[Item] = []
    async with asyncio.timeout(timeout):
        while len(items) < n:
            items.extend(await sub.next_batch())
            assert not sub.dropped
    return items


async def settle(sub: Subscription) -> list[Item]:
    """Whatever else arrives shortly (to prove nothing extra does)."""
    return await sub.next_batch(timeout=0.2)


def seqs(items: list[Item]) -> list[int]:
    return [i.seq for i in items]


# --- tests ------------------------------------------------------------------


def test_other_hub_receives_identical_bytes_and_seqs(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        b = RedisHub(url=redis_url, prefix=prefix)
        # Unescaped, our pattern "pbtest:…*?[x]:ch:*" would match this hub's channels.
        other = RedisHub(url=redis_url, prefix=prefix.replace("*?[x]", "AB", 1))
        async with started(a, b, other):
            sub_a, sub_b = a.subscribe(TOPIC), b.subscribe(TOPIC)
            sub_other = other.subscribe(TOPIC)
            payloads = ["hello", "", "with spaces  and  more", "héllo wörld 😀", "x" * 5000]
            before = now_ns()
            for i, p in enumerate(payloads):
                assert await a.publish(TOPIC, p, scheduled_ns=before + i) == i + 1
            got_a = await collect(sub_a, len(payloads))
            got_b = await collect(sub_b, len(payloads))
            assert seqs(got_a) == seqs(got_b) == [1, 2, 3, 4, 5]
            assert [i.data for i in got_a] == [i.data for i in got_b]
            for i, (item, p) in enumerate(zip(got_b, payloads, strict=True)):
                env = decode(item.data)
                assert (env.topic, env.seq, env.payload) == (TOPIC, i + 1, p)
                assert env.scheduled_ns == before + i
                assert before <= env.published_ns <= now_ns()
                assert item.data == encode(env)
            assert await settle(sub_b) == []
            assert await settle(sub_other) == []
            assert a.last_seq(TOPIC) == b.last_seq(TOPIC) == 5
            assert a.backend == "redis"

    run(scenario())


def test_concurrent_publishers_one_order_everywhere(redis_url: str, prefix: str) -> None:
    n = 200  # per hub

    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        b = RedisHub(url=redis_url, prefix=prefix)
        async with started(a, b):
            sub_a, sub_b = a.subscribe(TOPIC), b.subscribe(TOPIC)
            jobs = [a.publish(TOPIC, f"a{i}") for i in range(n)]
            jobs += [b.publish(TOPIC, f"b{i}") for i in range(n)]
            returned = await asyncio.gather(*jobs)
            assert sorted(returned) == list(range(1, 2 * n + 1))
            got_a = await collect(sub_a, 2 * n)
            got_b = await collect(sub_b, 2 * n)
            assert seqs(got_a) == seqs(got_b) == list(range(1, 2 * n + 1))
            assert [i.data for i in got_a] == [i.data for i in got_b]
            # Each message carries the sequence number its publish() returned.
            by_seq = {decode(i.data).seq: decode(i.data).payload for i in got_a}
            expected = [f"a{i}" for i in range(n)] + [f"b{i}" for i in range(n)]
            assert {s: p for s, p in zip(returned, expected, strict=True)} == by_seq
            assert await settle(sub_a) == []

    run(scenario())


def test_late_hub_resumes_from_redis_history(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        async with started(a):
            sub_a = a.subscribe(TOPIC)
            for i in range(30):
                await a.publish(TOPIC, f"m{i}")
            live = await collect(sub_a, 30)
            late = RedisHub(url=redis_url, prefix=prefix)
            poller = RedisHub(url=redis_url, prefix=prefix)
            async with started(late, poller):
                await late.ensure_topic(TOPIC)
                assert late.last_seq(TOPIC) == 30
                sub = late.subscribe(TOPIC, since=10)
                backlog = await collect(sub, 20)
                assert seqs(backlog) == list(range(11, 31))
                assert [i.data for i in backlog] == [i.data for i in live[10:]]
                # Live messages follow the backlog without gap or duplicate.
                await a.publish(TOPIC, "m30")
                assert seqs(await collect(sub, 1)) == [31]
                assert await settle(sub) == []
                # wait() (long poll) warms the topic by itself.
                polled = await poller.wait(TOPIC, 25, timeout=2)
                assert seqs(polled) == [26, 27, 28, 29, 30, 31]

    run(scenario())


def test_redis_history_is_bounded_and_late_hub_sees_its_tail(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix, history=10)
        async with started(a):
            for i in range(25):
                await a.publish(TOPIC, f"m{i}")
            r = aioredis.Redis.from_url(redis_url)
            assert await r.llen(a.history_key(TOPIC)) == 10
            await r.aclose()
            late = RedisHub(url=redis_url, prefix=prefix, history=10)
            async with started(late):
                await late.ensure_topic(TOPIC)
                assert seqs(late.since(TOPIC, 0)) == list(range(16, 26))
                assert late.last_seq(TOPIC) == 25

    run(scenario())


def test_first_live_message_warms_history_but_not_live_subscribers(
    redis_url: str, prefix: str
) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        async with started(a):
            for i in range(20):
                await a.publish(TOPIC, f"m{i}")
            late = RedisHub(url=redis_url, prefix=prefix)
            async with started(late):
                sub = late.subscribe(TOPIC)  # cold: no ensure_topic
                await a.publish(TOPIC, "m20")
                assert seqs(await collect(sub, 1)) == [21]  # live only, no stale backlog
                assert await settle(sub) == []
                assert seqs(late.since(TOPIC, 15)) == [16, 17, 18, 19, 20, 21]
                assert late.unfilled_gaps == 0

    run(scenario())


def test_seq_jump_is_filled_from_redis_history(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        b = RedisHub(url=redis_url, prefix=prefix)
        async with started(a, b):
            sub_b = b.subscribe(TOPIC)
            for i in range(3):
                await a.publish(TOPIC, f"m{i}")
            assert seqs(await collect(sub_b, 3)) == [1, 2, 3]
            # Messages 4 and 5 reach Redis's counter and history but not the
            # channel: what a listener misses while it reconnects.
            r = aioredis.Redis.from_url(redis_url)
            for seq in (4, 5):
                assert await r.incr(a.seq_key(TOPIC)) == seq
                await r.rpush(a.history_key(TOPIC), pack_message(seq, 7, 8, f"missed {seq}"))
            await r.aclose()
            assert await a.publish(TOPIC, "m5") == 6
            got = await collect(sub_b, 3)
            assert seqs(got) == [4, 5, 6]
            assert got[0].data == encode(Envelope(TOPIC, 4, 7, 8, "missed 4"))
            assert await settle(sub_b) == []
            assert b.unfilled_gaps == 0
            assert seqs(b.since(TOPIC, 0)) == [1, 2, 3, 4, 5, 6]

    run(scenario())


def test_gap_redis_no_longer_holds_restarts_local_history(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        b = RedisHub(url=redis_url, prefix=prefix)
        async with started(a, b):
            sub_b = b.subscribe(TOPIC)
            for i in range(3):
                await a.publish(TOPIC, f"m{i}")
            await collect(sub_b, 3)
            r = aioredis.Redis.from_url(redis_url)
            await r.set(a.seq_key(TOPIC), 20)  # 4..20 happened and were trimmed away
            await r.delete(a.history_key(TOPIC))
            await r.aclose()
            assert await a.publish(TOPIC, "m20") == 21
            assert seqs(await collect(sub_b, 1)) == [21]
            assert b.unfilled_gaps == 1
            # Local history stays contiguous, so since() stays exact.
            assert seqs(b.since(TOPIC, 0)) == [21]
            assert seqs(b.since(TOPIC, 5)) == [21]
            # …and a poll from before the jump is told what it missed: /stats's count of
            # messages evicted before they were fetched (4..20 from 0, 6..20 from 5).
            assert (b.stats.history_gaps, b.stats.history_gap_messages) == (2, 20 + 15)

    run(scenario())


def test_listener_reconnects_and_catches_up(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        b = RedisHub(url=redis_url, prefix=prefix)
        async with started(a, b):
            await b.ensure_topic(TOPIC)
            sub_b = b.subscribe(TOPIC)
            for i in range(3):
                await a.publish(TOPIC, f"m{i}")
            await collect(sub_b, 3)
            r = aioredis.Redis.from_url(redis_url)
            await r.client_kill_filter(_type="pubsub")  # both listeners
            await r.aclose()
            # Published while the listeners are down, and nothing after them:
            # only the catch-up after resubscribing can deliver these.
            for i in range(3, 6):
                await a.publish(TOPIC, f"m{i}")
            got = await collect(sub_b, 3)
            assert seqs(got) == [4, 5, 6]
            assert b.reconnects >= 1
            # The resubscribed listener delivers live messages again.
            await a.publish(TOPIC, "m6")
            assert seqs(await collect(sub_b, 1)) == [7]
            assert await settle(sub_b) == []

    run(scenario())


def test_redis_flushed_under_running_hub_restarts_sequence(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        b = RedisHub(url=redis_url, prefix=prefix)
        async with started(a, b):
            await b.ensure_topic(TOPIC)
            sub_b = b.subscribe(TOPIC)
            for i in range(3):
                await a.publish(TOPIC, f"m{i}")
            await collect(sub_b, 3)
            r = aioredis.Redis.from_url(redis_url)
            await r.flushall()
            await r.client_kill_filter(_type="pubsub")  # as a restart would
            await r.aclose()
            async with asyncio.timeout(5):
                while b.resets == 0:
                    await asyncio.sleep(0.02)
            assert await a.publish(TOPIC, "again") == 1
            got = await collect(sub_b, 1)
            assert seqs(got) == [1]
            assert decode(got[0].data).payload == "again"

    run(scenario())


def test_unreachable_redis_names_the_url(prefix: str) -> None:
    port = _free_port()  # nothing listens there
    url = f"redis://:hunter2@127.0.0.1:{port}/0"

    async def scenario() -> None:
        hub = RedisHub(url=url, prefix=prefix, connect_timeout=2.0)
        with pytest.raises(RuntimeError, match="not started"):
            await hub.publish(TOPIC, "x")
        t0 = time.monotonic()
        with pytest.raises(RedisHubError) as err:
            await hub.start()
        assert time.monotonic() - t0 < 3
        message = str(err.value)
        assert f"127.0.0.1:{port}" in message
        assert "hunter2" not in message  # the password is redacted
        assert isinstance(err.value, ConnectionError)
        await hub.stop()  # harmless after a failed start

    run(scenario())


def test_second_process_publishes_test_process_receives(redis_url: str, prefix: str) -> None:
    n = 300

    async def scenario() -> None:
        hub = RedisHub(url=redis_url, prefix=prefix)
        async with started(hub):
            await hub.ensure_topic(TOPIC)
            sub = hub.subscribe(TOPIC)
            before = now_ns()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(PUBLISHER),
                redis_url,
                prefix,
                TOPIC,
                str(n),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            try:
                got = await collect(sub, n, timeout=12)
                out, err = await proc.communicate()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            assert proc.returncode == 0, err.decode()
            assert json.loads(out) == list(range(1, n + 1))
            assert seqs(got) == list(range(1, n + 1))
            envs = [decode(i.data) for i in got]
            assert [e.payload for e in envs] == [f"msg {i}" for i in range(n)]
            # The other process's CLOCK_MONOTONIC stamps compare with ours (one host).
            assert all(before <= e.published_ns <= now_ns() for e in envs)
            assert await settle(sub) == []

    run(scenario())


def test_late_ticker_batch_is_one_round_trip_and_one_poll_answer_on_another_node(
    redis_url: str, prefix: str
) -> None:
    async def scenario() -> None:
        a = RedisHub(url=redis_url, prefix=prefix)
        b = RedisHub(url=redis_url, prefix=prefix)
        async with started(a, b):
            await batch_answers_a_poll_on_another_node(a, b, TOPIC, whole=True)

    run(scenario())

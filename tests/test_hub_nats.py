"""NatsHub against a real nats-server: several hubs (processes) deliver one stream with
the broker's sequence numbers, and history serves ``since=`` on any of them.

The ``nats_url`` fixture starts ``nats-server -js`` on a free loopback port for this
module and always terminates it (by pid). Without nats-server the tests skip, unless the
environment variable CI is set: then they fail, so CI cannot pass vacuously. Each test
uses its own prefix, so tests sharing the server do not mix.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_batch import batch_answers_a_poll_on_another_node

from pushbench.contract import decode
from pushbench.hub_nats import NatsHub, NatsHubError
from pushbench.runner.nats import nats_argv, nats_server

TOPIC = "ticks.a"  # a dot: topics are hex-encoded in subjects


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh nats-server with JetStream on a free loopback port → its URL."""
    binary = nats_server()
    if binary is None:
        why = "nats-server is not installed (make system-deps, or apt-get install nats-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)
    workdir = tmp_path_factory.mktemp("nats")
    port = _free_port()
    log = workdir / "nats.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            nats_argv(binary, "127.0.0.1", port, workdir / "js"), stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nats-server exited ({proc.returncode}): {log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nats-server not listening after 10 s: {log.read_text()}")
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _hub(url: str, prefix: str, history: int = 1000) -> NatsHub:
    return NatsHub(url=url, prefix=prefix, history=history, connect_timeout=3.0)


def _prefix() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def test_two_hubs_one_stream_and_history(nats_url: str) -> None:
    """Publish on hub A: both A's and B's subscribers get seq 1..n in order (the
    broker's numbers), and a third hub started later serves since= from the stream."""

    async def main() -> None:
        prefix = _prefix()
        a, b = _hub(nats_url, prefix), _hub(nats_url, prefix)
        await a.start()
        await b.start()
        try:
            for hub in (a, b):
                await hub.ensure_topic(TOPIC)
            sub_a, sub_b = a.subscribe(TOPIC), b.subscribe(TOPIC)
            seqs = [await a.publish(TOPIC, f"m{k}") for k in range(5)]
            assert seqs == [1, 2, 3, 4, 5]
            for sub in (sub_a, sub_b):
                got: list[int] = []
                async with asyncio.timeout(5):
                    while len(got) < 5:
                        got += [item.seq for item in await sub.next_batch()]
                assert got == [1, 2, 3, 4, 5]
            env = decode(b.since(TOPIC, 4)[0].data)
            assert (env.seq, env.payload) == (5, "m4")
            c = _hub(nats_url, prefix)  # a node that saw none of it live: resume there
            await c.start()
            try:
                await c.ensure_topic(TOPIC)
                assert [i.seq for i in c.since(TOPIC, 2)] == [3, 4, 5]
                assert c.last_seq(TOPIC) == 5
                assert c.topic_ready(TOPIC)
            finally:
                await c.stop()
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_history_bound_and_long_poll(nats_url: str) -> None:
    """The stream keeps ``history`` messages: a since= older than that is answered from
    what is left and counted as a gap; a held long poll on hub B is woken by hub A."""

    async def main() -> None:
        prefix = _prefix()
        a, b = _hub(nats_url, prefix, history=3), _hub(nats_url, prefix, history=3)
        await a.start()
        await b.start()
        try:
            for k in range(6):
                await a.publish(TOPIC, f"m{k}")
            await b.ensure_topic(TOPIC)
            async with asyncio.timeout(5):  # warmed by a live message, #6 may be on its way
                while b.last_seq(TOPIC) < 6:
                    await asyncio.sleep(0.01)
            assert [i.seq for i in b.since(TOPIC, 0)] == [4, 5, 6]
            assert b.stats.history_gap_messages == 3
            poll = asyncio.ensure_future(b.wait(TOPIC, 6, timeout=5))
            await asyncio.sleep(0.1)
            await a.publish(TOPIC, "late")
            async with asyncio.timeout(5):
                items = await poll
            assert [i.seq for i in items] == [7]
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())


def test_unreachable_names_the_url(tmp_path: Path) -> None:
    """No NATS at the URL: start() fails with NatsHubError naming it, no hang."""
    url = f"nats://127.0.0.1:{_free_port()}"

    async def main() -> None:
        with pytest.raises(NatsHubError, match=url):
            await NatsHub(url=url, prefix=_prefix(), connect_timeout=1.0).start()

    asyncio.run(main())


def test_prefix_must_be_a_subject_token() -> None:
    with pytest.raises(ValueError, match="prefix"):
        NatsHub(prefix="a.b")


def test_late_ticker_batch_is_one_round_trip_and_one_poll_answer_on_another_node(
    nats_url: str,
) -> None:
    async def main() -> None:
        prefix = _prefix()
        a, b = _hub(nats_url, prefix), _hub(nats_url, prefix)
        await a.start()
        await b.start()
        try:
            events: list[str] = []  # the batch's writes and acks, in the order they happen
            js = a._jetstream()
            send_async = js.publish_async

            async def traced(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
                ack = await send_async(*args, **kwargs)
                events.append("sent")
                ack.add_done_callback(lambda _: events.append("ack"))
                return ack

            js.publish_async = traced  # type: ignore[method-assign]
            await batch_answers_a_poll_on_another_node(a, b, TOPIC, whole=False)
            n = len(events) // 2
            assert n > 1 and events == ["sent"] * n + ["ack"] * n  # pipelined: one round trip
        finally:
            await a.stop()
            await b.stop()

    asyncio.run(main())

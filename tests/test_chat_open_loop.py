"""Chat cells are open loop: publishers carry their schedule, and never wait on each other.

- A publish carries the time it was *scheduled* (``sched=`` on POST /publish, a
  ``{"sch":N,"p":…}`` WebSocket text message) and every stack keeps it as the
  envelope's ``sch``; a bad value is refused with the contract's JSON 400, a publish
  without one is scheduled on arrival as before.
- Every publishing client sends exactly its schedule: message k carries start + k/rate.
- An HTTP publisher facing a server that stalls 200 ms keeps issuing its POSTs on time
  while earlier ones are unanswered, up to ``PUBLISH_IN_FLIGHT``; beyond that each due
  publish is counted as an overrun and sent when a slot frees, with its own scheduled time.

Everything binds 127.0.0.1 port 0 and stops what it started.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import numpy as np
import pytest
from conftest import StartServer

from pushbench import registry
from pushbench.clients.common import PUBLISH_IN_FLIGHT, Client, ConnStats
from pushbench.clients.publisher import LightPublisher
from pushbench.clients.recorder import Recorder
from pushbench.clients.worker import client_run
from pushbench.contract import MAX_SCHEDULED_AHEAD_NS, decode, now_ns, publish_frame
from pushbench.hub import Hub
from pushbench.schema.cells import EXTRA_COLUMNS
from pushbench.schema.worker import WorkerSpec
from pushbench.servers.aiohttp_stack import run as run_aiohttp
from pushbench.servers.base import StackOptions
from pushbench.service import PushService, ServerConfig

pytestmark = pytest.mark.timeout(60)

TOPIC = "chat"
STACKS = tuple(s.name for s in registry.stacks() if s.module is not None)


def arun(coro: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner() as runner:
        runner.run(coro)


async def eventually(check: Any, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# --- the contract, on every stack -----------------------------------------------------------


async def _history(http: aiohttp.ClientSession, base: str) -> list[Any]:
    async with http.get(f"{base}/poll", params={"topic": TOPIC, "since": "0", "timeout": "0"}) as r:
        assert r.status == 200, await r.text()
        body = await r.read()
    return [decode(json.dumps(m)) for m in json.loads(body)["messages"]]


async def _stack_keeps_the_schedule(base: str) -> None:
    ws_url = base.replace("http://", "ws://") + f"/ws?topic={TOPIC}"
    async with aiohttp.ClientSession() as http:
        due = now_ns() - 7_000_000  # due 7 ms ago: the publisher ran late
        async with http.post(
            f"{base}/publish", params={"topic": TOPIC, "sched": str(due)}, data=b"posted"
        ) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{base}/publish", params={"topic": TOPIC}, data=b"plain") as r:
            assert r.status == 200  # an old publish, without a schedule: still fine
        async with http.ws_connect(ws_url) as ws:
            await ws.send_str(publish_frame("framed", due + 1))
            await ws.send_str("raw text, no schedule")
            for _ in range(250):  # until the server has read both
                if len(await _history(http, base)) == 4:
                    break
                await asyncio.sleep(0.02)
        got = await _history(http, base)
        assert [e.payload for e in got] == ["posted", "plain", "framed", "raw text, no schedule"]
        assert got[0].scheduled_ns == due and got[0].published_ns > due
        assert got[2].scheduled_ns == due + 1 and got[2].published_ns > due
        for plain in (got[1], got[3]):
            assert plain.scheduled_ns == plain.published_ns  # scheduled on arrival

        future = now_ns() + MAX_SCHEDULED_AHEAD_NS + 5 * 10**9
        for bad in ("abc", "1.5e18", "-1", str(future), "9" * 25):
            params = {"topic": TOPIC, "sched": bad}
            async with http.post(f"{base}/publish", params=params, data=b"x") as r:
                assert r.status == 400, (bad, r.status)
                assert "sched" in json.loads(await r.read())["error"]
        async with http.ws_connect(ws_url) as ws:
            await ws.send_str('{"sch": "soon", "p": "x"}')
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1008  # policy violation, the same on every stack
        assert len(await _history(http, base)) == 4  # nothing refused was published


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_keeps_a_publishers_schedule(server_factory: StartServer, stack: str) -> None:
    """POST /publish?sched= and the WebSocket ``{"sch":N,"p":…}`` publish keep N as the
    envelope's ``sch`` (the publish time stays the server's); publishes without it still
    work (scheduled on arrival); a bad or future sched is a 400 JSON refusal (on a
    WebSocket a close) and publishes nothing."""
    server = server_factory(stack=stack)
    arun(_stack_keeps_the_schedule(server.url("")))


# --- the clients ------------------------------------------------------------------------------


@asynccontextmanager
async def aiohttp_server(hub: Hub) -> AsyncIterator[str]:
    service = PushService(hub, ServerConfig(sse_retry_ms=100))
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_aiohttp(service, "127.0.0.1", 0, ready.set_result, stop, StackOptions())
    )
    try:
        await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{ready.result()}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10.0)


def _spec(transport: str, base_url: str, rate: float, connections: int = 1) -> WorkerSpec:
    return WorkerSpec.from_dict(
        {
            "transport": transport,
            "base_url": base_url,
            "topic": TOPIC,
            "connections": connections,
            "poll_interval_s": 0.01,
            "capacity": 10_000,
            "publish": {"rate": rate, "payload_size": 20},
        }
    )


@pytest.mark.parametrize("transport", ["ws", "ws-aiohttp", "sse", "longpoll", "shortpoll"])
def test_a_publishing_client_sends_its_schedule_end_to_end(transport: str) -> None:
    """Every message a client publishes carries its scheduled time into the envelope: the
    hub's ``sch`` values are exactly start + k/rate, k = 0, 1, 2 … with none missing, each
    before the server's own publish stamp, and that is what the subscribers record."""
    rate = 200.0
    interval = int(1e9 / rate)

    async def main() -> None:
        hub = Hub()
        async with aiohttp_server(hub) as base:
            spec = _spec(transport, base, rate)
            recorder = Recorder(spec.capacity)
            stats = ConnStats(0)
            stop = asyncio.Event()
            task = asyncio.ensure_future(client_run(transport)(0, spec, recorder, stats, stop))
            await eventually(lambda: stats.published >= 40 and stats.messages >= 30, "publishes")
            stop.set()
            await asyncio.wait_for(task, 10)
            envs = [decode(item.data) for item in hub.since(TOPIC, 0)]
        assert stats.publish_errors == 0, stats.last_error
        sch = np.array([e.scheduled_ns for e in envs])
        ks = (sch - sch.min()) / interval
        assert np.array_equal(np.sort(ks), np.arange(len(ks))), ks  # the schedule, all of it
        assert all(e.published_ns >= e.scheduled_ns for e in envs)
        assert any(e.published_ns != e.scheduled_ns for e in envs)
        by_seq = {e.seq: e.scheduled_ns for e in envs}
        arrays = recorder.arrays()
        assert len(arrays["seq"]) >= 30
        for seq, recorded in zip(arrays["seq"].tolist(), arrays["sched_ns"].tolist(), strict=True):
            assert by_seq[seq] == recorded

    arun(main())


# --- an HTTP publisher against a stalling server --------------------------------------------


@dataclass
class StallingServer:
    """POST /publish answered ``{"seq":N}``, but every answer held until ``stall_s`` after
    the first request arrived: a server that stops answering for a while."""

    stall_s: float
    arrivals: list[tuple[int, int]] = field(default_factory=list)  # (arrival ns, sched ns)
    connections: int = 0
    _stall_end: float | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = now_ns()
                lines = head.decode().split("\r\n")
                target = lines[0].split()[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                sched = int(parse_qs(urlsplit(target).query).get("sched", ["-1"])[0])
                self.arrivals.append((arrived, sched))
                if self._stall_end is None:
                    self._stall_end = time.monotonic() + self.stall_s
                wait = self._stall_end - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                body = b'{"seq":%d}' % len(self.arrivals)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class PublishOnly(Client):
    """A client that only publishes over POST /publish: through aiohttp (the aiohttp
    clients' publish path) or, ``light``, the light HTTP clients' (:mod:`.publisher`)."""

    light = False

    async def session(self) -> None:
        self.stats.established(0)
        if not self.light:
            async with self.publishing(self.publish_http):
                await asyncio.Event().wait()
        url = urlsplit(self.spec.base_url)
        host, port = url.hostname or "", url.port or 80
        pub = LightPublisher(self.spec, self.stats, host, port, url.netloc, None, b"x")
        try:
            async with self.publishing(pub.publish):
                await asyncio.Event().wait()
        finally:
            pub.close()


class LightPublishOnly(PublishOnly):
    light = True


@pytest.mark.parametrize("client", [PublishOnly, LightPublishOnly], ids=["aiohttp", "light"])
def test_http_publisher_keeps_its_schedule_while_the_server_stalls(
    client: type[PublishOnly],
) -> None:
    """At 100 msg/s against a server that answers nothing for 200 ms: the first
    ``PUBLISH_IN_FLIGHT`` POSTs leave on schedule although none is answered (a closed
    loop would send the second only after 200 ms); the next ones find the bound full and
    are counted as overruns, then sent as slots free, each with its own scheduled time;
    nothing is skipped, and the schedule never slips."""
    rate = 100.0
    interval = int(1e9 / rate)
    run_s = 0.6

    async def main() -> None:
        fake = StallingServer(stall_s=0.2)
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        spec = _spec("sse", f"http://127.0.0.1:{port}", rate)
        stats = ConnStats(0)
        stop = asyncio.Event()
        task = asyncio.ensure_future(client.serve(0, spec, Recorder(10), stats, stop))
        await asyncio.sleep(run_s)
        stop.set()
        await asyncio.wait_for(task, 10)
        server.close()
        await server.wait_closed()

        arrivals = fake.arrivals
        scheds = np.array([s for _, s in arrivals])
        start = int(scheds.min())
        # On time while the earlier ones were unanswered: the first PUBLISH_IN_FLIGHT left
        # within a few ms of their schedule (generous: this machine is shared), long before
        # the 200 ms stall answered the first.
        first = sorted(arrivals, key=lambda a: a[1])[:PUBLISH_IN_FLIGHT]
        assert [s for _, s in first] == [start + k * interval for k in range(PUBLISH_IN_FLIGHT)]
        late_ms = [(a - s) / 1e6 for a, s in first]
        assert max(late_ms) < 60, late_ms
        assert fake.connections == PUBLISH_IN_FLIGHT  # a pool of keep-alive connections
        # The bound was hit: publishes due during the stall are overruns, sent afterwards
        # with their own scheduled times (late, never restamped, never skipped).
        assert stats.publish_overruns >= 8, stats  # due at 80 … 200 ms: about 12
        ks = (scheds - start) / interval
        assert np.array_equal(np.sort(ks), np.arange(len(ks)))
        assert len(ks) >= 0.8 * run_s * rate  # caught up: the rate was kept
        held = [(a - s) / 1e6 for a, s in arrivals if (s - start) / 1e6 > 100]
        assert held and max(held) > 50  # due during the stall, sent when a slot freed
        assert stats.published + stats.publish_errors <= len(arrivals)
        assert stats.published >= len(arrivals) - PUBLISH_IN_FLIGHT

    arun(main())
    # the cells.csv column documents the same bound
    assert f"had {PUBLISH_IN_FLIGHT} in flight" in EXTRA_COLUMNS["publish_overruns"].description


def test_the_publishers_of_a_worker_share_the_schedule_evenly() -> None:
    """Two publishing connections of one worker at 100 msg/s each publish on one grid at
    opposite phases: together an even 200 msg/s (a message every 5 ms), as the ticker would,
    not two streams that collide because they connected at the same moment."""
    rate = 100.0
    interval = int(1e9 / rate)

    async def main() -> None:
        hub = Hub()
        async with aiohttp_server(hub) as base:
            spec = _spec("ws", base, rate, connections=2)
            recorder = Recorder(spec.capacity)
            stats = [ConnStats(i) for i in range(2)]
            stop = asyncio.Event()
            run = client_run("ws")
            tasks = [
                asyncio.ensure_future(run(i, spec, recorder, s, stop)) for i, s in enumerate(stats)
            ]
            await eventually(lambda: all(s.published >= 20 for s in stats), "publishes")
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            sch = np.array(sorted(decode(i.data).scheduled_ns for i in hub.since(TOPIC, 0)))
        assert len(sch) >= 40
        assert set((sch % interval).tolist()) == {0, interval // 2}  # both phases of one grid
        first, second = sch[sch % interval == 0], sch[sch % interval != 0]
        both = sch[(sch >= max(first[0], second[0])) & (sch <= min(first[-1], second[-1]))]
        assert len(both) >= 30
        assert set(np.diff(both).tolist()) == {interval // 2}  # evenly spaced, none missing

    arun(main())

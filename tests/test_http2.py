"""HTTP/2 (issue 18 item 3): the light h2 clients against the Hypercorn stack, in-process.

Several subscribers of one worker must share ONE TCP connection (h2c with prior
knowledge), each as its own stream, and record exactly what a server-side ticker
published — on SSE (one long stream each) and on long polling (a stream per poll).
The connection's bytes are the kernel's, counted once (by the client that opened it).
The Chromium six-connection figure is tests/test_http2_browser.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from pushbench import registry
from pushbench.clients import h2_light
from pushbench.clients.common import ConnStats
from pushbench.clients.recorder import Recorder
from pushbench.clients.worker import client_run
from pushbench.contract import decode
from pushbench.hub import Hub
from pushbench.scenario import ScenarioError, loads
from pushbench.schema.worker import WorkerSpec
from pushbench.servers.base import StackOptions
from pushbench.servers.hypercorn_stack import run as run_hypercorn
from pushbench.service import PushService, ServerConfig

pytestmark = pytest.mark.timeout(30)

STEP = 5.0
TOPIC = "t"
COUNT = 100
RATE = 500
STREAMS = 6


@asynccontextmanager
async def hypercorn() -> AsyncIterator[tuple[Hub, str]]:
    """The Hypercorn stack on a free loopback port until the block ends (always stopped)."""
    hub = Hub()
    service = PushService(hub, ServerConfig(sse_retry_ms=100))
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_hypercorn(service, "127.0.0.1", 0, ready.set_result, stop, StackOptions())
    )
    try:
        await asyncio.wait({ready, task}, timeout=STEP, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        yield hub, f"http://127.0.0.1:{ready.result()}"
    finally:
        if service.ticker is not None:
            await service.ticker.stop()
        stop.set()
        await asyncio.wait_for(task, 10.0)


async def _ticker(base_url: str) -> None:
    url = f"{base_url}/control/ticker?topic={TOPIC}&rate={RATE}&count={COUNT}&size=100"
    async with aiohttp.ClientSession() as http, http.post(url) as resp:
        assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("transport", ["sse-h2", "longpoll-h2"])
def test_many_streams_on_one_connection_deliver_everything(transport: str) -> None:
    async def main() -> None:
        async with hypercorn() as (hub, base_url):
            spec = WorkerSpec.from_dict(
                {"transport": transport, "base_url": base_url, "topic": TOPIC,
                 "connections": STREAMS, "capacity": 10 * COUNT, "poll_timeout_s": 5.0}
            )  # fmt: skip
            recorder = Recorder(spec.capacity)
            stats = [ConnStats(i) for i in range(STREAMS)]
            stop = asyncio.Event()
            run = client_run(transport)
            tasks = [
                asyncio.ensure_future(run(i, spec, recorder, s, stop)) for i, s in enumerate(stats)
            ]
            try:
                await asyncio.wait_for(asyncio.gather(*(s.settled.wait() for s in stats)), STEP)
                assert all(s.connected for s in stats), [s.last_error for s in stats]
                await _ticker(base_url)
                async with asyncio.timeout(STEP):
                    while not all(s.messages >= COUNT for s in stats):
                        await asyncio.sleep(0.02)
                pool = h2_light.pool(base_url)
                assert pool.opened == 1  # every stream on ONE TCP connection
                assert len({id(c) for c in pool.conns}) == 1
            finally:
                stop.set()
                await asyncio.wait(tasks, timeout=STEP)
            for task in tasks:
                task.result()
            arrays = recorder.arrays()
            published = {decode(i.data).seq for i in hub.since(TOPIC, 0)}
            assert published == set(range(1, COUNT + 1))
            for conn, s in enumerate(stats):
                seqs = sorted(arrays["seq"][arrays["conn"] == conn].tolist())
                assert seqs == list(range(1, COUNT + 1)), f"stream {conn}"
                assert (s.connects, s.errors) == (1, 0), s.last_error
            # The connection's bytes, from the kernel, counted once: by its opener.
            assert sum(s.sockets_metered for s in stats) == 1
            owner = next(s for s in stats if s.sockets_metered)
            assert owner.bytes_source == "tcp_info" and owner.bytes_in > STREAMS * COUNT * 100
            assert all(s.bytes_source == "elsewhere" for s in stats if s is not owner)

    asyncio.run(main())


def test_h2_transports_need_an_http2_stack() -> None:
    ok = loads('stacks = "starlette-hypercorn"\ntransports = ["sse-h2", "sse"]')
    assert {c.transport for c in ok.cells()} == {"sse-h2", "sse"}
    with pytest.raises(ScenarioError, match="speaks HTTP/2"):
        loads('stacks = "starlette"\ntransports = "sse-h2"').cells()
    assert registry.transport("longpoll-h2").protocol == "longpoll"
    assert not registry.stack("starlette").http2

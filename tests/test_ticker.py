"""The server's ticker: it stops when asked, even over a hub client that swallows a
cancellation; it measures its own CPU apart from the hub's publish, and /stats reports it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from pushbench.hub import Hub
from pushbench.service import PushService
from pushbench.ticker import Ticker


class SwallowingHub:
    """A hub whose publish absorbs a cancellation once, as redis-py's ``wait_for``-wrapped
    commands can on Python 3.11 when the cancel lands as the command completes."""

    def __init__(self) -> None:
        self.published = 0
        self.swallowed = 0

    async def publish(self, topic: str, payload: Any, sched_ns: int | None = None) -> int:
        try:
            await asyncio.sleep(0.02)  # longer than the 5 ms interval: always mid-publish
        except asyncio.CancelledError:
            self.swallowed += 1  # and carry on as if the command had completed
        self.published += 1
        return self.published

    async def publish_many(self, topic: str, payload: Any, dues: list[int]) -> list[int]:
        """What a late ticker calls (Hub.publish_many): like one slow publish each."""
        return [await self.publish(topic, payload, due) for due in dues]


@pytest.mark.timeout(20)  # the old ticker hung here for good
def test_stop_ends_a_ticker_whose_hub_swallowed_the_cancel() -> None:
    async def main() -> tuple[int, int, bool]:
        hub = SwallowingHub()
        ticker = Ticker(hub, "t", rate=200.0)  # type: ignore[arg-type]
        ticker.start()
        await asyncio.sleep(0.1)
        await asyncio.wait_for(ticker.stop(), 2.0)  # hung forever before the stop flag
        sent = ticker.sent
        await asyncio.sleep(0.05)
        return hub.swallowed, ticker.sent - sent, ticker.running

    swallowed, after, running = asyncio.run(main())
    assert swallowed == 1 and after == 0 and not running


class BurningHub:
    """A hub whose publish spends ``burn_ns`` of CPU (its fan-out, say), counted apart."""

    def __init__(self, burn_ns: int) -> None:
        self.burn_ns = burn_ns
        self.burned_ns = 0
        self.published = 0

    async def publish(self, topic: str, payload: Any, sched_ns: int | None = None) -> int:
        start = time.thread_time_ns()
        while time.thread_time_ns() - start < self.burn_ns:
            pass
        self.burned_ns += time.thread_time_ns() - start
        self.published += 1
        return self.published

    async def publish_many(self, topic: str, payload: Any, dues: list[int]) -> list[int]:
        """What a late ticker calls (Hub.publish_many; it falls behind at 2 ms a message
        on a busy machine): the same burn per message."""
        return [await self.publish(topic, payload, due) for due in dues]


async def _finished(ticker: Ticker) -> None:
    deadline = time.monotonic() + 10
    while ticker.running and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not ticker.running


def test_the_tickers_own_cpu_leaves_the_hubs_publish_out() -> None:
    async def main() -> tuple[BurningHub, dict[str, Any]]:
        hub = BurningHub(2_000_000)
        ticker = Ticker(hub, "t", rate=500.0, count=20)  # type: ignore[arg-type]
        ticker.start()
        await _finished(ticker)
        return hub, ticker.status()

    hub, status = asyncio.run(main())
    assert status["sent"] == 20
    own_ns = status["own_cpu_us"] * 1000
    assert own_ns > 0  # the pacing loop's own work is measured…
    assert own_ns < hub.burned_ns / 4  # …and the 40 ms the hub burned is not in it
    assert status["own_cpu_us_per_msg"] == pytest.approx(status["own_cpu_us"] / 20)


def test_stats_report_the_tickers_cost_within_the_servers() -> None:
    async def main() -> dict[str, Any]:
        service = PushService(Hub())
        sub = service.hub.subscribe("t")
        await service.control_ticker(
            "POST", {"topic": "t", "rate": "1000", "count": "200"}, authorization=None
        )
        assert service.ticker is not None
        await _finished(service.ticker)
        sub.close()
        stats: dict[str, Any] = json.loads(service.stats_body())
        return stats

    stats = asyncio.run(main())
    ticker = stats["ticker"]
    assert ticker["sent"] == 200
    assert 0 < ticker["own_cpu_us"] / 1e6 < stats["cpu_user_s"] + stats["cpu_sys_s"]
    assert ticker["own_cpu_us_per_msg"] == pytest.approx(ticker["own_cpu_us"] / 200)

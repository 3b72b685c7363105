"""The server's ticker stops when asked, even over a hub client that swallows a cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

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

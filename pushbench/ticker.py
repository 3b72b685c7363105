"""Server-originated load: publish at a fixed rate, open loop, stamped with the schedule.

Message *i* is scheduled at ``start + i / rate``. The ticker never lets a late
wake-up delay the schedule: when it wakes it publishes every message whose time
has come, each stamped with its own scheduled time, so a pause in the server
shows up as latency (measured from the schedule) rather than vanishing from the
data — the coordinated-omission trap. How late each publish ran (its wake-up
behind the schedule) goes into a histogram, reported as ``lag_p50_us``,
``lag_p99_us`` and ``lag_max_us``, so the pacing error is visible.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from .contract import now_ns
from .schedule import open_loop

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["Ticker"]


class Ticker:
    def __init__(
        self,
        hub: Hub,
        topic: str,
        *,
        rate: float,
        payload_size: int = 100,
        count: int | None = None,
        duration_s: float | None = None,
        start_delay_s: float = 0.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.hub = hub
        self.topic = topic
        self.rate = rate
        self.payload = "x" * payload_size
        if count is None:
            count = int(rate * duration_s) if duration_s is not None else None
        self.count = count
        self.start_delay_s = start_delay_s
        self.sent = 0
        self.lag_max_ns = 0
        self.lag_sum_ns = 0
        self.lag_us = HdrHistogram(1, 60_000_000, 3)  # wake-up lateness, µs
        self.start_ns = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        self.start_ns = now_ns() + int(self.start_delay_s * 1e9)
        await open_loop(
            self._send, rate=self.rate, start_ns=self.start_ns, count=self.count, on_lag=self._lag
        )

    def _lag(self, lag_ns: int) -> None:
        self.lag_sum_ns += lag_ns
        self.lag_us.record_value(min(max(lag_ns // 1000, 1), 60_000_000))
        if lag_ns > self.lag_max_ns:
            self.lag_max_ns = lag_ns

    async def _send(self, due_ns: int) -> None:
        await self.hub.publish(self.topic, self.payload, due_ns)
        self.sent += 1

    def status(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "rate": self.rate,
            "payload_size": len(self.payload),
            "count": self.count,
            "sent": self.sent,
            "running": self.running,
            "start_ns": self.start_ns,
            "lag_max_us": self.lag_max_ns / 1000,
            "lag_p50_us": self.lag_us.get_value_at_percentile(50) if self.sent else 0,
            "lag_p99_us": self.lag_us.get_value_at_percentile(99) if self.sent else 0,
            "lag_mean_us": (self.lag_sum_ns / self.sent / 1000) if self.sent else 0.0,
        }

"""Server-originated load: publish at a fixed rate, open loop, stamped with the schedule.

Message *i* is scheduled at ``start + i / rate``. The ticker never lets a late
wake-up delay the schedule: when it wakes it publishes every message whose time
has come, each stamped with its own scheduled time, so a pause in the server
shows up as latency (measured from the schedule) rather than vanishing from the
data — the coordinated-omission trap. asyncio timers wake on millisecond-ish
boundaries; how late each publish ran is kept (``lag_max_us``) so it is visible.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from .contract import now_ns

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
        interval_ns = int(1e9 / self.rate)
        self.start_ns = start = now_ns() + int(self.start_delay_s * 1e9)
        i = 0
        publish = self.hub.publish
        while self.count is None or i < self.count:
            due = start + i * interval_ns
            now = now_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                continue
            lag = now - due
            self.lag_sum_ns += lag
            if lag > self.lag_max_ns:
                self.lag_max_ns = lag
            await publish(self.topic, self.payload, due)
            i += 1
            self.sent = i

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
            "lag_mean_us": (self.lag_sum_ns / self.sent / 1000) if self.sent else 0.0,
        }

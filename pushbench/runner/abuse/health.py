"""``GET /health`` and the server's RSS, sampled while a probe runs: is the server still
answering under the attack, how fast, and how much memory does the attack make it hold?"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from pushbench.procs import sample
from pushbench.schema.abuse import Health

from .probes import Target, http_status

__all__ = ["Sampler"]


@dataclass
class Sampler:
    """Samples every ``interval_s`` until :meth:`stop`: one /health request on a fresh
    connection (its latency, or an error past ``timeout_s`` or on a non-200) and the
    server's RSS (the peak is "RSS under attack")."""

    target: Target
    interval_s: float
    timeout_s: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    peak_rss: int | None = None
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> Health:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return Health.of(self.latencies, self.errors)

    async def _loop(self) -> None:
        while True:
            s = sample(self.target.pid)
            if s is not None:
                self.peak_rss = max(self.peak_rss or 0, s.rss_bytes)
            await self._health()
            await asyncio.sleep(self.interval_s)

    async def _health(self) -> None:
        t = self.target
        start = time.perf_counter()
        writer = None
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_connection(t.host, t.port)
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
            if http_status(head) == 200:
                self.latencies.append(time.perf_counter() - start)
            else:
                self.errors += 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            self.errors += 1
        finally:
            if writer is not None:
                writer.close()

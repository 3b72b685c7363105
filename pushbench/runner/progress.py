"""The live progress line of a run on stderr, read from the workers' status files.

Nothing here asks the server anything during the measured window: the
display must not add load to what it shows. Each worker rewrites a small
status file every second (messages so far, p99 of the last second).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

__all__ = ["Progress"]


class Progress:
    """One live line on stderr: run i/n, cell, elapsed, delivered msgs/s and the p99 of the
    last second, both from the workers' status files (nothing asks the server during the
    window: the display must not add load to what it shows)."""

    def __init__(self, enabled: bool, total: int, started: float) -> None:
        self.enabled = enabled
        self.total = total
        self.started = started
        self.index = 0
        self.cell_id = ""
        self.rate: float | None = None
        self.p99_us: float | None = None
        self.status_files: list[Path] = []
        self._last: tuple[int, int] | None = None  # (t_ns, messages) of the last reading
        self._next_poll = 0.0

    def cell(self, index: int, cell_id: str) -> None:
        self.index, self.cell_id = index, cell_id
        self.rate = self.p99_us = self._last = None
        self.status_files = []
        self._show()

    def watch(self, status_files: list[Path]) -> None:
        self.status_files = status_files

    def poll(self) -> None:
        if not self.enabled or time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + 1.0
        readings = []
        for path in self.status_files:
            with contextlib.suppress(OSError, ValueError):
                readings.append(json.loads(path.read_text()))
        if not readings:
            return
        now = max(int(r["t_ns"]) for r in readings)
        messages = sum(int(r["messages"]) for r in readings)
        if self._last is not None and now > self._last[0]:
            self.rate = (messages - self._last[1]) / ((now - self._last[0]) / 1e9)
        self._last = (now, messages)
        p99s = [float(r["p99_us"]) for r in readings if r.get("p99_us") is not None]
        self.p99_us = max(p99s) if p99s else None
        self._show()

    def _show(self) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        rate = "" if self.rate is None else f"  {self.rate:,.0f} msgs/s delivered"
        p99 = "" if self.p99_us is None else f"  p99 {self.p99_us:,.0f} µs (last s)"
        line = (
            f"run {self.index + 1}/{self.total} {self.cell_id}  {elapsed:.0f} s elapsed{rate}{p99}"
        )
        sys.stderr.write("\r\x1b[K" + line[:200])
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()

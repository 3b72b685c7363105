"""A run's progress on stderr, read from the workers' status files, with an ETA.

Two forms, chosen by the command from where stderr goes:

- ``live`` (a terminal): one line rewritten in place, like k6's and Locust's;
- ``lines`` (CI, ``| tee``, ``> log``): a plain line when each cell × repeat starts and
  every :data:`PLAIN_EVERY_S` seconds during it, so a log shows where a long run is.

Both say run i/n, the cell, its round (the runner measures in shuffled rounds:
``round 2/3``, ``probe round 4``), the elapsed time, the ETA and (once the workers report)
the delivered msgs/s and the p99 of the last second. The ETA is the scenario's own
estimate (:meth:`pushbench.scenario.Cell.run_seconds` per run, plus the most the
saturation probes may add, as ``pushbench.scenario.estimate_seconds`` counts) minus
what is done, scaled by the pace measured so far.

Nothing here asks the server anything during the measured window: the display must
not add load to what it shows. Each worker rewrites a small status file every second
(messages so far, p99 of the last second).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TextIO

__all__ = ["PLAIN_EVERY_S", "Progress", "ProgressMode", "format_duration", "progress_mode"]

#: ``live``: one line redrawn on a terminal; ``lines``: plain lines for logs; ``off``.
ProgressMode = Literal["live", "lines", "off"]
PLAIN_EVERY_S = 10.0  # seconds between two plain lines inside one cell


def progress_mode(value: ProgressMode | bool) -> ProgressMode:
    """``True`` is the live line (the historical meaning of ``progress=True``), ``False`` off."""
    if value is True:
        return "live"
    if value is False:
        return "off"
    return value


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a progress line."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    minutes, secs = divmod(s, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """The progress of one run: run i/n, cell, elapsed, ETA, delivered msgs/s and the p99
    of the last second, both from the workers' status files.

    ``estimates`` holds the estimated seconds of each planned run in order; ``extra_s``
    what may come after them (saturation probes). Without estimates there is no ETA.
    """

    def __init__(
        self,
        mode: ProgressMode | bool,
        total: int,
        started: float,
        *,
        estimates: Sequence[float] = (),
        extra_s: float = 0.0,
        stream: TextIO | None = None,
        every_s: float = PLAIN_EVERY_S,
    ) -> None:
        self.mode = progress_mode(mode)
        self.enabled = self.mode != "off"
        self.total = total
        self.started = started
        self.estimates = list(estimates)
        self.budget_s = sum(self.estimates) + extra_s
        self.every_s = every_s
        self.stream = stream
        self.index = 0
        self.cell_id = ""
        self.round_label = ""
        self.rate: float | None = None
        self.p99_us: float | None = None
        self.status_files: list[Path] = []
        self._last: tuple[int, int] | None = None  # (t_ns, messages) of the last reading
        self._next_poll = 0.0
        self._next_line = 0.0
        self._cell_started = started
        self._cell_est = 0.0
        self._done_est = 0.0  # estimated seconds of the runs finished
        self._done_wall = 0.0  # and the wall time they took

    def cell(
        self, index: int, cell_id: str, estimate_s: float | None = None, *, round_label: str = ""
    ) -> None:
        """Run ``index`` (0-based) starts; ``estimate_s`` defaults to the planned one;
        ``round_label`` (``round 2/3``) is shown after the cell when given."""
        now = time.monotonic()
        if self.cell_id:  # the previous run is done
            self._done_est += self._cell_est
            self._done_wall = now - self.started
        if estimate_s is None:
            estimate_s = self.estimates[index] if index < len(self.estimates) else 0.0
        self.index, self.cell_id, self.round_label = index, cell_id, round_label
        self._cell_started, self._cell_est = now, estimate_s
        self.rate = self.p99_us = self._last = None
        self.status_files = []
        self._show(force=True)

    def watch(self, status_files: list[Path]) -> None:
        self.status_files = status_files

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left: the estimate not yet done, at the pace of the runs done so far
        (the estimate's own pace before the first one ends); None without an estimate."""
        if not self.budget_s:
            return None
        now = time.monotonic() if now is None else now
        in_cell = now - self._cell_started
        pace = self._done_wall / self._done_est if self._done_est > 0 else 1.0
        left = max(self.budget_s - self._done_est, self._cell_est) - min(in_cell, self._cell_est)
        return max(0.0, left * pace)

    def poll(self) -> None:
        if not self.enabled or time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + 1.0
        readings = []
        for path in self.status_files:
            with contextlib.suppress(OSError, ValueError):
                readings.append(json.loads(path.read_text()))
        if readings:
            now = max(int(r["t_ns"]) for r in readings)
            messages = sum(int(r["messages"]) for r in readings)
            if self._last is not None and now > self._last[0]:
                self.rate = (messages - self._last[1]) / ((now - self._last[0]) / 1e9)
            self._last = (now, messages)
            p99s = [float(r["p99_us"]) for r in readings if r.get("p99_us") is not None]
            self.p99_us = max(p99s) if p99s else None
        self._show()

    def line(self, now: float | None = None) -> str:
        """The text of the progress line (the same in both forms)."""
        now = time.monotonic() if now is None else now
        eta = self.eta_s(now)
        parts = [
            f"run {self.index + 1}/{self.total} {self.cell_id}",
            *([self.round_label] if self.round_label else []),
            f"elapsed {format_duration(now - self.started)}",
        ]
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        if self.rate is not None:
            parts.append(f"{self.rate:,.0f} msgs/s delivered")
        if self.p99_us is not None:
            parts.append(f"p99 {self.p99_us:,.0f} µs (last s)")
        return "  ".join(parts)

    def _show(self, force: bool = False) -> None:
        out = self.stream or sys.stderr
        if self.mode == "live":
            out.write("\r\x1b[K" + self.line()[:200])
            out.flush()
        elif self.mode == "lines":
            now = time.monotonic()
            if not force and now < self._next_line:
                return
            self._next_line = now + self.every_s
            out.write(f"pushbench run: {self.line(now)}\n")
            out.flush()

    def done(self) -> None:
        if self.mode == "live":
            out = self.stream or sys.stderr
            out.write("\n")
            out.flush()

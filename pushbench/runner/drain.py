"""The drain after a cell's window: wait for the last message, not a fixed time.

A message counts as delivered only if it arrives before the runner stops the workers, so
a fixed wait after the window turns late messages into lost ones (a short poll every
second delivers the window's last message up to a second after it was published). The
drain ends at the first of:

- ``delivered``: every connection has received the window's last message. The workers'
  status files say how far each connection has got (``sched_floor_ns``: the lowest,
  over the worker's connections, of the latest scheduled time each one has received;
  :class:`pushbench.clients.worker.ArrivalFront`), and the runner knows when the last
  message was scheduled: the ticker's last message (``start_ns + (count − 1) ×
  interval``, from ``/stats`` read at the window's end), or for chat cells, whose
  publishers go on publishing, a message scheduled :data:`CHAT_SLACK_S` after the window.
- ``quiet``: no worker has received anything for :func:`quiet_s` (the poll interval of
  a short-poll cell + :data:`~.options.DRAIN_S`): whatever is still missing is lost (a
  dropped message, a dead connection). A worker whose last status says it was still
  receiving counts as busy until it writes that it went quiet (it does so at once, see
  the worker); a worker whose status has no drain fields (browser, Locust) counts as
  quiet from the window's end.
- ``cap``: :func:`cap_s` after the window (5 s, or the quiet bound if longer): a server
  that falls further behind than that loses the rest, and ``drain_end`` says so.

Idle cells (rate 0) expect nothing and do not drain (``none``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushbench.scenario import Cell

from .options import DRAIN_CAP_S, DRAIN_S

__all__ = [
    "CHAT_SLACK_S",
    "POLL_S",
    "DrainPlan",
    "Reading",
    "cap_s",
    "drain",
    "plan",
    "quiet_s",
    "read_status",
    "verdict",
]

POLL_S = 0.05  # how often the runner reads the status files while draining
CHAT_SLACK_S = 0.1  # chat cells: drained once every connection has a message this far past


def quiet_s(cell: Cell) -> float:
    """How long every worker must have received nothing before the rest counts as lost: a
    short poll's interval (its answers come that far apart) + :data:`~.options.DRAIN_S`."""
    return max(0.0, cell.poll_interval_s or 0.0) + DRAIN_S


def cap_s(cell: Cell) -> float:
    """The longest drain: :data:`~.options.DRAIN_CAP_S`, or the quiet bound when longer."""
    return max(DRAIN_CAP_S, quiet_s(cell))


@dataclass(frozen=True)
class DrainPlan:
    """What the drain of one cell waits for (times in CLOCK_MONOTONIC ns).

    ``target_ns``: the scheduled time of the window's last message (every connection
    must have received a message scheduled at or after it); ``None`` when unknown.
    ``expects``: False for idle cells (no drain at all).
    """

    end_ns: int
    target_ns: int | None
    quiet_s: float
    cap_s: float
    expects: bool = True


def plan(cell: Cell, end_ns: int, stats: Mapping[str, Any]) -> DrainPlan:
    """The drain of ``cell`` whose window ended at ``end_ns``; ``stats``: the server's
    ``/stats`` read after the window (its ``ticker``'s start and count)."""
    target: int | None = None
    if cell.publishers:
        target = end_ns + int(CHAT_SLACK_S * 1e9)
    elif cell.rate:
        ticker = stats.get("ticker") or {}
        start, count = int(ticker.get("start_ns") or 0), int(ticker.get("count") or 0)
        if start and count:
            target = start + (count - 1) * int(1e9 / cell.rate)  # as the ticker schedules
    return DrainPlan(end_ns, target, quiet_s(cell), cap_s(cell), expects=bool(cell.rate))


@dataclass(frozen=True)
class Reading:
    """One worker's status file as the drain reads it (``known``: it has drain fields)."""

    t_ns: int
    sched_floor_ns: int | None
    recv_last_ns: int | None
    receiving: bool
    known: bool


def read_status(path: Path) -> Reading | None:
    """The worker's status file, or None when there is none yet (or it cannot be read)."""
    with contextlib.suppress(OSError, ValueError):
        body = json.loads(path.read_text())
        if isinstance(body, dict):
            known = "receiving" in body

            def opt(key: str) -> int | None:
                value = body.get(key)
                return None if value is None else int(value)

            return Reading(
                int(body.get("t_ns") or 0),
                opt("sched_floor_ns"),
                opt("recv_last_ns"),
                bool(body.get("receiving")),
                known,
            )
    return None


def verdict(p: DrainPlan, readings: Sequence[Reading | None], now_ns: int) -> str | None:
    """Why the drain ends now (``delivered``, ``quiet``, ``cap``, ``none``), or None to wait."""
    if not p.expects:
        return "none"
    if (
        p.target_ns is not None
        and readings
        and all(
            r is not None and r.sched_floor_ns is not None and r.sched_floor_ns >= p.target_ns
            for r in readings
        )
    ):
        return "delivered"
    if now_ns >= p.end_ns + int(p.cap_s * 1e9):
        return "cap"
    active = p.end_ns
    for r in readings:
        if r is None or not r.known:
            continue  # nothing said: quiet from the window's end
        if r.receiving:
            active = now_ns  # still receiving when it last wrote
        elif r.recv_last_ns is not None:
            active = max(active, r.recv_last_ns)
    return "quiet" if now_ns >= active + int(p.quiet_s * 1e9) else None


def drain(
    p: DrainPlan,
    status_files: Sequence[Path],
    wait: Callable[[float], None],
) -> tuple[str, float]:
    """Read the status files every :data:`POLL_S` until :func:`verdict` ends the drain →
    (why, seconds since the window's end). ``wait(until)`` sleeps until a
    ``time.monotonic()`` instant (the cell's wait, which fails on a crashed process)."""
    while True:
        now_ns = time.monotonic_ns()
        why = verdict(p, [read_status(f) for f in status_files], now_ns)
        if why is not None:
            return why, max(0.0, (now_ns - p.end_ns) / 1e9)
        wait(now_ns / 1e9 + POLL_S)

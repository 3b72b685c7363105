"""Whether the processes a cell started are still up, and if not, the cell's reason.

A server, proxy, relay or Redis server never ends by itself during a cell; a client
worker may (it ended its run and wrote its output: exit 0). Anything else that exited
fails the cell with its exit status and the end of its log (:func:`check`). When an error
(a refused request to a server killed under it) reached the runner first, :func:`died`
names the exit behind it, so the row's reason says the server died, not "connection
refused".
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pushbench.procs import ProcessGroup, Started

from .options import CellFailed

__all__ = ["check", "died"]


def check(group: ProcessGroup, stopping: Sequence[Started] = ()) -> None:
    """Raise :class:`CellFailed` for the first process of ``group`` that exited by itself
    (not one of ``stopping``, not a worker that ended its run with 0)."""
    for entry in group.dead():
        if entry in stopping:
            continue
        code = entry.proc.returncode
        if entry.name.startswith("worker") and code == 0:
            continue  # a worker that ended its run by itself wrote its output (a server
            # or the cell's Redis server never ends by itself)
        tail = ""
        if entry.log_path is not None and entry.log_path.exists():
            tail = entry.log_path.read_text(errors="replace").strip()[-300:]
        said = f": {tail}" if tail else ""
        raise CellFailed(f"{entry.name} (pid {entry.pid}) exited with {code}{said}")


def died(group: ProcessGroup, wait_s: float = 0.5) -> str:
    """A process that exited by itself behind an error (a refused request): its exit as
    :func:`check` says it, or "" — after up to ``wait_s`` for it to be reaped."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not group.dead():
        time.sleep(0.05)
    try:
        check(group)
    except CellFailed as exc:
        return str(exc)
    return ""

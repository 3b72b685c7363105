"""What a process and all its descendants cost: CPU to the ns, TCP bytes from ``ss``.

A worker that drives other programs (the browser worker: a Playwright driver and
a dozen Chromium processes) is charged for all of them. CPU comes from
:mod:`pushbench.cputime` (each process's CPU clock: all threads, ns; the user/system
split in the ratio of its clock ticks) for every process whose parent chain leads to
the root; bytes and segments from the kernel's TCP_INFO counters of those processes'
sockets (``tcpi_bytes_acked``, ``tcpi_bytes_received``, ``tcpi_segs_out``,
``tcpi_segs_in``, what :mod:`pushbench.clients.tcpinfo` reads for sockets of our own),
which ``ss -tinp`` reads for sockets of other processes. Both are read twice, at the
start and the end of a window, and differenced per process / per socket.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from pushbench import cputime
from pushbench.procs import run_tool
from pushbench.schema.worker import WindowMark

__all__ = ["TreeWindow", "bytes_between", "cpu_between", "socket_bytes", "tree_cpu"]

Tree = dict[int, cputime.ProcCpu]  # pid → its CPU so far
Sockets = dict[tuple[str, str], tuple[int, int, int, int]]  # (local, peer) → counters


def tree_cpu(root: int) -> Tree:
    """``root`` and all its descendants → their CPU so far (:func:`pushbench.cputime.read_tree`)."""
    return cputime.read_tree(root)


def cpu_between(first: Tree, last: Tree, kind: Callable[[int, str], str]) -> dict[str, Any]:
    """CPU seconds spent between two :func:`tree_cpu` readings, in total and per
    ``kind(pid, command)`` (:func:`pushbench.cputime.spent`); ``total_s``: the last
    reading's processes since they started.

    A process born in between counts whole; one that ended in between is lost
    (none do in a run: the pages' processes live from before ready to after end).
    """
    cpu = cputime.spent(first, last, kind)
    return {
        "user_s": cpu.user_s,
        "sys_s": cpu.sys_s,
        "by_kind_s": dict(cpu.by_kind_s),
        "total_s": sum(p.ns for p in last.values()) / 1e9,
        "processes": cpu.processes,
        "ended": cpu.ended,
        "source": ",".join(cpu.sources),
    }


# --- bytes ---------------------------------------------------------------------------------------

# With a state filter ss prints no State column: Recv-Q Send-Q Local Peer Process.
_SS_SOCKET = re.compile(r"^\d+\s+\d+\s+(\S+)\s+(\S+)")
_SS_PID = re.compile(r"pid=(\d+)")
_SS_ACKED = re.compile(r"\bbytes_acked:(\d+)")
_SS_RECEIVED = re.compile(r"\bbytes_received:(\d+)")
_SS_SEGS_OUT = re.compile(r"\bsegs_out:(\d+)")
_SS_SEGS_IN = re.compile(r"\bsegs_in:(\d+)")


def _counter(pattern: re.Pattern[str], line: str) -> int:
    match = pattern.search(line)
    return int(match[1]) if match else 0


def socket_bytes(port: int, pids: set[int]) -> Sockets | None:
    """TCP sockets of ``pids`` connected to ``port`` → (bytes acked, bytes received,
    segments out, segments in), read
    with ``ss -tinp`` (the kernel's TCP_INFO of another process's sockets); None if ``ss``
    cannot be run (:func:`pushbench.procs.run_tool`)."""
    out = run_tool(["ss", "-tinpH", "state", "established", f"( dport = :{port} )"], timeout=5)
    if out is None:
        return None
    found: Sockets = {}
    key: tuple[str, str] | None = None
    for line in out.splitlines():
        if not line[:1].isspace():  # a socket line; its TCP_INFO follows indented
            match = _SS_SOCKET.match(line)
            owners = {int(p) for p in _SS_PID.findall(line)}
            key = (match[1], match[2]) if match and owners & pids else None
            continue
        if key is not None:
            counters = (_SS_ACKED, _SS_RECEIVED, _SS_SEGS_OUT, _SS_SEGS_IN)
            acked, received, segs_out, segs_in = (_counter(c, line) for c in counters)
            found[key] = (acked, received, segs_out, segs_in)
            key = None
    return found


class Between(NamedTuple):
    """TCP payload bytes and segments each way between two readings, and whether every
    socket of the first was still there at the last."""

    bytes_out: int
    bytes_in: int
    complete: bool
    segs_out: int
    segs_in: int


def bytes_between(first: Sockets, last: Sockets) -> Between:
    """Bytes and segments between two :func:`socket_bytes` readings.

    ``bytes_acked`` counts the SYN as one byte: a socket opened in between has
    it taken off (as :mod:`pushbench.clients.tcpinfo` does), its segments count whole. A
    socket closed in between makes the figure incomplete (its last bytes are unknown).
    """
    moved = [0, 0, 0, 0]
    for key, now in last.items():
        for i, (a, b) in enumerate(zip(first.get(key, (1, 0, 0, 0)), now, strict=True)):
            moved[i] += b - a
    return Between(moved[0], moved[1], not (set(first) - set(last)), moved[2], moved[3])


# --- the runner's window marks -------------------------------------------------------------------


@dataclass(frozen=True)
class TreeWindow:
    """A process tree's readings at ready (``cpu0``, and ``sockets0`` to ``port``, None when
    ``ss`` could not be run): :meth:`mark` reads both again for a window mark."""

    root: int
    port: int
    cpu0: Tree
    sockets0: Sockets | None

    def mark(self, *, at_end: bool) -> WindowMark:
        """The tree's CPU and its sockets' bytes since ready, as a
        :class:`~pushbench.schema.worker.WindowMark` (no message or request counts: those
        live in the programs the tree runs). The bytes (``ss``, a process of its own) are
        read before the CPU at the window's start and after it at its end, so the
        reading's own cost stays outside the window."""

        def cpu() -> tuple[int, float, float]:
            spent = cputime.spent(self.cpu0, tree_cpu(self.root))
            return time.monotonic_ns(), spent.user_s, spent.sys_s  # the contract's clock

        first = cpu() if at_end else None
        sockets = None if self.sockets0 is None else socket_bytes(self.port, set(self.cpu0))
        t_ns, user, system = first or cpu()
        moved = (
            None
            if sockets is None or self.sockets0 is None
            else bytes_between(self.sockets0, sockets)
        )
        return WindowMark(
            t_ns,
            user,
            system,
            bytes_out=None if moved is None else moved.bytes_out,
            bytes_in=None if moved is None else moved.bytes_in,
            segs_out=None if moved is None else moved.segs_out,
            segs_in=None if moved is None else moved.segs_in,
        )

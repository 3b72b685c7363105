"""What a process and all its descendants cost: CPU from ``/proc``, TCP bytes from ``ss``.

A worker that drives other programs (the browser worker: a Playwright driver and
a dozen Chromium processes) is charged for all of them. CPU comes from
``/proc/<pid>/stat`` (user and system ticks, all threads) of every process whose
parent chain leads to the root; bytes from the kernel's TCP_INFO counters of
those processes' sockets (``tcpi_bytes_acked``, ``tcpi_bytes_received``, what
:mod:`pushbench.clients.tcpinfo` reads for sockets of our own), which ``ss -tinp`` reads
for sockets of other processes. Both are read twice, at the start and the end of
a window, and differenced per process / per socket.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushbench.procs import run_tool
from pushbench.schema.worker import WindowMark

__all__ = ["TreeWindow", "bytes_between", "cpu_between", "socket_bytes", "tree_cpu"]

_TICK = os.sysconf("SC_CLK_TCK")
Tree = dict[int, tuple[str, int, int]]  # pid → (command, user ticks, system ticks)
Sockets = dict[tuple[str, str], tuple[int, int]]  # (local, peer) → (acked, received)


def _proc_table() -> dict[int, tuple[int, str, int, int]]:
    """Every process → (parent, command, user ticks, system ticks)."""
    table: dict[int, tuple[int, str, int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), comm, int(fields[11]), int(fields[12]))
    return table


def tree_cpu(root: int) -> Tree:
    """``root`` and all its descendants → (command, user ticks, system ticks)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: Tree = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            _, comm, user, system = table[pid]
            out[pid] = (comm, user, system)
        todo.extend(children.get(pid, ()))
    return out


def cpu_between(first: Tree, last: Tree, kind: Callable[[int, str], str]) -> dict[str, Any]:
    """CPU seconds spent between two :func:`tree_cpu` readings, in total and per
    ``kind(pid, command)``.

    A process born in between counts whole; one that ended in between is lost
    (none do in a run: the pages' processes live from before ready to after end).
    """
    user = system = 0
    kinds: dict[str, float] = {}
    total = sum(u + s for _, u, s in last.values())
    for pid, (comm, u, s) in last.items():
        _, u0, s0 = first.get(pid, (comm, 0, 0))
        user += u - u0
        system += s - s0
        name = kind(pid, comm)
        kinds[name] = kinds.get(name, 0.0) + (u - u0 + s - s0) / _TICK
    return {
        "user_s": user / _TICK,
        "sys_s": system / _TICK,
        "by_kind_s": kinds,
        "total_s": total / _TICK,
        "processes": len(last),
        "ended": len(set(first) - set(last)),
    }


# --- bytes ---------------------------------------------------------------------------------------

# With a state filter ss prints no State column: Recv-Q Send-Q Local Peer Process.
_SS_SOCKET = re.compile(r"^\d+\s+\d+\s+(\S+)\s+(\S+)")
_SS_PID = re.compile(r"pid=(\d+)")
_SS_ACKED = re.compile(r"\bbytes_acked:(\d+)")
_SS_RECEIVED = re.compile(r"\bbytes_received:(\d+)")


def socket_bytes(port: int, pids: set[int]) -> Sockets | None:
    """TCP sockets of ``pids`` connected to ``port`` → (bytes acked, bytes received), read
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
            acked, received = _SS_ACKED.search(line), _SS_RECEIVED.search(line)
            found[key] = (int(acked[1]) if acked else 0, int(received[1]) if received else 0)
            key = None
    return found


def bytes_between(first: Sockets, last: Sockets) -> tuple[int, int, bool]:
    """(bytes out, bytes in, complete) between two :func:`socket_bytes` readings.

    ``bytes_acked`` counts the SYN as one byte: a socket opened in between has
    it taken off (as :mod:`pushbench.clients.tcpinfo` does). A socket closed in between
    makes the figure incomplete (its last bytes are unknown).
    """
    out = into = 0
    for key, (acked, received) in last.items():
        acked0, received0 = first.get(key, (1, 0))
        out += acked - acked0
        into += received - received0
    return out, into, not (set(first) - set(last))


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

        def cpu() -> tuple[int, int, int]:
            tree, (user, system) = tree_cpu(self.root), (0, 0)
            for pid, (_, u, s) in tree.items():
                _, u0, s0 = self.cpu0.get(pid, ("", 0, 0))
                user, system = user + u - u0, system + s - s0
            return time.monotonic_ns(), user, system  # the contract's clock

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
            user / _TICK,
            system / _TICK,
            bytes_out=None if moved is None else moved[0],
            bytes_in=None if moved is None else moved[1],
        )

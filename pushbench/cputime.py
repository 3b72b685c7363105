"""CPU time of processes to the nanosecond, of a thread's own sections of work, and of
each CPU (:func:`cpu_ticks`).

``/proc/<pid>/stat`` counts user and system time in clock ticks (``SC_CLK_TCK``: 10 ms
on Linux), so over a smoke cell a server's CPU per message moves in steps of 10 ms ÷
the messages (25 µs at 400) and ``compare`` reads one tick as a 25 % change. The
kernel keeps the same time in nanoseconds; this module reads it, in this order:

1. ``clock`` — the process's CPU clock (``clock_gettime`` on the clock id glibc's
   ``clock_getcpuclockid(pid)`` builds: ``(~pid << 3) | CPUCLOCK_SCHED``). Any process's
   can be read, the kernel brings a thread running right now up to date first, and it
   includes every thread, those that exited too: exact to the nanosecond.
2. ``schedstat`` — the first field of ``/proc/<pid>/task/<tid>/schedstat`` (ns on CPU),
   summed over the process's threads. A running thread's figure lags by up to one
   scheduler tick and a thread that exited is gone: only where 1. is refused.
3. ``ticks`` — ``utime + stime`` of ``/proc/<pid>/stat`` (no Linux ns source at all).

Each reading carries its ``source``. User and system time are not split by 1. or 2.:
where a figure needs the split (a worker's ``cpu_user_s``/``cpu_sys_s``), :func:`spent`
splits the exact total in the ratio of the same span's user and system ticks from
``/proc/<pid>/stat`` (exact sum, tick-grained split).

:class:`ThreadCpuMeter` is the other side: CPU time of the calling thread
(``time.thread_time_ns``) spent inside the sections of code it is switched on for — the
server's ticker measures its own cost with it, apart from the hub's fan-out it calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PROC_STAT",
    "CpuSpent",
    "ProcCpu",
    "ThreadCpuMeter",
    "cpu_ticks",
    "read",
    "read_pids",
    "read_tree",
    "schedstat_ns",
    "spent",
]

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_CPUCLOCK_SCHED = 2  # linux/posix-timers.h: the scheduler's runtime, ns
PROC_STAT = Path("/proc/stat")
_CPU_FIELDS = 8  # cpuN user nice system idle iowait irq softirq steal (guest is in user)


def cpu_ticks(cpus: Iterable[int], path: Path = PROC_STAT) -> dict[int, tuple[int, ...]] | None:
    """Clock ticks so far of each of ``cpus`` that ``path`` lists: (user, nice, system,
    idle, iowait, irq, softirq, steal); None where the file cannot be read (not Linux).
    The one reader of per-CPU counters: a core's busy share (``pushbench bench-client``)
    and the hypervisor's steal (:mod:`pushbench.runner.steal`)."""
    want = {f"cpu{c}": c for c in cpus}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    out: dict[int, tuple[int, ...]] = {}
    for line in lines:
        fields = line.split()
        if fields and fields[0] in want and len(fields) > _CPU_FIELDS:
            out[want[fields[0]]] = tuple(int(x) for x in fields[1 : _CPU_FIELDS + 1])
    return out


@dataclass(frozen=True)
class ProcCpu:
    """One process's CPU so far: ``ns`` on CPU (all threads), its user and system clock
    ticks (for the split only), where ``ns`` came from, its command and parent."""

    ns: int
    user_ticks: int
    sys_ticks: int
    source: str  # "clock", "schedstat" or "ticks"
    comm: str = ""
    ppid: int = 0


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(command, parent, user ticks, system ticks) of ``pid``; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command, which may hold spaces
    return comm, int(fields[1]), int(fields[11]), int(fields[12])


def _clock_ns(pid: int) -> int | None:
    """``pid``'s process CPU clock, ns; None when the kernel refuses it (or it is gone)."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | _CPUCLOCK_SCHED)
    except (OSError, OverflowError, AttributeError):
        return None


def schedstat_ns(pid: int) -> int | None:
    """ns on CPU of ``pid``'s live threads: ``/proc/<pid>/task/*/schedstat``'s first field,
    summed; None when the process is gone or the kernel has no schedstat."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total, found = 0, False
    for tid in tids:
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
    return total if found else None


def _reading(pid: int, stat: tuple[str, int, int, int]) -> ProcCpu | None:
    comm, ppid, user, system = stat
    ns = _clock_ns(pid)
    if ns is not None:
        return ProcCpu(ns, user, system, "clock", comm, ppid)
    ns = schedstat_ns(pid)
    if ns is not None:
        return ProcCpu(ns, user, system, "schedstat", comm, ppid)
    return ProcCpu((user + system) * _TICK_NS, user, system, "ticks", comm, ppid)


def read(pid: int) -> ProcCpu | None:
    """``pid``'s CPU so far (all its threads); None when the process is gone."""
    stat = _stat(pid)
    return None if stat is None else _reading(pid, stat)


def read_pids(pids: Iterable[int]) -> dict[int, ProcCpu]:
    """Each of ``pids`` that still runs → its CPU so far."""
    out = {}
    for pid in pids:
        cpu = read(pid)
        if cpu is not None:
            out[pid] = cpu
    return out


def read_tree(root: int) -> dict[int, ProcCpu]:
    """``root`` and every process whose parent chain leads to it → its CPU so far."""
    stats: dict[int, tuple[str, int, int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                stats[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat[1], []).append(pid)
    out: dict[int, ProcCpu] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        cpu = _reading(pid, stats[pid]) if pid in stats else None
        if cpu is not None:
            out[pid] = cpu
        todo.extend(children.get(pid, ()))
    return out


@dataclass(frozen=True)
class CpuSpent:
    """CPU spent between two readings of a set of processes (:func:`spent`)."""

    total_s: float
    user_s: float
    sys_s: float
    processes: int  # in the last reading
    ended: int  # in the first reading only: their CPU since it is lost
    sources: tuple[str, ...]  # the readings' sources, e.g. ("clock",)
    by_kind_s: Mapping[str, float] = field(default_factory=dict)


def _split(ns: int, user: int, system: int, last: ProcCpu) -> tuple[float, float]:
    """``ns`` as (user s, system s) in the ratio of the span's ticks (``user``,
    ``system``), else of the process's ticks so far, else all user."""
    if user + system <= 0:
        user, system = last.user_ticks, last.sys_ticks
    share = user / (user + system) if user + system > 0 else 1.0
    return ns * share / 1e9, ns * (1.0 - share) / 1e9


def spent(
    first: Mapping[int, ProcCpu],
    last: Mapping[int, ProcCpu],
    kind: Callable[[int, str], str] | None = None,
) -> CpuSpent:
    """CPU seconds between two readings (pid → :class:`ProcCpu`), in total, as user and
    system time (:func:`_split`) and, with ``kind(pid, command)``, per kind. A process
    born in between counts whole; one that ended in between is lost (``ended``)."""
    user = system = 0.0
    kinds: dict[str, float] = {}
    for pid, cpu in last.items():
        before = first.get(pid)
        ns, u, s = cpu.ns, cpu.user_ticks, cpu.sys_ticks
        if before is not None:
            ns, u, s = ns - before.ns, u - before.user_ticks, s - before.sys_ticks
        pu, ps = _split(max(ns, 0), u, s, cpu)
        user, system = user + pu, system + ps
        if kind is not None:
            name = kind(pid, cpu.comm)
            kinds[name] = kinds.get(name, 0.0) + pu + ps
    return CpuSpent(
        total_s=user + system,
        user_s=user,
        sys_s=system,
        processes=len(last),
        ended=len(set(first) - set(last)),
        sources=tuple(sorted({c.source for c in last.values()})),
        by_kind_s=kinds,
    )


class ThreadCpuMeter:
    """CPU time of the calling thread inside the sections it is switched on for.

    :meth:`resume` where a section of one's own work starts, :meth:`pause` where it
    hands over (to code whose cost is someone else's, or to the event loop before an
    ``await``): only the time between counts (``ns``). One clock read
    (``time.thread_time_ns``, a system call: ~1 µs on a VM) per switch; unbalanced
    calls are harmless (a second resume restarts the section, a second pause adds
    nothing). Single-threaded use, as in one event loop.

    ``sample_every`` N > 1 reads the clock for one section in N only (the 1st, the
    N+1st, …) and :attr:`estimate_ns` scales the sampled time by sections ÷ sampled: for
    a loop whose sections repeat alike (a ticker's), at 1/N of the meter's own cost.
    Take N odd when a loop's turn has two kinds of section, so both are sampled.
    """

    __slots__ = ("_every", "_opened", "_since", "ns", "sampled", "sections")

    def __init__(self, sample_every: int = 1) -> None:
        if sample_every < 1:
            raise ValueError("sample_every must be at least 1")
        self._every = sample_every
        self.ns = 0  # CPU time inside the sampled sections
        self.sections = 0  # sections switched on (every resume after a pause)
        self.sampled = 0  # of them, the ones timed
        self._opened = False
        self._since = -1

    def resume(self) -> None:
        if not self._opened:
            self._opened = True
            self.sections += 1
        if self._every == 1 or self.sections % self._every == 1:
            self._since = time.thread_time_ns()

    def pause(self) -> None:
        self._opened = False
        if self._since >= 0:
            self.ns += time.thread_time_ns() - self._since
            self.sampled += 1
            self._since = -1

    @property
    def estimate_ns(self) -> float:
        """The time of all sections: ``ns`` itself unless sampled, else scaled up."""
        if self._every == 1 or not self.sampled:
            return float(self.ns)
        return self.ns * self.sections / self.sampled

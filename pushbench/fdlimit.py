"""The open-file limit (RLIMIT_NOFILE) of a process holding many connections, raised in-process.

A server or client worker with 100,000 connections needs a descriptor per socket (a client
worker up to three: :data:`CLIENT_FDS_PER_CONN`), far past the usual soft limit of 1,024 and
often past the hard limit too. :func:`raise_nofile` raises the soft limit to what is wanted;
when the hard limit is lower it tries to raise that as well, which succeeds for a process
with CAP_SYS_RESOURCE (root) up to ``/proc/sys/fs/nr_open``, and otherwise settles for the
hard limit. It returns what it did (:class:`NofileLimit`), which the process states in its
log and the run's metadata describes (:func:`pushbench.results` ``open_files``).

Part of issue 18 item 2 (100,000 connections on one box).
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLIENT_FDS_PER_CONN",
    "FD_SLACK",
    "SERVER_FDS_PER_CONN",
    "NofileLimit",
    "may_raise_hard",
    "nr_open",
    "raise_nofile",
    "reachable",
]

#: Descriptors one client connection may hold: its socket, its meter's duplicate, a
#: publishing connection.
CLIENT_FDS_PER_CONN = 3
#: Descriptors one server connection holds (its socket; one spare for the accept race).
SERVER_FDS_PER_CONN = 1
#: Descriptors beyond the connections: listening sockets, logs, pipes, the event loop.
FD_SLACK = 256
NR_OPEN = Path("/proc/sys/fs/nr_open")


@dataclass(frozen=True)
class NofileLimit:
    """RLIMIT_NOFILE before and after :func:`raise_nofile` (None: unlimited), and what
    was wanted; ``enough`` when the soft limit now covers it."""

    wanted: int
    soft_before: int | None
    hard_before: int | None
    soft: int | None
    hard: int | None

    @property
    def enough(self) -> bool:
        return self.soft is None or self.soft >= self.wanted

    def line(self) -> str:
        """One log line: ``open files: soft 1024 → 300256 (hard 20000 → 300256), wanted
        300256``."""
        return (
            f"open files: soft {_shown(self.soft_before)} → {_shown(self.soft)} "
            f"(hard {_shown(self.hard_before)} → {_shown(self.hard)}), wanted {self.wanted}"
        )


def _shown(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def _finite(value: int) -> int | None:
    return None if value == resource.RLIM_INFINITY else value


def nr_open() -> int | None:
    """The kernel's ceiling on any process's open-file limit (``fs.nr_open``), None when
    unreadable (not Linux)."""
    try:
        return int(NR_OPEN.read_text().strip())
    except (OSError, ValueError):
        return None


#: CAP_SYS_RESOURCE's bit in /proc/self/status's CapEff: may raise a hard limit.
CAP_SYS_RESOURCE = 24
PROC_STATUS = Path("/proc/self/status")


def may_raise_hard() -> bool:
    """Whether this process may raise its hard limit (CAP_SYS_RESOURCE in effect: root is
    not enough in a container that drops it)."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def reachable(wanted: int) -> bool:
    """Whether a child of this process can raise its soft limit to ``wanted``: the hard
    limit allows it, or the capability and ``fs.nr_open`` do."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard >= wanted:
        return True
    ceiling = nr_open()
    return may_raise_hard() and (ceiling is None or ceiling >= wanted)


def raise_nofile(wanted: int) -> NofileLimit:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted`` (never lower it): past the
    hard limit when the process may (root, up to ``fs.nr_open``), else up to the hard
    limit. Never raises; the returned record says how far it got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = (_finite(soft), _finite(hard))
    unlimited = resource.RLIM_INFINITY
    if soft == unlimited or soft >= wanted:
        return NofileLimit(wanted, *before, *before)
    if hard != unlimited and hard < wanted:
        ceiling = nr_open()
        target = wanted if ceiling is None else min(wanted, ceiling)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(target, hard)))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != unlimited and soft < wanted:
        new = wanted if hard == unlimited else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return NofileLimit(wanted, *before, _finite(soft), _finite(hard))

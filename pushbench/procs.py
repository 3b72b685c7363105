"""Child processes of a run: start pinned, wait for readiness, measure, always stop.

Only the runner and the benchmark orchestrators start processes, and they do
so through here (short tools such as git and ss too: :func:`run_tool`), so every
process a run starts is tracked in one :class:`ProcessGroup` whose
``stop_all`` runs on success, on Ctrl-C, on a crash and on timeout alike.

Pinning: on Linux each child is bound to its CPU set with
``os.sched_setaffinity`` before it runs any Python (``preexec_fn``), so a
server and its load generator never share a core by accident. With fewer
cores than roles, :func:`plan_pinning` says so instead of pretending.

CPU and memory: process CPU time (user + system, all threads, those that exited too)
to the nanosecond from :mod:`pushbench.cputime` (the process's CPU clock, not
``/proc/<pid>/stat``'s 10 ms ticks), and VmRSS from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import cputime

__all__ = [
    "Pinning",
    "ProcSample",
    "ProcessGroup",
    "ReadyTimeout",
    "Started",
    "plan_pinning",
    "run_captured",
    "run_tool",
    "sample",
]


def run_tool(argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 10.0) -> str | None:
    """Run a short command-line tool (git, ss) to completion → its stdout, stripped;
    None when it is missing, fails or outlives ``timeout`` seconds."""
    try:
        proc = subprocess.run(
            list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def run_captured(argv: Sequence[str], *, timeout: float) -> tuple[int, str, str]:
    """Run a short command to completion → (exit status, stdout, stderr); status -1 with
    the reason as stderr when it cannot start or outlives ``timeout`` seconds (killed)."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return -1, "", f"did not finish within {timeout:g} s"
    except OSError as exc:
        return -1, "", str(exc)
    return proc.returncode, proc.stdout, proc.stderr


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the server and the clients get, and what the machine allowed."""

    server: tuple[int, ...]
    clients: tuple[int, ...]
    available: tuple[int, ...]
    note: str  # "" when server and clients have cores of their own

    def as_dict(self) -> dict[str, object]:
        return {
            "server_cpus": list(self.server),
            "client_cpus": list(self.clients),
            "available_cpus": list(self.available),
            "pinning_note": self.note,
        }


def plan_pinning(server_cores: int = 1, available: Sequence[int] | None = None) -> Pinning:
    """Give the server ``server_cores`` CPUs and the clients the rest.

    With a single CPU both share it, and ``note`` says the figures include
    contention between load generator and server.
    """
    cpus = tuple(sorted(available if available is not None else os.sched_getaffinity(0)))
    if len(cpus) < 2:
        return Pinning(cpus, cpus, cpus, "only one CPU: server and clients share it")
    n = max(1, min(server_cores, len(cpus) - 1))
    note = ""
    if len(cpus) == 2:
        note = "2 CPUs: server on one, all client processes on the other"
    return Pinning(cpus[:n], cpus[n:], cpus, note)


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: CPU seconds so far (all threads, ns resolution), resident
    memory, when, and where the CPU figure came from (:class:`pushbench.cputime.ProcCpu`)."""

    cpu_s: float
    rss_bytes: int
    at_ns: int
    cpu_source: str = "clock"


def sample(pid: int) -> ProcSample | None:
    """Read ``pid``'s CPU (:func:`pushbench.cputime.read`) and memory; None when the
    process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    cpu = cputime.read(pid)
    if cpu is None:
        return None
    rss = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
            break
    return ProcSample(cpu.ns / 1e9, rss, time.monotonic_ns(), cpu.source)


class ReadyTimeout(RuntimeError):
    """A child did not print its ready line in time (its output is in the message)."""


@dataclass
class Started:
    name: str
    proc: subprocess.Popen[bytes]
    cpus: tuple[int, ...]
    ready_line: str = ""
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class ProcessGroup:
    """Every process a run started; ``stop_all`` is safe to call any number of times."""

    log_dir: Path
    started: list[Started] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpus: Sequence[int] = (),
        ready_prefix: str,
        timeout_s: float = 30.0,
        env: dict[str, str] | None = None,
        ready_anywhere: bool = False,
        ready_port: tuple[str, int] | None = None,
    ) -> Started:
        """Start ``argv`` pinned to ``cpus``; return once a stdout line starts with
        ``ready_prefix`` (contains it, with ``ready_anywhere``: for a program such as
        redis-server that starts its log lines with a pid and a time). stderr goes to
        ``log_dir/<name>.log`` (kept with the run). With ``ready_port`` (host, port), for
        a program that prints no ready line (a reverse proxy): stdout goes to the log too,
        and it is ready once that address accepts a TCP connection; ``ready_line`` is
        then ``ready_prefix``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        cpu_set = set(cpus)

        def pin() -> None:  # runs in the child before exec
            if cpu_set:
                os.sched_setaffinity(0, cpu_set)

        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE if ready_port is None else log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                preexec_fn=pin,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal reaches only the runner
            )
        entry = Started(name, proc, tuple(sorted(cpu_set)), log_path=log_path)
        self.started.append(entry)
        if ready_port is not None:
            _wait_listening(entry, ready_port, timeout_s)
            entry.ready_line = ready_prefix
            return entry
        entry.ready_line = self._wait_ready(entry, ready_prefix, timeout_s, ready_anywhere)
        return entry

    def wait_line(self, entry: Started, prefix: str, timeout_s: float = 30.0) -> str:
        """Wait for a later stdout line of a started process that starts with ``prefix``
        (a staged worker's ready line after its stage line): it becomes ``ready_line``."""
        entry.ready_line = self._wait_ready(entry, prefix, timeout_s)
        return entry.ready_line

    @staticmethod
    def _wait_ready(entry: Started, prefix: str, timeout_s: float, anywhere: bool = False) -> str:
        assert entry.proc.stdout is not None
        fd = entry.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break  # EOF: the child exited
                buf += chunk
                for line in buf.decode(errors="replace").splitlines():
                    if line.startswith(prefix) or (anywhere and prefix in line):
                        return line
            elif entry.proc.poll() is not None:
                break
        tail = ""
        if entry.log_path is not None and entry.log_path.exists():
            tail = entry.log_path.read_text(errors="replace")[-2000:]
        state = (
            f"exited with {entry.proc.returncode}"
            if entry.proc.poll() is not None
            else f"no ready line after {timeout_s:.0f} s"
        )
        raise ReadyTimeout(f"{entry.name} {state}; stdout {buf[-500:]!r}; stderr tail:\n{tail}")

    def dead(self) -> list[Started]:
        """Processes that exited by themselves (a crash, as far as the run is concerned)."""
        return [s for s in self.started if s.proc.poll() is not None]

    def stop(self, entry: Started, grace_s: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s`` → the exit status."""
        proc = entry.proc
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            except ProcessLookupError:
                pass
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def stop_all(self, grace_s: float = 5.0) -> dict[str, int | None]:
        codes = {}
        for entry in reversed(self.started):
            codes[entry.name] = self.stop(entry, grace_s)
        self.started.clear()
        return codes


def _wait_listening(entry: Started, address: tuple[str, int], timeout_s: float) -> None:
    """Wait until ``address`` accepts a TCP connection; a ReadyTimeout (with the log's
    tail) when ``entry`` exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and entry.proc.poll() is None:
        try:
            with socket.create_connection(address, timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    tail = ""
    if entry.log_path is not None and entry.log_path.exists():
        tail = entry.log_path.read_text(errors="replace")[-2000:]
    state = (
        f"exited with {entry.proc.returncode}"
        if entry.proc.poll() is not None
        else f"not listening on {address[0]}:{address[1]} after {timeout_s:.0f} s"
    )
    raise ReadyTimeout(f"{entry.name} {state}; log tail:\n{tail}")


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    output: int | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a process its caller supervises itself (Locust under its worker wrapper):
    no stdin; stdout and stderr to the file descriptor ``output`` (inherited when None);
    a session of its own, so a Ctrl-C in a terminal reaches only the caller, which stops
    it in order; with ``die_with_parent``, SIGKILLed when the caller dies (Linux
    ``PR_SET_PDEATHSIG``), so a caller killed by the runner leaves nothing behind."""

    import contextlib  # here, not in the child: no imports between fork and exec
    import ctypes

    def before_exec() -> None:  # in the child
        if die_with_parent:
            with contextlib.suppress(OSError, AttributeError):  # not Linux: no such call
                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PDEATHSIG

    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        env=env,
        start_new_session=True,
        preexec_fn=before_exec,
    )

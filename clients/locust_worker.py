"""A client worker that runs Locust: ``python -m pushbench.clients.locust_worker SPEC.json OUT``.

The same contract as :mod:`pushbench.clients.worker` (``docs/runner-design.md``): the
same spec (``transport`` ``ws``, ``sse``, ``longpoll`` or ``shortpoll``;
``connections`` = Locust users), one ``worker ready`` line on stdout once
every user has connected or failed its first attempt, ``warmup_s +
duration_s`` of run, SIGTERM/SIGINT ending it early with ``"complete":
false``, then ``OUT.npz`` (receipts) and ``OUT.json`` (counters), each
written atomically, the JSON last.

Inside, it starts Locust headless on ``clients/locustfile.py`` — one process,
or with ``"locust_workers": N`` in the spec a ``--master`` and N
``--worker`` processes on this machine — with ``PUSHBENCH_RECEIPTS_DIR``
pointing at a scratch directory (``OUT.locust.d``) where every process that
runs users notes its progress (``<pid>.ready``) and, when it quits, leaves
its receipts and counters. The run ends with ``SIGUSR1`` to the local or
master process, which the locustfile turns into what ``--run-time`` does
(the runner quits: users stopped, every worker's last report in), so Locust
writes its reports complete. This wrapper then merges the processes' receipts
(connection ids made contiguous from the spec's ``first_conn``, in worker
order) and counters, and removes the scratch directory.

Locust's own files stay next to ``OUT``: ``OUT.locust_stats.csv``,
``OUT.locust_stats_history.csv``, ``OUT.locust_failures.csv``,
``OUT.locust_exceptions.csv``, ``OUT.locust.html`` and ``OUT.locust.json``
(its final stats, written after the last worker report). ``OUT.json`` names
them under ``"locust"``, with the push events and failures Locust counted.

CPU (``cpu_user_s_run``, ``cpu_sys_s_run``) is that of every Locust process
(master included) from ready to the end of the window, to the ns
(:mod:`pushbench.cputime`), and again at the runner's window signals (SIGUSR1/SIGUSR2:
``window_start``/``window_end``; the users' counters live in the Locust processes and
are not read then, so requests and bytes per message cover the whole run); byte counts
come from the users' socket layer (``bytes_source`` "socket"); ``max_loop_lag_ns`` is
the longest a 1 ms ``gevent.sleep`` overslept in any process once its users were
connected.
Locust's output goes to this process's stderr; stdout carries only the
ready line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from pushbench import cputime, procs
from pushbench.schema.worker import WINDOW_SIGNALS, WindowMark, WorkerSpec
from pushbench.settings import Settings

from .common import SUMMED, clock
from .locust_users import user_classes
from .recorder import FIELDS
from .worker import READY_LINE, output_paths, write_outputs

__all__ = ["LocustRun", "locust_files", "main"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
CLIENT_IMPL = "raw gevent socket + pushbench.wire / pushbench.sse / pushbench.clients.locust_http"
READY_TIMEOUT_S = 60.0  # Locust start-up plus every user's first connection attempt
STOP_TIMEOUT_S = 30.0  # for Locust to stop, report and exit after SIGUSR1
RUN_TIME_SLACK_S = 120.0  # Locust's own --run-time: a safety net should this process vanish
_POLL_S = 0.02
_RECORDER_SUMMED = ("messages", "capacity", "overflow", "parse_errors", "slow_parses")


class LocustFailed(RuntimeError):
    """Locust did not start, died, or left no output."""


def locust_files(out: str | Path) -> dict[str, Path]:
    """Where Locust's own outputs go for ``OUT``: CSV prefix, HTML, JSON (and its base)."""
    base = output_paths(out)[0].with_suffix("")
    return {
        "csv_prefix": base.with_name(base.name + ".locust"),
        "stats_csv": base.with_name(base.name + ".locust_stats.csv"),
        "html": base.with_name(base.name + ".locust.html"),
        "json_base": base.with_name(base.name + ".locust"),
        "json": base.with_name(base.name + ".locust.json"),
        "scratch": base.with_name(base.name + ".locust.d"),
    }


class _Child(Protocol):
    """What the wrapper uses of a started Locust process (a ``subprocess.Popen``)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...


@dataclass
class _Proc:
    role: str  # "local", "master" or "worker"
    popen: _Child


@dataclass
class LocustRun:
    """One worker run: start Locust, wait for ready, time the window, stop, merge.

    ``environ`` is the environment the Locust processes get (plus the scratch
    directory, receipt capacity and token); the spec's ``locust_workers`` says
    how many of them there are (0: one local process; N: a master and N workers).
    """

    spec: WorkerSpec
    out: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    procs: list[_Proc] = field(default_factory=list)
    reason: str | None = None
    ready_ns: int = 0
    #: the merged receipt arrays (FIELDS), set by the merge at the end of :meth:`run`
    receipts: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    marks: dict[str, WindowMark] = field(default_factory=dict)
    #: the Locust processes' CPU at ready (None: not ready yet, or the run is over)
    ready_cpu: dict[int, cputime.ProcCpu] | None = None

    def request_stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def mark_window(self, edge: str) -> None:
        """The runner's measured window starts or ends: the Locust processes' CPU since
        ready (:mod:`pushbench.cputime`, ns). Their message, request and byte counters live
        in those processes and are not read here: the runner counts the window's messages
        from the receipts and takes the other counters over the whole run."""
        cpu0 = self.ready_cpu
        if cpu0 is None or edge in self.marks:
            return
        t_ns, cpu = clock(), _spent(cpu0, self._cpu())
        self.marks[edge] = WindowMark(t_ns, cpu.user_s, cpu.sys_s)

    # --- the run ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        spec = self.spec
        files = locust_files(self.out)
        scratch = files["scratch"]
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        warmup_end = end = 0
        cpu0: dict[int, cputime.ProcCpu] = {}
        cpu1: dict[int, cputime.ProcCpu] = {}
        try:
            self._start(files)
            if self._wait_ready(scratch):
                cpu0 = self._cpu()
                self.ready_ns = clock()
                self.ready_cpu = cpu0
                warmup_end = self.ready_ns + int(spec.warmup_s * 1e9)
                print(READY_LINE, flush=True)
                deadline = self.ready_ns + int((spec.warmup_s + spec.duration_s) * 1e9)
                while self.reason is None and clock() < deadline:
                    self._check_alive()
                    time.sleep(min(0.05, max(0.0, (deadline - clock()) / 1e9)))
                if self.reason is None:
                    self.reason = "completed"
            end = clock()
            cpu1 = self._cpu()
            self.ready_cpu = None  # no window mark after the end
        except (LocustFailed, OSError) as exc:
            self.request_stop(f"failed: {exc}")
            end = end or clock()
        finally:
            self._stop()
        result = self._merge(scratch, files, warmup_end, end, cpu0, cpu1)
        shutil.rmtree(scratch, ignore_errors=True)
        return result

    def _start(self, files: dict[str, Path]) -> None:
        spec = self.spec
        users = spec.connections
        n = spec.locust_workers
        per_process = users if n == 0 else -(-users // n)
        env = {
            **self.environ,
            "PUSHBENCH_RECEIPTS_DIR": str(files["scratch"]),
            # rows per process: its share of the spec's capacity, plus room for unevenness
            "PUSHBENCH_RECEIPTS_CAPACITY": str(
                math.ceil(spec.capacity * per_process / users) + 1000
            ),
            "LOCUST_PUSH_TOKEN": spec.token or "",
        }
        base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--exit-code-on-error", "0"]
        run_time = READY_TIMEOUT_S + spec.warmup_s + spec.duration_s + RUN_TIME_SLACK_S
        main = [
            *base,
            "--headless",
            "--users", str(users),
            "--spawn-rate", str(users),
            "--run-time", f"{math.ceil(run_time)}s",
            "--host", spec.base_url,
            "--csv", str(files["csv_prefix"]),
            "--html", str(files["html"]),
            "--json-file", str(files["json_base"]),
            "--only-summary",
            "--push-topic", spec.topic,
            "--push-poll-interval", repr(spec.poll_interval_s),
            "--push-poll-timeout", repr(spec.poll_timeout_s),
            "--push-connect-timeout", repr(spec.connect_timeout_s),
        ]  # fmt: skip
        user_class = user_classes()[spec.transport]
        if n == 0:
            local = [*main, user_class]
            self.procs.append(_Proc("local", _spawn(local, env, files["scratch"])))
            return
        port = _free_port()
        master = [
            *main,
            "--master",
            "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(port),
            "--expect-workers", str(n),
            "--expect-workers-max-wait", str(int(READY_TIMEOUT_S)),
            user_class,
        ]  # fmt: skip
        self.procs.append(_Proc("master", _spawn(master, env, files["scratch"])))
        worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        for _ in range(n):
            self.procs.append(_Proc("worker", _spawn(worker, env, files["scratch"])))

    def _wait_ready(self, scratch: Path) -> bool:
        """Until every user has settled → True; False when a stop came first."""
        deadline = time.monotonic() + READY_TIMEOUT_S + self.spec.connect_timeout_s
        while self.reason is None:
            self._check_alive()
            settled = 0
            for path in scratch.glob("*.ready"):
                with contextlib.suppress(OSError, ValueError):
                    settled += int(json.loads(path.read_text())["settled"])
            if settled >= self.spec.connections:
                return True
            if time.monotonic() > deadline:
                raise LocustFailed(f"only {settled} of {self.spec.connections} users settled")
            time.sleep(_POLL_S)
        return False

    def _check_alive(self) -> None:
        for proc in self.procs:
            code = proc.popen.poll()
            if code is not None:
                raise LocustFailed(f"locust {proc.role} (pid {proc.popen.pid}) exited with {code}")

    def _cpu(self) -> dict[int, cputime.ProcCpu]:
        return cputime.read_pids(proc.popen.pid for proc in self.procs)

    def _stop(self) -> None:
        """SIGUSR1 to the local/master process; everything else follows from it. What
        has not exited after STOP_TIMEOUT_S (or at once, if the head is gone) is
        terminated, then killed."""
        if not self.procs:
            return
        head = self.procs[0].popen
        if head.poll() is None:
            head.send_signal(signal.SIGUSR1)
            self._wait_all(STOP_TIMEOUT_S)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p.popen for p in self.procs if p.popen.poll() is None]
            if not alive:
                return
            print(f"locust_worker: {sig.name} to {len(alive)} Locust process(es)", file=sys.stderr)
            for popen in alive:
                popen.send_signal(sig)
            self._wait_all(5.0)

    def _wait_all(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while any(p.popen.poll() is None for p in self.procs) and time.monotonic() < deadline:
            time.sleep(_POLL_S)

    # --- output ----------------------------------------------------------------------

    def _merge(
        self,
        scratch: Path,
        files: dict[str, Path],
        warmup_end_ns: int,
        end_ns: int,
        cpu0: dict[int, cputime.ProcCpu],
        cpu1: dict[int, cputime.ProcCpu],
    ) -> dict[str, Any]:
        spec = self.spec
        parts = []
        for path in scratch.glob("*.json"):
            info = json.loads(path.read_text())
            with np.load(path.with_suffix(".npz")) as npz:
                parts.append((info, {name: npz[name] for name in FIELDS}))
        parts.sort(key=lambda p: (p[0]["worker_index"], p[0]["pid"]))
        per_conn: list[dict[str, Any]] = []
        arrays: dict[str, list[Any]] = {name: [] for name in FIELDS}
        for info, arr in parts:
            offset = spec.first_conn + len(per_conn)
            for entry in info["per_connection"]:
                per_conn.append({**entry, "conn": offset + entry["conn"]})
            arr["conn"] = (arr["conn"].astype(np.int64) + offset).astype(np.uint32)
            for name in FIELDS:
                arrays[name].append(arr[name])
        merged = {
            name: np.concatenate(chunks) if chunks else np.zeros(0, dtype=_DTYPES[name])
            for name, chunks in arrays.items()
        }
        self.receipts = merged  # written with the result by pushbench.clients.worker.write_outputs

        totals: dict[str, Any] = {k: sum(int(c.get(k, 0)) for c in per_conn) for k in SUMMED}
        connected = [c for c in per_conn if c["connects"] > 0]
        totals["connect_ns_mean"] = (
            sum(c["connect_ns"] for c in connected) // len(connected) if connected else -1
        )
        totals["connect_ns_max"] = max((c["connect_ns"] for c in connected), default=-1)
        recorder = {
            k: sum(int(info["recorder"].get(k, 0)) for info, _ in parts) for k in _RECORDER_SUMMED
        }
        recorder["messages"] = len(merged["seq"])
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ran = _spent(cpu0, cpu1)
        clock_fix = _clock_of(info for info, _ in parts)
        shift = int(clock_fix.get("shift_ns", 0))  # this host's clock → the server's
        reason = self.reason or "stopped"
        if not parts and reason == "completed":
            reason = "failed: no Locust process wrote receipts"
        return {
            "complete": reason == "completed",
            "reason": reason,
            "transport": spec.transport,
            "connections": spec.connections,
            "connected": len(connected),
            "connect_failures": spec.connections - len(connected),
            "ready_ns": self.ready_ns + shift,
            "warmup_end_ns": warmup_end_ns + shift,
            "end_ns": end_ns + shift,
            "bytes_source": "socket",
            **recorder,
            "cpu_user_s": children.ru_utime,
            "cpu_sys_s": children.ru_stime,
            "cpu_user_s_run": ran.user_s,
            "cpu_sys_s_run": ran.sys_s,
            "max_rss_kb": children.ru_maxrss,
            **{
                f"window_{edge}": {**mark.to_dict(), "t_ns": mark.t_ns + shift}
                for edge, mark in self.marks.items()
            },
            "clock_offset_ns": clock_fix.get("offset_ns"),
            "clock_bound_ns": clock_fix.get("bound_ns"),
            "clock": clock_fix,
            "max_loop_lag_ns": max((int(info["max_loop_lag_ns"]) for info, _ in parts), default=0),
            "totals": totals,
            "per_connection": per_conn,
            "arrays": list(FIELDS),
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "spec": spec.to_dict(),
            "locust": self._locust_summary(files, parts),
        }

    def _locust_summary(
        self, files: dict[str, Path], parts: Sequence[tuple[dict[str, Any], Any]]
    ) -> dict[str, Any]:
        """What Locust itself counted (its final JSON stats), beside what each process fired."""
        requests = failures = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            entries = json.loads(files["json"].read_text())
            requests = sum(
                int(e["num_requests"]) - int(e["num_failures"])
                for e in entries
                if e["name"] == self.spec.topic
            )
            failures = sum(int(e["num_failures"]) for e in entries)
        return {
            "stats_csv": files["stats_csv"].name,
            "html": files["html"].name,
            "json": files["json"].name,
            "requests": requests,
            "failures": failures,
            "client_impl": CLIENT_IMPL,
            "user_class": user_classes()[self.spec.transport],
            "workers": self.spec.locust_workers,
            "processes": [
                {
                    "pid": info["pid"],
                    "role": info["role"],
                    "worker_index": info["worker_index"],
                    "users": info["users"],
                    "events": info["events"],
                    "failures": info["failures"],
                    "messages": info["recorder"].get("messages", 0),
                    "clock": info.get("clock"),
                }
                for info, _ in parts
            ],
        }


_DTYPES = {"conn": np.uint32, "seq": np.int64, "sched_ns": np.int64, "pub_ns": np.int64,
           "recv_ns": np.int64}  # fmt: skip


def _clock_of(infos: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The Locust processes' clock corrections (each measured its own and corrected its
    receipts by it) → the record's: the widest bound (the figure every latency of the
    worker is within); none measured (a process could not read ``/clock``) → no offset."""
    clocks = [info.get("clock") or {} for info in infos]
    if not clocks or any("offset_ns" not in c for c in clocks):
        return next((dict(c) for c in clocks if "offset_ns" not in c), {})
    return dict(max(clocks, key=lambda c: int(c["bound_ns"])))


def _spawn(argv: list[str], env: dict[str, str], cwd: Path) -> _Child:
    """A Locust process whose output goes to our stderr and which dies with us
    (:func:`pushbench.procs.spawn`). Its own directory: no ``locust.conf`` of the
    caller's is picked up."""
    return procs.spawn(argv, cwd=cwd, env=env, output=sys.stderr.fileno(), die_with_parent=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spent(
    first: Mapping[int, cputime.ProcCpu], last: Mapping[int, cputime.ProcCpu]
) -> cputime.CpuSpent:
    """CPU of the Locust processes between two readings: those in both only."""
    return cputime.spent(first, {pid: cpu for pid, cpu in last.items() if pid in first})


def _load_spec(path: str) -> WorkerSpec:
    """The worker spec, refused when the Locust users cannot run it."""
    spec = WorkerSpec.load(path)
    users = user_classes()
    if spec.transport not in users:
        raise ValueError(
            f"transport {spec.transport!r} has no Locust user (Locust users: "
            f"{', '.join(users)}: the transports with a gevent client in pushbench.registry)"
        )
    if spec.publish is not None:
        raise ValueError("the Locust users do not publish (publish must be null)")
    return spec


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when the output was written (also after an early stop)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pushbench.clients.locust_worker SPEC.json OUT", file=sys.stderr)
        return 2
    Settings.from_environ(os.environ).apply()
    try:
        spec = _load_spec(args[0])
    except (OSError, ValueError, TypeError) as exc:
        print(f"locust_worker: {exc}", file=sys.stderr)
        return 2
    run = LocustRun(spec, Path(args[1]).absolute(), dict(os.environ))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        run.request_stop(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    edges = {sig: edge for edge, sig in WINDOW_SIGNALS.items()}

    def on_mark(signum: int, _frame: FrameType | None) -> None:
        run.mark_window(edges[signal.Signals(signum)])

    for sig in edges:
        signal.signal(sig, on_mark)
    result = run.run()
    for sig in (signal.SIGTERM, signal.SIGINT, *WINDOW_SIGNALS.values()):
        signal.signal(sig, signal.SIG_IGN)  # nothing may interrupt the writing
    write_outputs(args[1], run.receipts, result)
    return 1 if str(result["reason"]).startswith("failed") else 0


if __name__ == "__main__":
    sys.exit(main())

"""A client worker process: ``python -m pushbench.clients.worker SPEC.json OUT``.

Runs ``connections`` clients of the spec's transport (its registry row's ``asyncio``
entry point, imported when needed) in one process (one
event loop, one core; the runner starts several workers when one core is not
enough), for ``warmup_s + duration_s`` after all of them are up, then stops
them and writes

- ``OUT.npz``: the recorder's arrays ``conn``, ``seq``, ``sched_ns``,
  ``pub_ns``, ``recv_ns``, truncated to the rows used;
- ``OUT.json``: a :class:`~pushbench.schema.worker.WorkerResult` (every worker
  kind writes one; the runner reads it back with ``read_output``):
  ``complete`` and ``reason``; the times ``ready_ns``, ``warmup_end_ns`` and
  ``end_ns`` (CLOCK_MONOTONIC); ``totals`` and ``per_connection`` counters
  (:class:`~pushbench.clients.common.ConnStats`); the recorder's ``messages``,
  ``overflow``, ``parse_errors``, ``slow_parses``; process CPU
  (``cpu_user_s``/``cpu_sys_s`` for the whole process, ``*_run`` for ready →
  end) and ``max_rss_kb``; the harness's own pauses (``max_loop_lag_ns`` with a
  histogram, ``gc_collections``, ``gc_pause_ns_sum``/``_max``, measured from
  ready on). A run that fails outright writes a
  :class:`~pushbench.schema.worker.WorkerFailure` instead.

``OUT`` may be given with a ``.npz`` or ``.json`` suffix; both files are
written next to each other, each atomically (temporary file, then rename),
the JSON last, so a JSON file that exists is complete and so is its npz.

Stdout carries one line, ``worker ready``, once every connection has either
connected or failed its first attempt (failures are counted in
``connect_failures`` and keep retrying); nothing else is printed there, but for a
staged spec (``stage_connections``) ``worker stage K`` first: its first
``stage_connections`` are up, K of them connected, and it waits for the runner's
SIGCONT (:data:`~pushbench.schema.worker.STAGE_SIGNAL`) before opening the rest.
SIGTERM or SIGINT stops the run early: the output is still written, with
``"complete": false`` and the signal as ``reason``. SIGUSR1 and SIGUSR2 (the runner's
window signals) mark the measured window's start and end: the process CPU and the
connections' summed counters are read then (``window_start``/``window_end``), so the
runner's client CPU and per-message figures cover its window, not the idle time around it.

Self-check client faults (the spec's ``faults``, combined with the environment's
``PUSHBENCH_CLIENT_FAULTS``: :class:`~pushbench.faults.ClientFaults`) are applied here
for every client at once: the recorder biases and drops receipts
(:mod:`pushbench.clients.faults`), and the loop stalls run from ready on; what was
applied is written back as ``client_faults`` (with the stalls and dropped receipts
counted).

Garbage collection: everything alive once the connections are up is frozen
(``gc.freeze``), so the collections that still happen during the run only
traverse what the run allocates, and every one of them is timed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import resource
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from pushbench import registry
from pushbench.faults import ClientFaults
from pushbench.fdlimit import CLIENT_FDS_PER_CONN, FD_SLACK, raise_nofile
from pushbench.schema.worker import (
    STAGE_LINE,
    STAGE_SIGNAL,
    WINDOW_SIGNALS,
    OutputError,
    WindowMark,
    WorkerFailure,
    WorkerOutput,
    WorkerResult,
    WorkerSpec,
    read_output,
)
from pushbench.settings import Settings

from .clockprobe import ClockCorrection, measure
from .common import SUMMED, ConnStats, clock, segment_totals, wait_stop
from .faults import FaultyRecorder, Stalls, make_recorder
from .ramp import Pacer
from .recorder import FIELDS, GcMonitor, LoopLagMonitor, Recorder
from .rxengine import RxEngine, choice
from .status import STEP_S, STEPS_PER_STATUS, LatencyWindow, write_status
from .tcpinfo import Moved, plus

__all__ = [
    "ArrivalFront",
    "ClientRun",
    "Stoppable",
    "Worker",
    "client_run",
    "main",
    "output_paths",
    "run_until_signalled",
    "write_outputs",
]

ClientRun = Callable[[int, WorkerSpec, Recorder, ConnStats, asyncio.Event], Awaitable[None]]
R_co = TypeVar("R_co", covariant=True)


def client_run(transport: str) -> ClientRun:
    """The asyncio client of ``transport``, from its registry row (``"module:attribute"``),
    imported only now: a worker loads the one client it runs."""
    run: ClientRun = registry.transport(transport).load_client("asyncio")  # type: ignore[assignment]
    return run


STOP_TIMEOUT_S = 10.0  # for the clients to end after stop, then they are cancelled
#: A staged worker goes on by itself after this long without the runner's STAGE_SIGNAL.
STAGE_WAIT_S = 60.0
MARK_CHUNK = 100  # sockets read per loop turn at a window mark (≈ 0.3 ms)
READY_LINE = "worker ready"


_NOTHING = np.iinfo(np.int64).min  # a connection that has received nothing yet


class ArrivalFront:
    """How far each connection of one worker has received, for the runner's drain.

    ``sched_ns[i]``: the latest scheduled time connection ``first_conn + i`` has received
    (vectorised ``np.maximum.at`` over each step's new rows, ~2.5 ns a row);
    ``recv_last_ns``: the receive time of the newest receipt. The status file carries
    ``sched_floor_ns`` — the lowest of those fronts, so the last message scheduled at
    or before it has reached every connection of this worker (``None`` while one has
    received nothing) — ``recv_last_ns`` and ``receiving`` (whether the last step saw
    new receipts). Scheduled times rather than seqs: the runner knows when the window's
    last message was scheduled whatever numbers the hub gives it (a Redis hub's seqs
    go on across cells; a chat cell's last seq is known only afterwards).
    """

    __slots__ = ("first_conn", "recv_last_ns", "sched_ns", "shift_ns")

    def __init__(self, first_conn: int, connections: int, shift_ns: int = 0) -> None:
        self.first_conn = first_conn
        self.shift_ns = shift_ns  # the worker's clock → the server's (its receipts' already)
        self.sched_ns = np.full(connections, _NOTHING, dtype=np.int64)
        self.recv_last_ns = 0

    def add(
        self,
        conn: npt.NDArray[np.uint32],
        sched_ns: npt.NDArray[np.int64],
        recv_ns: npt.NDArray[np.int64],
    ) -> None:
        """Advance the fronts by a slice of the recorder's rows."""
        if not len(conn):
            return
        np.maximum.at(self.sched_ns, conn.astype(np.intp) - self.first_conn, sched_ns)
        self.recv_last_ns = max(self.recv_last_ns, int(recv_ns.max()))

    def status(self, messages: int, p99_us: float | None, receiving: bool) -> dict[str, Any]:
        """The status file's body: progress (``t_ns``, ``messages``, ``p99_us``) and drain
        fields."""
        floor = int(self.sched_ns.min()) if len(self.sched_ns) else _NOTHING
        return {
            "t_ns": clock() + self.shift_ns,
            "messages": messages,
            "p99_us": p99_us,
            "sched_floor_ns": None if floor == _NOTHING else floor,
            "recv_last_ns": self.recv_last_ns or None,
            "receiving": receiving,
        }


class Worker:
    """One worker's run: connections, monitors, stop, and the :class:`WorkerResult`."""

    def __init__(
        self,
        spec: WorkerSpec,
        faults: ClientFaults | None = None,
        clock_fix: ClockCorrection | None = None,
    ) -> None:
        """``faults``: client faults on top of the spec's (the environment's); ``clock_fix``:
        this worker's clock against the server's, added to every time it writes."""
        self.spec = spec
        self.clock_fix = clock_fix or ClockCorrection(None)
        self.shift_ns = self.clock_fix.shift_ns
        self.faults = (spec.faults or ClientFaults()).combined(faults)
        self.recorder = make_recorder(spec.capacity, self.faults)
        self.stalls = Stalls(self.faults)
        self.stats = [ConnStats(spec.first_conn + i) for i in range(spec.connections)]
        self.stop = asyncio.Event()
        self.reason: str | None = None
        self.lag = LoopLagMonitor()
        self.gc = GcMonitor()
        self.ready_ns = 0
        self.ended = False
        self.connect_failures = 0
        self.ramp_ns = 0  # issue 18 item 2: time spent opening the connections
        self.open_files = "not raised"  # and the open-file limit main() raised
        self.marks: dict[str, WindowMark] = {}
        self.mark_tasks: list[asyncio.Task[None]] = []

    def mark_window(self, edge: str) -> None:
        """The runner's measured window starts or ends (``edge``, its
        :data:`~pushbench.schema.worker.WINDOW_SIGNALS` signal): read the process CPU and
        the connections' summed message and request counts now, and their bytes
        (:meth:`_mark_bytes`) right after. Only between ready and the end of the run; the
        first mark of an edge counts."""
        if not self.ready_ns or self.ended or edge in self.marks:
            return
        t_ns, usage = clock() + self.shift_ns, resource.getrusage(resource.RUSAGE_SELF)
        messages = sum(s.messages for s in self.stats)
        requests = sum(s.requests for s in self.stats)
        self.marks[edge] = WindowMark(t_ns, usage.ru_utime, usage.ru_stime, messages, requests)
        self.mark_tasks.append(asyncio.ensure_future(self._mark_bytes(edge)))

    async def _mark_bytes(self, edge: str) -> None:
        """The bytes so far of every connection into mark ``edge``: a ``getsockopt`` per
        open socket (~3 µs), :data:`MARK_CHUNK` at a time with the loop free in between,
        so a thousand connections never hold the receive path for milliseconds at the
        window's edges (the reading spreads over a few ms, at both edges alike)."""
        moved = Moved(0, 0, 0, 0)
        for k, stats in enumerate(self.stats, 1):
            moved = plus(moved, stats.bytes_now())
            if k % MARK_CHUNK == 0:
                await asyncio.sleep(0)
        self.marks[edge] = dataclasses.replace(self.marks[edge], **moved._asdict())

    def request_stop(self, reason: str) -> None:
        """Stop early (a signal, or a caller); the first reason given is kept."""
        if self.reason is None:
            self.reason = reason
        self.stop.set()

    async def run(self, on_ready: Callable[[], None] | None = None) -> WorkerResult:
        """Connect everything, run the timed window, stop → the OUT.json record."""
        spec = self.spec
        client = client_run(spec.transport)
        tasks: list[asyncio.Task[None]] = []
        gate = asyncio.Semaphore(spec.connect_concurrency)
        pacer = Pacer(spec.connect_rate)  # issue 18 item 2: a paced ramp (0: unpaced)

        async def launch(stats: ConnStats) -> None:
            await pacer.slot()
            async with gate:  # at most connect_concurrency connections opening at once
                if self.stop.is_set():
                    return
                coro = client(stats.conn, spec, self.recorder, stats, self.stop)
                tasks.append(asyncio.ensure_future(coro))
                await stats.settled.wait()

        self.gc.install()
        self.lag.start()
        rusage_ready = resource.getrusage(resource.RUSAGE_SELF)
        warmup_end = 0
        try:
            stage = spec.stage_connections
            ramp0 = clock()  # the ramp's time, the stage's memory reading left out
            await asyncio.gather(*(launch(s) for s in self.stats[: stage or None]))
            self.ramp_ns = clock() - ramp0
            if stage and not self.stop.is_set():
                await self._wait_stage(sum(1 for s in self.stats[:stage] if s.connected))
                ramp0 = clock()
                await asyncio.gather(*(launch(s) for s in self.stats[stage:]))
                self.ramp_ns += clock() - ramp0
            if not self.stop.is_set():
                self.connect_failures = sum(1 for s in self.stats if not s.connected)
                # The live status (only when the runner asked for it): set up now, not in the run.
                window = None if spec.status_path is None else LatencyWindow.warmed()
                GcMonitor.freeze()
                self.gc.reset()
                engine = RxEngine.live(self.recorder)
                if engine is not None:  # its loop receives: the lag probe is there
                    self.lag.attach(engine.engine)
                self.lag.reset()
                rusage_ready = resource.getrusage(resource.RUSAGE_SELF)
                self.ready_ns = clock()
                warmup_end = self.ready_ns + int(spec.warmup_s * 1e9)
                self.stalls.start()
                if on_ready is not None:
                    on_ready()
                status = None
                if spec.status_path is not None and window is not None:
                    status = asyncio.ensure_future(
                        self._report_status(Path(spec.status_path), window)
                    )
                try:
                    if not await wait_stop(self.stop, spec.warmup_s + spec.duration_s):
                        self.reason = "completed"
                finally:
                    if status is not None:
                        status.cancel()
            else:
                self.connect_failures = sum(1 for s in self.stats if not s.connected)
        finally:
            # The window ends here: stopping the clients is not part of it.
            end = clock()
            rusage_end = resource.getrusage(resource.RUSAGE_SELF)
            self.ended = True
            self.stalls.stop()
            pauses = {**self.lag.summary(), **self.gc.summary()}
            if self.mark_tasks:  # read before the clients end and their meters finish
                await asyncio.wait(self.mark_tasks)
            self.stop.set()
            await _finish(tasks)
            await self.lag.stop()
            self.gc.uninstall()
            gc.unfreeze()
        return self._result(warmup_end, end, rusage_ready, rusage_end, pauses)

    async def _wait_stage(self, connected: int) -> None:
        """The first stage is up: say so on stdout (:data:`STAGE_LINE` and ``connected``)
        and wait for the runner's :data:`STAGE_SIGNAL`, a stop, or :data:`STAGE_WAIT_S`."""
        loop = asyncio.get_running_loop()
        go = asyncio.Event()
        loop.add_signal_handler(STAGE_SIGNAL, go.set)
        try:
            print(f"{STAGE_LINE} {connected}", flush=True)
            waits = [asyncio.ensure_future(go.wait()), asyncio.ensure_future(self.stop.wait())]
            _, pending = await asyncio.wait(
                waits, timeout=STAGE_WAIT_S, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
        finally:
            loop.remove_signal_handler(STAGE_SIGNAL)

    async def _report_status(self, path: Path, window: LatencyWindow) -> None:
        """Every second: messages so far and the corrected p99 of the last second's
        receipts, written atomically. The receipts go into ``window`` (a log-linear
        histogram, :mod:`pushbench.clients.status`) every :data:`STEP_S` from the
        recorder's arrays, only the rows new since the step before, so the loop is never
        blocked for a whole second's worth at once (≤ 0.2 ms per step at 300,000/s).

        The same steps keep each connection's arrival front (:class:`ArrivalFront`) for
        the runner's drain, and the file is also rewritten at the first step with no new
        receipts after one with some (``receiving`` false), so the runner learns within
        ~0.2 s that the last message has arrived or that the worker went quiet. A busy
        worker is never written more than once a second; a worker receiving less than
        ~5 messages a second writes at most that often (~0.6 ms each, while idle)."""
        rec = self.recorder
        front = ArrivalFront(self.spec.first_conn, self.spec.connections, self.shift_ns)
        last = rec.n
        p99: float | None = None
        receiving = False
        while True:
            for _ in range(STEPS_PER_STATUS):
                await asyncio.sleep(STEP_S)
                n = rec.n
                if n > last:
                    recv = rec.recv_ns[last:n] + self.shift_ns  # on the server's clock
                    window.add(recv, rec.sched_ns[last:n])
                    front.add(rec.conn[last:n], rec.sched_ns[last:n], recv)
                    last = n
                    receiving = True
                elif receiving:  # quiet since the step before: tell the drain now
                    receiving = False
                    write_status(path, front.status(n + rec.overflow, p99, receiving))
            p99 = window.take(99.0)
            write_status(path, front.status(n + rec.overflow, p99, receiving))

    def _result(
        self,
        warmup_end_ns: int,
        end_ns: int,
        ready: resource.struct_rusage,
        last: resource.struct_rusage,
        pauses: dict[str, Any],
    ) -> WorkerResult:
        per_conn = [s.to_dict() for s in self.stats]
        connected = [s for s in self.stats if s.connected]
        totals: dict[str, int] = {k: sum(c[k] for c in per_conn) for k in SUMMED}
        totals.update(segment_totals(per_conn))
        totals["connect_ns_mean"] = (
            sum(s.connect_ns for s in connected) // len(connected) if connected else -1
        )
        totals["connect_ns_max"] = max((s.connect_ns for s in connected), default=-1)
        totals["publish_lag_max_ns"] = max(s.publish_lag_max_ns for s in self.stats)
        sources = {s.bytes_source for s in self.stats if s.connected} - {"elsewhere"}  # h35
        typed = {"max_loop_lag_ns", "mean_loop_lag_ns", "loop_lag_samples"}
        typed |= {"gc_collections", "gc_pause_ns_sum", "gc_pause_ns_max"}
        rec = self.recorder
        return WorkerResult(
            complete=self.reason == "completed",
            reason=self.reason or "stopped",
            transport=self.spec.transport,
            connections=self.spec.connections,
            connected=len(connected),
            connect_failures=self.connect_failures,
            ready_ns=self.ready_ns + self.shift_ns,
            warmup_end_ns=warmup_end_ns + self.shift_ns,
            end_ns=end_ns + self.shift_ns,
            bytes_source=_combined(sources),
            messages=rec.n,
            capacity=rec.capacity,
            overflow=rec.overflow,
            parse_errors=rec.parse_errors,
            slow_parses=rec.slow_parses,
            cpu_user_s=last.ru_utime,
            cpu_sys_s=last.ru_stime,
            cpu_user_s_run=last.ru_utime - ready.ru_utime,
            cpu_sys_s_run=last.ru_stime - ready.ru_stime,
            max_rss_kb=last.ru_maxrss,
            max_loop_lag_ns=int(pauses["max_loop_lag_ns"]),
            mean_loop_lag_ns=int(pauses["mean_loop_lag_ns"]),
            loop_lag_samples=int(pauses["loop_lag_samples"]),
            gc_collections=int(pauses["gc_collections"]),
            gc_pause_ns_sum=int(pauses["gc_pause_ns_sum"]),
            gc_pause_ns_max=int(pauses["gc_pause_ns_max"]),
            window_start=self.marks.get("start"),
            window_end=self.marks.get("end"),
            clock_offset_ns=None if (est := self.clock_fix.estimate) is None else est.offset_ns,
            clock_bound_ns=None if est is None else est.bound_ns,
            ramp_ns=self.ramp_ns,
            totals=totals,
            per_connection=tuple(per_conn),
            extra={
                **{k: v for k, v in pauses.items() if k not in typed},
                "arrays": list(FIELDS),
                "pid": os.getpid(),
                "python": sys.version.split()[0],
                "spec": self.spec.to_dict(),
                "clock": self.clock_fix.record(),
                "open_files": self.open_files,
                "rx_engine": choice(self.spec, self.recorder),  # h45: what received
                **self._faults_applied(),
            },
        )

    def _faults_applied(self) -> dict[str, Any]:
        """``client_faults`` for OUT.json: what this worker broke on purpose (nothing: {})."""
        if not self.faults.any:
            return {}
        applied: dict[str, Any] = {"faults": self.faults.as_text(), "stalls": self.stalls.count}
        if isinstance(self.recorder, FaultyRecorder):
            applied["receipts_dropped"] = self.recorder.dropped
        return {"client_faults": applied}


def _combined(sources: set[str]) -> str:
    """The connections' ``bytes_source`` values as one: the same everywhere, else partial."""
    if not sources:
        return "unavailable"
    return sources.pop() if len(sources) == 1 else "tcp_info-partial"


async def _finish(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for the clients to end after stop; cancel what is still running then."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            print(f"worker: client crashed: {task.exception()!r}", file=sys.stderr)


# --- output ---------------------------------------------------------------------------------


def output_paths(out: str | Path) -> tuple[Path, Path]:
    """``OUT`` (with or without ``.npz`` / ``.json``) → (OUT.npz, OUT.json)."""
    path = Path(out)
    if path.suffix in (".npz", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".npz"), path.with_name(path.name + ".json")


def write_outputs(
    out: str | Path,
    arrays: Mapping[str, npt.NDArray[Any]],
    result: WorkerOutput | Mapping[str, Any],
) -> None:
    """Both files of every worker kind, each atomically; the JSON last (its presence means
    both are whole). ``arrays``: the receipt arrays of
    :data:`~pushbench.clients.recorder.FIELDS`; ``result``: the record for OUT.json.

    A worker kind that still builds its result as a dictionary passes that: it is read
    as a record here (:func:`~pushbench.schema.worker.read_output`), and one that is not
    a whole record is written as a :class:`WorkerFailure` saying what it lacks, so the
    runner fails the cell with that reason instead of reading zeros."""
    record = _as_record(result)
    npz_path, json_path = output_paths(out)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz_path.with_name(f".{npz_path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:  # streamed: a second copy of millions of receipts is not needed
        np.savez(f, **arrays)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, npz_path)
    if isinstance(record, WorkerResult):
        record = dataclasses.replace(record, npz=npz_path.name)
    body = record.to_dict()
    if isinstance(record, WorkerFailure):
        body["npz"] = npz_path.name
    tmp = json_path.with_name(f".{json_path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(body, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, json_path)


def _as_record(result: WorkerOutput | Mapping[str, Any]) -> WorkerOutput:
    if isinstance(result, WorkerResult | WorkerFailure):
        return result
    try:
        return read_output(result)
    except (OutputError, TypeError, ValueError) as exc:
        reason = f"failed: bad worker output: {exc}"
        print(f"worker: {reason}", file=sys.stderr)
        rest = {k: v for k, v in result.items() if k not in ("complete", "failed", "reason")}
        rest.pop("messages", None)
        return WorkerFailure(reason, int(result.get("messages", 0) or 0), rest)


class Stoppable(Protocol[R_co]):
    """A worker run that a signal can end early (every worker kind); ``run`` returns what
    the worker kind passes to :func:`write_outputs`."""

    def request_stop(self, reason: str) -> None: ...

    def mark_window(self, edge: str) -> None: ...

    async def run(self, on_ready: Callable[[], None] | None = None) -> R_co: ...


async def run_until_signalled(worker: Stoppable[R_co]) -> R_co:
    """``worker.run()``, printing :data:`READY_LINE` when ready; SIGTERM/SIGINT stop it early
    (the output is still written, incomplete); the runner's window signals
    (:data:`~pushbench.schema.worker.WINDOW_SIGNALS`) call ``worker.mark_window``, and are
    ignored once the run is over (their default action would end the process)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop, signal.Signals(sig).name)
    for edge, sig in WINDOW_SIGNALS.items():
        loop.add_signal_handler(sig, worker.mark_window, edge)
    try:
        return await worker.run(lambda: print(READY_LINE, flush=True))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, *WINDOW_SIGNALS.values()):
            loop.remove_signal_handler(sig)
        for sig in WINDOW_SIGNALS.values():
            signal.signal(sig, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when the output was written (also after an early stop)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pushbench.clients.worker SPEC.json OUT", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_environ(os.environ)
        settings.apply()
        spec = WorkerSpec.load(args[0])
    except (OSError, ValueError, TypeError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    # issue 18 item 2: a descriptor or three per connection, past the usual limits
    limit = raise_nofile(CLIENT_FDS_PER_CONN * spec.connections + FD_SLACK)
    if not limit.enough:
        print(f"worker: warning: {limit.line()}", file=sys.stderr)
    loop_factory = None
    if spec.loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    worker = Worker(spec, settings.client_faults, measure(spec.base_url, settings.clock_skew_ns))
    worker.open_files = limit.line()  # issue 18 item 2: in OUT.json's extra
    status = 0
    result: WorkerOutput
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            result = runner.run(run_until_signalled(worker))
        except Exception as exc:  # still write what was recorded, marked incomplete
            print(f"worker: failed: {exc!r}", file=sys.stderr)
            worker.reason = f"failed: {type(exc).__name__}: {exc}"
            counters = worker.recorder.counters()
            messages = counters.pop("messages")
            result = WorkerFailure(worker.reason, messages, counters)
            status = 1
    # A late signal must not kill the process half-way through writing.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    arrays = worker.recorder.arrays()
    arrays["recv_ns"] += worker.shift_ns  # the receipts on the server's clock
    write_outputs(args[1], arrays, result)
    return status


if __name__ == "__main__":
    sys.exit(main())

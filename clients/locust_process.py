"""The per-process part of the Locust users: shared receipt arrays, the connection gate,
readiness notes, loop lag, and the output written when the process quits.

One :class:`LocustProcess` per Locust process (local, master or ``--worker``)
is made by ``clients/locustfile.py`` at Locust's ``init`` event; each new user
gets its :class:`~pushbench.clients.locust_common.PushSession` from
:meth:`LocustProcess.new_session`. The readiness file is what the runner's
wrapper (:mod:`pushbench.clients.locust_worker`) waits for. Without an output
directory (Locust run by hand) the arrays are a ring that is reused, so a long
run never fills them.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
import numpy as np

from pushbench.results import atomic_write_bytes, atomic_write_json
from pushbench.schema.worker import WorkerSpec

from .clockprobe import ClockCorrection, measure
from .common import clock
from .locust_common import FireRequest, MessageSink, PushSession
from .recorder import Recorder

__all__ = ["RING_CAPACITY", "LagMonitor", "LocustProcess"]

RING_CAPACITY = 1 << 16  # receipt rows when nothing is written out (a reused ring)


class LagMonitor:
    """How late a 1 ms ``gevent.sleep`` wakes up: every stall of the process's loop
    (a long callback, a collection, Locust's own work) delays the messages behind it."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.max_lag_ns = 0
        self.samples = 0
        self._greenlet: Any = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def reset(self) -> None:
        self.max_lag_ns = self.samples = 0

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _run(self) -> None:
        interval_ns = int(self.interval_s * 1e9)
        while True:
            t0 = clock()
            gevent.sleep(self.interval_s)
            lag = clock() - t0 - interval_ns
            self.samples += 1
            if lag > self.max_lag_ns:
                self.max_lag_ns = lag


class LocustProcess:
    """The push users of one Locust process (local, or one ``--worker``).

    ``out_dir`` (the wrapper's ``PUSHBENCH_RECEIPTS_DIR``) receives
    ``<pid>.ready`` while users connect (how many have settled: connected or
    failed their first attempt) and, from :meth:`write_outputs` when the
    process quits, ``<pid>.npz`` (receipt arrays; connection ids local to
    this process, in the order its users started) and ``<pid>.json``.
    """

    def __init__(
        self,
        fire: FireRequest,
        *,
        out_dir: Path | None = None,
        capacity: int = 2_000_000,
        connect_concurrency: int = 100,
        clock_skew_ns: int = 0,
    ) -> None:
        """``clock_skew_ns``: a deliberate error of this process's clock (tests only)."""
        self.fire = fire
        self.clock_skew_ns = clock_skew_ns
        self.clock_fix: ClockCorrection | None = None  # measured with the first user
        self._sink_lock = gevent.lock.Semaphore()
        self.out_dir = out_dir
        self.capacity = capacity if out_dir is not None else RING_CAPACITY
        self.gate = gevent.lock.Semaphore(connect_concurrency)
        self.sessions: list[PushSession] = []
        self.sink: MessageSink | None = None  # made with the first user: a master has none
        self.lag = LagMonitor()
        self.settled = 0
        self.role = "local"
        self.worker_index = 0

    def new_session(self, kind: type[PushSession], spec: WorkerSpec) -> PushSession:
        """A session for a new user; its connection id is its index in this process. The
        first one measures the process's clock offset to the server (``GET /clock``,
        :mod:`~pushbench.clients.clockprobe`; the others wait for it): every receive time
        of the process is corrected by it."""
        with self._sink_lock:
            if self.sink is None:
                self.clock_fix = measure(spec.base_url, self.clock_skew_ns)
                recorder = Recorder(self.capacity)
                self.sink = MessageSink(
                    self.fire, recorder, ring=self.out_dir is None, shift_ns=self.clock_fix.shift_ns
                )
        self.lag.start()  # again after a stop, for the next test of a web UI session
        session = kind(len(self.sessions), spec, self)
        self.sessions.append(session)
        return session

    def on_settled(self) -> None:
        """A user's first attempt is over; the lag from here on is the run's."""
        self.settled += 1
        self.lag.reset()
        if self.out_dir is not None:
            _replace(self.out_dir / f"{os.getpid()}.ready", json.dumps({"settled": self.settled}))

    def result(self) -> dict[str, Any]:
        """This process's counters (the JSON written beside its receipts)."""
        sink = self.sink
        per_conn = []
        for s in self.sessions:
            entry = s.stats.to_dict()
            entry["bytes_source"] = "socket"
            per_conn.append(entry)
        return {
            "pid": os.getpid(),
            "role": self.role,
            "worker_index": self.worker_index,
            "users": len(self.sessions),
            "settled": self.settled,
            "request_types": sorted({s.REQUEST_TYPE for s in self.sessions}),
            "events": sink.events if sink is not None else 0,
            "failures": sink.failures if sink is not None else 0,
            "recorder": sink.recorder.counters() if sink is not None else {},
            "max_loop_lag_ns": self.lag.max_lag_ns,
            "loop_lag_samples": self.lag.samples,
            "per_connection": per_conn,
            "clock": None if self.clock_fix is None else self.clock_fix.record(),
        }

    def write_outputs(self) -> None:
        """``<pid>.npz`` then ``<pid>.json`` (its presence means both are whole)."""
        if self.out_dir is None or self.sink is None:
            return
        self.lag.stop()
        buf = io.BytesIO()
        np.savez(buf, **self.sink.recorder.arrays())  # type: ignore[arg-type]
        pid = os.getpid()
        atomic_write_bytes(self.out_dir / f"{pid}.npz", buf.getvalue())
        atomic_write_json(self.out_dir / f"{pid}.json", self.result())


def _replace(path: Path, text: str) -> None:
    """Write-then-rename without fsync: a progress note, rewritten many times."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

"""The one receive path of every client, and the harness's own pauses.

:class:`Recorder` turns a received envelope (``pushbench.contract``) into one
row of five preallocated arrays — connection, sequence number, scheduled,
published and received time — and keeps nothing else. No Python object
survives a message: the arrays are filled through ``memoryview`` item
assignment (machine integers, no boxing into a container), and the envelope is
read with ``bytes.index`` and ``int()`` on slices, whose results (``bytes`` and
``int``) are not tracked by the garbage collector and die at once. A client
that kept one tuple per message saw 12 ms collector stalls in its own max
latency; with preallocated arrays they are 1-3 ms, and :class:`GcMonitor`
shows what is left. When the arrays are full the recorder counts ``overflow``
rather than grow: a reallocation mid-run would be a pause of its own.

The fast parse relies on the fixed encoding ``{"t":…,"s":N,"sch":N,"pub":N,
"p":…}`` (keys in this order, no spaces; topics cannot contain quotes). Any
other input goes through ``json`` (``slow_parses``) and, if it is no envelope
at all, is counted in ``parse_errors`` and not recorded.

:class:`LoopLagMonitor` measures how late a 1 ms sleep wakes up: every stall of
the client's own event loop (a long callback, a collection, the scheduler)
delays every message received meanwhile, so the worker reports it beside the
latencies it may have inflated.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from pushbench.wire import speedups

ScanFunction = Callable[..., tuple[int, int, int, int]]
PollScanFunction = Callable[..., tuple[int, int, int] | None]
_SCAN: ScanFunction | None
_SCAN_POLL: PollScanFunction | None
try:
    from ._scan import scan_envelopes as _SCAN
    from ._scan import scan_poll_answer as _SCAN_POLL
except ImportError:  # pragma: no cover - depends on the build
    _SCAN = _SCAN_POLL = None

__all__ = ["FIELDS", "GcMonitor", "LoopLagMonitor", "Recorder"]

FIELDS = ("conn", "seq", "sched_ns", "pub_ns", "recv_ns")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UINT32_MAX = 2**32 - 1


def _int64(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


class Recorder:
    """Preallocated receipt arrays of one worker process (all its connections).

    ``record`` is the per-message call of every client; ``record_batch`` takes
    a whole poll answer, all of its messages sharing one receive time.
    """

    __slots__ = (
        "_mconn",
        "_mpub",
        "_mrecv",
        "_msch",
        "_mseq",
        "asyncio_only",
        "capacity",
        "conn",
        "n",
        "overflow",
        "parse_errors",
        "pub_ns",
        "recv_ns",
        "rows",
        "sched_ns",
        "seq",
        "slow_parses",
    )

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.conn = _prefaulted(capacity, np.uint32)
        self.seq = _prefaulted(capacity, np.int64)
        self.sched_ns = _prefaulted(capacity, np.int64)
        self.pub_ns = _prefaulted(capacity, np.int64)
        self.recv_ns = _prefaulted(capacity, np.int64)
        #: the five arrays in the order the compiled helpers take them (_scan.c, _rxloop.c)
        self.rows = (self.seq, self.sched_ns, self.pub_ns, self.recv_ns, self.conn)
        # memoryview item assignment is ~10% faster than numpy's __setitem__.
        self._mconn = memoryview(self.conn)  # type: ignore[arg-type]
        self._mseq = memoryview(self.seq)  # type: ignore[arg-type]
        self._msch = memoryview(self.sched_ns)  # type: ignore[arg-type]
        self._mpub = memoryview(self.pub_ns)  # type: ignore[arg-type]
        self._mrecv = memoryview(self.recv_ns)  # type: ignore[arg-type]
        self.n = 0  # rows used
        self.overflow = 0  # messages not recorded because the arrays were full
        self.parse_errors = 0  # inputs that were no envelope (not recorded)
        self.slow_parses = 0  # envelopes the fast path did not recognise (recorded via json)
        # h45: receipts must pass through the asyncio loop (a self-check's loop stalls
        # must delay them): the compiled receive loop (.rxengine) is not used.
        self.asyncio_only = False

    # --- the receive path ----------------------------------------------------

    def record(self, conn: int, data: bytes | bytearray, recv_ns: int) -> int:
        """Record one envelope received on connection ``conn`` → its seq (-1: not one)."""
        try:
            if not data.startswith(b'{"t":"'):
                raise ValueError
            i = data.index(b'"s":', 6)
            j = data.index(b',"sch":', i)
            k = data.index(b',"pub":', j)
            m = data.index(b',"p":', k)
            seq = int(data[i + 4 : j])
            sch = int(data[j + 7 : k])
            pub = int(data[k + 7 : m])
            n = self.n
            if n < self.capacity:
                # Values out of range raise before n moves: the row is just rewritten.
                self._mseq[n] = seq
                self._msch[n] = sch
                self._mpub[n] = pub
                self._mrecv[n] = recv_ns
                self._mconn[n] = conn
                self.n = n + 1
            else:
                self.overflow += 1
            return seq
        except (ValueError, TypeError, OverflowError):
            return self._record_json(conn, data, recv_ns)

    def record_many(
        self, conn: int, payloads: list[bytes | bytearray], recv_ns: int
    ) -> tuple[int, int]:
        """Record every envelope of ``payloads`` (one read's messages, one receive time)
        → (the largest seq among them or -1, how many payloads).

        The same rows, counters and order as :meth:`record` per payload; with the
        compiled scanner (``clients/_scan.c``, used while the codec's C helpers are
        on: :mod:`pushbench.wire.speedups`) the whole list is one call, and a
        payload it does not recognise is handed to :meth:`record`.
        """
        last = -1
        scan = _SCAN if speedups.C_PARSE is not None else None
        total = len(payloads)
        if scan is None or not 0 <= conn <= _UINT32_MAX:
            record = self.record
            for data in payloads:
                seq = record(conn, data, recv_ns)
                if seq > last:
                    last = seq
            return last, total
        i = 0
        while True:
            n0 = self.n
            i, n, top, count = scan(payloads, i, conn, recv_ns, *self.rows, n0)
            self.n = n
            self.overflow += count - (n - n0)
            if count and top > last:
                last = top
            if i >= total:
                return last, total
            seq = self.record(conn, payloads[i], recv_ns)  # what the scanner did not read
            if seq > last:
                last = seq
            i += 1

    def record_batch(self, conn: int, body: bytes | bytearray, recv_ns: int) -> tuple[int, int]:
        """Record a poll answer ``{"last":N,"messages":[…]}`` → (last, messages in it).

        ``last`` is -1 when the body is no poll answer (counted in
        ``parse_errors``). The compiled scan (``clients/_scan.c``, while the codec's
        C helpers are on) reads the body first; what it does not recognise goes to
        the pure scan (:meth:`_scan_batch`, the same searches in the same order). A
        body the pure scan does not fully understand is rolled back and re-read
        with json, so no message is recorded twice.
        """
        n0, overflow0 = self.n, self.overflow
        scan = _SCAN_POLL if speedups.C_PARSE is not None else None
        if scan is not None and 0 <= conn <= _UINT32_MAX:
            got = scan(body, conn, recv_ns, *self.rows, n0)
            if got is not None:  # else: rows past n0 are forgotten, the pure scan reads it
                last, count, n = got
                self.n = n
                self.overflow += count - (n - n0)
                return last, count
        try:
            return self._scan_batch(conn, body, recv_ns)
        except (ValueError, TypeError, OverflowError, IndexError):
            self.n, self.overflow = n0, overflow0
        try:
            obj = json.loads(body)
            last = obj["last"]
            messages = obj["messages"]
            if not _int64(last) or not isinstance(messages, list):
                raise ValueError
        except (ValueError, TypeError, KeyError):
            self.parse_errors += 1
            return -1, 0
        self.slow_parses += 1
        for msg in messages:
            self._record_obj(conn, msg, recv_ns)
        return last, len(messages)

    def _scan_batch(self, conn: int, body: bytes | bytearray, recv_ns: int) -> tuple[int, int]:
        if not body.startswith(b'{"last":'):
            raise ValueError
        c = body.index(b',"messages":[', 8)
        last = int(body[8:c])
        pos = c + 13
        if body.startswith(b"]}", pos):
            return last, 0
        count = 0
        capacity = self.capacity
        while True:
            if not body.startswith(b'{"t":"', pos):
                raise ValueError
            i = body.index(b'"s":', pos + 6)
            j = body.index(b',"sch":', i)
            k = body.index(b',"pub":', j)
            m = body.index(b',"p":"', k)
            seq = int(body[i + 4 : j])
            sch = int(body[j + 7 : k])
            pub = int(body[k + 7 : m])
            end = _string_end(body, m + 6)
            if body[end + 1] != 0x7D:  # '}' closes the envelope
                raise ValueError
            n = self.n
            if n < capacity:
                self._mseq[n] = seq
                self._msch[n] = sch
                self._mpub[n] = pub
                self._mrecv[n] = recv_ns
                self._mconn[n] = conn
                self.n = n + 1
            else:
                self.overflow += 1
            count += 1
            pos = end + 2
            sep = body[pos]
            if sep == 0x2C:  # ','
                pos += 1
            elif sep == 0x5D and body.startswith(b"]}", pos):  # ']'
                if pos + 2 != len(body):
                    raise ValueError
                return last, count
            else:
                raise ValueError

    def _record_json(self, conn: int, data: bytes | bytearray, recv_ns: int) -> int:
        """The fallback: whatever the fast path refused, read as JSON."""
        try:
            obj = json.loads(data)
        except (ValueError, TypeError):
            self.parse_errors += 1
            return -1
        seq = self._record_obj(conn, obj, recv_ns)
        if seq >= 0:
            self.slow_parses += 1
        return seq

    def _record_obj(self, conn: int, obj: Any, recv_ns: int) -> int:
        if not isinstance(obj, dict):
            self.parse_errors += 1
            return -1
        seq: Any = obj.get("s")
        sch: Any = obj.get("sch")
        pub: Any = obj.get("pub")
        if not (_int64(seq) and _int64(sch) and _int64(pub) and 0 <= conn <= _UINT32_MAX):
            self.parse_errors += 1
            return -1
        n = self.n
        if n < self.capacity:
            self._mseq[n] = seq
            self._msch[n] = sch
            self._mpub[n] = pub
            self._mrecv[n] = recv_ns
            self._mconn[n] = conn
            self.n = n + 1
        else:
            self.overflow += 1
        return int(seq)

    # --- output --------------------------------------------------------------

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The used rows of every array (views, no copy)."""
        n = self.n
        return {name: getattr(self, name)[:n] for name in FIELDS}

    def counters(self) -> dict[str, int]:
        return {
            "messages": self.n,
            "capacity": self.capacity,
            "overflow": self.overflow,
            "parse_errors": self.parse_errors,
            "slow_parses": self.slow_parses,
        }


def _prefaulted(capacity: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """An array whose pages are already mapped: a first-touch page fault in the
    receive path would be a (small) pause of the harness's own."""
    arr = np.empty(capacity, dtype=dtype)
    arr.fill(0)
    return arr


def _string_end(buf: bytes | bytearray, start: int) -> int:
    """Index of the quote closing a JSON string that starts at ``start`` (after its
    opening quote) and is the last member of its object (so followed by ``}``)."""
    end = buf.index(b'"}', start)
    while True:
        b = end - 1
        while b >= start and buf[b] == 0x5C:  # backslashes before the quote
            b -= 1
        if (end - 1 - b) % 2 == 0:
            return end
        end = buf.index(b'"}', end + 1)


# --- the harness's own pauses ------------------------------------------------------


class LagSource(Protocol):
    """Another loop's lag probe (the compiled receive loop's ``Engine.lag``):
    ``lag(reset)`` → (max ns, when, sum ns, samples, counts per EDGES_US bucket)."""

    def lag(self, reset: bool, /) -> tuple[int, int, int, int, tuple[int, ...]]: ...


class LoopLagMonitor:
    """How late the event loop runs a timer due every 5 ms: max and a small histogram.

    The lag includes the timer granularity of the loop (asyncio rounds its
    poll timeout up to whole milliseconds), so a healthy idle loop shows lags
    up to about 1 ms; anything beyond is a stall of the client process. A stall
    of S ms shows as a lag between S - 5 and S ms: one timer falls due within any
    5 ms of it.

    Why 5 ms and a bare timer callback, not a task sleeping 1 ms: each wake-up
    from an idle loop costs ~50 µs of CPU on this VM (the timer interrupt and the
    context switch, not Python), so a 1 ms ticker alone took ~5 % of a core per
    worker, a third of what a worker spent per message at 10,000 deliveries/s;
    at 5 ms it is ~1 %.

    A worker whose connections were handed to the compiled receive loop
    (:mod:`.rxengine`) receives there, not on this loop, so the 5 ms probe runs in
    that loop (``Engine.probe``: a timerfd in its epoll set, exact, no asyncio
    rounding) and :meth:`attach` merges it: max of the two, histograms and means
    over both. This loop's own timer then falls due every :data:`ATTACHED_INTERVAL_S`
    (its stalls reach the receipts only through the GIL at the compiled loop's
    syncs, which the compiled probe sees). The worker attaches the engine running at
    ready; one made later (every connection ended, then one reconnected) is not merged,
    and only this loop's 50 ms timer covers that time. On 2026-12-07 an asyncio timer wake-up of
    an idle worker cost ~200 µs of CPU on this VM against ~85 µs for a bare
    ``epoll_wait``: the 5 ms asyncio probe alone was 3–5 µs of a default cell's
    ~15 µs of client CPU per message.
    """

    ATTACHED_INTERVAL_S = 0.05

    EDGES_US = (100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
    INTERVAL_S = 0.005

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.max_lag_ns = 0
        self.max_lag_at_ns = 0  # when the longest stall ended (CLOCK_MONOTONIC)
        self.sum_lag_ns = 0
        self.samples = 0
        self.counts = [0] * (len(self.EDGES_US) + 1)  # last bucket: ≥ 100 ms
        self._discard = False  # the timer in flight at reset() was set before it
        self._timer: asyncio.TimerHandle | None = None
        self._due_ns = 0
        self._edges = [e * 1000 for e in self.EDGES_US]
        self._other: LagSource | None = None  # the compiled loop's probe, once attached

    def attach(self, other: LagSource) -> None:
        """Merge the probe of the loop that now receives (see the class docstring) and
        slow this loop's own timer to :data:`ATTACHED_INTERVAL_S` from its next firing."""
        self._other = other
        self.interval_s = self.ATTACHED_INTERVAL_S

    def start(self) -> None:
        self._arm(asyncio.get_running_loop())

    async def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def reset(self) -> None:
        """Forget what was measured so far (the connection ramp is not the run)."""
        self.max_lag_ns = self.max_lag_at_ns = self.sum_lag_ns = self.samples = 0
        self.counts = [0] * (len(self.EDGES_US) + 1)
        self._discard = True
        if self._other is not None:
            self._other.lag(True)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due_ns = time.monotonic_ns() + int(self.interval_s * 1e9)
        self._timer = loop.call_later(self.interval_s, self._fired, loop)

    def _fired(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None:  # stopped
            return
        t1 = time.monotonic_ns()
        if self._discard:  # it spans the reset (and what ran just before it)
            self._discard = False
        else:
            lag = max(0, t1 - self._due_ns)
            self.samples += 1
            self.sum_lag_ns += lag
            if lag > self.max_lag_ns:
                self.max_lag_ns = lag
                self.max_lag_at_ns = t1
            self.counts[bisect.bisect_right(self._edges, lag)] += 1
        self._arm(loop)

    def summary(self) -> dict[str, Any]:
        """This loop's figures, merged with the attached probe's."""
        top, at, total, samples = self.max_lag_ns, self.max_lag_at_ns, self.sum_lag_ns, self.samples
        counts = list(self.counts)
        if self._other is not None:
            o_max, o_at, o_sum, o_samples, o_counts = self._other.lag(False)
            if o_max > top:
                top, at = o_max, o_at
            total += o_sum
            samples += o_samples
            counts = [a + b for a, b in zip(counts, o_counts, strict=True)]
        return {
            "max_loop_lag_ns": top,
            "max_loop_lag_at_ns": at,
            "mean_loop_lag_ns": total // samples if samples else 0,
            "loop_lag_samples": samples,
            "loop_lag_hist": {"edges_us": list(self.EDGES_US), "counts": counts},
            "loop_lag_probe": self.describe(),
        }

    def describe(self) -> str:
        """Which timers the figures come from (the worker's result keeps it)."""
        own = f"asyncio timer every {self.interval_s * 1e3:g} ms"
        if self._other is None:
            return own
        return f"receive loop's timerfd every {self.INTERVAL_S * 1e3:g} ms + {own}"


class GcMonitor:
    """Every garbage collection of this process, timed through ``gc.callbacks``.

    Installed before the connections are set up; the worker calls
    :meth:`freeze` once they are, moving everything alive into the permanent
    generation so later collections do not traverse the setup's objects.
    """

    def __init__(self) -> None:
        self.collections = [0, 0, 0]  # per generation
        self.pause_ns_sum = 0
        self.pause_ns_max = 0
        self._t0 = 0
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def reset(self) -> None:
        self.collections = [0, 0, 0]
        self.pause_ns_sum = self.pause_ns_max = 0

    @staticmethod
    def freeze() -> None:
        """Collect once, then freeze what is alive (the setup) out of future collections."""
        gc.collect()
        gc.freeze()

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter_ns()
            return
        pause = time.perf_counter_ns() - self._t0
        self.pause_ns_sum += pause
        if pause > self.pause_ns_max:
            self.pause_ns_max = pause
        gen = info.get("generation", 0)
        if 0 <= gen < len(self.collections):
            self.collections[gen] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "gc_collections": sum(self.collections),
            "gc_collections_by_generation": list(self.collections),
            "gc_pause_ns_sum": self.pause_ns_sum,
            "gc_pause_ns_max": self.pause_ns_max,
            "gc_frozen_objects": gc.get_freeze_count(),
        }

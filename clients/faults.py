"""The client side of the self-check's faults: a deliberately broken instrument.

Every asyncio client hands what it receives to the worker's
:class:`~pushbench.clients.recorder.Recorder` (``record`` per message, ``record_many``
per read of several, ``record_batch`` per poll answer): that is the one receive path,
so the faults that falsify receipts live in a recorder of their own,
:class:`FaultyRecorder`, which the
worker makes instead of the plain one when a fault asks for it
(:func:`make_recorder`). No client module knows about faults, and a run without them
keeps the plain recorder's path untouched.

- a receive-time bias: every receive timestamp is recorded ``recv_bias_ms`` late;
- dropped receipts: every ``drop_receipt_every``-th message received (counted over the
  worker's connections) is not recorded; the client still sees it (its cursor, its
  counters), as a recorder that loses rows would;
- stalls (:class:`Stalls`): every ``stall_every_ms`` the worker's event loop is
  blocked for ``stall_ms`` (``time.sleep`` in a callback), from the moment the worker
  is ready on, as a slow callback or a collection would block it.
"""

from __future__ import annotations

import asyncio
import time

from pushbench.faults import ClientFaults

from .recorder import Recorder

__all__ = ["FaultyRecorder", "Stalls", "make_recorder"]


def make_recorder(capacity: int, faults: ClientFaults | None) -> Recorder:
    """The worker's recorder: a :class:`FaultyRecorder` when ``faults`` touch receipts."""
    if faults is not None and faults.recorder:
        return FaultyRecorder(capacity, faults)
    recorder = Recorder(capacity)
    # h45: a stalled event loop must delay receipts, so they stay on it (not .rxengine)
    recorder.asyncio_only = faults is not None and faults.any
    return recorder


class FaultyRecorder(Recorder):
    """A :class:`Recorder` that biases every receive time and forgets every Nth receipt."""

    __slots__ = ("bias_ns", "drop_every", "dropped", "received")

    def __init__(self, capacity: int, faults: ClientFaults) -> None:
        super().__init__(capacity)
        self.bias_ns = round(faults.recv_bias_ms * 1e6)
        self.drop_every = faults.drop_receipt_every
        self.received = 0  # rows the plain recorder would have kept (recorded or dropped)
        self.dropped = 0  # of those, not kept

    def record(self, conn: int, data: bytes | bytearray, recv_ns: int) -> int:
        n0 = self.n
        seq = super().record(conn, data, recv_ns + self.bias_ns)
        if self.n > n0:
            self._forget(n0)
        return seq

    def record_batch(self, conn: int, body: bytes | bytearray, recv_ns: int) -> tuple[int, int]:
        n0 = self.n
        answer = super().record_batch(conn, body, recv_ns + self.bias_ns)
        if self.n > n0:
            self._forget(n0)
        return answer

    def record_many(
        self, conn: int, payloads: list[bytes | bytearray], recv_ns: int
    ) -> tuple[int, int]:
        """One read's messages, each through :meth:`record` (so through the faults): the
        compiled scanner of the plain recorder would write its rows past them."""
        last = -1
        for data in payloads:
            seq = self.record(conn, data, recv_ns)
            if seq > last:
                last = seq
        return last, len(payloads)

    def _forget(self, n0: int) -> None:
        """Rows ``n0:n`` were just recorded: drop every Nth receipt of them, moving the
        kept rows down over the dropped ones."""
        n = self.n
        if not self.drop_every:
            self.received += n - n0
            return
        keep = n0
        for row in range(n0, n):
            self.received += 1
            if self.received % self.drop_every == 0:
                self.dropped += 1
                continue
            if keep != row:
                for array in (self.conn, self.seq, self.sched_ns, self.pub_ns, self.recv_ns):
                    array[keep] = array[row]
            keep += 1
        self.n = keep

    def counters(self) -> dict[str, int]:
        return {**super().counters(), "fault_receipts_dropped": self.dropped}


class Stalls:
    """Block the running event loop for ``stall_ms`` every ``stall_every_ms`` (from
    :meth:`start` until :meth:`stop`); ``count`` says how many stalls happened."""

    def __init__(self, faults: ClientFaults) -> None:
        self.stall_s = faults.stall_ms / 1000
        self.every_s = faults.stall_every_ms / 1000
        self.count = 0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.stall_s > 0 and self._handle is None:
            self._schedule(asyncio.get_running_loop().time() + self.every_s)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, when: float) -> None:
        self._handle = asyncio.get_running_loop().call_at(when, self._stall, when)

    def _stall(self, when: float) -> None:
        time.sleep(self.stall_s)  # the fault: nothing else runs on this loop meanwhile
        self.count += 1
        self._schedule(when + self.every_s)

"""Server-originated load: publish at a fixed rate, open loop, stamped with the schedule.

Message *i* is scheduled at ``start + i / rate``. The ticker never lets a late
wake-up delay the schedule: when it wakes it publishes every message whose time
has come, each stamped with its own scheduled time, so a pause in the server
shows up as latency (measured from the schedule) rather than vanishing from the
data — the coordinated-omission trap. How late each publish ran (its wake-up
behind the schedule) is kept in a preallocated array (one store per publish,
nothing to trace for the GC; the last :data:`LAG_CAPACITY` publishes when the
ticker runs longer) and reported as ``lag_p50_us``, ``lag_p99_us`` and
``lag_max_us``, so the pacing error is visible.

The ticker runs inside the server, on the server's core, so the server's CPU
includes it. Its own share is measured apart (``own_cpu_us``, ``own_cpu_us_per_msg``
in its status): the thread CPU (``time.thread_time_ns``, a
:class:`~pushbench.cputime.ThreadCpuMeter`) of the pacing loop, the timer's arming and
the bookkeeping per message — not of ``hub.publish`` (envelope, encoding, history,
fan-out to every subscriber: the stack's work, as for any publisher), not the event
loop's turns between its wake-ups. The meter times one section in
:data:`METER_SAMPLE_EVERY` and scales up (:attr:`ThreadCpuMeter.estimate_ns`): a clock
read is a system call of ~1 µs here, and four per message would have been a cost of
the meter's own in the server's figure that no twin pays.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np

from .contract import now_ns
from .cputime import ThreadCpuMeter
from .payloads import make_payloads
from .schedule import open_loop

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["LAG_CAPACITY", "METER_SAMPLE_EVERY", "Ticker"]

LAG_CAPACITY = 262_144  # publish lags kept (a ring beyond): 2 MiB
#: The ticker's meter times one section in this many (odd: a turn of the loop has two
#: kinds of section, before and after the publish, and both get sampled in turn).
METER_SAMPLE_EVERY = 7


class Ticker:
    def __init__(
        self,
        hub: Hub,
        topic: str,
        *,
        rate: float,
        payload_size: int = 100,
        payload_kind: str = "filler",
        count: int | None = None,
        duration_s: float | None = None,
        start_delay_s: float = 0.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.hub = hub
        self.topic = topic
        self.rate = rate
        # h25 (compression): one filler text, or a pool of different JSON texts sent in turn
        self.payloads = make_payloads(payload_kind, payload_size)
        self.payload = self.payloads[0]
        if count is None:
            count = int(rate * duration_s) if duration_s is not None else None
        self.count = count
        self.start_delay_s = start_delay_s
        self.sent = 0
        self.lag_max_ns = 0
        self.lag_sum_ns = 0
        # wake-up lateness per publish, ns (a ring of the most recent when count is larger)
        self._lags = np.zeros(min(count or LAG_CAPACITY, LAG_CAPACITY), dtype=np.int64)
        self._lags_view = memoryview(self._lags)  # type: ignore[arg-type]
        self._nlags = 0
        self.start_ns = 0
        # Sequence numbers the hub gave the first and the last message published (0: none
        # yet). A hub shared with earlier runs (Redis) does not number from 1, so the
        # runner maps message i to seq ``first_seq + i`` from these, not from 1 + i.
        self.first_seq = 0
        self.last_seq = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.meter = ThreadCpuMeter(METER_SAMPLE_EVERY)  # own CPU, hub.publish left out

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        self.start_ns = now_ns() + int(self.start_delay_s * 1e9)
        await open_loop(
            self._send,
            rate=self.rate,
            start_ns=self.start_ns,
            count=self.count,
            on_lag=self._lag,
            meter=self.meter,
            send_many=self._send_many,
        )

    def _lag(self, lag_ns: int) -> None:
        self.lag_sum_ns += lag_ns
        self._lags_view[self._nlags % len(self._lags)] = lag_ns
        self._nlags += 1
        if lag_ns > self.lag_max_ns:
            self.lag_max_ns = lag_ns

    async def _send(self, due_ns: int) -> None:
        if self._stopping:
            # stop() cancelled us, but the hub's client swallowed the cancellation
            # (redis-py sends through asyncio.wait_for, which on 3.11 can drop a
            # cancel that lands as the command completes): end here instead.
            raise asyncio.CancelledError
        self.meter.pause()  # the hub's publish and fan-out: the stack's cost
        try:
            payloads = self.payloads
            seq = await self.hub.publish(self.topic, payloads[self.sent % len(payloads)], due_ns)
        finally:
            self.meter.resume()
        if not self.sent:
            self.first_seq = seq
        self.last_seq = seq
        self.sent += 1

    async def _send_many(self, dues: list[int]) -> None:
        """Several messages due at once (the ticker woke late): published together, so
        each subscriber's connection takes them in one write."""
        if self._stopping:
            raise asyncio.CancelledError
        self.meter.pause()  # the hub's publish and fan-out: the stack's cost
        try:
            payload = self.payloads[self.sent % len(self.payloads)]
            seqs = await self.hub.publish_many(self.topic, payload, dues)
        finally:
            self.meter.resume()
        if seqs:
            if not self.sent:
                self.first_seq = seqs[0]
            self.last_seq = seqs[-1]
        self.sent += len(seqs)

    def status(self) -> dict[str, Any]:
        lags = self._lags[: min(self._nlags, len(self._lags))]
        p50, p99 = np.percentile(lags, [50, 99]) / 1000 if len(lags) else (0.0, 0.0)
        return {
            "topic": self.topic,
            "rate": self.rate,
            "payload_size": len(self.payload),
            "count": self.count,
            "sent": self.sent,
            "running": self.running,
            "start_ns": self.start_ns,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "lag_max_us": self.lag_max_ns / 1000,
            "lag_p50_us": float(p50),
            "lag_p99_us": float(p99),
            "lag_mean_us": (self.lag_sum_ns / self.sent / 1000) if self.sent else 0.0,
            "own_cpu_us": self.meter.estimate_ns / 1000,
            "own_cpu_us_per_msg": (self.meter.estimate_ns / self.sent / 1000)
            if self.sent
            else None,
        }

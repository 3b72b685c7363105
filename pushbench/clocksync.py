"""The clock offset between a client worker and the server, NTP-style (pure: no I/O).

Every latency is a receive time minus the envelope's scheduled time; the second is the
server's CLOCK_MONOTONIC, the first the worker's. On one host both read one clock; a worker
on another host reads another, whose origin is unrelated (its boot), so its receive times
must be mapped onto the server's clock first. The worker makes a few ``GET /clock``
exchanges (:mod:`pushbench.clients.clockprobe`): for each, its clock ``t0`` before the
request, the server's reading ``server_ns``, its clock ``t1`` once the answer is read
(:class:`ClockSample`). The server read its clock somewhere in ``[t0, t1]``; assuming the
midpoint, ``offset = server_ns - (t0 + t1) / 2`` and the error is at most half the round
trip ``(t1 - t0) / 2`` whatever the asymmetry of the two directions. :func:`estimate`
keeps the sample with the smallest round trip (the tightest bound; queueing only ever adds
to a round trip) — :class:`ClockEstimate`. A worker time ``t`` is then server time
``t + offset_ns``, within ``± bound_ns``.

When the server answers that it reads the same clock as the worker (the same kernel boot
and time-namespace offset: :func:`pushbench.contract.clock_identity`) and no skew was
injected for a test, :func:`same_clock` says so: offset 0, bound 0, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ClockEstimate", "ClockSample", "estimate", "same_clock"]


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One exchange: the worker's clock before (``t0_ns``) and after (``t1_ns``), the
    server's reading in between (``server_ns``)."""

    t0_ns: int
    server_ns: int
    t1_ns: int

    def __post_init__(self) -> None:
        if self.t1_ns < self.t0_ns:
            raise ValueError("a clock sample must have t1_ns >= t0_ns")

    @property
    def rtt_ns(self) -> int:
        return self.t1_ns - self.t0_ns

    @property
    def offset_ns(self) -> int:
        """Server minus worker at the midpoint: ``server_ns - (t0 + t1) / 2`` (floor)."""
        return self.server_ns - (self.t0_ns + self.t1_ns) // 2


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """Server clock − worker clock (``offset_ns``) and its error bound (``bound_ns``: the
    true offset lies in ``offset_ns ± bound_ns``). ``method``: ``"ntp"`` (estimated from
    ``samples`` exchanges, the best round trip ``rtt_ns``) or ``"same-clock"`` (the server
    reads the worker's own clock: exact)."""

    offset_ns: int
    bound_ns: int
    method: str
    rtt_ns: int = 0
    samples: int = 0

    def to_server(self, worker_ns: int) -> int:
        """A worker time → the server's clock."""
        return worker_ns + self.offset_ns

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(samples: Iterable[ClockSample]) -> ClockEstimate:
    """The offset of the minimum-round-trip sample, bound half its round trip (rounded up,
    so the bound covers the floor of the midpoint too); ValueError without samples."""
    kept = list(samples)
    if not kept:
        raise ValueError("a clock estimate needs at least one sample")
    best = min(kept, key=lambda s: s.rtt_ns)
    return ClockEstimate(
        offset_ns=best.offset_ns,
        bound_ns=-(-best.rtt_ns // 2),
        method="ntp",
        rtt_ns=best.rtt_ns,
        samples=len(kept),
    )


def same_clock() -> ClockEstimate:
    """The estimate when the server reads the worker's own clock: no offset, no error."""
    return ClockEstimate(offset_ns=0, bound_ns=0, method="same-clock")

"""Calibration of the relay: the delay it really adds, per direction, on an echo path.

An echo server and a pinger run in one process and one event loop, so one clock reads
both ends: each probe carries its send time, the echo server stamps its arrival and its
answer's send time, and the pinger its return. The *up* one-way time is arrival − send,
the *down* one-way time return − answer; the same probes straight to the echo server
give the path without the relay, and the difference is what the relay adds (its
shaping plus its own cost). Probes go one at a time with a gap, so the relay's ordering
rule never holds one behind another. The result is a :class:`Calibration` record, stored
with a run (``netem.json``) and shown by the report beside the latency of the cells.
"""

from __future__ import annotations

import asyncio
import statistics
import struct
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TOLERANCE_MS", "Calibration", "Figures", "echo_server", "measure", "summarize"]

#: The issue's bar: the round trip a profile adds, measured, within this of the declared one.
TOLERANCE_MS = 1.0

_PROBE = struct.Struct("!Iqqq")  # seq, sent, echo arrival, echo answer (ns)
GAP_S = 0.005


@dataclass(frozen=True)
class Figures:
    """Added one-way delay of one direction over the probes, milliseconds."""

    mean_ms: float
    p50_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float


@dataclass(frozen=True)
class Calibration:
    """What the relay added under one profile: per direction and round trip, the
    profile's declared one-way delays beside them, the probes and the direct path's own
    one-way median (``direct_ms``: what was subtracted)."""

    net: str
    declared_up_ms: float
    declared_down_ms: float
    up: Figures
    down: Figures
    rtt_added_mean_ms: float
    probes: int
    direct_ms: float

    @property
    def rtt_declared_ms(self) -> float:
        return self.declared_up_ms + self.declared_down_ms

    @property
    def error_ms(self) -> float:
        """Measured minus declared added round trip (mean)."""
        return self.rtt_added_mean_ms - self.rtt_declared_ms

    @property
    def within_tolerance(self) -> bool:
        return abs(self.error_ms) <= TOLERANCE_MS

    def line(self) -> str:
        """One line for a terminal or a report."""
        return (
            f"{self.net}: declared {self.declared_up_ms:g} ms up + {self.declared_down_ms:g} ms "
            f"down = {self.rtt_declared_ms:g} ms RTT; measured up {self.up.mean_ms:.2f} "
            f"(p99 {self.up.p99_ms:.2f}), down {self.down.mean_ms:.2f} (p99 "
            f"{self.down.p99_ms:.2f}), RTT {self.rtt_added_mean_ms:.2f} ms "
            f"({self.error_ms:+.2f}; {'within' if self.within_tolerance else 'OUTSIDE'} "
            f"±{TOLERANCE_MS:g} ms) over {self.probes} probes"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        up, down = Figures(**d["up"]), Figures(**d["down"])
        return cls(**{**d, "up": up, "down": down})


async def echo_server(host: str = "127.0.0.1") -> tuple[asyncio.Server, int]:
    """An echo server for probes: stamps each probe's arrival and answer → (server, port)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.readexactly(_PROBE.size)
                arrived = time.monotonic_ns()
                seq, sent, _, _ = _PROBE.unpack(data)
                writer.write(_PROBE.pack(seq, sent, arrived, time.monotonic_ns()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the probe's end, or the calibration's loop closing
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


async def measure(port: int, probes: int, host: str = "127.0.0.1") -> list[tuple[float, float]]:
    """``probes`` probes through ``host``:``port`` (to an :func:`echo_server`, relayed or
    not) → (up, down) one-way times in ms, in order."""
    reader, writer = await asyncio.open_connection(host, port)
    out: list[tuple[float, float]] = []
    try:
        for seq in range(probes):
            writer.write(_PROBE.pack(seq, time.monotonic_ns(), 0, 0))
            await writer.drain()
            answer = await reader.readexactly(_PROBE.size)
            back = time.monotonic_ns()
            got, sent, arrived, answered = _PROBE.unpack(answer)
            assert got == seq, f"probe {seq} answered as {got}"
            out.append(((arrived - sent) / 1e6, (back - answered) / 1e6))
            await asyncio.sleep(GAP_S)
    finally:
        writer.close()
    return out


def _figures(values: Sequence[float]) -> Figures:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return Figures(
        mean_ms=statistics.fmean(ordered),
        p50_ms=statistics.median(ordered),
        p99_ms=p99,
        min_ms=ordered[0],
        max_ms=ordered[-1],
    )


def summarize(
    net: str,
    declared: tuple[float, float],
    relayed: Sequence[tuple[float, float]],
    direct: Sequence[tuple[float, float]],
) -> Calibration:
    """The relay's added delay: each relayed probe's one-way time minus the direct
    path's median in that direction."""
    base_up = statistics.median(u for u, _ in direct)
    base_down = statistics.median(d for _, d in direct)
    up = _figures([u - base_up for u, _ in relayed])
    down = _figures([d - base_down for _, d in relayed])
    return Calibration(
        net=net,
        declared_up_ms=declared[0],
        declared_down_ms=declared[1],
        up=up,
        down=down,
        rtt_added_mean_ms=up.mean_ms + down.mean_ms,
        probes=len(relayed),
        direct_ms=(base_up + base_down) / 2,
    )

"""Every worker kind's clock offset to the server, measured once at start: ``GET /clock``.

:func:`measure` makes :data:`SAMPLES` sequential ``GET /clock`` exchanges over one
keep-alive connection (the first, which pays for the TCP handshake, is a warm-up and not
kept), reading the worker's clock right before each request and right after its answer,
and hands the samples to :func:`pushbench.clocksync.estimate` (minimum round trip,
NTP-style). When the server answers with this process's own clock identity (the same
kernel boot and time-namespace offset, :func:`pushbench.contract.clock_identity`) and no
skew is injected, the clocks are one: :func:`pushbench.clocksync.same_clock` (offset 0,
bound 0), so a run on one host keeps its exact latencies.

Blocking sockets (``http.client``): the asyncio worker calls it before its event loop
starts, a Locust process from a greenlet (gevent's patched sockets yield while waiting).

``skew_ns`` is the deliberate clock error of a test (``PUSHBENCH_CLOCK_SKEW_NS``): every
clock read of the worker is taken as ``CLOCK_MONOTONIC + skew_ns``, here in the exchanges
and, by the worker, in every time it writes (:meth:`ClockCorrection.shift_ns`), as a
worker on a host whose clock is that far ahead would read them.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from pushbench.clocksync import ClockEstimate, ClockSample, estimate, same_clock
from pushbench.contract import clock_identity

__all__ = ["SAMPLES", "ClockCorrection", "measure"]

SAMPLES = 16  # exchanges kept (one more is made first, as a warm-up)
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ClockCorrection:
    """What a worker applies: ``estimate`` (None: ``/clock`` could not be read, nothing is
    corrected, ``error`` says why) and the injected ``skew_ns``. Every time the worker
    reads from ``CLOCK_MONOTONIC`` is written as ``t + shift_ns``: its (skewed) clock,
    mapped onto the server's."""

    estimate: ClockEstimate | None
    skew_ns: int = 0
    error: str = ""

    @property
    def shift_ns(self) -> int:
        return self.skew_ns + (self.estimate.offset_ns if self.estimate is not None else 0)

    def record(self) -> dict[str, object]:
        """The worker record's ``clock`` details (besides its offset and bound fields)."""
        out: dict[str, object] = {"skew_ns": self.skew_ns, "shift_ns": self.shift_ns}
        if self.estimate is not None:
            out.update(self.estimate.to_dict())
        if self.error:
            out["error"] = self.error
        return out


def measure(base_url: str, skew_ns: int = 0, samples: int = SAMPLES) -> ClockCorrection:
    """The worker's correction against the server at ``base_url`` (see the module doc).
    Never raises for a server without ``/clock`` or an unreachable one: the correction is
    then none, with the reason in ``error``."""
    base = urlsplit(base_url)
    path = base.path.rstrip("/") + "/clock"
    conn = http.client.HTTPConnection(base.hostname or "", base.port or 80, timeout=TIMEOUT_S)

    def clock() -> int:
        return time.monotonic_ns() + skew_ns

    kept: list[ClockSample] = []
    try:
        identity: tuple[str, int] | None = None
        for i in range(samples + 1):
            t0 = clock()
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            t1 = clock()
            if response.status != 200:
                raise OSError(f"GET {path} answered {response.status}")
            answer = json.loads(body)
            identity = (str(answer.get("boot_id", "")), int(answer.get("timens_ns", 0)))
            if i > 0:
                kept.append(ClockSample(t0, int(answer["mono_ns"]), t1))
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as exc:
        return ClockCorrection(None, skew_ns, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    mine = clock_identity()
    if skew_ns == 0 and mine[0] and identity == mine:
        return ClockCorrection(same_clock(), 0)
    return ClockCorrection(estimate(kept), skew_ns)

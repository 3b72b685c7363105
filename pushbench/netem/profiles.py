"""Network profiles of the ``net`` dimension, declared as data.

A profile shapes each direction of a TCP connection on its own (:class:`Direction`):
``delay_ms`` is the **one-way** delay added to every byte in that direction, ``jitter_ms``
the half-width of a uniform spread around it (seeded, so two runs jitter alike), and
``rate_bytes_per_s`` a token-bucket cap on that direction's throughput (``burst_bytes``
the bucket's depth; 0: no cap). *up* is client → server, *down* server → client: a
pushed message pays the *down* delay once, a poll request the *up* delay and its answer
the *down* delay, so the added round trip is ``up.delay_ms + down.delay_ms``.

Jitter never reorders bytes: a chunk leaves no earlier than the chunk before it
(:mod:`pushbench.netem.shaper`), so under heavy jitter the mean added delay is a little
above ``delay_ms`` — which the calibration measures and the report shows.

``loopback`` is no relay at all (the default: cells without ``net`` are what they were).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DEFAULT_NET", "PROFILES", "Direction", "Profile", "net_names", "profile"]


@dataclass(frozen=True)
class Direction:
    """How one direction of a connection is shaped (see the module's docstring)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_bytes_per_s: float = 0.0  # 0: no cap
    burst_bytes: int = 65_536

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.rate_bytes_per_s < 0:
            raise ValueError(f"negative shaping value: {self}")
        if self.jitter_ms > self.delay_ms:
            raise ValueError(f"jitter_ms {self.jitter_ms} > delay_ms {self.delay_ms}")
        if self.burst_bytes < 1:
            raise ValueError(f"burst_bytes must be at least 1: {self}")


@dataclass(frozen=True)
class Profile:
    """A named network profile: ``up`` (client → server) and ``down`` (server → client);
    ``relay``: False for ``loopback`` only (no relay started); ``about``: what it stands for.

    ``stall_at_s``/``stall_s``: every connection stops forwarding (both directions, bytes
    held, not lost) for ``stall_s`` seconds from ``stall_at_s`` after it was accepted;
    ``cut_at_s``: every connection is closed on both sides that long after it was accepted
    (None: never). No named profile uses them; the relay command takes them as options."""

    name: str
    about: str
    up: Direction = Direction()
    down: Direction = Direction()
    relay: bool = True
    stall_at_s: float | None = None
    stall_s: float = 0.0
    cut_at_s: float | None = None

    @property
    def rtt_ms(self) -> float:
        """The round trip the profile adds (mean, without jitter's ordering bias)."""
        return self.up.delay_ms + self.down.delay_ms

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rtt_ms": self.rtt_ms}


#: The profiles of the ``net`` dimension. Values are one-way per direction.
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("loopback", "no relay: clients connect to the server directly", relay=False),
        Profile(
            "lan",
            "a switched LAN: 0.25 ms each way (0.5 ms RTT), ±0.05 ms jitter, no cap",
            up=Direction(0.25, 0.05),
            down=Direction(0.25, 0.05),
        ),
        Profile(
            "wan",
            "a continental WAN path: 10 ms each way (20 ms RTT), ±1 ms jitter, no cap",
            up=Direction(10.0, 1.0),
            down=Direction(10.0, 1.0),
        ),
        Profile(
            "mobile",
            "a 4G link: 40 ms each way ±10 ms (RTT 60–100 ms); down capped at 1.5 MB/s "
            "(12 Mbit/s), up at 375 kB/s (3 Mbit/s), 64 KiB buckets",
            up=Direction(40.0, 10.0, 375_000.0),
            down=Direction(40.0, 10.0, 1_500_000.0),
        ),
    )
}
DEFAULT_NET = "loopback"


def net_names() -> tuple[str, ...]:
    """The allowed values of ``net``."""
    return tuple(PROFILES)


def profile(name: str) -> Profile:
    """The profile called ``name`` (KeyError naming the allowed ones otherwise)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown net profile {name!r}: one of {', '.join(PROFILES)}") from None

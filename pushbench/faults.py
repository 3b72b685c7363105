"""Deliberate faults, so the instrument can be checked against known answers.

A benchmark that cannot detect a known fault cannot be trusted with unknown
ones. The self-check scenario runs a server with one of these and asserts the
measurement sees exactly it:

- ``delay_ms``: every message reaches subscribers this much after it was
  published, the ticker's and the clients' alike (calibration: the measured
  latency must shift by the same amount);
- ``pause_ms`` at ``pause_at_s``: the server's event loop blocks once, as a GC
  or a stuck handler would (coordinated omission: the pause must show in
  latency measured from the schedule, and not in latency from the actual
  publish time). ``pause_at_s`` counts from the ticker's start or, in chat
  cells (no ticker), from the first publish a client sends;
- ``drop_every``: every Nth message is never sent to anyone (loss accounting:
  exactly 1/N must be reported lost).

:class:`ClientFaults` break the other end, the instrument itself (an asyncio client
worker applies them in its one receive path, :mod:`pushbench.clients.faults`), so the
self-check proves it would notice a broken client too:

- ``recv_bias_ms``: every receive timestamp is recorded this much late (a clock read
  in the wrong place: latency must rise by it, and an absolute bound on a baseline
  must catch it where a comparison with another cell of the same client cannot);
- ``stall_ms`` every ``stall_every_ms``: the client's event loop blocks (a slow
  callback, a collection): the worker's loop lag must show it;
- ``drop_receipt_every``: every Nth message received is not recorded (a recorder
  that loses rows): the loss accounting must report 1/N lost.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ClientFaults", "Faults"]


@dataclass(frozen=True)
class Faults:
    delay_ms: float = 0.0
    pause_ms: float = 0.0
    pause_at_s: float = 0.0
    drop_every: int = 0

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.pause_ms < 0 or self.pause_at_s < 0 or self.drop_every < 0:
            raise ValueError("fault values must be ≥ 0")

    @property
    def any(self) -> bool:
        return bool(self.delay_ms or self.pause_ms or self.drop_every)

    def drops(self, seq: int) -> bool:
        return self.drop_every > 0 and seq % self.drop_every == 0

    def arm_pause(self) -> None:
        """Schedule the one-off pause ``pause_at_s`` from now on the running loop."""
        if self.pause_ms > 0:
            asyncio.get_running_loop().call_later(self.pause_at_s, time.sleep, self.pause_ms / 1000)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """``"delay_ms=5,drop_every=100"`` → Faults; ValueError naming the bad key."""
        kwargs = _parse_pairs(spec, tuple(cls.__dataclass_fields__), ("drop_every",))
        return cls(**kwargs)


@dataclass(frozen=True)
class ClientFaults:
    """Faults of a client worker (the instrument's own), see the module docstring.

    Zero means off. ``stall_every_ms`` is the period of the stalls (the first one
    comes a period after the worker is ready); ``stall_ms`` without it is an error.
    """

    recv_bias_ms: float = 0.0
    stall_ms: float = 0.0
    stall_every_ms: float = 0.0
    drop_receipt_every: int = 0

    def __post_init__(self) -> None:
        values = (self.recv_bias_ms, self.stall_ms, self.stall_every_ms, self.drop_receipt_every)
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError("client fault values must be finite and ≥ 0")
        if bool(self.stall_ms) != bool(self.stall_every_ms):
            raise ValueError("client faults stall_ms and stall_every_ms go together")
        if self.stall_ms and self.stall_ms >= self.stall_every_ms:
            raise ValueError("client fault stall_ms must be below stall_every_ms")
        if self.drop_receipt_every == 1:
            raise ValueError("client fault drop_receipt_every must be ≥ 2 (1 drops everything)")

    @property
    def any(self) -> bool:
        return bool(self.recv_bias_ms or self.stall_ms or self.drop_receipt_every)

    @property
    def recorder(self) -> bool:
        """Whether the recorder must apply some (the bias, or dropped receipts)."""
        return bool(self.recv_bias_ms or self.drop_receipt_every)

    def combined(self, other: ClientFaults | None) -> ClientFaults:
        """These faults and ``other`` at once: biases add up, the rest of ``other`` wins
        where it is set (the environment's faults on top of a cell's)."""
        if other is None or not other.any:
            return self
        stall = (other.stall_ms, other.stall_every_ms) if other.stall_ms else None
        return ClientFaults(
            recv_bias_ms=self.recv_bias_ms + other.recv_bias_ms,
            stall_ms=stall[0] if stall else self.stall_ms,
            stall_every_ms=stall[1] if stall else self.stall_every_ms,
            drop_receipt_every=other.drop_receipt_every or self.drop_receipt_every,
        )

    def as_text(self) -> str:
        """The :meth:`parse` form of the faults that are on (``""``: none)."""
        return ",".join(f"{k}={_num(v)}" for k, v in asdict(self).items() if v)

    @classmethod
    def parse(cls, spec: str) -> ClientFaults:
        """``"recv_bias_ms=10,drop_receipt_every=100"`` → ClientFaults; ValueError naming
        the bad key (the form of ``PUSHBENCH_CLIENT_FAULTS``)."""
        kwargs = _parse_pairs(spec, tuple(cls.__dataclass_fields__), ("drop_receipt_every",))
        return cls(**kwargs)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _parse_pairs(spec: str, allowed: tuple[str, ...], integers: tuple[str, ...]) -> dict[str, Any]:
    """``"k=v,k2=v2"`` → {key: number}; ValueError naming a bad key or value."""
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ValueError(
                f"unknown fault {key!r}; expected KEY=VALUE with KEY in {', '.join(allowed)}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"fault {key} needs a number, got {value!r}") from None
        if key in integers:
            if number != int(number):
                raise ValueError(f"fault {key} needs an integer")
            kwargs[key] = int(number)
        else:
            kwargs[key] = number
    return kwargs

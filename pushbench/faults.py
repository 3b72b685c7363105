"""Deliberate server faults, so the instrument can be checked against known answers.

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
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

__all__ = ["Faults"]


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
        kwargs: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key not in cls.__dataclass_fields__:
                allowed = ", ".join(cls.__dataclass_fields__)
                raise ValueError(f"unknown fault {key!r}; expected KEY=VALUE with KEY in {allowed}")
            try:
                kwargs[key] = float(value)
            except ValueError:
                raise ValueError(f"fault {key} needs a number, got {value!r}") from None
        drop = kwargs.pop("drop_every", 0.0)
        if drop != int(drop):
            raise ValueError("fault drop_every needs an integer")
        return cls(drop_every=int(drop), **kwargs)

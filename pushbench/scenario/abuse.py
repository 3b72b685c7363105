"""A scenario's ``[abuse]`` table: which stacks get the abuse probes, and their sizes.

The probes themselves are rows of :data:`pushbench.runner.abuse.probes.PROBES`; this
is only what a scenario file may set, checked here like every other key (name, type,
range) so a typo fails before anything starts::

    [abuse]
    stacks = ["raw", "aiohttp", "starlette"]
    slowloris_conns = 50
    idle_conns = 2000

The defaults keep a 3-stack run to a few minutes; ``scenarios/abuse.toml`` sets the
sizes issue 17 names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from pushbench import registry

__all__ = ["ABUSE_KEYS", "AbuseSpec", "parse_abuse"]


@dataclass(frozen=True)
class AbuseSpec:
    """Sizes of the abuse probes (every count ≥ 1, every time > 0)."""

    stacks: tuple[str, ...] = ("raw", "aiohttp", "starlette")
    slowloris_conns: int = 20  # connections each sending a request head at 1 byte/s
    slowloris_s: float = 8.0  # how long they keep at it (a drop later is "held")
    head_timeout_s: float = 5.0  # the server's --head-timeout-s during the run
    oversized_header_bytes: int = 64 * 1024  # one header of this size
    upgrade_flood: int = 200  # WebSocket upgrades at once
    slow_consumer_rate: float = 5000.0  # ticker msgs/s into the slow consumer's topic
    slow_consumer_payload: int = 1000  # bytes per message
    slow_consumer_s: float = 15.0  # bound on the wait for the drop and for TCP's end
    idle_conns: int = 500  # idle WebSockets held open
    health_interval_s: float = 0.05  # between two /health samples
    timeout_s: float = 5.0  # one request's bound (a /health sample, an answer)


#: key → (kind, minimum) of every numeric key; ``stacks`` is checked on its own.
_NUMERIC: dict[str, tuple[type, float]] = {
    f.name: ((int, 1) if f.type == "int" else (float, 1e-3))
    for f in fields(AbuseSpec)
    if f.name != "stacks"
}
ABUSE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(AbuseSpec))


def parse_abuse(table: Mapping[str, Any]) -> tuple[AbuseSpec, str, str]:
    """``[abuse]`` → (spec, "", "") or (defaults, the bad key, the problem)."""
    spec = AbuseSpec()
    for key, value in table.items():
        if key not in ABUSE_KEYS:
            return spec, key, f"unknown key {key!r}; allowed: {', '.join(ABUSE_KEYS)}"
        if key == "stacks":
            names = [value] if isinstance(value, str) else value
            known = [s.name for s in registry.stacks() if not s.external]
            if not isinstance(names, list) or not names or any(n not in known for n in names):
                return spec, key, f"{value!r}: expected one or a list of {', '.join(known)}"
            spec = replace(spec, stacks=tuple(dict.fromkeys(names)))
            continue
        kind, low = _NUMERIC[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or (kind is int and not isinstance(value, int)) or value < low:
            what = "an integer ≥ 1" if kind is int else "a number > 0"
            return spec, key, f"{value!r} is not allowed; expected {what}"
        spec = replace(spec, **{key: kind(value)})
    return spec, "", ""

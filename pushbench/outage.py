"""Faults in the measured window (issue 12 item 5): what breaks, when, for how long, and
how a client backs off before it tries again.

Not the self-check's :mod:`pushbench.faults` (a deliberately broken instrument): these
break the *deployment* the way production breaks, and the run measures how each
transport recovers. A cell's ``fault`` (written
``fault = { kind = "server-kill", at_s = 3, down_s = 1 }``) is one of:

- ``server-kill``: the server process gets SIGKILL ``at_s`` into the measured window and
  is started again on the same port ``down_s`` later (with ``hub = "redis"`` the history
  and the sequence survive in Redis, so clients resume losslessly; the in-process hub
  loses both with the process, so such cells are skipped with that reason). With
  ``servers = N`` behind nginx it kills one node, ``node`` (0 to N − 1, default 0: the
  one whose ticker publishes): its clients come back through nginx to a live node and
  resume there from the broker's history (h41);
- ``proxy-restart``: the reverse proxy in front (``via``) is killed and started again on
  the same port ``down_s`` later (the server and its hub stay up);
- ``broker-pause``: the Redis server is stopped (SIGSTOP) for ``down_s`` and continued
  (SIGCONT): connections stay open, messages stall.

The back-off of our asyncio clients (:func:`backoff_s`) is exponential with *full
jitter* (a delay drawn uniformly from ``[0, min(cap, base × 2^failures)]``), the
scheme that spreads a reconnect storm best, from a generator seeded per connection, so
a run's delays are reproducible. The SSE clients keep EventSource's own rule instead
(the server's ``retry:``, no jitter): the comparison the fault cells make.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "KINDS",
    "TABLE_FORM",
    "Outage",
    "backoff_rng",
    "backoff_s",
]

#: The fault kinds a cell can name.
KINDS: tuple[str, ...] = ("server-kill", "proxy-restart", "broker-pause")
#: The scenario form, for error messages.
TABLE_FORM = (
    'a table { kind = "server-kill" | "proxy-restart" | "broker-pause", at_s = seconds into '
    "the window, down_s = seconds down, node = which of servers = N (server-kill; default 0) }"
)
_KEYS = ("kind", "at_s", "down_s", "node")
#: Back-off of our asyncio clients: the first ceiling, and the cap (seconds).
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


def _num(x: float) -> str:
    x = round(float(x), 6)
    return str(int(x)) if x.is_integer() else f"{x:.6f}".rstrip("0").rstrip(".")


def backoff_rng(conn_id: int, seed: int = 0) -> random.Random:
    """Connection ``conn_id``'s back-off generator: the same draws in every run."""
    return random.Random(seed * 1_000_003 + conn_id + 7_919)


def backoff_s(
    failures: int,
    rng: random.Random,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
) -> float:
    """Seconds to wait before the next attempt after ``failures`` consecutive failed ones
    (0: a connection that worked has just ended): uniform in ``[0, min(cap_s, base_s ×
    2^failures)]`` (exponential back-off, full jitter)."""
    if failures < 0 or base_s < 0 or cap_s < 0:
        raise ValueError("back-off failures, base and cap must be >= 0")
    ceiling = min(cap_s, base_s * float(1 << min(failures, 30)))
    return rng.uniform(0.0, ceiling)


@dataclass(frozen=True)
class Outage:
    """One fault: ``kind`` at ``at_s`` into the measured window, lasting ``down_s``;
    ``node``: the node a server-kill hits when the cell runs several (h41)."""

    kind: str
    at_s: float
    down_s: float
    node: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        values = (self.at_s, self.down_s)
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            raise ValueError("fault at_s and down_s must be numbers")
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError("fault at_s and down_s must be finite and >= 0")
        if isinstance(self.node, bool) or not isinstance(self.node, int) or self.node < 0:
            raise ValueError("fault node must be an integer >= 0")

    def id_part(self) -> str:
        """The cell id's part, e.g. ``fault-server-kill-at3s-down1s`` (``-node1`` after it
        for a node other than 0: node 0's ids are those of before h41)."""
        node = f"-node{self.node}" if self.node else ""
        return f"fault-{self.kind}-at{_num(self.at_s)}s-down{_num(self.down_s)}s{node}"

    def describe(self) -> str:
        """For cells.csv and the report: ``server-kill at 3 s, down 1 s`` (``, node 1``
        after it for a node other than 0; ``fault_node`` names it in every case)."""
        node = f", node {self.node}" if self.node else ""
        return f"{self.kind} at {_num(self.at_s)} s, down {_num(self.down_s)} s{node}"

    def __str__(self) -> str:
        return self.describe()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.node:  # h41: node 0 (the default) reads as before
            del out["node"]
        return out

    @classmethod
    def from_table(cls, table: Any) -> Outage:
        """The scenario's ``{ kind = …, at_s = s, down_s = s, node = k }``; ValueError."""
        if not isinstance(table, Mapping):
            raise ValueError(f"fault must be {TABLE_FORM}")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown or "kind" not in table or "at_s" not in table:
            raise ValueError(f"fault must be {TABLE_FORM} (unknown or missing keys)")
        down = table.get("down_s", 0.0)
        at = table["at_s"]
        for v in (at, down):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError("fault at_s and down_s must be numbers")
        node = table.get("node", 0)
        if isinstance(node, bool) or not isinstance(node, int):
            raise ValueError("fault node must be an integer >= 0")
        return cls(str(table["kind"]), float(at), float(down), node)

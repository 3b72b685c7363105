"""The worker spec: the one record the runner writes for every worker process it starts.

Every worker kind (our asyncio clients, the browser worker, the Locust
worker) reads the same :class:`WorkerSpec` from ``SPEC.json``; the runner and
the client benchmark build it. ``docs/runner-design.md`` describes the
contract (spec in, receipts and counters out).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from pushbench import registry
from pushbench.contract import valid_topic

__all__ = ["PublishSpec", "WorkerSpec"]


@dataclass(frozen=True)
class PublishSpec:
    """Chat-like cells: each connection also publishes ``rate`` messages/s, open loop."""

    rate: float
    payload_size: int = 100


@dataclass(frozen=True)
class WorkerSpec:
    """The worker spec of ``docs/runner-design.md``, plus a few optional knobs.

    Extra keys beyond the design: ``loop`` ("asyncio" or "uvloop"),
    ``connect_timeout_s``, ``connect_concurrency`` (connections opening at
    once: a burst of thousands of SYNs overflows the listen backlog and turns
    into 1 s retransmits), ``first_conn`` (offset of this worker's
    connection ids, so several workers' ids do not collide) and
    ``status_path`` (a small JSON file rewritten every second during the run
    with the messages received and the p99 latency of the last second: the
    runner's live progress line). ``locust_workers`` is read by the Locust
    worker only (0: one Locust process; N: a master and N workers).

    The runner builds one of these per worker process and writes
    :meth:`to_dict` as the worker's SPEC.json; every worker kind reads it back
    with :meth:`load`. An unknown key is an error, not a warning: a runner and
    a worker that disagree on the record must not run.
    """

    transport: str
    base_url: str
    topic: str = "bench"
    connections: int = 1
    duration_s: float = 10.0
    warmup_s: float = 0.0
    poll_interval_s: float = 0.1
    poll_timeout_s: float = 30.0
    capacity: int = 2_000_000
    publish: PublishSpec | None = None
    token: str | None = None
    loop: str = "asyncio"
    connect_timeout_s: float = 10.0
    connect_concurrency: int = 100
    first_conn: int = 0
    status_path: str | None = None
    locust_workers: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.transport not in registry.transport_names():
            problems.append(f"transport must be one of {', '.join(registry.transport_names())}")
        if urlsplit(self.base_url).scheme != "http" or not urlsplit(self.base_url).hostname:
            problems.append("base_url must be http://HOST[:PORT][/prefix]")
        if not valid_topic(self.topic):
            problems.append("topic must be 1-64 characters of [A-Za-z0-9_.-]")
        if self.connections < 1 or self.capacity < 0 or self.connect_concurrency < 1:
            problems.append("connections and connect_concurrency must be >= 1, capacity >= 0")
        if self.first_conn < 0 or self.first_conn + self.connections > 2**32:
            problems.append("connection ids must fit uint32")
        times = (self.duration_s, self.warmup_s, self.poll_timeout_s, self.connect_timeout_s)
        if not all(math.isfinite(t) and t >= 0 for t in times):
            problems.append("durations and timeouts must be finite and >= 0")
        if not (math.isfinite(self.poll_interval_s) and self.poll_interval_s > 0):
            problems.append("poll_interval_s must be > 0")
        if self.publish is not None and not (
            math.isfinite(self.publish.rate) and self.publish.rate > 0
        ):
            problems.append("publish.rate must be > 0")
        if self.loop not in ("asyncio", "uvloop"):
            problems.append("loop must be asyncio or uvloop")
        if self.locust_workers < 0:
            problems.append("locust_workers must be >= 0")
        if problems:
            raise ValueError("bad worker spec: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> WorkerSpec:
        """Build from the JSON object; an unknown key raises ValueError naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"bad worker spec: unknown keys {unknown} (known: {sorted(known)})")
        values = dict(raw)
        publish = values.get("publish")
        if publish is not None:
            values["publish"] = PublishSpec(**publish)
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> WorkerSpec:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.publish is not None:
            out["publish"] = {"rate": self.publish.rate, "payload_size": self.publish.payload_size}
        return out

    def target(self, path: str, **query: str | int | float) -> str:
        """The request target: the base URL's own path, ``path``, then topic, ``query``
        and the token, URL-quoted."""
        parts = [f"topic={self.topic}"]
        parts += [f"{k}={quote(str(v), safe='')}" for k, v in query.items()]
        if self.token is not None:
            parts.append(f"token={quote(self.token, safe='')}")
        return f"{urlsplit(self.base_url).path.rstrip('/')}{path}?{'&'.join(parts)}"

    def url(self, path: str, **query: str | int | float) -> str:
        """The absolute URL of :meth:`target`."""
        base = urlsplit(self.base_url)
        return f"{base.scheme}://{base.netloc}{self.target(path, **query)}"

"""The worker records: the spec the runner writes for every worker, and what each writes back.

Every worker kind (our asyncio clients, the browser worker, the Locust
worker) reads the same :class:`WorkerSpec` from ``SPEC.json``; the runner and
the client benchmark build it. Every kind writes its ``OUT.json`` as a
:class:`WorkerResult` (a run, complete or stopped early) or a
:class:`WorkerFailure` (the run itself failed), and the runner reads it back
with :func:`read_output`. ``docs/runner-design.md`` describes the contract
(spec in, receipts and counters out).
"""

from __future__ import annotations

import ipaddress
import json
import math
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from pushbench import registry
from pushbench.churn import Churn
from pushbench.contract import valid_topic
from pushbench.faults import ClientFaults

__all__ = [
    "REQUIRED_TOTALS",
    "SEGMENT_TOTALS",
    "STAGE_LINE",
    "STAGE_SIGNAL",
    "WINDOW_SIGNALS",
    "OutputError",
    "PublishSpec",
    "WindowMark",
    "WorkerFailure",
    "WorkerOutput",
    "WorkerResult",
    "WorkerSpec",
    "read_output",
]


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
    ``faults``: the self-check's client faults (:class:`~pushbench.faults.ClientFaults`:
    a receive-time bias, loop stalls, receipts not recorded), applied by the asyncio
    worker only (a scenario asks for them with the python client alone).
    ``stage_connections`` (the asyncio worker only; 0: off): open that many
    connections first, print :data:`STAGE_LINE` with how many are connected, and wait
    for :data:`STAGE_SIGNAL` before opening the rest — the runner reads the server's
    memory in between (memory per connection as a slope, :mod:`pushbench.metrics.memory`).
    ``churn`` (the asyncio worker only; None: off): each connection leaves and resumes
    (:class:`~pushbench.churn.Churn`, the soak).
    ``ca_file``: with an ``https://`` base URL (a TLS cell), the CA certificate every
    connection verifies the server against (:func:`pushbench.tls.client_context`).

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
    faults: ClientFaults | None = None
    stage_connections: int = 0
    # issue 17 item 6 (soak): every connection leaves and resumes (the asyncio worker only)
    churn: Churn | None = None
    # issue 12 item 2 (TLS): the CA an https:// base_url is verified against
    ca_file: str | None = None
    compression: str = "off"  # h25: "deflate": WebSocket clients offer permessage-deflate
    # issue 18 item 2 (100,000 connections): connections opened per second (0: unpaced), and
    # the source addresses connection ``conn`` binds in turn (none: the kernel's choice)
    connect_rate: float = 0.0
    source_addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.transport not in registry.transport_names():
            problems.append(f"transport must be one of {', '.join(registry.transport_names())}")
        scheme = urlsplit(self.base_url).scheme
        if scheme not in ("http", "https") or not urlsplit(self.base_url).hostname:
            problems.append("base_url must be http(s)://HOST[:PORT][/prefix]")
        if (scheme == "https") != (self.ca_file is not None):
            problems.append("an https:// base_url needs ca_file (and only it)")
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
        if self.compression not in ("off", "deflate"):  # h25 (compression)
            problems.append("compression must be off or deflate")
        if not (math.isfinite(self.connect_rate) and self.connect_rate >= 0):
            problems.append("connect_rate must be >= 0")
        if not all(_ipv4(a) for a in self.source_addresses):
            problems.append("source_addresses must be IPv4 addresses")
        if self.locust_workers < 0:
            problems.append("locust_workers must be >= 0")
        if not 0 <= self.stage_connections < max(self.connections, 1):
            problems.append("stage_connections must be >= 0 and < connections")
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
        faults = values.get("faults")
        if faults is not None:
            values["faults"] = ClientFaults(**faults)
        churn = values.get("churn")
        if churn is not None:
            values["churn"] = Churn.from_dict(churn)
        if "source_addresses" in values:  # a JSON list
            values["source_addresses"] = tuple(values["source_addresses"])
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> WorkerSpec:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.publish is not None:
            out["publish"] = {"rate": self.publish.rate, "payload_size": self.publish.payload_size}
        if self.faults is not None:
            out["faults"] = {f.name: getattr(self.faults, f.name) for f in fields(self.faults)}
        if self.churn is not None:
            out["churn"] = self.churn.to_dict()
        out["source_addresses"] = list(self.source_addresses)
        return out

    def source_for(self, conn: int) -> str | None:
        """The source address connection ``conn`` binds (issue 18 item 2): the spec's
        ``source_addresses`` in turn by connection id, None when it has none."""
        if not self.source_addresses:
            return None
        return self.source_addresses[conn % len(self.source_addresses)]

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


# --- what a worker writes back (OUT.json) ---------------------------------------------------

#: Counters every worker kind sums over its connections into ``totals`` (the runner's inputs).
REQUIRED_TOTALS: tuple[str, ...] = (
    "connects",
    "reconnects",
    "handshake_bytes_out",
    "handshake_bytes_in",
    "bytes_out",
    "bytes_in",
    "messages",
    "requests",
    "errors",
    "connect_ns_mean",
    "connect_ns_max",
)
#: Counters a worker kind adds to ``totals`` when it can count them: the TCP segments after
#: the handshakes (``TCP_INFO``'s ``tcpi_segs_out``/``tcpi_segs_in``), for the runner's
#: on-the-wire byte estimate. Absent, never 0, where not counted (Locust's socket layer).
SEGMENT_TOTALS: tuple[str, ...] = ("segs_out", "segs_in")


class OutputError(ValueError):
    """An ``OUT.json`` that is not a worker record (a field missing or of the wrong kind)."""


def _missing(kind: str, raw: Mapping[str, Any], names: tuple[str, ...]) -> None:
    absent = [n for n in names if n not in raw]
    if absent:
        raise OutputError(f"{kind} without {', '.join(absent)}")


def _number(value: Any) -> bool:
    """A JSON number (``true``/``false`` are not counts)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: How a required field of each annotated type must read from JSON (a number for the
#: counts, times and CPU seconds: a worker kind may write 3.0 for 3).
_KINDS: Mapping[str, Any] = {"bool": bool, "str": str, "int": _number, "float": _number}


def _wrong_kinds(kind: str, raw: Mapping[str, Any], types: Mapping[str, str]) -> None:
    """OutputError naming every field of ``raw`` whose value is not of its declared type
    (``types``: name → annotation; annotations without a rule here are checked apart)."""
    wrong = []
    for name, annotation in types.items():
        optional = annotation.endswith(" | None")  # an optional figure: None, or its kind
        rule = _KINDS.get(annotation.removesuffix(" | None"))
        if rule is None or name not in raw or (optional and raw[name] is None):
            continue
        value = raw[name]
        ok = rule(value) if rule is _number else type(value) is rule
        if not ok:
            wrong.append(f"{name}={value!r} (not {annotation})")
    if wrong:
        raise OutputError(f"{kind}: {', '.join(wrong)}")


#: The runner's signals to its workers that the measured window starts and ends: each
#: worker kind reads its CPU and counters then (:class:`WindowMark`), so every per-message
#: ratio and the client's CPU load cover the window the latency and delivery figures do.
WINDOW_SIGNALS: Mapping[str, signal.Signals] = {
    "start": signal.SIGUSR1,
    "end": signal.SIGUSR2,
}


#: A staged worker (``WorkerSpec.stage_connections``) prints this, a space and its connected
#: count once its first stage is up, then waits for :data:`STAGE_SIGNAL` (SIGCONT: its
#: default action, continuing a stopped process, is harmless to a worker not waiting).
STAGE_LINE = "worker stage"
STAGE_SIGNAL: signal.Signals = signal.SIGCONT


@dataclass(frozen=True)
class WindowMark:
    """A worker's CPU and summed counters at one edge of the runner's measured window.

    Read when the worker gets the edge's :data:`WINDOW_SIGNALS` signal; only the
    difference of a worker's two marks means anything (each figure counts from an
    origin of the worker kind's choosing: process start, or ready). ``t_ns``:
    CLOCK_MONOTONIC when the CPU was read; ``cpu_user_s``/``cpu_sys_s``: every process
    that runs the worker's clients (``getrusage``, µs; or :mod:`pushbench.cputime`, ns,
    split by the ratio of the clock ticks); ``messages`` received (recorded or
    overflowed), ``requests``, ``bytes_out`` and ``bytes_in`` (TCP payload) and
    ``segs_out``/``segs_in`` (TCP segments, for the on-the-wire estimate) after the
    handshakes, summed over the connections. A counter the kind
    cannot read at that moment is None: the runner then counts the window's messages
    from the receipts and takes that counter over the whole run, against the whole
    run's messages (a ratio's two sides always cover one span).
    """

    t_ns: int
    cpu_user_s: float
    cpu_sys_s: float
    messages: int | None = None
    requests: int | None = None
    bytes_out: int | None = None
    bytes_in: int | None = None
    segs_out: int | None = None
    segs_in: int | None = None

    @property
    def cpu_s(self) -> float:
        return float(self.cpu_user_s) + float(self.cpu_sys_s)

    @classmethod
    def from_dict(cls, raw: Any) -> WindowMark:
        if not isinstance(raw, Mapping):
            raise OutputError("worker result: a window mark is not an object")
        _missing("window mark", raw, ("t_ns", "cpu_user_s", "cpu_sys_s"))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class WorkerResult:
    """A worker's run, complete or stopped early (``complete`` False, ``reason`` the signal).

    Times are CLOCK_MONOTONIC ns: ``ready_ns`` once every connection is up (or
    failed its first attempt), ``warmup_end_ns``, ``end_ns`` at the end of the
    window. ``totals`` sums the per-connection counters (at least
    :data:`REQUIRED_TOTALS`; ``publish_lag_max_ns`` from the kinds that publish);
    ``per_connection`` holds each connection's counters as the worker kind
    records them (``connect_ns`` in every one). ``messages`` … ``slow_parses``
    are the recorder's counters; ``cpu_*_run`` the CPU seconds from ready to
    end; ``max_loop_lag_ns`` the harness's longest pause. ``window_start`` and
    ``window_end`` are the :class:`WindowMark` read when the runner signalled the
    measured window's edges (:data:`WINDOW_SIGNALS`): the span of every client CPU
    figure and per-message ratio of the row (None: not marked, e.g. a run the runner
    did not time, or a worker stopped before the window).

    ``clock_offset_ns`` and ``clock_bound_ns``: the worker's clock offset to the server's
    (server − worker, from ``GET /clock``: :mod:`pushbench.clocksync`) and its error
    bound; every time in the record and the receipts is already on the server's clock
    (corrected by the offset), so each latency is exact to within the bound. 0 and 0 when
    the server reads the worker's own clock; None: not measured (``/clock`` unreadable,
    or a kind that maps its clock otherwise, as the browser does). ``extra["clock"]`` has
    the details (method, best round trip, samples, an injected skew).

    The optional figures are measured by some worker kinds only: ``None`` means
    "not measured by this kind", never zero (the asyncio worker writes all of
    them; the browser has no process RSS or GC of its own to report, Locust no
    GC timing). ``extra`` keeps the kind's own details (browser clock
    quality, Locust's own counts, versions, the spec it ran) for the record;
    the runner reads from it only how many processes ran the clients
    (``extra["locust"]["processes"]`` and ``["workers"]``, ``extra["cpu_processes"]``
    for the browser: :func:`pushbench.runner.rows.processes_ran`).
    """

    complete: bool
    reason: str
    transport: str
    connections: int
    connected: int
    connect_failures: int
    ready_ns: int
    warmup_end_ns: int
    end_ns: int
    bytes_source: str
    messages: int
    capacity: int
    overflow: int
    parse_errors: int
    slow_parses: int
    cpu_user_s_run: float
    cpu_sys_s_run: float
    max_loop_lag_ns: int
    totals: Mapping[str, int]
    per_connection: tuple[Mapping[str, Any], ...]
    cpu_user_s: float | None = None  # whole process (Locust: its child processes)
    cpu_sys_s: float | None = None
    max_rss_kb: int | None = None
    mean_loop_lag_ns: int | None = None
    loop_lag_samples: int | None = None
    gc_collections: int | None = None
    gc_pause_ns_sum: int | None = None
    gc_pause_ns_max: int | None = None
    window_start: WindowMark | None = None  # at the runner's WINDOW_SIGNALS (None: not marked)
    window_end: WindowMark | None = None
    # issue 18 (clock offset across hosts): the worker's clock against the server's.
    clock_offset_ns: int | None = None  # server − worker; every time written is corrected by it
    clock_bound_ns: int | None = None  # its error bound (half the best /clock round trip)
    ramp_ns: int | None = None  # issue 18 item 2: time spent opening the connections
    npz: str = ""  # the receipts file next to this one (set by the writer)
    extra: Mapping[str, Any] = field(default_factory=dict)

    _OPTIONAL: ClassVar[tuple[str, ...]] = (
        "cpu_user_s",
        "cpu_sys_s",
        "max_rss_kb",
        "mean_loop_lag_ns",
        "loop_lag_samples",
        "gc_collections",
        "gc_pause_ns_sum",
        "gc_pause_ns_max",
        "window_start",
        "window_end",
        "clock_offset_ns",
        "clock_bound_ns",
        "ramp_ns",
    )
    _MARKS: ClassVar[tuple[str, ...]] = ("window_start", "window_end")

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """The fields every worker kind must write."""
        skip = {*cls._OPTIONAL, "npz", "extra"}
        return tuple(f.name for f in fields(cls) if f.name not in skip)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> WorkerResult:
        """Read an ``OUT.json`` object: a required field or total missing raises OutputError
        (never a silent 0); an optional figure missing is None; other keys go to ``extra``."""
        required = cls.required()
        _missing("worker result", raw, required)
        _wrong_kinds("worker result", raw, {f.name: str(f.type) for f in fields(cls)})
        totals = raw["totals"]
        if not isinstance(totals, Mapping):
            raise OutputError("worker result: totals is not an object")
        _missing("worker result totals", totals, REQUIRED_TOTALS)
        bad = sorted(k for k, v in totals.items() if not _number(v))
        if bad:
            raise OutputError(f"worker result totals: {', '.join(bad)} not a number")
        per_connection = raw["per_connection"]
        if not isinstance(per_connection, list) or not all(
            isinstance(c, Mapping) for c in per_connection
        ):
            raise OutputError("worker result: per_connection is not a list of objects")
        for i, conn in enumerate(per_connection):
            _missing(f"worker result per_connection[{i}]", conn, ("connect_ns",))
            if not _number(conn["connect_ns"]):
                raise OutputError(f"worker result per_connection[{i}]: connect_ns not a number")
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {k: raw[k] for k in required}
        values.update({k: raw.get(k) for k in cls._OPTIONAL})
        for k in cls._MARKS:
            if values[k] is not None:
                values[k] = WindowMark.from_dict(values[k])
        values["totals"] = dict(totals)
        values["per_connection"] = tuple(per_connection)
        values["npz"] = str(raw.get("npz", ""))
        values["extra"] = {k: v for k, v in raw.items() if k not in known}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The ``OUT.json`` object: the fields flat (optional ones only when measured),
        then ``extra``'s keys."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in self._OPTIONAL and value is None):
                continue
            if f.name == "npz" and not value:
                continue
            out[f.name] = value.to_dict() if isinstance(value, WindowMark) else value
        out["totals"] = dict(self.totals)
        out["per_connection"] = [dict(c) for c in self.per_connection]
        clash = sorted(set(self.extra) & set(out))
        if clash:
            raise OutputError(f"worker result: extra repeats fields {clash}")
        return out | dict(self.extra)

    def total(self, name: str) -> int:
        """``totals[name]``; OutputError naming it when this worker kind does not count it
        (never a silent 0: use :meth:`total_or_none` for a counter some kinds lack)."""
        if name not in self.totals:
            raise OutputError(f"worker result totals without {name}")
        return int(self.totals[name])

    def total_or_none(self, name: str) -> int | None:
        """``totals[name]``, or None when this worker kind does not count it (not 0)."""
        return int(self.totals[name]) if name in self.totals else None

    def never_connected(self) -> int:
        """Connections that were never up during the whole run (``connect_ns`` -1 in
        ``per_connection``; a connection that came up late, after a failed first
        attempt, counts in ``connect_failures`` but not here)."""
        return sum(1 for c in self.per_connection if int(c["connect_ns"]) < 0)

    def connect_times_ns(self) -> list[int]:
        """Connect time of every connection that connected (TCP connect → ready)."""
        return [int(c["connect_ns"]) for c in self.per_connection if int(c["connect_ns"]) >= 0]

    def phase_times_ns(self, key: str) -> list[int]:
        """A connect phase of every connection that timed it (issue 12 item 2:
        ``tcp_connect_ns``, ``tls_handshake_ns``; absent or -1: not timed)."""
        return [int(c[key]) for c in self.per_connection if int(c.get(key, -1)) >= 0]

    @property
    def run_s(self) -> float:
        """Wall seconds from ready to the end of the window."""
        return (self.end_ns - self.ready_ns) / 1e9

    @property
    def cpu_run_s(self) -> float:
        """CPU seconds (user + system) from ready to the end of the window."""
        return float(self.cpu_user_s_run) + float(self.cpu_sys_s_run)


@dataclass(frozen=True)
class WorkerFailure:
    """A worker whose run failed (an exception, no usable window): what it had recorded.

    Written instead of a :class:`WorkerResult`, with ``"failed": true`` and
    ``"complete": false`` in the JSON; the runner marks the cell failed with
    ``reason``.
    """

    reason: str
    messages: int | None = None  # receipts recorded before it failed (None: not said)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> WorkerFailure:
        _missing("worker failure", raw, ("reason",))
        rest = {k: v for k, v in raw.items() if k not in ("reason", "messages", "complete")}
        rest.pop("failed", None)
        messages = raw.get("messages")
        return cls(str(raw["reason"]), None if messages is None else int(messages), rest)

    def to_dict(self) -> dict[str, Any]:
        head = {"complete": False, "failed": True, "reason": self.reason}
        return head | {"messages": self.messages} | dict(self.extra)


WorkerOutput = WorkerResult | WorkerFailure


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def read_output(raw: Mapping[str, Any]) -> WorkerOutput:
    """An ``OUT.json`` object → the record it holds. A failure says so (``"failed"``, or
    no ``totals``: nothing was measured); anything else must be a whole WorkerResult."""
    if raw.get("failed") is True or "totals" not in raw:
        return WorkerFailure.from_dict(raw)
    return WorkerResult.from_dict(raw)

"""Scenario files: what the runner measures, declared in TOML and validated before anything starts.

A scenario is a TOML file in ``scenarios/``. Top-level keys set parameters for
every cell; any parameter given as a list is a *dimension* and expands into
cells (cartesian product). Optional ``[[cells]]`` blocks each expand the same
way, with the top-level keys as their defaults, and the scenario is the union
of the blocks (with blocks, the top level only supplies defaults). ``exclude``
rules (top level: all cells; in a block: that block) drop the cells whose
values match every key of a rule::

    name = "example"
    description = "Which transport keeps p99 lowest as the rate grows?"
    stacks = ["aiohttp", "starlette"]
    transports = ["ws", "sse", "longpoll"]
    subscribers = 100
    rate = { start = 100, stop = 10000, steps = 5, scale = "log" }  # 100, 316, 1000, 3160, 10000
    payload_size = 100
    exclude = [{ stack = "starlette", transport = "longpoll", rate = 10000 }]

    [slo]                 # saturation search: highest rate with p99 ≤ 50 ms and ≥ 99 % delivered
    p99_ms = 50

    [[cells]]             # an empty block: the top level's own matrix
    [[cells]]             # and raw WebSocket at the same points
    stacks = "raw"
    transports = "ws"

Parameters (defaults in :data:`PARAMS`): ``transports`` (ws, ws-aiohttp, sse,
longpoll, shortpoll), ``stacks`` (raw, aiohttp, starlette), ``subscribers``,
``publishers`` (0: the server's ticker publishes; N: N of the subscribers also
publish, chat-like, sharing ``rate`` between them), ``rate`` (messages
published per second into the topic, total; a list or a sweep table),
``payload_size`` (bytes), ``duration_s``, ``warmup_s``, ``poll_interval_s``
(short poll), ``poll_timeout_s`` (long poll), ``heartbeat_s`` (WebSocket ping
and SSE comment interval), ``hub`` (memory, redis), ``ws_client`` (light,
aiohttp; ``ws-aiohttp`` is the ``ws`` transport driven by the aiohttp client),
``client`` (python, browser: headless Chromium's own APIs, locust: Locust users),
``loop`` (asyncio, uvloop), ``repeats``, ``client_processes`` ("auto" or N),
and the tables ``[slo]`` (``p99_ms``, ``min_delivered_fraction``, ``probes``)
and ``[checks]`` (fault injection that proves the instrument: ``delay_ms``,
``pause_ms`` + ``pause_at_s``, ``drop_every``). A block's ``[slo]`` or
``[checks]`` replaces the top-level table as a whole.

Why so strict: a typo in a scenario otherwise shows up an hour later as a
missing or wrong curve. Every mistake raises :class:`ScenarioError` naming the
file, the field as a dotted path (``cells[2].rate``), the bad value and what is
allowed, before any process starts. Parameters that do not apply to a
transport (the poll interval of a WebSocket cell, say) are set to ``None`` so
that equal cells collapse into one instead of being measured twice.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import textwrap
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

__all__ = [
    "CELL_OVERHEAD_S",
    "CLIENTS",
    "HUBS",
    "LOOPS",
    "MAX_RECEIPTS",
    "PARAMS",
    "SCENARIOS_DIR",
    "STACKS",
    "TRANSPORTS",
    "WS_CLIENTS",
    "Cell",
    "Checks",
    "Scenario",
    "ScenarioError",
    "Slo",
    "describe",
    "estimate_seconds",
    "list_scenarios",
    "load",
    "loads",
    "resolve",
]

TRANSPORTS: tuple[str, ...] = ("ws", "ws-aiohttp", "sse", "longpoll", "shortpoll")
WS_TRANSPORTS: tuple[str, ...] = ("ws", "ws-aiohttp")
STACKS: tuple[str, ...] = ("raw", "aiohttp", "starlette")
HUBS: tuple[str, ...] = ("memory", "redis")
LOOPS: tuple[str, ...] = ("asyncio", "uvloop")
WS_CLIENTS: tuple[str, ...] = ("light", "aiohttp")
#: Who receives: our Python clients (pushbench.clients.worker), headless Chromium's own
#: WebSocket/EventSource/fetch (pushbench.clients.browser_worker), or Locust users
#: (pushbench.clients.locust_worker). Each writes the same worker output.
CLIENTS: tuple[str, ...] = ("python", "browser", "locust")
SCALES: tuple[str, ...] = ("log", "linear")

MAX_SUBSCRIBERS = 20_000  # the servers' default max_connections
MAX_RATE = 1_000_000.0  # messages/s: far beyond what one Python server can publish
MAX_PAYLOAD = 1 << 20
MAX_PUBLISH_PAYLOAD = 65_536  # ServerConfig.max_publish_bytes: the POST /publish limit
MAX_DURATION_S = 3_600.0
# Receipt arrays cost ~36 bytes per received message; past this a cell needs GBs.
MAX_RECEIPTS = 20_000_000
# Seconds each run spends outside warm-up and measurement: starting the server
# and client processes, connecting, collecting and writing results.
CELL_OVERHEAD_S = 2.0
SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"

_SAFE_ID = re.compile(r"[A-Za-z0-9._-]+")


class ScenarioError(ValueError):
    """A scenario file that cannot be run, and how to fix it.

    ``file`` and ``path`` (dotted, e.g. ``cells[2].rate``; empty for the whole
    file) locate the mistake; the message also carries the bad value and the
    allowed values or range.
    """

    def __init__(self, file: str, path: str, problem: str) -> None:
        self.file = file
        self.path = path
        self.problem = problem
        super().__init__(f"{file}: {path}: {problem}" if path else f"{file}: {problem}")


# --- values ----------------------------------------------------------------


@dataclass(frozen=True)
class Slo:
    """Service level for the saturation search: p99 and delivered fraction, both required.

    ``probes`` is how many extra rates the runner may try (bisection) beyond
    the listed ones for each group of cells that differ only in rate.
    """

    p99_ms: float
    min_delivered_fraction: float = 0.99
    probes: int = 3


@dataclass(frozen=True)
class Checks:
    """Faults the server injects so the instrument can prove it sees them.

    ``delay_ms``: every message is delayed by this much (latency must rise by it);
    ``pause_ms`` at ``pause_at_s`` (seconds into the measured window): the event
    loop stalls once (a spike, no lost messages); ``drop_every``: every Nth
    message is dropped (loss must be exactly 1/N). Zero means off.
    """

    delay_ms: float = 0.0
    pause_ms: float = 0.0
    pause_at_s: float | None = None
    drop_every: int = 0

    @property
    def active(self) -> bool:
        return bool(self.delay_ms or self.pause_ms or self.drop_every)

    def id_parts(self) -> list[str]:
        parts = []
        if self.delay_ms:
            parts.append(f"delay{_num_id(self.delay_ms)}ms")
        if self.pause_ms:
            parts.append(f"pause{_num_id(self.pause_ms)}ms")
        if self.drop_every:
            parts.append(f"drop{self.drop_every}")
        return parts


@dataclass(frozen=True)
class Cell:
    """One measured point: a stack, a transport and every parameter, fully resolved.

    Parameters that do not apply are ``None``: ``ws_client`` outside
    WebSocket cells, ``poll_interval_s`` outside short polling,
    ``poll_timeout_s`` outside long polling, ``heartbeat_s`` for polling.
    ``rate`` is the total messages per second published into the topic (by
    the server's ticker when ``publishers`` is 0, else shared by the
    publishers); ``client_processes`` ``None`` means "auto".
    """

    scenario: str
    stack: str
    transport: str
    ws_client: str | None
    client: str
    subscribers: int
    publishers: int
    rate: float
    payload_size: int
    hub: str
    loop: str
    poll_interval_s: float | None
    poll_timeout_s: float | None
    heartbeat_s: float | None
    duration_s: float
    warmup_s: float
    repeats: int
    client_processes: int | None
    slo: Slo | None
    checks: Checks

    @property
    def cell_id(self) -> str:
        """Stable and filesystem-safe, e.g. ``aiohttp-ws-sub10-rate1000-p100``.

        It depends only on the cell's own parameters (not on its position or
        on the other cells), so the same point has the same id in every
        scenario and run. Parameters at their default are left out; run
        settings (durations, repeats, processes, SLO) are not part of it.
        """
        parts = [
            self.stack,
            self.transport,
            f"sub{self.subscribers}",
            f"rate{_num_id(self.rate)}",
            f"p{self.payload_size}",
        ]
        if self.publishers:
            parts.append(f"pub{self.publishers}")
        optional = (  # (field, value shown in the id); left out when at its default
            ("client", self.client),
            ("hub", self.hub),
            ("loop", self.loop),
            ("poll_interval_s", f"pi{_num_id((self.poll_interval_s or 0) * 1000)}ms"),
            ("poll_timeout_s", f"pt{_num_id(self.poll_timeout_s or 0)}s"),
            ("heartbeat_s", f"hb{_num_id(self.heartbeat_s or 0)}s"),
        )
        for name, shown in optional:
            value = getattr(self, name)
            if value is not None and value != _DEFAULT[name]:
                parts.append(shown)
        if self.client == "locust" and self.client_processes:
            parts.append(f"lw{self.client_processes}")  # Locust master + N workers
        parts += self.checks.id_parts()
        return "-".join(parts)

    @property
    def protocol(self) -> str:
        """The server endpoint family: ``ws`` for both WebSocket clients."""
        return "ws" if self.transport in WS_TRANSPORTS else self.transport

    @property
    def publish_rate_per_publisher(self) -> float:
        """Messages per second each publishing client sends (0 for ticker cells)."""
        return self.rate / self.publishers if self.publishers else 0.0

    @property
    def expected_messages(self) -> int:
        """Messages published during the measured window (each goes to every subscriber)."""
        return math.floor(self.rate * self.duration_s)

    def run_seconds(self, overhead_s: float = CELL_OVERHEAD_S) -> float:
        """Wall time of one repeat: warm-up + measurement + process overhead."""
        return self.warmup_s + self.duration_s + overhead_s

    def with_rate(self, rate: float) -> Cell:
        """The same cell at another rate (a saturation-search probe)."""
        return replace(self, rate=float(rate))

    def as_dict(self) -> dict[str, Any]:
        """Every parameter plus ``cell_id``, JSON-ready (``slo``/``checks`` nested)."""
        return {"cell_id": self.cell_id, **asdict(self)}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: its name, description, source file and expanded cells."""

    name: str
    description: str
    source: str
    expanded: tuple[Cell, ...]

    def cells(self) -> tuple[Cell, ...]:
        """Every cell, in file order (blocks, then the cartesian product)."""
        return self.expanded

    def cell(self, cell_id: str) -> Cell:
        for c in self.expanded:
            if c.cell_id == cell_id:
                return c
        raise KeyError(cell_id)

    @property
    def runs(self) -> int:
        """Cell × repeat runs on the grid (saturation probes not included)."""
        return sum(c.repeats for c in self.expanded)


def _num_id(x: float) -> str:
    """A number as it appears in ids and messages: ``1000``, ``0.5``, never ``1e+03``."""
    x = round(float(x), 6)  # 0.05 * 1000 is 50.00000000000001
    if x.is_integer():
        return str(int(x))
    return f"{x:.6f}".rstrip("0").rstrip(".")


# --- parameter table -------------------------------------------------------


class _Invalid(Exception):
    """A value a parser refused; the caller adds file, path and expectation."""


@dataclass(frozen=True)
class _Kind:
    """How one value is checked: ``parse`` normalizes it or raises ``_Invalid``."""

    expected: str  # what is allowed, for the error message
    parse: Callable[[Any], Any]
    options: tuple[str, ...] = ()  # for "did you mean"


def _choice(options: Sequence[str]) -> _Kind:
    def parse(v: Any) -> str:
        if not isinstance(v, str) or v not in options:
            raise _Invalid
        return v

    return _Kind(f"one of {', '.join(options)}", parse, tuple(options))


def _int(lo: int, hi: int, what: str = "", *, also: int | None = None) -> _Kind:
    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Invalid
        if not (lo <= v <= hi or v == also):
            raise _Invalid
        return v

    prefix = f"{also} or " if also is not None else ""
    return _Kind(f"{prefix}an integer from {lo} to {hi}{what}", parse)


def _float(lo: float, hi: float, what: str = "", *, lo_open: bool = False) -> _Kind:
    def parse(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _Invalid
        if not lo <= v <= hi or (lo_open and v == lo):
            raise _Invalid
        return float(v)

    low = f"greater than {_num_id(lo)} and up" if lo_open else f"from {_num_id(lo)}"
    return _Kind(f"a number {low} to {_num_id(hi)}{what}", parse)


def _parse_processes(v: Any) -> int | None:
    if v == "auto":
        return None
    return int(_int(1, 64).parse(v))


@dataclass(frozen=True)
class _Param:
    key: str  # TOML key
    field: str  # Cell field
    kind: _Kind
    default: tuple[Any, ...]  # the values when the file does not set the key
    listable: bool  # a list is a dimension of the matrix


def _p(key: str, kind: _Kind, default: Any, *, field: str = "", listable: bool = True) -> _Param:
    values = default if isinstance(default, tuple) else (default,)
    return _Param(key, field or key, kind, values, listable)


#: Every cell parameter: TOML key, Cell field, allowed values, default.
PARAMS: tuple[_Param, ...] = (
    _p("stacks", _choice(STACKS), "aiohttp", field="stack"),
    _p(
        "transports", _choice(TRANSPORTS), ("ws", "sse", "longpoll", "shortpoll"), field="transport"
    ),
    _p("ws_client", _choice(WS_CLIENTS), "light"),
    _p("client", _choice(CLIENTS), "python"),
    _p("subscribers", _int(1, MAX_SUBSCRIBERS, " (connections)"), 10),
    _p("publishers", _int(0, MAX_SUBSCRIBERS, " (0 = the server's ticker)"), 0),
    _p("rate", _float(0, MAX_RATE, " (messages/s published, 0 = idle)"), 100.0),
    _p("payload_size", _int(0, MAX_PAYLOAD, " (bytes)"), 100),
    _p("hub", _choice(HUBS), "memory"),
    _p("loop", _choice(LOOPS), "asyncio"),
    _p("poll_interval_s", _float(0, 60, " (s)", lo_open=True), 0.1),
    _p("poll_timeout_s", _float(0, 120, " (s)", lo_open=True), 30.0),
    _p("heartbeat_s", _float(0, 300, " (s)", lo_open=True), 15.0),
    _p("duration_s", _float(0, MAX_DURATION_S, " (s)", lo_open=True), 10.0, listable=False),
    _p("warmup_s", _float(0, 600, " (s)"), 2.0, listable=False),
    _p("repeats", _int(1, 100), 3, listable=False),
    _p(
        "client_processes",
        _Kind('"auto" or an integer from 1 to 64', _parse_processes),
        None,
        listable=False,
    ),
)
_BY_KEY: dict[str, _Param] = {p.key: p for p in PARAMS}
_BY_FIELD: dict[str, _Param] = {p.field: p for p in PARAMS}
_DEFAULT: dict[str, Any] = {p.field: p.default[0] for p in PARAMS}
_FIELDS: tuple[str, ...] = tuple(p.field for p in PARAMS)

_SLO_SPEC: dict[str, tuple[_Kind, Any]] = {
    "p99_ms": (_float(0, 600_000, " (ms)", lo_open=True), None),
    "min_delivered_fraction": (_float(0, 1, " (fraction of messages)", lo_open=True), 0.99),
    "probes": (_int(0, 20, " (extra rates tried by bisection)"), 3),
}
_CHECKS_SPEC: dict[str, tuple[_Kind, Any]] = {
    "delay_ms": (_float(0, 10_000, " (ms, 0 = off)"), 0.0),
    "pause_ms": (_float(0, 60_000, " (ms, 0 = off)"), 0.0),
    "pause_at_s": (_float(0, MAX_DURATION_S, " (s into the measured window)"), None),
    "drop_every": (_int(2, 1_000_000, " (0 = off)", also=0), 0),
}
_SWEEP_KEYS = ("start", "stop", "steps", "scale")
_BLOCK_KEYS = (*_BY_KEY, "slo", "checks", "exclude")
_TOP_KEYS = ("name", "description", "cells", *_BLOCK_KEYS)
_RULE_KEYS = tuple(p.field for p in PARAMS if p.listable)


# --- parsing ---------------------------------------------------------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class _Ctx:
    """Builds :class:`ScenarioError` values for one file."""

    file: str

    def error(self, path: str, problem: str) -> ScenarioError:
        return ScenarioError(self.file, path, problem)

    def bad(self, path: str, value: Any, expected: str, hint: str = "") -> ScenarioError:
        return self.error(path, f"{_show(value)} is not allowed; expected {expected}{hint}")

    def check_keys(self, table: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(
                    _join(path, key),
                    f"unknown key {key!r}{_did_you_mean(key, allowed)}; "
                    f"allowed keys here: {', '.join(allowed)}",
                )

    def value(self, kind: _Kind, value: Any, path: str) -> Any:
        try:
            return kind.parse(value)
        except _Invalid:
            hint = _did_you_mean(value, kind.options) if isinstance(value, str) else ""
            raise self.bad(path, value, kind.expected, hint) from None

    def table(self, value: Any, path: str, what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.bad(path, value, f"a table ({what})")
        return value


def _values(ctx: _Ctx, param: _Param, value: Any, path: str) -> tuple[Any, ...]:
    """A parameter's values as a tuple: one value, a list, or (``rate``) a sweep."""
    if param.key == "rate" and isinstance(value, Mapping):
        return _sweep(ctx, value, path)
    if isinstance(value, list) and param.listable:
        if not value:
            raise ctx.bad(path, value, f"a non-empty list of {param.kind.expected}")
        out: list[Any] = []
        for i, item in enumerate(value):
            parsed = ctx.value(param.kind, item, _join(path, i))
            if parsed in out:
                raise ctx.bad(_join(path, i), item, "each value once (it is listed twice)")
            out.append(parsed)
        return tuple(out)
    kind = param.kind
    if param.listable:
        extra = ", or a sweep table {start, stop, steps, scale}" if param.key == "rate" else ""
        kind = replace(kind, expected=f"{kind.expected}, a list of them{extra}")
    elif isinstance(value, list):
        kind = replace(kind, expected=f"a single value, {kind.expected}")
    return (ctx.value(kind, value, path),)


def _sweep(ctx: _Ctx, table: Mapping[str, Any], path: str) -> tuple[float, ...]:
    """``{start, stop, steps, scale}`` → rates rounded to 3 significant digits."""
    ctx.check_keys(table, path, _SWEEP_KEYS)
    for key in ("start", "stop", "steps"):
        if key not in table:
            raise ctx.error(_join(path, key), "missing; a sweep needs start, stop and steps")
    scale = ctx.value(_choice(SCALES), table.get("scale", "log"), _join(path, "scale"))
    unit = " (messages/s)"
    first = _float(0, MAX_RATE, unit, lo_open=scale == "log")
    start = ctx.value(first, table["start"], _join(path, "start"))
    stop = ctx.value(
        _float(start, MAX_RATE, unit, lo_open=True), table["stop"], _join(path, "stop")
    )
    steps = ctx.value(_int(2, 100), table["steps"], _join(path, "steps"))
    if scale == "log":
        raw = [start * (stop / start) ** (i / (steps - 1)) for i in range(steps)]
    else:
        raw = [start + (stop - start) * i / (steps - 1) for i in range(steps)]
    rates = tuple(dict.fromkeys(float(f"{r:.3g}") for r in raw))
    if len(rates) != steps:
        raise ctx.bad(
            _join(path, "steps"),
            steps,
            f"fewer steps: rates are rounded to 3 significant digits and {steps} steps "
            f"from {_num_id(start)} to {_num_id(stop)} repeat values",
        )
    return rates


def _subtable(
    ctx: _Ctx, value: Any, path: str, spec: Mapping[str, tuple[_Kind, Any]]
) -> dict[str, Any]:
    table = ctx.table(value, path, "keys " + ", ".join(spec))
    ctx.check_keys(table, path, tuple(spec))
    out = {key: default for key, (_, default) in spec.items()}
    for key, item in table.items():
        out[key] = ctx.value(spec[key][0], item, _join(path, key))
    return out


def _slo(ctx: _Ctx, value: Any, path: str) -> Slo:
    fields = _subtable(ctx, value, path, _SLO_SPEC)
    if fields["p99_ms"] is None:
        raise ctx.error(_join(path, "p99_ms"), "missing; an SLO needs p99_ms (milliseconds)")
    return Slo(**fields)


def _checks(ctx: _Ctx, value: Any, path: str) -> Checks:
    fields = _subtable(ctx, value, path, _CHECKS_SPEC)
    if fields["pause_at_s"] is not None and not fields["pause_ms"]:
        raise ctx.error(
            _join(path, "pause_at_s"), "set without pause_ms; add pause_ms > 0 or remove it"
        )
    return Checks(**fields)


@dataclass(frozen=True)
class _Rule:
    """One ``exclude`` entry: a cell matches when every key has one of the values."""

    path: str
    match: dict[str, tuple[Any, ...]]

    def matches(self, cell: Cell) -> bool:
        return all(getattr(cell, k) in vs for k, vs in self.match.items())


def _rules(ctx: _Ctx, value: Any, path: str) -> list[_Rule]:
    example = '[{ stack = "raw", transport = "sse" }]'
    if not isinstance(value, list):
        raise ctx.bad(path, value, f"a list of tables, e.g. {example}")
    rules = []
    for i, item in enumerate(value):
        rpath = _join(path, i)
        table = ctx.table(item, rpath, f"cell values to leave out, e.g. {example[1:-1]}")
        if not table:
            raise ctx.error(rpath, "empty rule; it would exclude every cell")
        ctx.check_keys(table, rpath, _RULE_KEYS)
        match = {k: _values(ctx, _BY_FIELD[k], v, _join(rpath, k)) for k, v in table.items()}
        rules.append(_Rule(rpath, match))
    return rules


@dataclass
class _Block:
    """The parsed keys of the top level or of one ``[[cells]]`` block."""

    path: str  # "" for the top level, else "cells[i]"
    values: dict[str, tuple[Any, ...]]  # Cell field → values
    slo: Slo | None = None
    checks: Checks | None = None
    rules: tuple[_Rule, ...] = ()


def _block(ctx: _Ctx, table: Mapping[str, Any], path: str) -> _Block:
    block = _Block(path, {})
    for key, value in table.items():
        kpath = _join(path, key)
        if key == "slo":
            block.slo = _slo(ctx, value, kpath)
        elif key == "checks":
            block.checks = _checks(ctx, value, kpath)
        elif key == "exclude":
            block.rules = tuple(_rules(ctx, value, kpath))
        else:
            param = _BY_KEY[key]
            block.values[param.field] = _values(ctx, param, value, kpath)
    return block


def _normalize(values: dict[str, Any]) -> dict[str, Any]:
    """Resolve the ws/ws-aiohttp alias and blank out parameters a transport does not use."""
    transport = values["transport"]
    if transport == "ws" and values["ws_client"] == "aiohttp":
        transport = "ws-aiohttp"
    values["transport"] = transport
    if transport == "ws-aiohttp":
        values["ws_client"] = "aiohttp"
    elif transport != "ws" or values["client"] != "python":
        values["ws_client"] = None  # not a Python WebSocket client
    if transport != "shortpoll":
        values["poll_interval_s"] = None
    if transport != "longpoll":
        values["poll_timeout_s"] = None
    if transport in ("longpoll", "shortpoll"):
        values["heartbeat_s"] = None
    return values


def _where(key: str, top: _Block, block: _Block) -> str:
    """The path of the key that set a cell's value: the block's, else the top level's."""
    head = key.split(".")[0]

    def sets(b: _Block) -> bool:
        return head in b.values or (head == "checks" and b.checks is not None)

    return key if not sets(block) and sets(top) else _join(block.path, key)


def _check_cell(ctx: _Ctx, cell: Cell, top: _Block, block: _Block) -> None:
    """Rules that span parameters, checked on every expanded cell."""

    def bad(key: str, value: Any, expected: str) -> ScenarioError:
        return ctx.bad(_where(key, top, block), value, f"{expected} (cell {cell.cell_id})")

    if cell.client != "python" and cell.transport == "ws-aiohttp":
        raise bad(
            "ws_client",
            cell.ws_client,
            f"the light client only with client = {cell.client!r}: its own WebSocket is used",
        )
    if cell.client != "python" and (cell.publishers or cell.checks.active):
        raise bad(
            "client",
            cell.client,
            '"python" for cells with publishers or [checks] (the browser and Locust clients '
            "only receive)",
        )
    if cell.publishers > cell.subscribers:
        raise bad(
            "publishers",
            cell.publishers,
            f"at most subscribers ({cell.subscribers}): publishers are subscribers that publish",
        )
    if cell.publishers and cell.rate == 0:
        raise bad("rate", cell.rate, "a rate > 0 when publishers > 0")
    if cell.publishers and cell.payload_size > MAX_PUBLISH_PAYLOAD:
        raise bad(
            "payload_size",
            cell.payload_size,
            f"at most {MAX_PUBLISH_PAYLOAD} bytes when clients publish (POST /publish limit)",
        )
    if 0 < cell.rate * cell.duration_s < 1:
        raise bad(
            "rate",
            cell.rate,
            f"at least {_num_id(1 / cell.duration_s)} messages/s, so that a message is "
            f"published within duration_s = {_num_id(cell.duration_s)}",
        )
    receipts = cell.rate * (cell.warmup_s + cell.duration_s) * cell.subscribers
    if receipts > MAX_RECEIPTS:
        raise bad(
            "rate",
            cell.rate,
            f"rate × (warmup_s + duration_s) × subscribers ≤ {MAX_RECEIPTS:,} receipts, "
            f"not {receipts:,.0f}: lower one of them or exclude the cell",
        )
    if cell.checks.pause_at_s is not None and cell.checks.pause_at_s >= cell.duration_s:
        raise bad(
            "checks.pause_at_s",
            cell.checks.pause_at_s,
            f"a time inside the measured window, below duration_s = {_num_id(cell.duration_s)}",
        )
    if cell.checks.active and cell.rate == 0:
        raise bad("rate", cell.rate, "a rate > 0 with [checks]: an idle cell has nothing to delay")
    if cell.slo is not None and cell.rate == 0:
        raise bad("rate", cell.rate, "a rate > 0 with [slo]: an idle cell has no rate to search")


def _expand(name: str, top: _Block, block: _Block) -> list[Cell]:
    """The block's cartesian product with the top level and the defaults underneath."""
    values = {p.field: p.default for p in PARAMS} | top.values | block.values
    slo = block.slo or top.slo
    checks = block.checks or top.checks or Checks()
    cells: dict[Cell, None] = {}  # ordered set: equal cells collapse (ws_client on SSE, …)
    for combo in itertools.product(*(values[f] for f in _FIELDS)):
        params = _normalize(dict(zip(_FIELDS, combo, strict=True)))
        cell_checks = checks
        if checks.pause_ms and checks.pause_at_s is None:  # default: mid-window
            cell_checks = replace(checks, pause_at_s=params["duration_s"] / 2)
        cells[Cell(scenario=name, slo=slo, checks=cell_checks, **params)] = None
    return list(cells)


def _apply_rules(ctx: _Ctx, cells: list[Cell], rules: Sequence[_Rule]) -> list[Cell]:
    for rule in rules:
        if not any(rule.matches(c) for c in cells):
            shown = {k: list(v) for k, v in rule.match.items()}
            raise ctx.error(
                rule.path, f"matches no cell: {shown}; fix its values or remove the rule"
            )
    return [c for c in cells if not any(r.matches(c) for r in rules)]


def _differences(a: Cell, b: Cell) -> list[str]:
    return [f for f in (*_FIELDS, "slo", "checks") if getattr(a, f) != getattr(b, f)]


def from_dict(
    data: Mapping[str, Any], *, source: str = "<string>", default_name: str = "scenario"
) -> Scenario:
    """Validate parsed TOML and expand it into a :class:`Scenario` (or raise ScenarioError)."""
    ctx = _Ctx(source)
    ctx.check_keys(data, "", _TOP_KEYS)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _SAFE_ID.fullmatch(name):
        raise ctx.bad("name", name, "letters, digits, '.', '_' or '-' (it names result files)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ctx.bad("description", description, "a string")
    top = _block(ctx, {k: v for k, v in data.items() if k in _BLOCK_KEYS}, "")
    blocks = [_Block("", {})]
    if "cells" in data:
        raw = data["cells"]
        if not isinstance(raw, list) or not raw:
            raise ctx.bad("cells", raw, "a non-empty array of tables ([[cells]] sections)")
        blocks = []
        for i, table in enumerate(raw):
            path = _join("cells", i)
            table = ctx.table(table, path, "one [[cells]] section")
            ctx.check_keys(table, path, _BLOCK_KEYS)
            blocks.append(_block(ctx, table, path))
    expanded: list[tuple[Cell, _Block]] = []  # (cell, the block that made it)
    for block in blocks:
        expanded += [(c, block) for c in _apply_rules(ctx, _expand(name, top, block), block.rules)]
    kept = set(_apply_rules(ctx, [c for c, _ in expanded], top.rules))
    if not kept:
        raise ctx.error("exclude", "every cell is excluded; nothing would run")
    cells: list[Cell] = []
    owner: dict[str, tuple[Cell, str]] = {}
    for cell, block in expanded:
        if cell not in kept:
            continue
        _check_cell(ctx, cell, top, block)
        path = block.path
        if cell.cell_id not in owner:
            owner[cell.cell_id] = (cell, path)
            cells.append(cell)
        elif (other := owner[cell.cell_id])[0] != cell:
            raise ctx.error(
                path,
                f"cell {cell.cell_id} is also defined by {other[1] or 'the top level'} with "
                f"different {', '.join(_differences(cell, other[0]))}; one id must name one "
                "set of parameters: make them equal or change a parameter that is part of the id",
            )
    return Scenario(name, description.strip(), source, tuple(cells))


def loads(text: str, *, source: str = "<string>", default_name: str = "scenario") -> Scenario:
    """Parse and validate scenario TOML text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "", f"not valid TOML: {exc}") from None
    return from_dict(data, source=source, default_name=default_name)


def resolve(name_or_path: str | Path, directory: Path = SCENARIOS_DIR) -> Path:
    """``quick`` → ``scenarios/quick.toml``; an existing path is returned as is."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    candidate = directory / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    known = [p.stem for p in list_scenarios(directory)]
    raise ScenarioError(
        str(candidate),
        "",
        f"no such scenario{_did_you_mean(str(name_or_path), known)}; "
        f"known scenarios: {', '.join(known) or 'none'}",
    )


def load(name_or_path: str | Path) -> Scenario:
    """Read, validate and expand a scenario file (a path, or a name in ``scenarios/``)."""
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), "", f"cannot read the file: {exc}") from None
    return loads(text, source=str(path), default_name=path.stem)


def list_scenarios(directory: Path = SCENARIOS_DIR) -> list[Path]:
    """The scenario files shipped in ``directory``, sorted by name."""
    return sorted(directory.glob("*.toml"))


# --- estimates and description ---------------------------------------------


def _probe_groups(scenario: Scenario) -> dict[tuple[Any, ...], Cell]:
    """Cells with an SLO, grouped by everything but the rate: one search per group."""
    groups: dict[tuple[Any, ...], Cell] = {}
    for c in scenario.cells():
        if c.slo is not None and c.slo.probes:
            key = tuple(getattr(c, f) for f in _FIELDS if f != "rate")
            groups.setdefault(key, c)
    return groups


def estimate_seconds(scenario: Scenario, overhead_s: float = CELL_OVERHEAD_S) -> float:
    """Wall time of the whole scenario: Σ repeats × (warm-up + duration + overhead).

    Saturation probes count too: ``slo.probes`` extra runs (× repeats) per
    group of cells that differ only in rate, the most a search may add.
    """
    grid = sum(c.repeats * c.run_seconds(overhead_s) for c in scenario.cells())
    probes = sum(
        c.slo.probes * c.repeats * c.run_seconds(overhead_s)
        for c in _probe_groups(scenario).values()
        if c.slo is not None
    )
    return grid + probes


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def describe(scenario: Scenario, overhead_s: float = CELL_OVERHEAD_S) -> str:
    """A human summary: what varies, how many cells and runs, how long it will take."""
    cells = scenario.cells()
    lines = [f"scenario {scenario.name} ({scenario.source})"]
    if scenario.description:
        lines += textwrap.wrap(
            scenario.description, 96, initial_indent="  ", subsequent_indent="  "
        )
    repeats = "/".join(str(r) for r in sorted({c.repeats for c in cells}))
    lines.append(
        f"{len(cells)} cells × {repeats} repeat{'s' * (repeats != '1')} = {scenario.runs} runs"
    )
    for p in PARAMS:
        seen = dict.fromkeys(getattr(c, p.field) for c in cells)
        if p.key == "client_processes":
            shown = ["auto" if v is None else str(v) for v in seen]
        else:  # None: not applicable to those cells' transport
            shown = [_num_id(v) if isinstance(v, float) else str(v) for v in seen if v is not None]
        if shown:
            varies = "  (varies)" if len(shown) > 1 else ""
            lines.append(f"  {p.key}: {', '.join(shown)}{varies}")
    for slo in dict.fromkeys(c.slo for c in cells if c.slo is not None):
        lines.append(
            f"  SLO: p99 ≤ {_num_id(slo.p99_ms)} ms and ≥ {slo.min_delivered_fraction:.2%} "
            f"delivered; up to {slo.probes} bisection probes per rate sweep"
        )
    checks = [c for c in cells if c.checks.active]
    if checks:
        lines.append("  self-checks: " + ", ".join(c.cell_id for c in checks))
    total = estimate_seconds(scenario, overhead_s)
    probes = len(_probe_groups(scenario))
    lines.append(
        f"estimated duration: {_duration(total)} ({total:.0f} s, counting ~{_num_id(overhead_s)} s "
        "of process start-up per run"
        + (f" and the probes of {probes} searches" * bool(probes))
        + ")"
    )
    return "\n".join(lines)

"""Reading a scenario file: TOML → checked values → expanded, cross-checked cells.

Every mistake raises :class:`~pushbench.scenario.model.ScenarioError` naming the
file, the field as a dotted path (``cells[2].rate``), the bad value and what is
allowed, before any process starts. Besides each value on its own
(:mod:`pushbench.scenario.params`), every expanded cell is checked against the
rules that span parameters, and against the registry: its stack must serve its
transport's protocol (``Stack.serves``) and its transport must have a client for
the engine of the cell's ``client`` (``Transport.clients``).
"""

from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pushbench import proxies, registry, thresholds
from pushbench.proxies import DIRECT, h2_capable

from . import scaleout
from .abuse import AbuseSpec, parse_abuse
from .browser_streams import BrowserStreamsSpec, parse_browser_streams  # h43
from .model import Cell, Checks, Scenario, ScenarioError, Slo
from .params import (
    BLOCK_KEYS,
    BY_FIELD,
    BY_KEY,
    CHECKS_SPEC,
    CLIENT_ENGINES,
    FIELDS,
    MAX_PUBLISH_PAYLOAD,
    MAX_RATE,
    MAX_RECEIPTS,
    PARAMS,
    RULE_KEYS,
    SCALES,
    SLO_SPEC,
    SWEEP_KEYS,
    TOP_KEYS,
    Invalid,
    Kind,
    Param,
    choice,
    integer,
    normalize,
    num_id,
    number,
)

__all__ = ["SCENARIOS_DIR", "from_dict", "list_scenarios", "load", "loads", "resolve"]

#: The bundled scenarios, found by name: ``pushbench/scenarios`` is package data (a link to the
#: checkout's top-level ``scenarios/``, copied into a wheel), so ``pushbench run smoke`` works
#: from a checkout and from an installed wheel alike, in any directory.
SCENARIOS_DIR = (Path(__file__).resolve().parent.parent / "scenarios").resolve()

_SAFE_ID = re.compile(r"[A-Za-z0-9._-]+")


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

    def value(self, kind: Kind, value: Any, path: str) -> Any:
        try:
            return kind.parse(value)
        except Invalid:
            hint = _did_you_mean(value, kind.options) if isinstance(value, str) else ""
            raise self.bad(path, value, kind.expected, hint) from None

    def table(self, value: Any, path: str, what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.bad(path, value, f"a table ({what})")
        return value


def _values(ctx: _Ctx, param: Param, value: Any, path: str) -> tuple[Any, ...]:
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
        kind = replace(kind, text=f"{kind.expected}, a list of them{extra}")
    elif isinstance(value, list):
        kind = replace(kind, text=f"a single value, {kind.expected}")
    return (ctx.value(kind, value, path),)


def _sweep(ctx: _Ctx, table: Mapping[str, Any], path: str) -> tuple[float, ...]:
    """``{start, stop, steps, scale}`` → rates rounded to 3 significant digits."""
    ctx.check_keys(table, path, SWEEP_KEYS)
    for key in ("start", "stop", "steps"):
        if key not in table:
            raise ctx.error(_join(path, key), "missing; a sweep needs start, stop and steps")
    scale = ctx.value(choice(SCALES), table.get("scale", "log"), _join(path, "scale"))
    unit = " (messages/s)"
    first = number(0, MAX_RATE, unit, lo_open=scale == "log")
    start = ctx.value(first, table["start"], _join(path, "start"))
    stop = ctx.value(
        number(start, MAX_RATE, unit, lo_open=True), table["stop"], _join(path, "stop")
    )
    steps = ctx.value(integer(2, 100), table["steps"], _join(path, "steps"))
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
            f"from {num_id(start)} to {num_id(stop)} repeat values",
        )
    return rates


def _subtable(
    ctx: _Ctx, value: Any, path: str, spec: Mapping[str, tuple[Kind, Any]]
) -> dict[str, Any]:
    table = ctx.table(value, path, "keys " + ", ".join(spec))
    ctx.check_keys(table, path, tuple(spec))
    out = {key: default for key, (_, default) in spec.items()}
    for key, item in table.items():
        out[key] = ctx.value(spec[key][0], item, _join(path, key))
    return out


def _slo(ctx: _Ctx, value: Any, path: str) -> Slo:
    fields = _subtable(ctx, value, path, SLO_SPEC)
    if fields["p99_ms"] is None:
        raise ctx.error(_join(path, "p99_ms"), "missing; an SLO needs p99_ms (milliseconds)")
    return Slo(**fields)


def _checks(ctx: _Ctx, value: Any, path: str) -> Checks:
    fields = _subtable(ctx, value, path, CHECKS_SPEC)
    if fields["pause_at_s"] is not None and not fields["pause_ms"]:
        raise ctx.error(
            _join(path, "pause_at_s"), "set without pause_ms; add pause_ms > 0 or remove it"
        )
    stall, every = fields["client_stall_ms"], fields["client_stall_every_ms"]
    if bool(stall) != bool(every) or (stall and stall >= every):
        key = "client_stall_every_ms" if stall else "client_stall_ms"
        raise ctx.error(
            _join(path, key),
            "client_stall_ms (how long) and client_stall_every_ms (how often, longer) go "
            f"together, e.g. {{ client_stall_ms = 25, client_stall_every_ms = 1000 }}; got "
            f"{stall:g} every {every:g}",
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
        ctx.check_keys(table, rpath, RULE_KEYS)
        match = {k: _values(ctx, BY_FIELD[k], v, _join(rpath, k)) for k, v in table.items()}
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
            param = BY_KEY[key]
            block.values[param.field] = _values(ctx, param, value, kpath)
    return block


def _where(key: str, top: _Block, block: _Block) -> str:
    """The path of the key that set a cell's value: the block's, else the top level's."""
    head = key.split(".")[0]
    field = BY_KEY[head].field if head in BY_KEY else head  # "stacks" sets "stack"

    def sets(b: _Block) -> bool:
        return field in b.values or (head == "checks" and b.checks is not None)

    return key if not sets(block) and sets(top) else _join(block.path, key)


def _check_cell(ctx: _Ctx, cell: Cell, top: _Block, block: _Block) -> None:
    """Rules that span parameters, checked on every expanded cell."""

    def bad(key: str, value: Any, expected: str) -> ScenarioError:
        return ctx.bad(_where(key, top, block), value, f"{expected} (cell {cell.cell_id})")

    row = registry.transport(cell.transport)
    stack = registry.stack(cell.stack)
    if row.protocol not in stack.serves:
        serving = [s.name for s in registry.stacks() if row.protocol in s.serves]
        raise bad(
            "stacks",
            cell.stack,
            f"a stack that serves the {row.protocol} protocol of transport {cell.transport!r} "
            f"({', '.join(serving) or 'none does'}); {cell.stack} serves "
            f"{', '.join(stack.serves)}: change the stack or exclude the cell",
        )
    # h35 (issue 18 item 3): an HTTP/2 transport needs a stack that speaks HTTP/2 — or
    # (h43) a proxy in front that does (nginx: h2 to the client, HTTP/1.1 to any stack)
    if row.http2 and cell.via != DIRECT and not h2_capable(cell.via):
        raise bad("via", cell.via, f'a proxy that speaks HTTP/2 for {cell.transport!r} ("nginx")')
    if row.http2 and cell.via != DIRECT and not cell.tls and cell.publishers:
        # nginx's plaintext http2 port speaks only h2c: the publishers' HTTP/1.1 POSTs fail
        raise bad("publishers", cell.publishers, "0 for an h2c cell behind a proxy (or tls)")
    if row.http2 and not stack.http2 and cell.via == DIRECT:
        speaking = [s.name for s in registry.stacks() if s.http2 and row.protocol in s.serves]
        raise bad(
            "stacks",
            cell.stack,
            f"a stack that speaks HTTP/2 for transport {cell.transport!r} "
            f'({", ".join(speaking) or "none does"}), or via = "nginx" in front: change '
            "the stack or exclude the cell",
        )
    engine = CLIENT_ENGINES[cell.client]
    if engine not in row.clients:
        # The key that chose the transport: transports, or the ws_client alias (ws-aiohttp).
        chosen = block.values.get("transport") or top.values.get("transport")
        by_alias = cell.transport not in (chosen or BY_FIELD["transport"].defaults())
        able = [t.name for t in registry.transports() if engine in t.clients]
        raise bad(
            "ws_client" if by_alias else "transports",
            cell.ws_client if by_alias else cell.transport,
            f"a transport with a {engine} client for client = {cell.client!r} "
            f"({', '.join(able) or 'none has one'}); transport {cell.transport!r} has none",
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
            f"at least {num_id(1 / cell.duration_s)} messages/s, so that a message is "
            f"published within duration_s = {num_id(cell.duration_s)}",
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
            f"a time inside the measured window, below duration_s = {num_id(cell.duration_s)}",
        )
    if cell.checks.active and cell.rate == 0:
        raise bad("rate", cell.rate, "a rate > 0 with [checks]: an idle cell has nothing to delay")
    if cell.slo is not None and cell.rate == 0:
        raise bad("rate", cell.rate, "a rate > 0 with [slo]: an idle cell has no rate to search")
    # -- issue 17 item 6 (soak): churn is counted against the server ticker's seq range --
    if cell.churn is not None and (cell.client != "python" or cell.publishers or not cell.rate):
        raise bad(
            "churn",
            cell.churn.to_dict(),
            'churn only with client = "python", publishers = 0 and a rate > 0 (the soak '
            "counts every subscriber against the server ticker's messages)",
        )
    # -- issue 12 item 4 (scale-out, h31): servers > 1 needs a broker hub and nginx --
    refused = scaleout.refusal(cell)
    if refused is not None:
        raise bad(*refused)
    # --- h42 (issue 12 item 2): TLS end to end behind a proxy: its good config only ---
    behind = proxies.proxy_of(cell.via)
    if cell.tls_at == proxies.TLS_END_TO_END and behind is not None and behind[1] == "naive":
        raise bad(
            "tls_at",
            cell.tls_at,
            f"'proxy' with via = {cell.via!r}: a naive config forwards plain HTTP only; "
            f"TLS from the proxy to the server needs its good config "
            f"(via = {behind[0].name!r})",
        )
    # --- end h42 ---
    # --- h32 (issue 12 item 5): a fault needs the ticker, a window to fall in, its part ---
    fault = cell.fault
    if fault is not None:
        why = ""
        if cell.publishers or not cell.rate:
            why = "a fault only with publishers = 0 and a rate > 0 (the server's ticker)"
        elif fault.at_s + fault.down_s >= cell.duration_s:
            why = f"at_s + down_s below duration_s = {num_id(cell.duration_s)}"
        elif fault.kind == "proxy-restart" and cell.via == "direct":
            why = 'proxy-restart needs a proxy in front (via = "nginx", …)'
        elif fault.kind == "broker-pause" and cell.hub != "redis":
            why = 'broker-pause needs hub = "redis"'
        elif cell.churn is not None:
            why = "a fault and churn in one cell: their reconnects could not be told apart"
        elif cell.servers > 1 and fault.kind != "server-kill":  # h41: one node of N
            why = "with servers > 1 only server-kill (of one node) is supported yet"
        if why:
            raise bad("fault", fault.to_dict(), why)
        if fault.node >= cell.servers:  # h41: which node of servers = N a server-kill hits
            raise bad(
                "fault.node",
                fault.node,
                f"a node of servers = {cell.servers}: 0 to {cell.servers - 1} "
                "(node 0 publishes the ticker)",
            )
    # --- end h32 ---


def _expand(name: str, top: _Block, block: _Block) -> list[Cell]:
    """The block's cartesian product with the top level and the defaults underneath."""
    values = {p.field: p.defaults() for p in PARAMS} | top.values | block.values
    slo = block.slo or top.slo
    checks = block.checks or top.checks or Checks()
    cells: dict[Cell, None] = {}  # ordered set: equal cells collapse (ws_client on SSE, …)
    for combo in itertools.product(*(values[f] for f in FIELDS)):
        params = normalize(dict(zip(FIELDS, combo, strict=True)))
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
    return [f for f in (*FIELDS, "slo", "checks") if getattr(a, f) != getattr(b, f)]


def from_dict(
    data: Mapping[str, Any], *, source: str = "<string>", default_name: str = "scenario"
) -> Scenario:
    """Validate parsed TOML and expand it into a :class:`Scenario` (or raise ScenarioError)."""
    ctx = _Ctx(source)
    ctx.check_keys(data, "", (*TOP_KEYS, "thresholds", "abuse", "browser_streams"))
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _SAFE_ID.fullmatch(name):
        raise ctx.bad("name", name, "letters, digits, '.', '_' or '-' (it names result files)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ctx.bad("description", description, "a string")
    top = _block(ctx, {k: v for k, v in data.items() if k in BLOCK_KEYS}, "")
    blocks = [_Block("", {})]
    if "cells" in data:
        raw = data["cells"]
        if not isinstance(raw, list) or not raw:
            raise ctx.bad("cells", raw, "a non-empty array of tables ([[cells]] sections)")
        blocks = []
        for i, table in enumerate(raw):
            path = _join("cells", i)
            table = ctx.table(table, path, "one [[cells]] section")
            ctx.check_keys(table, path, BLOCK_KEYS)
            blocks.append(_block(ctx, table, path))
    expanded: list[tuple[Cell, _Block]] = []  # (cell, the block that made it)
    for block in blocks:
        expanded += [(c, block) for c in _apply_rules(ctx, _expand(name, top, block), block.rules)]
    # issue 17 item 5: a file of only [abuse] (no cell key at all) measures no cells.
    abuse = _abuse(ctx, data["abuse"]) if "abuse" in data else None
    # h43 (issue 18 item 3): the browser's streams-per-origin probe, after the cells; a
    # file of only [browser_streams] (and/or [abuse]) measures no cells either
    streams = _browser_streams(ctx, data["browser_streams"]) if "browser_streams" in data else None
    probes_only = abuse is not None or streams is not None
    if probes_only and not any(k in data for k in ("cells", *BLOCK_KEYS)):
        expanded = []
    kept = set(_apply_rules(ctx, [c for c, _ in expanded], top.rules))
    if not kept and not probes_only:
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
    gates = _thresholds(ctx, data["thresholds"], cells) if "thresholds" in data else ()
    return Scenario(name, description.strip(), source, tuple(cells), gates, abuse, streams)


def _abuse(ctx: _Ctx, value: Any) -> AbuseSpec:
    """The ``[abuse]`` table (:mod:`.abuse`), or ScenarioError naming the bad key."""
    spec, key, problem = parse_abuse(ctx.table(value, "abuse", "the abuse probes' sizes"))
    if key:
        raise ctx.error(_join("abuse", key), problem)
    return spec


def _browser_streams(ctx: _Ctx, value: Any) -> BrowserStreamsSpec:
    """The ``[browser_streams]`` table (h43), or ScenarioError naming the bad key."""
    table = ctx.table(value, "browser_streams", "the browser streams probe's sizes")
    spec, key, problem = parse_browser_streams(table)
    if key:
        raise ctx.error(_join("browser_streams", key), problem)
    return spec


def _thresholds(ctx: _Ctx, table: Any, cells: Sequence[Cell]) -> tuple[thresholds.Threshold, ...]:
    """``[thresholds]``: the syntax (:func:`pushbench.thresholds.parse`), then each filter's
    value as the parameter of that name allows it, and each threshold on some cell."""
    try:
        parsed = thresholds.parse(table)
    except thresholds.ThresholdInvalid as exc:
        raise ctx.error(exc.path, exc.problem) from None
    for t in parsed:
        for tag, value in t.where:
            if tag != "cell":
                kind = BY_FIELD[tag].kind
                ctx.value(replace(kind, text=f"{kind.expected} (filter {tag})"), value, t.field)
        if not any(t.applies(c) for c in cells):
            raise ctx.error(
                t.field,
                f"{t.name!r} matches no cell of the scenario; fix its filters or remove it",
            )
        if t.relative:
            _check_baselines(ctx, t, cells)
    return parsed


def _check_baselines(ctx: _Ctx, t: thresholds.Threshold, cells: Sequence[Cell]) -> None:
    """A ``- baseline`` threshold: every cell it applies to has faults, and its baseline
    (the same cell without them) is a cell of the scenario."""
    ids = {c.cell_id for c in cells}
    for cell in cells:
        if not t.applies(cell):
            continue
        if not cell.baseline_id:
            raise ctx.error(
                t.field,
                f"{t.name!r} applies to {cell.cell_id}, which has no self-check faults: "
                "nothing to compare with a baseline; narrow its filters (e.g. cell:*-delay5ms)",
            )
        if cell.baseline_id not in ids:
            raise ctx.error(
                t.field,
                f"{t.name!r}: the baseline of {cell.cell_id}, {cell.baseline_id} (the same "
                "cell without checks), is not in the scenario; add it, e.g. a [[cells]] "
                "block with checks = {}",
            )


def loads(text: str, *, source: str = "<string>", default_name: str = "scenario") -> Scenario:
    """Parse and validate scenario TOML text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "", f"not valid TOML: {exc}") from None
    return from_dict(data, source=source, default_name=default_name)


def resolve(name_or_path: str | Path, directory: Path = SCENARIOS_DIR) -> Path:
    """``quick`` → the bundled ``quick.toml`` (:data:`SCENARIOS_DIR`); an existing path as is."""
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
    """Read, validate and expand a scenario file (a path, or a bundled scenario's name)."""
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), "", f"cannot read the file: {exc}") from None
    return loads(text, source=str(path), default_name=path.stem)


def list_scenarios(directory: Path = SCENARIOS_DIR) -> list[Path]:
    """The scenario files shipped in ``directory``, sorted by name."""
    return sorted(directory.glob("*.toml"))

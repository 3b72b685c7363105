"""Thresholds that gate CI: k6-style pass/fail conditions on a run's summary columns.

A scenario's ``[thresholds]`` table maps a ``cells.csv`` column (optionally with
k6's ``{tag:value}`` filters) to one condition or a list of them::

    [thresholds]
    lat_p99_us = "< 5000"                          # every cell
    delivered_fraction = [">= 0.999"]              # a list, as in k6
    "lat_p99_us{transport:sse}" = "< 20000"        # only the SSE cells
    "server_cpu_us_per_msg{stack:raw,cell:*-sub1000-*}" = "<= 40"
    "lat_p50_us{cell:*-delay5ms} - baseline" = [">= 4500", "<= 5500"]

A key ending in ``- baseline`` judges a difference: the cell's value minus the same
column of its *baseline*, the scenario's cell with the same parameters and no
self-check faults (:attr:`pushbench.scenario.Cell.baseline_id`) — how the
self-check reads an injected fault back within a tolerance. Such a threshold applies
only to cells with faults whose baseline is in the scenario (the scenario parser
refuses others); a baseline that did not measure fails it, one left out of the run
(``--only``) leaves it not applied.

What is judged: each cell's **summary**, the median over its repeats that
measured (:func:`pushbench.metrics.repeat_stats`, as the report's summary
table), on the scenario's grid (saturation-search probes are left out: they
are meant to fail the SLO). A cell with a failed or skipped repeat, or with no
value in the column, fails every threshold that applies to it, so a broken run
never passes a gate. A threshold that applies to no measured cell (``--only``
left them all out) is reported as not applied, not as passed.

This module holds the typed records (:class:`Threshold`, :class:`Outcome`,
:class:`Verdict`), parsing (:func:`parse`, which raises :class:`ThresholdInvalid`
naming the field; :mod:`pushbench.scenario.parse` turns it into a
``ScenarioError``), evaluation (:func:`summarize_rows`, :func:`evaluate`) and the
renderings (:func:`render_text` for the terminal, :func:`junit_xml` for CI,
:meth:`Verdict.as_dict` for ``thresholds.json``). None of it reads or writes a
file: ``pushbench run`` writes, the report reads the stored verdict.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pushbench.schema.cells import ALL_COLUMNS, PARAM_COLUMNS

__all__ = [
    "COLUMNS",
    "FILTERS",
    "OPERATORS",
    "THRESHOLDS_FILE",
    "CellSummary",
    "Outcome",
    "Threshold",
    "ThresholdInvalid",
    "Verdict",
    "evaluate",
    "junit_xml",
    "parse",
    "render_text",
    "summarize_rows",
]

#: The verdict's file in the run directory.
THRESHOLDS_FILE = "thresholds.json"
#: Version of the ``thresholds.json`` layout (2: ``relative`` thresholds, ``- baseline``).
SCHEMA_VERSION = 2
#: What a key ends with to judge a cell against its baseline.
BASELINE = "baseline"

#: Comparison operators, k6's spelling (longest first, so ``<=`` is not read as ``<``).
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

#: Columns of ``cells.csv`` that are not numbers (or not a measurement to gate on).
_NOT_GATED = frozenset(("bytes_source", "status", "reason", "harness_bound", "probe"))
#: The columns a threshold may name: every measured, numeric column of ``cells.csv``.
COLUMNS: tuple[str, ...] = tuple(
    c for c in ALL_COLUMNS if c not in PARAM_COLUMNS and c not in _NOT_GATED
)
#: Filter tags in ``column{tag:value,…}``: ``cell`` is a glob on the cell id, the others
#: equal a cell's parameter of that name.
FILTERS: tuple[str, ...] = ("cell", "transport", "stack", "client", "hub", "loop")

_KEY = re.compile(r"\s*([A-Za-z0-9_]+)\s*(?:\{(.*)\})?\s*(?:-\s*([A-Za-z_]+)\s*)?")
_CONDITION = re.compile(r"\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*")


class ThresholdInvalid(ValueError):
    """A ``[thresholds]`` entry that cannot be read: ``path`` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class Selectable(Protocol):
    """What a filter looks at: a cell id and the cell's parameters of :data:`FILTERS`."""

    @property
    def cell_id(self) -> str: ...


@dataclass(frozen=True)
class Threshold:
    """One condition: ``column op bound`` on the cells matching every filter of ``where``.

    ``field`` is where the scenario file declares it (``thresholds.lat_p99_us[1]``);
    ``relative``: the condition is on the cell's value minus its baseline's.
    """

    column: str
    op: str
    bound: float
    where: tuple[tuple[str, str], ...] = ()
    field: str = ""
    relative: bool = False

    @property
    def subject(self) -> str:
        """What is compared: ``lat_p99_us{transport:sse}``, ``lat_p50_us - baseline``."""
        tags = ",".join(f"{k}:{v}" for k, v in self.where)
        minus = f" - {BASELINE}" if self.relative else ""
        return f"{self.column}{'{' + tags + '}' if tags else ''}{minus}"

    @property
    def name(self) -> str:
        """As a k6 user writes it: ``lat_p99_us{transport:sse} < 20000``."""
        return f"{self.subject} {self.op} {_num(self.bound)}"

    def applies(self, cell: Selectable) -> bool:
        """Whether ``cell`` (a scenario Cell or a :class:`CellSummary`) matches every filter."""
        for tag, value in self.where:
            if tag == "cell":
                if not fnmatch.fnmatchcase(cell.cell_id, value):
                    return False
            elif str(getattr(cell, tag, "") or "") != value:
                return False
        return True

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.bound)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "column": self.column,
            "op": self.op,
            "bound": self.bound,
            "where": dict(self.where),
            "field": self.field,
            "relative": self.relative,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Threshold:
        where = tuple((str(k), str(v)) for k, v in dict(d.get("where") or {}).items())
        relative = bool(d.get("relative", False))  # absent before layout 2
        return cls(
            str(d["column"]), str(d["op"]), float(d["bound"]), where, str(d["field"]), relative
        )


def _num(x: float) -> str:
    """A bound as written: ``5000``, ``0.999``, ``1e-06``."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


# --- parsing --------------------------------------------------------------------------------


def _parse_key(key: str, path: str) -> tuple[str, tuple[tuple[str, str], ...], bool]:
    m = _KEY.fullmatch(key)
    if not m:
        raise ThresholdInvalid(
            path,
            f"{key!r} is not a column with optional filters, e.g. 'lat_p99_us{{transport:sse}}' "
            f"(or 'lat_p50_us{{cell:*-delay5ms}} - {BASELINE}')",
        )
    column, tags, minus = m.group(1), m.group(2), m.group(3)
    if minus is not None and minus != BASELINE:
        raise ThresholdInvalid(
            path,
            f"'- {minus}': only '- {BASELINE}' may follow a column (the cell's value minus "
            "its baseline's: the same cell without its self-check faults)",
        )
    if column not in COLUMNS:
        raise ThresholdInvalid(
            path,
            f"unknown column {column!r}{_close(column, COLUMNS)}; a threshold names a "
            f"measured column of cells.csv: {', '.join(COLUMNS)}",
        )
    where: list[tuple[str, str]] = []
    for part in tags.split(",") if tags is not None else []:
        tag, sep, value = (s.strip() for s in part.partition(":"))
        if not sep or not tag or not value:
            raise ThresholdInvalid(
                path, f"filter {part.strip()!r} is not tag:value, e.g. transport:sse"
            )
        if tag not in FILTERS:
            raise ThresholdInvalid(
                path,
                f"unknown filter {tag!r}{_close(tag, FILTERS)}; filters: {', '.join(FILTERS)} "
                "(cell: a glob on the cell id, e.g. cell:raw-ws-*)",
            )
        if any(t == tag for t, _ in where):
            raise ThresholdInvalid(path, f"filter {tag!r} given twice; a cell has one {tag}")
        where.append((tag, value))
    return column, tuple(where), minus is not None


def _parse_condition(text: Any, path: str) -> tuple[str, float]:
    expected = "a condition string such as '< 5000' or '>= 0.999' (operators: " + ", ".join(
        sorted(OPERATORS, key=len)
    )
    if not isinstance(text, str):
        raise ThresholdInvalid(path, f"{text!r} is not allowed; expected {expected})")
    m = _CONDITION.fullmatch(text)
    if not m:
        raise ThresholdInvalid(path, f"{text!r} is not allowed; expected {expected})")
    op, number = m.group(1), m.group(2)
    try:
        bound = float(number)
    except ValueError:
        bound = math.nan
    if not math.isfinite(bound):
        raise ThresholdInvalid(
            path, f"{number!r} in {text!r} is not a finite number (units are in the column name)"
        )
    return op, bound


def parse(table: Any, path: str = "thresholds") -> tuple[Threshold, ...]:
    """``[thresholds]`` → thresholds in file order; :class:`ThresholdInvalid` names the field.

    Only the syntax is checked here (column, filter tags, operator, number); the
    scenario parser checks the filter values and that each threshold matches a cell.
    """
    if not isinstance(table, Mapping):
        raise ThresholdInvalid(
            path, f"{table!r} is not allowed; expected a table, e.g. lat_p99_us = '< 5000'"
        )
    out: list[Threshold] = []
    for key, value in table.items():
        kpath = f"{path}.{key}"
        column, where, relative = _parse_key(str(key), kpath)
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ThresholdInvalid(kpath, "an empty list; give at least one condition")
        for i, item in enumerate(items):
            ipath = f"{kpath}[{i}]" if isinstance(value, list) else kpath
            op, bound = _parse_condition(item, ipath)
            threshold = Threshold(column, op, bound, where, ipath, relative)
            twin = next((t for t in out if t.name == threshold.name), None)
            if twin is not None:
                raise ThresholdInvalid(
                    ipath, f"{threshold.name!r} is already declared at {twin.field}"
                )
            out.append(threshold)
    return tuple(out)


def _close(word: str, options: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CellSummary:
    """One cell as a threshold sees it: its filters, its medians, and why it has none."""

    cell_id: str
    transport: str
    stack: str
    client: str
    hub: str
    loop: str
    values: Mapping[str, float | None]  # column → median over the ok repeats
    failure: str = ""  # non-empty when a repeat failed or was skipped: the reasons
    baseline: str = ""  # the id of the cell's baseline (``- baseline``); "" for none


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def summarize_rows(
    rows: Iterable[Mapping[str, Any]], baselines: Mapping[str, str] | None = None
) -> list[CellSummary]:
    """``cells.csv`` rows (one per cell × repeat) → one summary per grid cell, in order.

    The median over the repeats with status ok, per column, by
    :func:`pushbench.metrics.repeat_stats` (the report's definition); probes left out.
    ``baselines``: cell id → its baseline's id (the scenario's
    :attr:`~pushbench.scenario.Cell.baseline_id`), for ``- baseline`` thresholds.
    """
    from pushbench.metrics.repeats import repeat_stats  # lazy: scenario loading stays light

    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if str(row.get("probe", "")).lower() in ("true", "1"):
            continue
        groups.setdefault(str(row["cell_id"]), []).append(row)
    out = []
    for cell_id, reps in groups.items():
        ok = [r for r in reps if r.get("status") == "ok"]
        # A repeat left out (measured on a slow machine, re-measured: runner.speed) is no
        # failure: its re-measure stands in for it. One left out with nothing ok is.
        bad = [r for r in reps if r.get("status") not in ("ok", "left-out") or not ok]
        values = {}
        for col in COLUMNS:
            stats = repeat_stats(_number(r.get(col)) for r in ok)
            values[col] = None if stats is None else stats.median
        failure = ""
        if bad:
            reasons = "; ".join(
                x for x in dict.fromkeys(str(r.get("reason") or "") for r in bad) if x
            )
            failure = f"{len(bad)} of {len(reps)} repeat(s) {_statuses(bad)}" + (
                f": {reasons}" if reasons else ""
            )
        tags = {k: str(reps[0].get(k) or "") for k in ("transport", "stack", "client", "hub")}
        loop = str(reps[0].get("loop") or "")
        baseline = (baselines or {}).get(cell_id, "")
        out.append(
            CellSummary(
                cell_id, **tags, loop=loop, values=values, failure=failure, baseline=baseline
            )
        )
    return out


def _statuses(rows: Sequence[Mapping[str, Any]]) -> str:
    return "/".join(dict.fromkeys(str(r.get("status")) for r in rows))


@dataclass(frozen=True)
class Outcome:
    """One threshold on one cell: the median measured, and whether it passed.

    ``cell_id`` is empty for a threshold that applied to no measured cell (``passed``
    None: not applied); a ``- baseline`` threshold whose baseline was not run is not
    applied either, and its ``value`` is the difference to the baseline.
    """

    threshold: Threshold
    cell_id: str
    value: float | None
    passed: bool | None
    note: str = ""

    @property
    def status(self) -> str:
        return {True: "pass", False: "FAIL", None: "n/a"}[self.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold.name,
            "cell_id": self.cell_id,
            "value": self.value,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass(frozen=True)
class Verdict:
    """Every threshold × cell outcome of a run; ``passed`` unless one failed."""

    scenario: str
    thresholds: tuple[Threshold, ...]
    outcomes: tuple[Outcome, ...]

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.passed is False)

    @property
    def passed(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        """``thresholds.json``: what the report shows without re-evaluating."""
        return {
            "schema": SCHEMA_VERSION,
            "scenario": self.scenario,
            "passed": self.passed,
            "thresholds": [t.as_dict() for t in self.thresholds],
            "outcomes": [o.as_dict() for o in self.outcomes],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        thresholds = tuple(Threshold.from_dict(t) for t in d.get("thresholds") or ())
        by_name = {t.name: t for t in thresholds}
        outcomes = tuple(
            Outcome(
                by_name[str(o["threshold"])],
                str(o["cell_id"]),
                None if o.get("value") is None else float(o["value"]),
                None if o.get("passed") is None else bool(o["passed"]),
                str(o.get("note") or ""),
            )
            for o in d.get("outcomes") or ()
        )
        return cls(str(d.get("scenario") or ""), thresholds, outcomes)


def _judge(threshold: Threshold, cell: CellSummary, by_id: Mapping[str, CellSummary]) -> Outcome:
    value = cell.values.get(threshold.column)
    if cell.failure:
        return Outcome(
            threshold, cell.cell_id, value, False, f"cell did not measure: {cell.failure}"
        )
    if value is None:
        return Outcome(threshold, cell.cell_id, None, False, f"no {threshold.column} measured")
    if not threshold.relative:
        return Outcome(threshold, cell.cell_id, value, threshold.holds(value))
    base = by_id.get(cell.baseline) if cell.baseline else None
    if base is None:
        why = f"baseline {cell.baseline} not in this run" if cell.baseline else "no baseline"
        return Outcome(threshold, cell.cell_id, None, None, why)
    base_value = base.values.get(threshold.column)
    if base.failure or base_value is None:
        why = base.failure or f"no {threshold.column} measured"
        return Outcome(threshold, cell.cell_id, None, False, f"baseline {base.cell_id}: {why}")
    delta = value - base_value
    note = f"{fmt_value(value)} - {fmt_value(base_value)} (baseline {base.cell_id})"
    return Outcome(threshold, cell.cell_id, delta, threshold.holds(delta), note)


def evaluate(
    scenario: str, thresholds: Sequence[Threshold], cells: Sequence[CellSummary]
) -> Verdict:
    """Judge every threshold on every cell it applies to (thresholds in file order); a
    ``- baseline`` one on the cell's value minus its baseline's (the outcome's value)."""
    by_id = {c.cell_id: c for c in cells}
    outcomes: list[Outcome] = []
    for threshold in thresholds:
        judged = [_judge(threshold, c, by_id) for c in cells if threshold.applies(c)]
        outcomes += judged or [Outcome(threshold, "", None, None, "applies to no measured cell")]
    return Verdict(scenario, tuple(thresholds), tuple(outcomes))


# --- renderings -----------------------------------------------------------------------------


def fmt_value(value: float | None) -> str:
    """A measured median for the table: 6 significant digits, no float noise."""
    return "—" if value is None else f"{value:.6g}"


def summary_line(verdict: Verdict) -> str:
    """``thresholds: 5 passed, 1 FAILED (of 6 threshold × cell checks)``."""
    judged = [o for o in verdict.outcomes if o.passed is not None]
    n_fail = len(verdict.failed)
    text = f"thresholds: {len(judged) - n_fail} passed"
    text += f", {n_fail} FAILED" if n_fail else ""
    skipped = len(verdict.outcomes) - len(judged)
    text += f", {skipped} not applied" if skipped else ""
    return text + f" (of {len(verdict.outcomes)} threshold × cell checks)"


def table_rows(verdict: Verdict) -> list[tuple[str, str, str, str, str]]:
    """(result, threshold, cell, value, note) per outcome: the terminal and the report."""
    return [
        (o.status, o.threshold.name, o.cell_id or "—", fmt_value(o.value), o.note)
        for o in verdict.outcomes
    ]


def render_text(verdict: Verdict) -> str:
    """The terminal table: one line per threshold × cell, then the summary line."""
    header = ("result", "threshold", "cell", "value", "")
    rows = [header, *table_rows(verdict)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(r[i].ljust(widths[i]) if i != 3 else r[i].rjust(widths[i]) for i in range(4))
        + (f"  {r[4]}" if r[4] else "")
        for r in rows
    ]
    return "\n".join([*(line.rstrip() for line in lines), summary_line(verdict)]) + "\n"


def junit_xml(verdict: Verdict) -> str:
    """JUnit XML: one testcase per threshold × cell (classname: the cell id), a
    ``<failure>`` with the measured value when it failed, ``<skipped>`` when not applied."""
    cases = verdict.outcomes
    failures = len(verdict.failed)
    skipped = sum(1 for o in cases if o.passed is None)
    suite_name = f"pushbench thresholds: {verdict.scenario}"
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0"}
    root = ET.Element("testsuites", {"name": "pushbench", **counts})
    suite = ET.SubElement(
        root, "testsuite", {"name": suite_name, **counts, "skipped": str(skipped)}
    )
    for o in cases:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=o.cell_id or verdict.scenario,
            name=o.threshold.name,
        )
        if o.passed is None:
            ET.SubElement(case, "skipped", message=o.note)
        elif not o.passed:
            measured = f"{o.threshold.subject} = {fmt_value(o.value)}"
            message = f"{measured}, needs {o.threshold.op} {_num(o.threshold.bound)}"
            failure = ET.SubElement(case, "failure", message=message, type="threshold")
            failure.text = "\n".join(
                x for x in (message, o.note, f"declared at {o.threshold.field}") if x
            )
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"

"""The run loop: every selected cell × repeat in shuffled rounds, then the saturation probes.

:func:`run_scenario` makes the run directory, writes ``metadata.json``
(machine, software, pinning, the scenario's text, the ``cells.csv`` schema
version, the ``order_seed``) before anything starts and again at the end,
measures each cell (:mod:`.cell`) in rounds that run every cell once in a
shuffled order (:mod:`.rounds`: repeats are rounds, so drift is spread over
every cell rather than landing on one), rewrites ``cells.csv`` after every one
(:mod:`.tables`; rows in scenario order, each with its ``round`` and
``run_index``), measures the kernel's loopback floor at the run's loads before the
first cell and after the last (:mod:`.kernel`: every row of a probed load carries their
mean), times the
machine's speed around every repeat and re-measures, once, the listed
repeats that ran while it was slow (:mod:`.speed`: the slow row stays, status
``left-out``), runs the saturation search of ``[slo]`` groups in probe rounds
after the listed ones (:mod:`.rounds`, :mod:`.saturation`), and ends the
same way on success, on a crash, on Ctrl-C and on SIGTERM: processes stopped,
partial results kept, the run marked complete or incomplete with the reason.
Only a complete run moves ``results/latest`` (:func:`pushbench.results.update_latest`),
so an interrupted smoke run never hides the last complete one.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pushbench import cpuidle
from pushbench.procs import Pinning, plan_pinning
from pushbench.results import (
    atomic_write_json,
    collect_metadata,
    finish_metadata,
    new_run_dir,
    update_latest,
)
from pushbench.scenario import Cell, Scenario
from pushbench.scenario.floorplan import floor_seconds
from pushbench.schema.abuse import write_records
from pushbench.schema.browser_streams import write_records as write_streams  # h43
from pushbench.schema.cells import CELLS_SCHEMA_VERSION

from . import kernel, netem, speed
from .abuse import run_abuse
from .browser_streams import run_browser_streams  # h43
from .cell import run_one
from .options import RunOptions, RunResult
from .progress import Progress
from .proxy import metadata as proxy_metadata
from .rounds import Planned, ProbeRounds, interleave, new_seed
from .rows import cpu_accounting
from .saturation import slo_groups
from .server import distributions
from .tables import write_cells, write_saturation
from .target import TargetProbe, for_target, probe

__all__ = ["run_scenario", "selected"]


def selected(scenario: Scenario, options: RunOptions) -> list[tuple[Cell, int]]:
    runs = []
    cells = scenario.cells()
    if options.target is not None:  # one target: each distinct cell once (.target)
        cells = tuple(for_target(cells))
    for cell in cells:
        if options.only and options.only not in cell.cell_id:
            continue
        for repeat in range(options.repeats or cell.repeats):
            runs.append((cell, repeat))
    return runs


def run_scenario(scenario: Scenario, options: RunOptions, *, seed: int | None = None) -> RunResult:
    """Measure every selected cell × repeat into a new run directory under ``options.out``,
    in rounds shuffled by ``seed`` (default: a fresh one; both recorded as ``order_seed``)."""
    runs = selected(scenario, options)
    target = _probe_target(options.target, [cell for cell, _ in runs])
    seed = new_seed() if seed is None else seed
    rng = random.Random(seed)
    plan = interleave(runs, rng)
    rounds = 1 + max((p.round for p in plan), default=-1)
    run_dir = new_run_dir(options.out)
    pinning = plan_pinning()
    source = Path(scenario.source)
    meta = collect_metadata(
        command=options.command,
        settings=options.settings,
        distributions=distributions(),
        extra={
            "scenario": scenario.name,
            "scenario_file": str(source),
            "scenario_text": source.read_text(encoding="utf-8") if source.is_file() else None,
            "pinning": pinning.as_dict(),
            "runs_planned": len(runs),
            "order_seed": seed,
            "rounds": rounds,
            "servers": {},
            "cells_schema": CELLS_SCHEMA_VERSION,
            "cpu_accounting": cpu_accounting(),
            "cpu_idle": cpuidle.read(held_latency_us=options.cpu_latency_us).as_dict(),
            "proxies": proxy_metadata([cell for cell, _ in runs]),  # h27: via
            "target": None if target is None else target.as_dict(),
        },
    )
    atomic_write_json(run_dir / "metadata.json", meta)
    result = RunResult(run_dir, "incomplete")
    started = time.monotonic()
    progress = Progress(
        options.progress,
        len(plan),
        started,
        estimates=[p.cell.run_seconds() for p in plan],
        extra_s=_probe_budget_s(runs, options)
        + (floor_seconds(c for c, _ in runs) if options.kernel_floor and target is None else 0),
    )
    groups = slo_groups(runs)
    probes = ProbeRounds(groups, result.rows, options)
    order = _ScenarioOrder(runs, groups)
    cores = (*pinning.server, *pinning.clients)
    planned_of: dict[int, Planned] = {}
    walls: dict[int, float] = {}  # each row's wall time, s: what its re-measure would take

    def measure(planned: Planned, probe: bool, label: str) -> dict[str, Any]:
        cell, index = planned.cell, len(result.rows)
        progress.cell(index, cell.cell_id, cell.run_seconds(), round_label=label)
        began = time.monotonic()
        before = speed.probe(cores)  # the machine's speed around the repeat (.speed)
        row = run_one(
            cell, planned.repeat, run_dir, pinning, options, progress, meta["servers"], target
        )
        walls[id(row)] = time.monotonic() - began
        if row["status"] == "ok":
            row["speed_probe_ns"] = max(before, speed.probe(cores))
        planned_of[id(row)] = planned
        row.update(probe=probe, round=planned.round, run_index=index)
        order.note(row, planned, probe)  # before the append: a Ctrl-C between them is harmless
        result.rows.append(row)
        write_cells(run_dir / "cells.csv", order.sorted(result.rows))
        return row

    try:
        with _sigterm_as_interrupt():
            # network conditions (issue 12 item 6): the relay's calibration, before any cell
            netem_summary = netem.prepare(run_dir, [c.net for c, _ in runs], pinning)
            if netem_summary is not None:
                meta["netem"] = netem_summary
                atomic_write_json(run_dir / "metadata.json", meta)
            if options.kernel_floor and target is None:  # what the kernel alone charges
                meta["kernel_floor"] = kernel.measure([c for c, _ in runs], pinning, "start")
                atomic_write_json(run_dir / "metadata.json", meta)
            for planned in plan:
                measure(planned, False, f"round {planned.round + 1}/{rounds}")
            within = options.remeasure_within_s

            def fits(row: dict[str, Any]) -> bool:  # its re-measure ends within the cap
                spent = time.monotonic() - started + walls.get(id(row), 0.0)
                return within is None or spent <= within

            meta["speed"] = _remeasure_slow(
                result.rows, planned_of, rounds, measure, progress, options.remeasure_slow, fits
            )
            number = rounds + (1 if meta["speed"]["remeasured"] else 0)
            while True:
                batch = probes.next_round(rng, number)  # finishes the groups that are done
                if probes.results:
                    write_saturation(run_dir / "saturation.csv", probes.results)
                if not batch:
                    break
                for planned in batch:
                    if planned.repeat == 0:  # a new probe rate: its repeats join the count
                        progress.total += options.repeats or planned.cell.repeats
                    probes.record(planned, measure(planned, True, f"probe round {number + 1}"))
                number += 1
            if options.kernel_floor and target is None:  # again: the host drifts over a run
                meta["kernel_floor"] += kernel.measure([c for c, _ in runs], pinning, "end")
                atomic_write_json(run_dir / "metadata.json", meta)
            if scenario.abuse is not None:  # issue 17 item 5: the [abuse] probes
                result.reason = _run_abuse(scenario, run_dir, pinning)
            if scenario.browser_streams is not None:  # h43 (issue 18 item 3)
                result.reason = result.reason or _run_streams(scenario, run_dir, pinning)
    except KeyboardInterrupt as exc:
        result.reason = str(exc) or "interrupted"
    finally:
        progress.done()
        result.rows.sort(key=order.key)
        result.reason = result.reason or _incomplete_reason(result.rows)
        result.status = "incomplete" if result.reason else "complete"
        meta["reason"] = result.reason
        meta["runs_done"] = len(result.rows)
        meta["runs_by_status"] = {
            s: sum(1 for r in result.rows if r["status"] == s)
            for s in ("ok", "failed", "skipped", "left-out")
        }
        _slowdowns(result.rows, meta.get("speed", {}).get("median_probe_ns"))
        kernel.annotate(result.rows, meta.get("kernel_floor") or [])
        write_cells(run_dir / "cells.csv", result.rows)
        if probes.results:
            write_saturation(run_dir / "saturation.csv", probes.results)
        atomic_write_json(run_dir / "metadata.json", finish_metadata(meta, status=result.status))
        if result.status == "complete":  # an interrupted or failed run leaves it alone
            update_latest(run_dir)
    return result


Measure = Callable[[Planned, bool, str], dict[str, Any]]


def _remeasure_slow(
    rows: list[dict[str, Any]],
    planned_of: dict[int, Planned],
    round_number: int,
    measure: Measure,
    progress: Progress,
    remeasure: bool,
    fits: Callable[[dict[str, Any]], bool] = lambda row: True,
) -> dict[str, Any]:
    """Re-measure, once, the listed repeats that cost more than their cell's usual or lost
    a share of a core to the hypervisor (:mod:`.speed`, :mod:`.steal`: the machine was
    slower during them), in a round after the listed ones, as new repeat numbers (nothing
    is overwritten). The worse of the two, judged against the same medians, becomes
    ``left-out`` with the reason. Every listed row gets
    its ``cost_slowdown``. A repeat whose re-measure does not ``fits`` the run's time cap
    (``--remeasure-within``) is kept as it is and counted in ``skipped_for_time``.
    → ``metadata.json``'s ``speed`` record."""
    listed = [r for r in rows if not r.get("probe")]
    medians = speed.cost_medians(listed)  # taken once: they judge the re-measures too
    costs = speed.cost_slowdowns(listed, medians)
    for row, cost in zip(listed, costs, strict=True):
        row["cost_slowdown"] = None if cost is None else cost.slowdown
    limit = speed.rerun_limit(len(listed)) if remeasure else 0
    worst = speed.judged(listed, medians)  # the CPU cost or the steal time, more severe
    slow = speed.slow_repeats(worst, limit)
    record: dict[str, Any] = {
        "rule": "server or client CPU per message ≥ slow_at × the cell's median, or "
        "steal time ≥ steal_at of a core",
        "slow_at": speed.SLOW,
        "steal_at": speed.STEAL_AT,
        "slow": sum(1 for c in worst if c is not None and c.severity >= 1),
        "limit": limit,
        "median_probe_ns": speed.median_probe(
            [r.get("speed_probe_ns") if r["status"] == "ok" else None for r in listed]
        ),
        "remeasured": 0,
        "skipped_for_time": 0,
        "left_out": [],
    }
    if not slow:
        return record
    progress.total += len(slow)
    taken: dict[str, int] = {}
    for r in rows:
        taken[r["cell_id"]] = max(taken.get(r["cell_id"], -1), int(r["repeat"]))
    for found in slow:
        old = listed[found.index]
        if not fits(old):
            record["skipped_for_time"] += 1
            progress.total -= 1
            continue
        first = planned_of[id(old)]
        taken[first.cell.cell_id] += 1
        again = Planned(first.cell, taken[first.cell.cell_id], round_number)
        new = measure(again, False, "re-measure (the repeat cost more than its cell's usual)")
        record["remeasured"] += 1
        if new["status"] != "ok":
            continue  # the slow repeat stays: it is the one that measured
        (cost,) = speed.cost_slowdowns([new], medians)  # not re-taken after a left-out
        new["cost_slowdown"] = None if cost is None else cost.slowdown
        (judged,) = speed.judged([new], medians)
        if judged is not None and judged.severity < found.cost.severity:
            out, text = old, f"{found.cost.reason()}; re-measured as repeat {again.repeat}"
        else:
            shown = found.cost if judged is None else judged
            out, text = new, f"{shown.reason()}, no better than repeat {old['repeat']}"
        out.update(status="left-out", reason=text)
        record["left_out"].append(f"{out['cell_id']}-r{out['repeat']}")
    return record


def _slowdowns(rows: Sequence[dict[str, Any]], median: float | None) -> None:
    """Each row's ``machine_slowdown``: its probe over ``median`` — the listed repeats'
    median that judged them (``metadata.json`` ``speed``), so a left-out row's reason and
    its column say the same; without one (a run stopped early) the median of every probe."""
    if median is None:
        median = speed.median_probe([r.get("speed_probe_ns") for r in rows])
    for r in rows:
        if median and r.get("speed_probe_ns"):
            r["machine_slowdown"] = r["speed_probe_ns"] / median


class _ScenarioOrder:
    """The order of ``cells.csv``: the listed cells as the scenario lists them, each
    cell's repeats in turn, then each ``[slo]`` group's probes in the order they ran —
    the order a reader expects, whatever order the runs had (``run_index`` keeps that)."""

    def __init__(self, runs: Sequence[tuple[Cell, int]], groups: dict[Cell, list[Cell]]):
        self._cells: dict[str, int] = {}
        for cell, _ in runs:
            self._cells.setdefault(cell.cell_id, len(self._cells))
        self._groups = {group.cell_id: i for i, group in enumerate(groups)}
        self._keys: dict[int, tuple[int, int, int]] = {}

    def note(self, row: dict[str, Any], planned: Planned, probe: bool) -> None:
        if probe:
            group = self._groups[planned.cell.with_rate(0.0).cell_id]
            self._keys[id(row)] = (1, group, int(row["run_index"]))
        else:
            self._keys[id(row)] = (0, self._cells[planned.cell.cell_id], planned.repeat)

    def key(self, row: dict[str, Any]) -> tuple[int, int, int]:
        return self._keys[id(row)]

    def sorted(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=self.key)


def _probe_target(url: str | None, cells: Sequence[Cell]) -> TargetProbe | None:
    """Probe ``--target`` for the contract ``cells`` need and print what it found on
    stderr, a line per part (cells lacking a part are skipped with it as the reason)."""
    if url is None:
        return None
    found = probe(url, cells)
    skipped = sum(1 for cell in cells if found.unsupported(cell))
    print(f"pushbench run: target {found.url}:", file=sys.stderr)
    print("\n".join(found.messages()), file=sys.stderr)
    if skipped:
        print(f"  → {skipped} of {len(cells)} cell run(s) will be skipped", file=sys.stderr)
    return found


def _probe_budget_s(runs: Sequence[tuple[Cell, int]], options: RunOptions) -> float:
    """The most the saturation probes may add to the run, in estimated seconds: ``probes``
    × repeats per group of ``[slo]`` cells (as ``pushbench.scenario.estimate_seconds``
    counts them)."""
    return sum(
        group.slo.probes * (options.repeats or group.repeats) * group.run_seconds()
        for group in slo_groups(runs)
        if group.slo is not None
    )


def _run_abuse(scenario: Scenario, run_dir: Path, pinning: Pinning) -> str:
    """The scenario's ``[abuse]`` probes → ``abuse.json``/``abuse.csv``; why the run is
    incomplete ("" when every probe ran)."""
    assert scenario.abuse is not None
    records = run_abuse(scenario.abuse, run_dir, pinning, scenario.name)
    write_records(run_dir, records)
    failed = [f"{r.stack}/{r.probe}" for r in records if r.status != "ok"]
    return f"{len(failed)} abuse probe(s) failed: {', '.join(failed)}" if failed else ""


def _run_streams(scenario: Scenario, run_dir: Path, pinning: Pinning) -> str:
    """The scenario's ``[browser_streams]`` probe (h43) → ``browser_streams.json``; why
    the run is incomplete ("" when both halves ran)."""
    assert scenario.browser_streams is not None
    records = run_browser_streams(scenario.browser_streams, run_dir, pinning, scenario.name)
    write_streams(run_dir, records)
    failed = [f"{r.asked}: {r.reason}" for r in records if r.status != "ok"]
    return f"browser streams probe failed: {'; '.join(failed)}" if failed else ""


def _incomplete_reason(rows: Sequence[dict[str, Any]]) -> str:
    """Why a run that went to its end is still incomplete ("" when it is complete)."""
    failed = [r["cell_id"] for r in rows if r["status"] == "failed"]
    if failed:
        return f"{len(failed)} cell run(s) failed: {', '.join(failed)}"
    if rows and not any(r["status"] == "ok" for r in rows):
        reasons = sorted({str(r["reason"]) for r in rows})
        return f"nothing measured: all {len(rows)} cell run(s) skipped ({'; '.join(reasons)})"
    return ""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI timeout, ``kill``) ends the run like Ctrl-C: processes stopped,
    partial results written, the run marked incomplete with the signal as reason."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("terminated (SIGTERM)")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

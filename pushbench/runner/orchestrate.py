"""The run loop: every selected cell × repeat, then the saturation probes, into one run directory.

:func:`run_scenario` makes the run directory, writes ``metadata.json``
(machine, software, pinning, the scenario's text, the ``cells.csv`` schema
version) before anything starts and again at the end, measures each cell
(:mod:`.cell`), rewrites ``cells.csv`` after every one (:mod:`.tables`), runs
the saturation search of ``[slo]`` groups (:mod:`.saturation`), and ends the
same way on success, on a crash, on Ctrl-C and on SIGTERM: processes stopped,
partial results kept, the run marked complete or incomplete with the reason.
Only a complete run moves ``results/latest`` (:func:`pushbench.results.update_latest`),
so an interrupted smoke run never hides the last complete one.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pushbench.procs import plan_pinning
from pushbench.results import (
    atomic_write_json,
    collect_metadata,
    finish_metadata,
    new_run_dir,
    update_latest,
)
from pushbench.scenario import Cell, Scenario
from pushbench.schema.cells import CELLS_SCHEMA_VERSION

from .cell import run_one
from .options import RunOptions, RunResult
from .progress import Progress
from .saturation import search, slo_groups
from .server import distributions
from .tables import write_cells, write_saturation

__all__ = ["run_scenario", "selected"]


def selected(scenario: Scenario, options: RunOptions) -> list[tuple[Cell, int]]:
    runs = []
    for cell in scenario.cells():
        if options.only and options.only not in cell.cell_id:
            continue
        for repeat in range(options.repeats or cell.repeats):
            runs.append((cell, repeat))
    return runs


def run_scenario(scenario: Scenario, options: RunOptions) -> RunResult:
    """Measure every selected cell × repeat into a new run directory under ``options.out``."""
    runs = selected(scenario, options)
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
            "servers": {},
            "cells_schema": CELLS_SCHEMA_VERSION,
        },
    )
    atomic_write_json(run_dir / "metadata.json", meta)
    result = RunResult(run_dir, "incomplete")
    started = time.monotonic()
    progress = Progress(
        options.progress,
        len(runs),
        started,
        estimates=[cell.run_seconds() for cell, _ in runs],
        extra_s=_probe_budget_s(runs, options),
    )
    saturation: list[dict[str, Any]] = []

    def measure(cell: Cell, repeat: int, probe: bool) -> dict[str, Any]:
        progress.cell(len(result.rows), cell.cell_id, cell.run_seconds())
        row = run_one(cell, repeat, run_dir, pinning, options, progress, meta["servers"])
        row["probe"] = probe
        result.rows.append(row)
        write_cells(run_dir / "cells.csv", result.rows)
        return row

    try:
        with _sigterm_as_interrupt():
            for cell, repeat in runs:
                measure(cell, repeat, probe=False)
            for group, cells in slo_groups(runs).items():
                saturation.append(search(group, cells, result.rows, measure, options, progress))
                write_saturation(run_dir / "saturation.csv", saturation)
    except KeyboardInterrupt as exc:
        result.reason = str(exc) or "interrupted"
    finally:
        progress.done()
        result.reason = result.reason or _incomplete_reason(result.rows)
        result.status = "incomplete" if result.reason else "complete"
        meta["reason"] = result.reason
        meta["runs_done"] = len(result.rows)
        meta["runs_by_status"] = {
            s: sum(1 for r in result.rows if r["status"] == s) for s in ("ok", "failed", "skipped")
        }
        write_cells(run_dir / "cells.csv", result.rows)
        if saturation:
            write_saturation(run_dir / "saturation.csv", saturation)
        atomic_write_json(run_dir / "metadata.json", finish_metadata(meta, status=result.status))
        if result.status == "complete":  # an interrupted or failed run leaves it alone
            update_latest(run_dir)
    return result


def _probe_budget_s(runs: Sequence[tuple[Cell, int]], options: RunOptions) -> float:
    """The most the saturation probes may add to the run, in estimated seconds: ``probes``
    × repeats per group of ``[slo]`` cells (as ``pushbench.scenario.estimate_seconds``
    counts them)."""
    return sum(
        group.slo.probes * (options.repeats or group.repeats) * group.run_seconds()
        for group in slo_groups(runs)
        if group.slo is not None
    )


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

"""``pushbench run SCENARIO``: the command's options and its exit codes.

The CLI (:mod:`pushbench.cli`) owns argv and the environment; it calls
:func:`add_arguments` and :func:`run` with what it parsed (the command line and
the :class:`~pushbench.settings.Settings` it read included). Exit codes: 0
complete, 1 incomplete, 2 a bad scenario or option (nothing started), 3 a
``[thresholds]`` condition failed (before 1: the table names the failed cells),
130 Ctrl-C, 143 SIGTERM. The scenario's thresholds are judged at the end of
every run (:mod:`pushbench.thresholds`): a table on stdout, ``thresholds.json``
in the run directory, and ``--junit FILE`` for CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pushbench import thresholds
from pushbench.results import atomic_write_json, atomic_write_text
from pushbench.scenario import Scenario, ScenarioError, load

from .options import RunOptions
from .orchestrate import run_scenario, selected

__all__ = ["add_arguments", "run"]

EXIT_CODES = (
    "exit codes: 0 complete and every threshold passed, 1 incomplete (a cell failed or "
    "nothing was measured), 2 a bad scenario or option (nothing started), "
    f"{thresholds.EXIT_THRESHOLDS_FAILED} a [thresholds] condition failed, 130 Ctrl-C, "
    "143 SIGTERM"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_CODES
    add = parser.add_argument
    add("scenario", help="a scenario file, or the name of one in scenarios/")
    add("--out", type=Path, default=Path("results"), help="results base (default %(default)s)")
    add("--repeats", type=int, default=None, metavar="N", help="override every cell's repeats")
    add("--only", default=None, metavar="SUBSTRING", help="run only cells whose id contains it")
    add("--no-progress", action="store_true", help="no live progress line on stderr")
    add(
        "--junit",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the scenario's [thresholds] as JUnit XML to FILE (one testcase per "
        "threshold × cell) for CI test reports",
    )


def run(args: argparse.Namespace) -> int:
    if args.repeats is not None and args.repeats < 1:
        print("pushbench run: error: --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        print(f"pushbench run: error: {exc}", file=sys.stderr)
        return 2
    options = RunOptions(
        out=args.out,
        repeats=args.repeats,
        only=args.only,
        progress=not args.no_progress and sys.stderr.isatty(),
        command=tuple(args.command_line),
        settings=args.settings,
    )
    if not selected(scenario, options):
        print(f"pushbench run: error: no cell id contains {args.only!r}", file=sys.stderr)
        return 2
    result = run_scenario(scenario, options)
    gates_passed = _judge(scenario, result.rows, result.run_dir, args.junit)
    print(f"pushbench run: {result.status}: {result.run_dir}", file=sys.stderr)
    if result.reason == "interrupted":
        return 130
    if result.reason.startswith("terminated"):
        return 143
    if not gates_passed:
        return thresholds.EXIT_THRESHOLDS_FAILED
    return 0 if result.status == "complete" else 1


def _judge(
    scenario: Scenario, rows: list[dict[str, Any]], run_dir: Path, junit: Path | None
) -> bool:
    """The scenario's thresholds on the run's rows: the table on stdout, thresholds.json,
    the JUnit file; whether they all passed (True when there are none)."""
    if not scenario.thresholds and junit is None:
        return True
    cells = thresholds.summarize_rows(rows)
    verdict = thresholds.evaluate(scenario.name, scenario.thresholds, cells)
    if scenario.thresholds:
        print(thresholds.render_text(verdict), end="", flush=True)
        atomic_write_json(run_dir / thresholds.THRESHOLDS_FILE, verdict.as_dict())
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(junit, thresholds.junit_xml(verdict))
    return verdict.passed

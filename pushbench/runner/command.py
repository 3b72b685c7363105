"""``pushbench run SCENARIO``: the command's options and its exit codes.

The CLI (:mod:`pushbench.cli`) owns argv and the environment; it calls
:func:`add_arguments` and :func:`run` with what it parsed (the command line and
the :class:`~pushbench.settings.Settings` it read included). Exit codes: 0
complete, 1 incomplete, 2 a bad scenario or option (nothing started), 3 a
``[thresholds]`` condition failed (before 1: the table names the failed cells),
130 Ctrl-C, 143 SIGTERM (:mod:`pushbench.exitcodes`). The scenario's thresholds
are judged at the end of every run (:mod:`pushbench.thresholds`): a table on
stdout, ``thresholds.json`` in the run directory, and ``--junit FILE`` for CI.
``--dry-run`` stops after validating: it prints what would run (``pushbench
describe``'s text, narrowed by ``--only`` and ``--repeats``) and exits 0
without starting anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pushbench import thresholds
from pushbench.exitcodes import ExitCode
from pushbench.results import atomic_write_json, atomic_write_text
from pushbench.scenario import Scenario, ScenarioError, describe, load
from pushbench.scenario.describe import narrow

from .options import RunOptions
from .orchestrate import run_scenario, selected

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("scenario", help="a bundled scenario's name (`pushbench describe` lists them) or a file")
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
    add(
        "--dry-run",
        action="store_true",
        help="validate and print what would run (cells, parameters, estimated time); start nothing",
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
    if args.dry_run:
        print(describe(narrow(scenario, args.only, args.repeats)))
        return 0
    result = run_scenario(scenario, options)
    gates_passed = _judge(scenario, result.rows, result.run_dir, args.junit)
    print(f"pushbench run: {result.status}: {result.run_dir}", file=sys.stderr)
    if result.reason == "interrupted":
        return ExitCode.INTERRUPTED
    if result.reason.startswith("terminated"):
        return ExitCode.TERMINATED
    if not gates_passed:
        return ExitCode.THRESHOLD
    return ExitCode.OK if result.status == "complete" else ExitCode.INCOMPLETE


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

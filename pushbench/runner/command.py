"""``pushbench run SCENARIO``: the command's options, its end-of-run summary and its exit codes.

The CLI (:mod:`pushbench.cli`) owns argv and the environment; it calls
:func:`add_arguments` and :func:`run` with what it parsed (the command line and
the :class:`~pushbench.settings.Settings` it read included). The command that
also renders the report (:mod:`pushbench.commands.run`) calls :func:`execute`,
which returns the run as well. Progress goes to stderr: a live line on a
terminal, plain lines when stderr is a log (:mod:`.progress`); at the end the
summary table (:mod:`.summary`) goes to stdout. Exit codes: 0 complete, 1
incomplete, 2 a bad scenario or option (nothing started), 130 Ctrl-C, 143
SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pushbench.results import LATEST
from pushbench.scenario import ScenarioError, load

from .options import RunOptions, RunResult
from .orchestrate import run_scenario, selected
from .progress import ProgressMode
from .summary import format_table, summarize

__all__ = ["add_arguments", "execute", "exit_code", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("scenario", help="a scenario file, or the name of one in scenarios/")
    add("--out", type=Path, default=Path("results"), help="results base (default %(default)s)")
    add("--repeats", type=int, default=None, metavar="N", help="override every cell's repeats")
    add("--only", default=None, metavar="SUBSTRING", help="run only cells whose id contains it")
    add(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (default: a live line on a terminal, else a plain line "
        "per run and every ~10 s)",
    )


def exit_code(result: RunResult) -> int:
    """0 complete, 1 incomplete, 130 Ctrl-C, 143 SIGTERM."""
    if result.reason == "interrupted":
        return 130
    if result.reason.startswith("terminated"):
        return 143
    return 0 if result.status == "complete" else 1


def execute(args: argparse.Namespace) -> tuple[int, RunResult | None]:
    """Run the scenario ``args`` name and print its summary; (exit code, the run or None
    when nothing started)."""
    if args.repeats is not None and args.repeats < 1:
        print("pushbench run: error: --repeats must be >= 1", file=sys.stderr)
        return 2, None
    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        print(f"pushbench run: error: {exc}", file=sys.stderr)
        return 2, None
    mode: ProgressMode = "off" if args.no_progress else ("live" if sys.stderr.isatty() else "lines")
    options = RunOptions(
        out=args.out,
        repeats=args.repeats,
        only=args.only,
        progress=mode,
        command=tuple(args.command_line),
        settings=args.settings,
    )
    if not selected(scenario, options):
        print(f"pushbench run: error: no cell id contains {args.only!r}", file=sys.stderr)
        return 2, None
    result = run_scenario(scenario, options)
    if result.rows:
        print(format_table(summarize(result.rows)), flush=True)
    kept = (
        ""
        if result.status == "complete"
        else f" ({result.reason}; {options.out / LATEST} not moved)"
    )
    print(f"pushbench run: {result.status}{kept}: {result.run_dir}", file=sys.stderr, flush=True)
    return exit_code(result), result


def run(args: argparse.Namespace) -> int:
    return execute(args)[0]

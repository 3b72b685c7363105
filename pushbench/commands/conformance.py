"""``pushbench conformance [--stack S ...]``: start each stack, run the Autobahn-style
conformance cases (:mod:`pushbench.conformance`) against its ``/echo``, print the
per-stack table. Exit 1 when the raw stack (our own code) is not strictly conformant;
the other stacks' deviations are their libraries' and are only reported."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pushbench.conformance.run import Outcome, format_table
from pushbench.conformance.stacks import STACKS, conformance
from pushbench.exitcodes import ExitCode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack",
        action="append",
        choices=STACKS,
        help="a stack to test (repeatable; default: all)",
    )


def run(args: argparse.Namespace) -> int:
    stacks = tuple(args.stack or STACKS)
    with tempfile.TemporaryDirectory() as tmp:
        by_stack = conformance(stacks, Path(tmp))
    print(format_table(by_stack))
    raw = by_stack.get("raw", [])
    return ExitCode.INCOMPLETE if any(r.outcome is not Outcome.OK for r in raw) else ExitCode.OK

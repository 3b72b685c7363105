"""``pushbench describe [SCENARIO]``: what a scenario would run, without running it.

With a scenario (a bundled name such as ``quick``, or a file): its cells, the
parameters and which of them vary, the runs and the estimated wall time
(:func:`pushbench.scenario.describe`; ``pushbench run SCENARIO --dry-run``
prints the same). Without one: the bundled scenarios, one line each, so a user
of an installed wheel can see what ``pushbench run NAME`` accepts. A scenario
that does not validate exits 2 with the same message ``run`` gives.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from pushbench.exitcodes import ExitCode
from pushbench.scenario import (
    SCENARIOS_DIR,
    ScenarioError,
    describe,
    estimate_seconds,
    list_scenarios,
    load,
)
from pushbench.scenario.describe import format_duration

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenario",
        nargs="?",
        metavar="SCENARIO",
        default=None,
        help="a scenario file or the name of a bundled one (omit it to list the bundled ones)",
    )


def _bundled() -> str:
    lines = [f"bundled scenarios ({SCENARIOS_DIR}):"]
    scenarios = [load(path) for path in list_scenarios()]
    width = max((len(s.name) for s in scenarios), default=0)
    for s in scenarios:
        about = textwrap.shorten(s.description, 64, placeholder=" …")
        when = format_duration(estimate_seconds(s))
        lines.append(f"  {s.name:<{width}}  {when:>12}  {about}".rstrip())
    lines.append("pushbench describe NAME shows one in full; pushbench run NAME runs it")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        text = _bundled() if args.scenario is None else describe(load(args.scenario))
    except ScenarioError as exc:
        print(f"pushbench describe: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    print(text)
    return ExitCode.OK

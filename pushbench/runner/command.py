"""``pushbench run SCENARIO``: the command's options, its end-of-run summary and its exit codes.

The CLI (:mod:`pushbench.cli`) owns argv and the environment; it calls
:func:`add_arguments` and :func:`run` with what it parsed (the command line and
the :class:`~pushbench.settings.Settings` it read included). The command that
also renders the report (:mod:`pushbench.commands.run`) calls :func:`execute`,
which returns the run as well. Progress goes to stderr: a live line on a
terminal, plain lines when stderr is a log (:mod:`.progress`); at the end the
summary table (:mod:`.summary`) goes to stdout, then the scenario's
``[thresholds]`` judged (:mod:`pushbench.thresholds`): a table on stdout,
``thresholds.json`` in the run directory, and ``--junit FILE`` for CI.
``--dry-run`` stops after validating: it prints what would run (``pushbench
describe``'s text, narrowed by ``--only`` and ``--repeats``) and exits 0
without starting anything. Exit codes (:mod:`pushbench.exitcodes`): 0
complete, 1 incomplete, 2 a bad scenario or option, or a ``--cpu-latency-us`` that
cannot be held (nothing started), 3 a
``[thresholds]`` condition failed (before 1: the table names the failed
cells), 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pushbench import thresholds
from pushbench.cpuidle import MAX_LATENCY_US, LatencyHold, LatencyHoldError, check_latency_us
from pushbench.exitcodes import ExitCode
from pushbench.results import LATEST, atomic_write_json, atomic_write_text
from pushbench.scenario import Scenario, ScenarioError, describe, load
from pushbench.scenario.describe import narrow

from .options import RunOptions, RunResult
from .orchestrate import run_scenario, selected
from .progress import ProgressMode
from .summary import format_table, summarize
from .target import TargetError, check_url

__all__ = ["add_arguments", "execute", "exit_code", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("scenario", help="a bundled scenario's name (`pushbench describe` lists them) or a file")
    add("--out", type=Path, default=Path("results"), help="results base (default %(default)s)")
    add("--repeats", type=int, default=None, metavar="N", help="override every cell's repeats")
    add("--only", default=None, metavar="SUBSTRING", help="run only cells whose id contains it")
    add(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the shuffled order of each round (every cell once per round, repeats = "
        "rounds); the same seed runs the same order (default: a fresh one; recorded as "
        "order_seed in metadata.json)",
    )
    add(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (default: a live line on a terminal, else a plain line "
        "per run and every ~10 s)",
    )
    add(
        "--junit",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the scenario's [thresholds] as JUnit XML to FILE (one testcase per "
        "threshold × cell) for CI test reports",
    )
    add(
        "--target",
        default=None,
        metavar="URL",
        help="measure the server you deployed at URL (http://HOST:PORT[/PREFIX], speaking "
        "docs/contract.md) instead of starting one: clients only, each distinct cell once; "
        "the target is probed first and cells needing a part it lacks are skipped with why",
    )
    add(
        "--no-remeasure",
        action="store_true",
        help="keep every repeat as measured: do not re-measure, once, a repeat whose "
        "server or client CPU per message was ≥ 1.2× its cell's median, or whose window lost "
        "≥ 5%% of a core to the hypervisor (the machine was slower during it; cost_slowdown "
        "and steal_fraction_max are recorded either way; also "
        "PUSHBENCH_NO_REMEASURE=1)",
    )
    add(
        "--remeasure-within",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start a re-measure only if the run would still end it within SECONDS of its "
        "start (judged by that repeat's first wall time); the ones skipped are counted in "
        "metadata.json speed.skipped_for_time (make bench: 560, so that codec pass, scenario "
        "and report keep to 10 minutes)",
    )
    add(
        "--no-kernel-floor",
        action="store_true",
        help="skip the loopback floor probe before the first cell (a few seconds: what the "
        "kernel alone charges to send and receive one segment at each of the run's loads, "
        "recorded as metadata.json kernel_floor and in each row's kernel_floor_send_ns and "
        "kernel_floor_recv_ns)",
    )
    add(
        "--cpu-latency-us",
        type=_latency_us,
        default=None,
        metavar="N",
        help="hold the kernel's PM QoS CPU latency at N µs for the run (/dev/cpu_dma_latency, "
        "as tuned's latency-performance profile and cyclictest do; root): 0 keeps idle cores "
        "polling, so no figure includes an idle-state exit (on a VM, the hypervisor's "
        "wake-up). Default: not held, the kernel's choice. Runs with and without it are not "
        "comparable; metadata.json cpu_idle records the idle states either way",
    )
    add(
        "--dry-run",
        action="store_true",
        help="validate and print what would run (cells, parameters, estimated time); start nothing",
    )


def _latency_us(text: str) -> int:
    try:
        return check_latency_us(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a whole number of µs, 0..{MAX_LATENCY_US}: {text!r}"
        ) from None


def exit_code(result: RunResult, gates_passed: bool = True) -> int:
    """130 Ctrl-C, 143 SIGTERM, 3 a threshold failed, 1 incomplete, else 0."""
    if result.reason == "interrupted":
        return ExitCode.INTERRUPTED
    if result.reason.startswith("terminated"):
        return ExitCode.TERMINATED
    if not gates_passed:
        return ExitCode.THRESHOLD
    return ExitCode.OK if result.status == "complete" else ExitCode.INCOMPLETE


def execute(args: argparse.Namespace) -> tuple[int, RunResult | None]:
    """Run the scenario ``args`` name and print its summary and thresholds; (exit code,
    the run or None when nothing started)."""
    if args.repeats is not None and args.repeats < 1:
        print("pushbench run: error: --repeats must be >= 1", file=sys.stderr)
        return ExitCode.USAGE, None
    try:
        scenario = load(args.scenario)
    except ScenarioError as exc:
        print(f"pushbench run: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE, None
    target = None
    if args.target is not None:
        try:
            target = check_url(args.target)
        except TargetError as exc:
            print(f"pushbench run: error: {exc}", file=sys.stderr)
            return ExitCode.USAGE, None
    mode: ProgressMode = "off" if args.no_progress else ("live" if sys.stderr.isatty() else "lines")
    options = RunOptions(
        out=args.out,
        repeats=args.repeats,
        only=args.only,
        progress=mode,
        command=tuple(args.command_line),
        settings=args.settings,
        target=target,
        remeasure_slow=args.settings.remeasure and not args.no_remeasure,
        remeasure_within_s=args.remeasure_within,
        kernel_floor=not args.no_kernel_floor,
        cpu_latency_us=args.cpu_latency_us,
    )
    probes = scenario.abuse is not None or scenario.browser_streams is not None  # h43
    if not selected(scenario, options) and not probes:
        print(f"pushbench run: error: no cell id contains {args.only!r}", file=sys.stderr)
        return ExitCode.USAGE, None
    if args.dry_run:
        print(describe(narrow(scenario, args.only, args.repeats)))
        return ExitCode.OK, None
    try:
        with LatencyHold(args.cpu_latency_us):  # held for the whole run (pushbench.cpuidle)
            result = run_scenario(scenario, options, seed=args.seed)
    except LatencyHoldError as exc:
        print(f"pushbench run: error: --cpu-latency-us: {exc}", file=sys.stderr)
        return ExitCode.USAGE, None
    if result.rows:
        print(format_table(summarize(result.rows)), flush=True)
    gates_passed = _judge(scenario, result.rows, result.run_dir, args.junit)
    kept = (
        ""
        if result.status == "complete"
        else f" ({result.reason}; {options.out / LATEST} not moved)"
    )
    print(f"pushbench run: {result.status}{kept}: {result.run_dir}", file=sys.stderr, flush=True)
    return exit_code(result, gates_passed), result


def run(args: argparse.Namespace) -> int:
    return execute(args)[0]


def _judge(
    scenario: Scenario, rows: list[dict[str, Any]], run_dir: Path, junit: Path | None
) -> bool:
    """The scenario's thresholds on the run's rows: the table on stdout, thresholds.json,
    the JUnit file; whether they all passed (True when there are none)."""
    if not scenario.thresholds and junit is None:
        return True
    baselines = {c.cell_id: c.baseline_id for c in scenario.cells() if c.baseline_id}
    cells = thresholds.summarize_rows(rows, baselines)
    verdict = thresholds.evaluate(scenario.name, scenario.thresholds, cells)
    if scenario.thresholds:
        print(thresholds.render_text(verdict), end="", flush=True)
        atomic_write_json(run_dir / thresholds.THRESHOLDS_FILE, verdict.as_dict())
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(junit, thresholds.junit_xml(verdict))
    return verdict.passed

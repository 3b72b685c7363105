"""The `pushbench` command: the only place that reads argv and the environment.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them into argparse, imported lazily
so `pushbench --help` stays fast and a server never imports matplotlib.
Every subcommand exits with the codes of :mod:`pushbench.exitcodes`, which
``pushbench --help`` lists; ``pushbench --version`` names the version and where
the package was imported from (a checkout or an installed wheel).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import pushbench
from pushbench.exitcodes import ExitCode, epilog, summary
from pushbench.settings import Settings

# name → (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("pushbench.servers.serve", "start a push server stack on a host and port"),
    "run": (
        "pushbench.commands.run",
        "run a scenario (a bundled name such as smoke, or a file), then print its answer",
    ),
    "describe": (
        "pushbench.commands.describe",
        "show a scenario's cells, parameters and estimated time without running it",
    ),
    "bench-codec": (
        "pushbench.commands.bench_codec",
        "benchmark the WebSocket codec against peers",
    ),
    "bench-client": (
        "pushbench.commands.bench_client",
        "benchmark how many messages per second a client receives on one core",
    ),
    "net-floor": (
        "pushbench.commands.net_floor",
        "measure what the kernel alone charges to send and receive one small message",
    ),
    "conformance": (
        "pushbench.commands.conformance",
        "run the Autobahn-style WebSocket conformance cases against each stack's /echo",
    ),
    # -- network conditions (issue 12 item 6) --
    "relay": (
        "pushbench.netem.command",
        "run the network-conditions relay (delay, jitter, bandwidth cap) before a server",
    ),
    "calibrate-net": (
        "pushbench.commands.calibrate_net",
        "measure the delay the network-conditions relay adds under each profile",
    ),
    # -- end network conditions --
    "report": ("pushbench.report.render", "render a run's report.html and report.md from its data"),
    "compare": ("pushbench.report.compare", "compare two runs cell by cell, noise-aware"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only``, just that subcommand's module is imported for its
    options (the others keep their name and one-line help), so ``pushbench serve`` — run
    once per cell repeat by the runner — does not import pandas and the report."""
    parser = argparse.ArgumentParser(
        prog="pushbench",
        description="Benchmark how a server pushes data to clients: WebSocket, SSE,\n"
        "long polling and short polling, measured from the scheduled send time.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the exit-code table
    )
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if only is not None and name != only:
            continue
        importlib.import_module(module).add_arguments(p)
        p.epilog = f"{p.epilog} {summary()}" if p.epilog else summary()
    return parser


def version() -> str:
    """``pushbench 0.1.0 from /…/pushbench (Python 3.11.9)``, as pip and Locust say it."""
    where = Path(pushbench.__file__).resolve().parent
    return f"pushbench {pushbench.__version__} from {where} (Python {platform.python_version()})"


def chosen(argv: Sequence[str]) -> str | None:
    """The subcommand argv names (its first word that is one), or None (``--help``,
    ``--version``, a typo: then the whole parser answers)."""
    for word in argv:
        if word in SUBCOMMANDS:
            return word
        if not word.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    name = chosen(words)
    args = build_parser(only=name).parse_args(words)
    args.command_line = [sys.argv[0], *words]
    try:
        args.settings = Settings.from_environ(os.environ)
    except ValueError as exc:  # a variable that cannot be read (PUSHBENCH_CLIENT_FAULTS)
        print(f"pushbench: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    args.environ = os.environ  # for options that name a variable (serve --auth-secret-env)
    args.settings.apply()
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

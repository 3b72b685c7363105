"""The `pushbench` command: the only place that reads argv and the environment.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them into argparse, imported lazily
so `pushbench --help` stays fast and a server never imports matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from pushbench.settings import Settings

# name → (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("pushbench.servers.serve", "start a push server stack on a host and port"),
    "run": ("pushbench.commands.run", "run a scenario file, then print its summary and report"),
    "bench-codec": (
        "pushbench.commands.bench_codec",
        "benchmark the WebSocket codec against peers",
    ),
    "bench-client": (
        "pushbench.commands.bench_client",
        "benchmark how many messages per second a client receives on one core",
    ),
    "report": ("pushbench.report.render", "render a run's report.html and report.md from its data"),
    "compare": ("pushbench.report.compare", "compare two runs cell by cell, noise-aware"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushbench",
        description="Benchmark how a server pushes data to clients: WebSocket, SSE, "
        "long polling and short polling, measured from the scheduled send time.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    args.settings = Settings.from_environ(os.environ)
    args.environ = os.environ  # for options that name a variable (serve --auth-secret-env)
    args.settings.apply()
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

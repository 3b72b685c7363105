"""``pushbench net-floor``: what the kernel alone charges to push one small message.

Runs :mod:`pushbench.netfloor` in a process of its own, the sender on the server's core
and the receiver on a client's (as a run pins them), and prints the CPU per segment of
each side; ``--json`` prints the record a run stores in ``metadata.json``
``kernel_floor``. Every server's CPU per delivered message includes the send figure,
every client's the receive figure: read them together. Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json

from pushbench import netfloor
from pushbench.exitcodes import ExitCode
from pushbench.procs import plan_pinning

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    netfloor.add_arguments(parser)
    parser.epilog = "Defaults: the floor scenario's load (100 connections × 1,000 segments/s)."


def run(args: argparse.Namespace) -> int:
    pinning = plan_pinning()
    server = args.server_cpu if args.server_cpu is not None else pinning.server[0]
    client = args.client_cpu if args.client_cpu is not None else pinning.clients[0]
    try:
        floor = netfloor.measure(
            server,
            client,
            seconds=args.seconds,
            connections=args.connections,
            rate=args.rate,
            segment=args.segment,
        )
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"pushbench net-floor: error: {exc}")
        return ExitCode.USAGE if isinstance(exc, ValueError) else ExitCode.INCOMPLETE
    print(json.dumps(floor.as_dict()) if args.json else floor.line())
    return ExitCode.OK

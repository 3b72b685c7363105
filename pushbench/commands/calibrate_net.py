"""``pushbench calibrate-net``: what the network-conditions relay really adds.

For each profile asked for (default: every relayed one), the relay is started as a
process, pinned as in a run (the client CPUs), in front of an echo server, and probes
measure the one-way delay it adds per direction (:mod:`pushbench.netem.probe`). The
records are written as JSON under ``--out`` (``netem-calibration-<UTC time>.json``, the
same records a run stores in its ``netem.json``) and one line per profile is printed,
saying whether the added round trip is within ±1 ms of the declared one. On a loaded
machine the figures are wrong: calibrate on a quiet one, as for any benchmark.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pushbench.exitcodes import ExitCode
from pushbench.netem import PROFILES
from pushbench.procs import plan_pinning
from pushbench.runner.netem import CALIBRATION_PROBES, calibrate, write_netem

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    relayed = [n for n, p in PROFILES.items() if p.relay]
    parser.add_argument(
        "--net", action="append", choices=relayed, help="a profile (repeatable; default: all)"
    )
    parser.add_argument(
        "--probes", type=int, default=CALIBRATION_PROBES, help="probes per path and profile"
    )
    parser.add_argument("--out", type=Path, default=Path("results"), help="where to write")


def run(args: argparse.Namespace) -> int:
    if args.probes < 1:
        print("pushbench calibrate-net: error: --probes must be at least 1")
        return ExitCode.USAGE
    nets = args.net or [n for n, p in PROFILES.items() if p.relay]
    pinning = plan_pinning()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out / f"netem-calibration-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = calibrate(nets, out.parent / f"netem-calibration-{stamp}-logs", pinning, args.probes)
    write_netem(out, nets, pinning, results)
    for c in results:
        print(c.line())
    print(f"written to {out}")
    return ExitCode.OK

"""``pushbench bench-client``: measure a client's receive rate on one core, then render the report.

Composes the two sides, which never import each other: the benchmark (cases
and rules :mod:`pushbench.bench.client`, runner
:mod:`pushbench.bench.client_runner`) measures every case × repeat and stores
the results (:mod:`pushbench.schema.client_bench`) in a new run directory, then
the report (:mod:`pushbench.report.client`) prints each repeat's line, the
table and the target line and writes ``client-report.md`` from those files.
Re-rendering an old run needs only the second half:
``python -m pushbench.report.client RUN_DIR``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pushbench.bench.client import (
    CLIENTS,
    DEFAULT_CONNECTIONS,
    DEFAULT_DURATION_S,
    DEFAULT_OFFERED,
    DEFAULT_PAYLOAD,
    DEFAULT_REPEATS,
    DEFAULT_WARMUP_S,
    DISTRIBUTIONS,
    QUICK_DURATION_S,
    QUICK_OFFERED,
    QUICK_REPEATS,
    QUICK_WARMUP_S,
    TARGET,
    build_cases,
    evaluate_targets,
)
from pushbench.bench.feeder import FeederSpec

from .options import name_list

__all__ = ["add_arguments", "run"]


def _rate_list(text: str) -> list[int]:
    if text.strip().lower() in ("", "0", "none"):
        return []
    try:
        rates = [int(float(r)) for r in text.split(",") if r.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of rates: {text!r}") from exc
    if any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("offered rates must be > 0 (or 'none')")
    return rates


_EPILOG = f"""\
cases: every client at saturation (the feeder writes frames back to back), then at
every --offered rate (total msgs/s, spread over the connections, sent every 10 ms).
clients:
{chr(10).join(f"  {k:<11} {v}" for k, v in CLIENTS.items())}

Each repeat starts a feeder process pinned to one CPU and one client worker
(python -m pushbench.clients.worker) pinned to another, and measures over the window:
msgs/s received, the worker's CPU, GC collections and longest pause, longest
loop lag; the feeder's CPU; how busy each CPU was (>= 90 %: saturated); and how
often data was waiting for the client. At saturation a client that always had
data waiting is "client-bound" (the figure is its ceiling); otherwise the figure
is a "lower bound" (the feeder did not keep up) and the output says so.

Results go to a new run directory under --out: metadata.json, client.json (every
repeat), client.csv (one row per case), client-report.md; logs/ (stderr of every
process) and work/ (worker specs and outputs).

target: {TARGET.text};
printed as MET / NOT MET from the median, with the aiohttp client's figure beside it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pushbench bench-client``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "--connections",
        type=int,
        default=DEFAULT_CONNECTIONS,
        metavar="N",
        help=f"connections of the client worker (one process, one core; default "
        f"{DEFAULT_CONNECTIONS})",
    )
    parser.add_argument(
        "--payload",
        type=int,
        default=DEFAULT_PAYLOAD,
        metavar="BYTES",
        help=f"payload bytes per message, inside the JSON envelope (default {DEFAULT_PAYLOAD})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"timed window per repeat (default {DEFAULT_DURATION_S}, {QUICK_DURATION_S} "
        "with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"untimed warm-up before the window, once every connection is up (default "
        f"{DEFAULT_WARMUP_S}, {QUICK_WARMUP_S} with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help=f"repeats per case; the median is reported with min and max (default "
        f"{DEFAULT_REPEATS}, {QUICK_REPEATS} with --quick)",
    )
    parser.add_argument(
        "--clients",
        type=name_list("client", lambda: CLIENTS),
        default=None,
        metavar="NAME[,NAME]",
        help=f"clients to measure (default {','.join(CLIENTS)})",
    )
    parser.add_argument(
        "--offered",
        type=_rate_list,
        default=None,
        metavar="RATE[,RATE]|none",
        help="offered-rate cases, total msgs/s over all connections (default "
        f"{','.join(map(str, DEFAULT_OFFERED))}; none with --quick)",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the worker's event loop (default asyncio)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="results base directory; each run gets a new subdirectory (default results/)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="saturation cases only, one short repeat: a smoke run, not a measurement",
    )


def _pick(value: Any, quick: bool, quick_value: Any, default: Any) -> Any:
    return value if value is not None else (quick_value if quick else default)


def run(args: argparse.Namespace) -> int:
    """Measure every case × repeat, store, render, print the table and the target line.

    The run directory's metadata is stamped complete before rendering, or with
    why the run stopped.
    """
    from pushbench import results
    from pushbench.bench.client_runner import Options, run_repeats
    from pushbench.procs import plan_pinning
    from pushbench.report.client import format_sample, format_table, format_target, render_report

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    quick: bool = args.quick
    duration: float = _pick(args.duration, quick, QUICK_DURATION_S, DEFAULT_DURATION_S)
    warmup: float = _pick(args.warmup, quick, QUICK_WARMUP_S, DEFAULT_WARMUP_S)
    repeats: int = _pick(args.repeats, quick, QUICK_REPEATS, DEFAULT_REPEATS)
    offered: list[int] = list(_pick(args.offered, quick, QUICK_OFFERED, DEFAULT_OFFERED))
    clients: list[str] = args.clients or list(CLIENTS)
    if args.connections < 1 or args.payload < 0 or repeats < 1 or duration <= 0 or warmup < 0:
        print(
            "bench-client: --connections and --repeats must be >= 1, --payload and --warmup "
            ">= 0, --duration > 0",
            file=sys.stderr,
        )
        return 2
    cases = build_cases(clients, offered)
    options = Options(args.connections, args.payload, duration, warmup, args.loop)
    pinning = plan_pinning(1)
    _, frame_len = FeederSpec(args.connections, args.payload).frames(1)

    run_dir = results.new_run_dir(args.out)
    stored = {
        "quick": quick,
        "connections": args.connections,
        "payload": args.payload,
        "frame_bytes": frame_len,
        "duration_s": duration,
        "warmup_s": warmup,
        "repeats": repeats,
        "clients": clients,
        "offered": offered,
        "loop": args.loop,
        "cases": [c.id for c in cases],
        "pinning": {
            "feeder_cpus": list(pinning.server),
            "client_cpus": list(pinning.clients[:1]),
            "available_cpus": list(pinning.available),
            "note": "only one CPU: feeder and client share it"
            if len(pinning.available) < 2
            else "",
        },
    }
    meta = results.collect_metadata(
        command=args.command_line,
        settings=args.settings,
        distributions=DISTRIBUTIONS,
        started=started,
        extra={"benchmark": "client", "run_id": run_dir.name, "options": stored},
    )
    results.atomic_write_json(run_dir / "metadata.json", meta)
    total = len(cases) * repeats
    print(
        f"bench-client: {len(cases)} cases × {repeats} repeats, {args.connections} connections, "
        f"{args.payload}-byte payloads, {warmup:g} + {duration:g} s each → {run_dir}",
        flush=True,
    )
    print(
        f"feeder on CPU {list(pinning.server)}, client worker on CPU {list(pinning.clients[:1])}"
        f"{'; ' + stored['pinning']['note'] if stored['pinning']['note'] else ''}; "
        f"load average {meta.get('loadavg_start')}",
        flush=True,
    )
    load = meta.get("loadavg_start")
    if load and load[0] > 0.5 * len(pinning.available):
        print(
            f"warning: load average {load[0]} on {len(pinning.available)} CPUs: other processes "
            "compete for the cores (see the core-busy columns)",
            file=sys.stderr,
            flush=True,
        )

    try:
        samples, summaries = run_repeats(
            cases,
            repeats,
            options,
            pinning,
            run_dir,
            stored,
            progress=lambda i, n, s: print(format_sample(i, n, s), flush=True),
        )
        results.atomic_write_json(run_dir / "metadata.json", results.finish_metadata(meta))
        report = render_report(run_dir)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {exc!r}"
        results.atomic_write_json(
            run_dir / "metadata.json", results.finish_metadata(meta, status=status)
        )
        raise
    results.update_latest(run_dir)

    print()
    print(format_table(summaries))
    print()
    for target in evaluate_targets(summaries):
        print(format_target(target))
    print()
    failed = [s for s in samples if s.status != "ok"]
    end_load = results.read_json(run_dir / "metadata.json").get("loadavg_end")
    print(
        f"{total} repeats ({len(failed)} failed) in {time.perf_counter() - t0:.0f} s, load "
        f"average at the end {end_load}; wrote client.json, client.csv, {report.name} to {run_dir}",
        flush=True,
    )
    return 1 if failed else 0

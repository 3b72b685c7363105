"""``pushbench bench-codec``: time the WebSocket codec against its peers, then render the report.

Composes the two sides, which never import each other: the benchmark
(cases :mod:`pushbench.bench.codec`, runner :mod:`pushbench.bench.codec_runner`,
profile :mod:`pushbench.bench.codec_profile`) stores its records
(:mod:`pushbench.schema.codec`) in a new run directory, then the report
(:mod:`pushbench.report.codec`) draws the plots and ``codec-report.md`` from
those files and judges the targets. Re-rendering an old run needs only the
second half: ``python -m pushbench.report.codec RUN_DIR``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pushbench.bench.codec import (
    DEFAULT_MIN_TIME,
    DEFAULT_PROFILE_TIME,
    DEFAULT_REPEATS,
    DEFAULT_SIZES,
    DISTRIBUTIONS,
    LIBRARIES,
    QUICK_MIN_TIME,
    QUICK_PROFILE_TIME,
    QUICK_REPEATS,
    QUICK_SIZES,
    Workloads,
    build_cases,
    known_libraries,
)
from pushbench.bench.timing import warmup_time
from pushbench.schema.codec import MAX_FRAMES, MIN_FRAMES, STREAM_BYTES

from .options import name_list

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pushbench bench-codec``."""
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed repeats per case (default {DEFAULT_REPEATS}, {QUICK_REPEATS} with --quick)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"minimum duration of one repeat (default {DEFAULT_MIN_TIME}, "
        f"{QUICK_MIN_TIME} with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {', '.join(map(str, QUICK_SIZES))} B only and fewer/shorter repeats",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="results base directory; each run gets a new subdirectory (default results/)",
    )
    parser.add_argument(
        "--only",
        type=name_list("library", known_libraries),
        default=None,
        metavar="LIB[,LIB]",
        help=f"run only these libraries ({', '.join(LIBRARIES)}); "
        "unmask baselines (numpy, floor) always run",
    )
    parser.add_argument(
        "--profile-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"how long to profile our decoder (default {DEFAULT_PROFILE_TIME}, "
        f"{QUICK_PROFILE_TIME} with --quick; 0 skips the profile)",
    )


def run(args: argparse.Namespace) -> int:
    """Run every case, store the records, profile, render the report, print targets.

    The run directory's metadata is stamped complete before rendering (so the
    report shows the end of the measurement), or with why the run stopped.
    """
    from pushbench import results
    from pushbench.bench.codec_profile import profile_decoder
    from pushbench.bench.codec_runner import print_progress, run_cases
    from pushbench.report import codec as report
    from pushbench.schema.codec import write_records

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    quick: bool = args.quick
    repeats: int = args.repeats or (QUICK_REPEATS if quick else DEFAULT_REPEATS)
    min_time: float = (
        args.min_time
        if args.min_time is not None
        else (QUICK_MIN_TIME if quick else DEFAULT_MIN_TIME)
    )
    profile_time: float = (
        args.profile_time
        if args.profile_time is not None
        else (QUICK_PROFILE_TIME if quick else DEFAULT_PROFILE_TIME)
    )
    if repeats < 1 or min_time <= 0:
        print("bench-codec: --repeats must be ≥ 1 and --min-time > 0", file=sys.stderr)
        return 2
    sizes = QUICK_SIZES if quick else DEFAULT_SIZES
    libraries: list[str] = args.only or list(LIBRARIES)
    cases = build_cases(sizes, libraries)

    run_dir = results.new_run_dir(args.out)
    options = {
        "quick": quick,
        "repeats": repeats,
        "min_time_s": min_time,
        "warmup_time_s": warmup_time(min_time),
        "sizes": list(sizes),
        "libraries": libraries,
        "profile_time_s": profile_time,
        "stream_bytes": STREAM_BYTES,
        "max_frames": MAX_FRAMES,
        "min_frames": MIN_FRAMES,
    }
    meta = results.collect_metadata(
        command=args.command_line,
        settings=args.settings,
        distributions=DISTRIBUTIONS,
        started=started,
        extra={"benchmark": "codec", "run_id": run_dir.name, "options": options},
    )
    results.atomic_write_json(run_dir / "metadata.json", meta)
    print(f"bench-codec: {len(cases)} cases → {run_dir}", flush=True)
    load, cores = meta.get("loadavg_start"), len(meta["cpu"]["affinity"] or []) or os.cpu_count()
    if load and cores and load[0] > 0.5 * cores:
        print(
            f"warning: load average {load[0]} on {cores} cores: other processes compete "
            "for the CPU and will skew these timings",
            file=sys.stderr,
            flush=True,
        )

    workloads = Workloads()
    try:
        records = run_cases(
            cases, repeats=repeats, min_time=min_time, progress=print_progress, workloads=workloads
        )
        write_records(run_dir, records)
        if profile_time > 0:
            print("profiling our decoder (125 B masked frames)...", flush=True)
            profile_decoder(run_dir, seconds=profile_time, workloads=workloads)
        # Measurement is over: stamp it before rendering, so the report shows
        # the end time and load average of the measurement itself.
        results.atomic_write_json(run_dir / "metadata.json", results.finish_metadata(meta))
        written = report.render(run_dir)
    except BaseException as exc:
        # Leave a trace of why the run is incomplete; `latest` keeps pointing
        # at the previous complete run.
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {exc!r}"
        results.atomic_write_json(
            run_dir / "metadata.json", results.finish_metadata(meta, status=status)
        )
        raise
    results.update_latest(run_dir)

    print()
    print(report.format_targets(report.evaluate_targets(records)))
    print()
    errors = [r for r in records if r.status == "error"]
    print(
        f"{len(records)} cases ({len(errors)} errors) in {time.perf_counter() - t0:.0f} s; "
        f"wrote {', '.join(p.name for p in written)} and codec.json/csv to {run_dir}",
        flush=True,
    )
    return 1 if errors else 0

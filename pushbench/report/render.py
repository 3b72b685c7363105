"""``pushbench report RUN``: render a scenario run's report.html and report.md from stored data.

Reads the run (:func:`~.load.load_run`), draws :data:`~.plots.PLOTS` as PNGs,
assembles the document (:mod:`.build`) and writes it twice, as one
self-contained HTML file (images embedded) and as Markdown beside the PNGs.
Every file is written atomically into the run directory (or ``--out``);
``cells.csv``, ``metadata.json`` and ``hist/`` are only read. Re-rendering
writes the same files again: it is idempotent and never re-runs anything.

The codec section comes from ``--codec CODEC_RUN`` if given, else from the
run itself if it holds ``codec.json``, else from the newest run under the
run's results directory that does; the report says which.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pushbench.exitcodes import ExitCode
from pushbench.results import atomic_write_text, resolve_run

from . import build, compare, html, md
from .load import find_codec_run, load_run
from .plots import render_all

__all__ = ["add_arguments", "render", "run"]


def _codec_run(run_dir: Path, codec_run: Path | str | None) -> tuple[Path | None, str]:
    if codec_run is not None:
        path = resolve_run(codec_run)
        if not (path / "codec.json").exists():
            raise FileNotFoundError(f"{path} has no codec.json: not a codec run")
        return path, "given with --codec"
    if (run_dir / "codec.json").exists():
        return run_dir, "this run"
    found = find_codec_run(run_dir.parent)
    return found, f"the newest codec run under {run_dir.parent.name}/"


def render(
    run_dir: Path | str,
    codec_run: Path | str | None = None,
    *,
    out: Path | str | None = None,
    compare_to: Path | str | None = None,
) -> list[Path]:
    """Write the plots, ``report.html`` and ``report.md`` of ``run_dir``; return their paths.

    ``compare_to`` (a baseline run) adds a comparison section.
    """
    run = load_run(run_dir)
    target = Path(out) if out is not None else run.path
    target.mkdir(parents=True, exist_ok=True)
    codec_path, how = _codec_run(run.path, codec_run)
    plots = render_all(run, target)
    comparison = None
    if compare_to is not None:
        comparison = compare.section(compare.compare_runs(load_run(compare_to), run))
    document = build.document(
        run, plots, codec_run=codec_path, codec_how=how, comparison=comparison, out=target
    )
    html_path, md_path = target / "report.html", target / "report.md"
    atomic_write_text(html_path, html.render(document))
    atomic_write_text(md_path, md.render(document, target))
    return [*(p.path for p in plots if p.path is not None), html_path, md_path]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Render report.html (one self-contained file, images embedded, opens offline) and "
        "report.md with their PNG plots into a scenario run's directory, from its stored "
        "results only: nothing is re-run. Re-rendering is idempotent."
    )
    add = parser.add_argument
    add(
        "run",
        type=Path,
        metavar="RUN",
        help="a run directory, results/latest, or `latest` (= results/latest)",
    )
    add(
        "--codec",
        type=Path,
        default=None,
        metavar="CODEC_RUN",
        help="codec run (a directory or `latest`) for the codec section (default: this run if "
        "it has codec.json, else the newest codec run beside it)",
    )
    add(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write into DIR instead of the run directory",
    )
    add(
        "--compare",
        type=Path,
        default=None,
        metavar="BASE_RUN",
        help="add a comparison section against this baseline run (a directory or `latest`)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        written = render(args.run, args.codec, out=args.out, compare_to=args.compare)
    except FileNotFoundError as exc:  # no such run: bad input, as in compare
        print(f"pushbench report: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    for path in written[-2:]:
        print(path)
    print(f"pushbench report: {len(written) - 2} plots", file=sys.stderr)
    return ExitCode.OK

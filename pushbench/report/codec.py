"""Plots, Markdown report and targets of a ``bench-codec`` run, from its stored files.

Reads ``codec.json`` (records of :mod:`pushbench.schema.codec`), ``metadata.json``
and ``codec-profile.txt`` of a run directory and writes, beside them:

- ``codec-decode.png`` / ``codec-encode.png``: payload MB/s against payload
  size, log-log, one line per library, masked and unmasked as two panels;
- ``codec-125b.png``: per-frame µs at 125 bytes, per library and operation;
- ``codec-unmask.png``: GB/s of the 1 MiB XOR kernels and copy floors;
- ``codec-report.md``: tables, the targets with ratios against the peers of the
  same run, what each figure includes, and the profile's top functions.

Nothing here runs a benchmark, nor imports one: re-rendering an old run is
``python -m pushbench.report.codec RUN_DIR`` (or :func:`render`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pushbench.report import paths
from pushbench.results import atomic_write_bytes, atomic_write_text, read_json, resolve_run
from pushbench.schema.codec import (
    LIBRARIES,
    MAX_FRAMES,
    MIN_FRAMES,
    STREAM_BYTES,
    Record,
    library_label,
    load_records,
)

__all__ = [
    "TargetResult",
    "evaluate_targets",
    "format_targets",
    "main",
    "render",
    "render_markdown",
]


# What one measured unit covers, stated in the report beside every figure.
INCLUDES = {
    "decode": (
        "bytes in → list of frame objects with unmasked payload bytes: a fresh "
        f"decoder per stream, the whole stream ({MIN_FRAMES} to {MAX_FRAMES} frames, "
        f"≈ {STREAM_BYTES >> 20} MiB for large payloads) fed in one call, freeing "
        "the output included; excludes "
        "UTF-8 validation (frames are binary), message reassembly beyond one "
        "frame, and any I/O"
    ),
    "encode": (
        "one payload → one final binary frame's wire bytes (the chunks the "
        "library would hand its transport); masked = client, with a fresh random "
        "key per frame drawn the library's way; excludes I/O and compression. "
        "aiohttp writes the header and an unmasked payload over 16 KiB as two "
        "chunks without copying the payload (its transport copies later), so its "
        "unmasked 1 MiB figure counts no copy while the others count one"
    ),
    "unmask": (
        "XOR of one 1 MiB buffer with a 4-byte key; 'copy' floors do no XOR. "
        "Variants that return a fresh buffer pay for page allocation, the "
        "'into'/in-place ones reuse one"
    ),
}

from .codec_targets import (  # noqa: E402 — the targets and shared formats live there
    OURS,
    TargetResult,
    _find,
    _fmt,
    _gbps,
    _ok,
    _size_label,
    _with_unit,
    evaluate_targets,
    format_targets,
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _profile_top(run_dir: Path) -> str | None:
    path = run_dir / "codec-profile.txt"
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    return paths.scrub(text.split("\n== pyinstrument", 1)[0].rstrip())


def _warmup_line(opts: Mapping[str, Any]) -> str:
    """How each case was warmed up and its loop calibrated, and whether a quick run's
    figures compare with a full run's (runs before the warm-up discipline: they do not)."""
    warm = opts.get("warmup_time_s")
    if warm is None:
        text = (
            "- warm-up: half a repeat's calls, the loop count calibrated on cold calls (a run "
            "made before the warm-up discipline)"
        )
        if opts.get("quick"):
            text += (
                "; **not comparable with a full run**: short samples timed from a cold start "
                "read up to 2× slower"
            )
        return text
    text = (
        f"- each case warmed up for ≥ {warm} s (on until two samples agree within 5 %), then "
        f"its loop count calibrated on warm calls so a repeat lasts ≥ {opts.get('min_time_s')} s"
    )
    if opts.get("quick"):
        text += (
            "; quick run: fewer sizes and repeats, the same warm-up and calibration as a full "
            "run, so its figures are meant to agree with a full run's within ~10 % on a quiet "
            "machine"
        )
    return text


def render_markdown(
    records: Sequence[Record], meta: dict[str, Any], run_dir: Path, images: Sequence[Path]
) -> str:
    """The text of ``codec-report.md``."""
    ok = _ok(records)
    sizes = sorted({r.payload for r in ok if r.op in ("decode", "encode")})
    libs = [lib for lib in LIBRARIES if any(r.library == lib for r in records)]
    opts = meta.get("options", {})
    cpu = meta.get("cpu", {})
    git = meta.get("git", {})
    versions = meta.get("versions", {})
    lines = [
        f"# Codec benchmark — run {meta.get('run_id', run_dir.name)}",
        "",
        f"- started {meta.get('started')}, "
        f"command `{paths.shown_command(meta.get('command', []))}`",
        f"- CPU {cpu.get('model')}, {cpu.get('count')} cores, affinity {cpu.get('affinity')}, "
        f"governor {cpu.get('governor')}",
        f"- Python {meta.get('python', {}).get('version')}, {meta.get('kernel')}; "
        f"load average {meta.get('loadavg_start')} at start, {meta.get('loadavg_end')} at end",
        f"- git {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        f"- {opts.get('repeats')} repeats of ≥ {opts.get('min_time_s')} s per case, "
        "median reported; GC paused while timing; MB = 10^6 payload bytes "
        "(headers not counted), GB = 10^9",
        _warmup_line(opts),
        "",
        "## Targets",
        "",
        "Ratios compare with peers measured in this same run, on this machine.",
        "",
    ]
    target_rows = []
    for t in evaluate_targets(records):
        target_rows.append(
            [
                t.name,
                _with_unit(t.value, t.unit),
                t.requirement,
                f"**{t.verdict}**",
                "; ".join(t.comparisons),
            ]
        )
    lines += _table(["target", "measured", "required", "result", "ratios"], target_rows)
    lines += ["", "## What the figures include", ""]
    lines += [f"- **{op}**: {text}." for op, text in INCLUDES.items()]

    for op in ("decode", "encode"):
        for masked in (True, False):
            role = {
                ("decode", True): "masked (server reading client frames)",
                ("decode", False): "unmasked (client reading server frames)",
                ("encode", True): "masked (client frames)",
                ("encode", False): "unmasked (server frames)",
            }[(op, masked)]
            rows = []
            for lib in libs:
                cells = []
                for size in sizes:
                    r = _find(records, op, masked, size, lib)
                    cells.append(_fmt(r.per_frame_us_median) if r else "—")
                rows.append([library_label(lib), *cells])
            lines += ["", f"## {op.capitalize()} {role}: µs per frame (median)", ""]
            lines += _table(["library", *(_size_label(s) for s in sizes)], rows)

    unmask = [r for r in ok if r.op == "unmask"]
    if unmask:
        lines += ["", "## Unmask 1 MiB", ""]
        lines += _table(
            ["library", "function", "µs per MiB", "GB/s", "what"],
            [
                [
                    library_label(r.library),
                    r.variant,
                    _fmt(r.per_frame_us_median),
                    _fmt(_gbps(r)),
                    r.notes,
                ]
                for r in unmask
            ],
        )

    missing = [r for r in records if r.status != "ok"]
    if missing:
        lines += ["", "## Not measured", ""]
        lines += _table(["case", "status", "why"], [[r.case, r.status, r.notes] for r in missing])

    lines += ["", "## Libraries", ""]
    seen: dict[str, Record] = {}
    for r in records:
        if r.op != "unmask":
            seen.setdefault(r.library, r)
    lines += _table(
        ["library", "version", "what runs"],
        [[library_label(lib), r.version or "—", r.notes] for lib, r in seen.items()],
    )

    lines += ["", "## Figures", ""]
    lines += [f"![{p.stem}]({p.name})" for p in images]

    profile = _profile_top(run_dir)
    lines += ["", "## Profile: our decoder on 125-byte masked frames", ""]
    if profile is None:
        lines.append("No profile in this run.")
    else:
        lines += [
            "Call trees: [compiled](codec-profile.html), "
            "[pure Python](codec-profile-pure.html) (pyinstrument). "
            "Top functions by own time (cProfile, which inflates small functions):",
            "",
            "```",
            profile,
            "```",
        ]
    return "\n".join(lines) + "\n"


# --- plots --------------------------------------------------------------------------


def _colors() -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {lib: cmap(i) for i, lib in enumerate(LIBRARIES)}


def _save(fig: Any, path: Path) -> Path:
    from .figure import png_bytes

    atomic_write_bytes(path, png_bytes(fig, dpi=120, bbox_inches="tight"))
    return path


def _throughput_figure(records: Sequence[Record], op: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    colors = _colors()
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    ok = [r for r in _ok(records) if r.op == op]
    sizes = sorted({r.payload for r in ok})
    for ax, masked in zip(axes, (True, False), strict=True):
        for lib in LIBRARIES:
            points = sorted(
                (r.payload, r.mb_per_s)
                for r in ok
                if r.library == lib and r.masked == masked and r.mb_per_s
            )
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            style = "-" if lib == OURS else "--"
            width = 2.4 if lib == OURS else 1.4
            ax.plot(
                xs, ys, style, marker="o", lw=width, color=colors[lib], label=library_label(lib)
            )
            if op == "encode" and not masked and lib == "aiohttp-c" and xs[-1] > 16384:
                ax.annotate(
                    "aiohttp: payload > 16 KiB\nhanded over uncopied",
                    (xs[-1], ys[-1]),
                    xytext=(-12, -4),
                    textcoords="offset points",
                    ha="right",
                    va="top",
                    fontsize="small",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [_size_label(s) for s in sizes])
        ax.minorticks_off()
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("payload per frame")
        side = {
            ("decode", True): "masked (server side)",
            ("decode", False): "unmasked (client side)",
            ("encode", True): "masked (client side)",
            ("encode", False): "unmasked (server side)",
        }[(op, masked)]
        ax.set_title(side)
    axes[0].set_ylabel("payload MB/s (10^6 B/s, log)")
    axes[0].legend(loc="best", fontsize="small")
    what = "bytes → frame objects" if op == "decode" else "payload → frame bytes"
    fig.suptitle(f"{op.capitalize()} throughput ({what}; binary frames, higher is better)")
    return _save(fig, path)


def _small_frame_figure(records: Sequence[Record], path: Path, size: int = 125) -> Path | None:
    from matplotlib.figure import Figure

    series = [
        ("decode", True, "decode masked"),
        ("decode", False, "decode unmasked"),
        ("encode", True, "encode masked (client)"),
        ("encode", False, "encode unmasked (server)"),
    ]
    libs = [
        lib for lib in LIBRARIES if any(_find(records, op, m, size, lib) for op, m, _ in series)
    ]
    if not libs:
        return None
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(series)
    cmap = ["#1f77b4", "#aec7e8", "#d62728", "#ff9896"]
    for j, (op, masked, label) in enumerate(series):
        xs, ys = [], []
        for i, lib in enumerate(libs):
            r = _find(records, op, masked, size, lib)
            if r is not None and r.per_frame_us_median is not None:
                xs.append(i + (j - (len(series) - 1) / 2) * width)
                ys.append(r.per_frame_us_median)
        bars = ax.bar(xs, ys, width, label=label, color=cmap[j])
        ax.bar_label(bars, labels=[_fmt(y, 2) for y in ys], fontsize=7, padding=1)
    ax.set_xticks(range(len(libs)), [library_label(lib) for lib in libs])
    ax.set_ylabel("µs per frame (median, lower is better)")
    ax.set_title(f"{size}-byte binary frames: time per frame")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def _unmask_figure(records: Sequence[Record], path: Path) -> Path | None:
    from matplotlib.figure import Figure

    rows = [r for r in _ok(records) if r.op == "unmask"]
    if not rows:
        return None
    fig = Figure(figsize=(9, 0.45 * len(rows) + 1.4), layout="constrained")
    ax = fig.subplots()
    labels = [f"{library_label(r.library)}: {r.variant}" for r in rows]
    values = [_gbps(r) or 0.0 for r in rows]
    colors = ["#2ca02c" if r.library.startswith(OURS) else "#7f7f7f" for r in rows]
    bars = ax.barh(range(len(rows)), values, color=colors)
    ax.bar_label(bars, labels=[_fmt(v) for v in values], fontsize=8, padding=2)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    for threshold in (10, 20):
        ax.axvline(threshold, color="#d62728", ls=":", lw=1)
    ax.set_xlabel("GB/s (10^9 B/s, higher is better); dotted: targets 10 and 20")
    ax.set_title("XOR-unmask 1 MiB, and plain-copy floors")
    return _save(fig, path)


# --- entry points -----------------------------------------------------------------------


def render(run_dir: Path | str) -> list[Path]:
    """Write the plots and ``codec-report.md`` of ``run_dir``; return their paths.

    Only reads the run's stored files; never runs a benchmark.
    """
    run_dir = resolve_run(run_dir)
    records = load_records(run_dir)
    meta_path = run_dir / "metadata.json"
    meta: dict[str, Any] = read_json(meta_path) if meta_path.exists() else {}
    images = [
        _throughput_figure(records, "decode", run_dir / "codec-decode.png"),
        _throughput_figure(records, "encode", run_dir / "codec-encode.png"),
    ]
    for extra in (
        _small_frame_figure(records, run_dir / "codec-125b.png"),
        _unmask_figure(records, run_dir / "codec-unmask.png"),
    ):
        if extra is not None:
            images.append(extra)
    report = run_dir / "codec-report.md"
    atomic_write_text(report, render_markdown(records, meta, run_dir, images))
    return [*images, report]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pushbench.report.codec [RUN_DIR]``: re-render a stored run."""
    parser = argparse.ArgumentParser(
        prog="python -m pushbench.report.codec",
        description="Re-render plots and codec-report.md of a bench-codec run from its files.",
    )
    parser.add_argument(
        "run_dir",
        nargs="?",
        type=Path,
        default=Path("results") / "latest",
        help="run directory, a `latest` link, or a results base (default results/latest)",
    )
    args = parser.parse_args(argv)
    try:
        written = render(args.run_dir)
    except FileNotFoundError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    print(format_targets(evaluate_targets(load_records(written[-1].parent))))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())

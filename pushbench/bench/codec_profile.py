"""Profile our frame decoder on 125-byte masked frames → ``codec-profile.{html,txt}``.

Part of ``pushbench bench-codec``, run after the timings so the profilers'
overhead cannot perturb them; the report (:mod:`pushbench.report.codec`)
quotes the text file's top functions and links the HTML call tree.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from .codec import DEFAULT_PROFILE_TIME, Workloads, frames_per_call

__all__ = ["profile_decoder"]


def profile_decoder(
    run_dir: Path, *, seconds: float = DEFAULT_PROFILE_TIME, workloads: Workloads | None = None
) -> tuple[Path, Path]:
    """Profile our decoder on 125-byte masked frames → ``codec-profile.{html,txt}``.

    Both paths, ``seconds`` each: "pushbench (C)" (the compiled parser, as
    installed) and "pushbench (pure)" (every C helper switched off). Runs
    after the timings so the profilers' overhead cannot perturb them.
    pyinstrument (sampling, low overhead) gives the call tree as a
    self-contained HTML page (``codec-profile.html`` for the C path,
    ``codec-profile-pure.html`` for the pure one); cProfile (deterministic,
    adds per-call cost, so small functions look heavier) gives the top
    functions by own time as text, both paths in ``codec-profile.txt``.
    """
    from pushbench.results import atomic_write_text
    from pushbench.schema.codec import library_label
    from pushbench.wire import speedups

    workloads = workloads or Workloads()
    stream = workloads.stream(125, True)
    frames = frames_per_call(125)
    saved = speedups.state()
    paths = {"pushbench": run_dir / "codec-profile.html"}
    paths["pushbench-py"] = run_dir / "codec-profile-pure.html"
    stats: list[str] = []
    trees: list[str] = []
    try:
        for library, html_path in paths.items():
            pure = library == "pushbench-py"
            speedups.use_speedups(not pure)
            if not pure and not speedups.enabled():
                stats.append(f"== {library_label(library)}: not built, not profiled ==\n")
                continue
            html, table, tree, streams = _profile_once(stream, seconds)
            atomic_write_text(html_path, html)
            label = library_label(library)
            stats.append(
                f"== {label}: cProfile, top 15 functions by own time "
                f"({max(1, streams // 2)} streams) ==\n{table}"
            )
            trees.append(f"\n== pyinstrument: {label}, sampled call tree ({streams} streams) ==\n")
            trees.append(tree)
    finally:
        speedups.restore(saved)
    header = (
        "Profile of pushbench FrameReader.feed decoding 125-byte masked binary frames\n"
        f"({frames} frames per stream, fresh FrameReader per stream), on the compiled\n"
        "parser and on the pure Python path.\n\n"
    )
    txt_path = run_dir / "codec-profile.txt"
    atomic_write_text(txt_path, header + "\n".join(stats) + "".join(trees))
    return paths["pushbench"], txt_path


def _profile_once(stream: bytes, seconds: float) -> tuple[str, str, str, int]:
    """Profile decoding ``stream`` on the current path → (html, pstats text, tree, streams)."""
    import cProfile
    import pstats

    from pyinstrument import Profiler

    from pushbench.wire.frames import FrameReader

    from .peers import MAX_FRAME, MAX_MESSAGE

    def decode_once() -> None:
        FrameReader(masked=True, max_frame_size=MAX_FRAME, max_message_size=MAX_MESSAGE).feed(
            stream
        )

    deadline = time.perf_counter() + seconds
    profiler = Profiler(interval=0.0002)
    profiler.start()
    streams = 0
    while time.perf_counter() < deadline:
        decode_once()
        streams += 1
    profiler.stop()

    cprof = cProfile.Profile()
    cprof.enable()
    for _ in range(max(1, streams // 2)):
        decode_once()
    cprof.disable()
    text = io.StringIO()
    pstats.Stats(cprof, stream=text).sort_stats(pstats.SortKey.TIME).print_stats(15)
    tree = profiler.output_text(unicode=True, color=False, short_mode=True)
    return profiler.output_html(), _trim_pstats(text.getvalue()), tree, streams


def _trim_pstats(text: str) -> str:
    """Drop pstats' blank preamble lines, keep the summary and the table."""
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line) + "\n"

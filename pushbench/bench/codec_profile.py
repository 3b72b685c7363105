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

    Runs after the timings so the profilers' overhead cannot perturb them.
    pyinstrument (sampling, low overhead) gives the call tree as a
    self-contained HTML page; cProfile (deterministic, adds per-call cost, so
    small functions look heavier) gives the top functions by own time as text.
    """
    import cProfile
    import pstats

    from pyinstrument import Profiler

    from pushbench.results import atomic_write_text
    from pushbench.wire.frames import FrameReader

    from .peers import MAX_FRAME, MAX_MESSAGE

    workloads = workloads or Workloads()
    stream = workloads.stream(125, True)
    frames = frames_per_call(125)

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
    stats = pstats.Stats(cprof, stream=text)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(15)

    html_path = run_dir / "codec-profile.html"
    txt_path = run_dir / "codec-profile.txt"
    atomic_write_text(html_path, profiler.output_html())
    from pushbench.wire import mask

    helper = "C mask helper" if getattr(mask, "C_MASK", None) is not None else "pure mask path"
    header = (
        "Profile of pushbench FrameReader.feed decoding 125-byte masked binary frames\n"
        f"({frames} frames per stream, fresh FrameReader per stream, {helper}).\n\n"
        f"== cProfile: top 15 functions by own time ({max(1, streams // 2)} streams) ==\n"
    )
    tree = profiler.output_text(unicode=True, color=False, short_mode=True)
    atomic_write_text(
        txt_path,
        header
        + _trim_pstats(text.getvalue())
        + f"\n== pyinstrument: sampled call tree ({streams} streams) ==\n"
        + tree,
    )
    return html_path, txt_path


def _trim_pstats(text: str) -> str:
    """Drop pstats' blank preamble lines, keep the summary and the table."""
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line) + "\n"

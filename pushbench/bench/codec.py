"""``pushbench bench-codec``: time our WebSocket codec against the libraries people use.

Three parts, kept apart on purpose (pytest-benchmark / pyperformance style):

1. **Cases are data.** :func:`build_cases` returns a list of :class:`Case`
   values: {decode, encode} × {masked, unmasked} × payload sizes × libraries
   (the adapters in :mod:`pushbench.bench.peers`), plus 1 MiB mask/unmask
   kernels and copy floors.
2. **One runner.** :func:`run_cases` prepares each case (building the input
   and checking the library's output against an independent reference codec
   once), calibrates, warms up and times it the same way, and returns
   :class:`Record` values.
3. **Stored as data, rendered separately.** :func:`write_records` writes
   ``codec.json`` and ``codec.csv`` into a run directory
   (:mod:`pushbench.results`); :mod:`pushbench.report.codec` draws plots and
   the Markdown report from those files only, never re-running anything.

What one timed call is:

- decode: a stream of ``frames_per_call`` binary frames, fed in one call to a
  decoder created for it, to the list of frame objects with unmasked payloads
  (freeing that list included). Per-frame time is the call's time divided by
  the frame count, so decoder construction is amortised over ≥ 4 frames (1000
  for small payloads). No UTF-8 validation: the frames are binary.
- encode: ``frames_per_call`` payloads, each to one final binary frame (and a
  fresh random key per frame when masked), collected in a list.
- unmask: XOR of one 1 MiB buffer with a 4-byte key (or a plain copy, the floor).

Heavy imports (numpy via the codec, the peers, pyinstrument, matplotlib) happen
inside functions so ``pushbench --help`` stays fast.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_SIZES",
    "LIBRARIES",
    "QUICK_SIZES",
    "Case",
    "Record",
    "Timing",
    "Workloads",
    "add_arguments",
    "build_cases",
    "load_records",
    "measure",
    "prepare",
    "profile_decoder",
    "run",
    "run_cases",
    "write_records",
]

KiB = 1024
MiB = 1024 * KiB

DEFAULT_SIZES: tuple[int, ...] = (16, 125, KiB, 16 * KiB, MiB)
QUICK_SIZES: tuple[int, ...] = (125, 16 * KiB)
UNMASK_SIZE = MiB

# Frame codecs compared, in display order (rows of pushbench.bench.peers.PEERS).
LIBRARIES: tuple[str, ...] = (
    "pushbench",
    "pushbench-py",
    "wsproto",
    "websockets",
    "aiohttp-c",
    "aiohttp-py",
)
# Reference points of the unmask comparison; always run (they are cheap and
# the ratios need them), whatever --only says.
BASELINES: tuple[str, ...] = ("numpy", "floor")

# Frames per timed call: enough bytes to reach steady state (≈ 4 MiB), enough
# frames to amortise per-stream setup, and not so many that small-frame cases
# spend their time in list growth.
STREAM_BYTES = 4 * MiB
MAX_FRAMES = 1000
MIN_FRAMES = 4

DEFAULT_REPEATS = 5
DEFAULT_MIN_TIME = 0.1
QUICK_REPEATS = 2
QUICK_MIN_TIME = 0.02
DEFAULT_PROFILE_TIME = 2.0
QUICK_PROFILE_TIME = 0.2

# Installed distributions whose versions go into metadata.json.
DISTRIBUTIONS: tuple[str, ...] = (
    "numpy",
    "wsproto",
    "websockets",
    "aiohttp",
    "pyinstrument",
    "matplotlib",
    "pandas",
)

_SEED = 6455  # payloads and keys are deterministic: every library sees the same bytes


# --- cases -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmark: what to do, to what payload size, with which library."""

    op: str  # "decode" | "encode" | "unmask"
    masked: bool  # decode: server side (client frames are masked); encode: client side
    payload: int  # bytes per frame
    library: str
    variant: str = ""  # which function, where a library has several (unmask)

    @property
    def id(self) -> str:
        role = "masked" if self.masked else "unmasked"
        lib = f"{self.library}:{self.variant}" if self.variant else self.library
        return f"{self.op}/{role}/{self.payload}/{lib}"


def frames_per_call(payload: int) -> int:
    """How many frames one decode/encode call handles at this payload size."""
    return max(MIN_FRAMES, min(MAX_FRAMES, STREAM_BYTES // max(payload, 1)))


def build_cases(
    sizes: Sequence[int] = DEFAULT_SIZES, libraries: Iterable[str] = LIBRARIES
) -> list[Case]:
    """The benchmark table: every (op, masked, size, library), then unmask kernels."""
    from .peers import MASKERS

    wanted = set(libraries)
    cases = [
        Case(op, masked, size, lib)
        for op in ("decode", "encode")
        for masked in (True, False)
        for size in sizes
        for lib in LIBRARIES
        if lib in wanted
    ]
    cases += [
        Case("unmask", True, UNMASK_SIZE, m.library, m.variant)
        for m in MASKERS
        if m.library in wanted or m.library in BASELINES
    ]
    return cases


# --- records -----------------------------------------------------------------


@dataclass
class Record:
    """The stored result of one case: raw repeats plus derived figures.

    ``repeats_ns`` are the total times of each repeat, each covering
    ``iterations`` calls of ``frames_per_call`` frames. Rates use decimal
    units: MB/s = 10^6 payload bytes per second (headers not counted).
    ``status`` is ``ok``, ``n/a`` (the library cannot do this), ``unavailable``
    (library or required build missing) or ``error`` (its output was wrong, so
    it was not timed).
    """

    case: str
    library: str
    variant: str
    op: str
    masked: bool
    payload: int
    status: str
    frames_per_call: int = 0
    iterations: int = 0
    repeats_ns: list[int] = field(default_factory=list)
    per_frame_us_median: float | None = None
    per_frame_us_min: float | None = None
    per_frame_us_max: float | None = None
    frames_per_s: float | None = None
    mb_per_s: float | None = None
    version: str | None = None
    notes: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# Columns of codec.csv: one row per case, scalars only (raw repeats are in codec.json).
CSV_COLUMNS: tuple[str, ...] = (
    *(f.name for f in fields(Record) if f.name != "repeats_ns"),
    "repeats",
)


def _round(x: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits (what the timer resolution supports)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def summarize(case: Case, timing: Timing, frames: int, notes: str, version: str | None) -> Record:
    """Derive per-frame µs, frames/s and MB/s from a :class:`Timing`."""
    per_call = timing.iterations * frames
    per_frame_us = [ns / per_call / 1e3 for ns in timing.repeats_ns]
    median = statistics.median(per_frame_us)
    return Record(
        case=case.id,
        library=case.library,
        variant=case.variant,
        op=case.op,
        masked=case.masked,
        payload=case.payload,
        status="ok",
        frames_per_call=frames,
        iterations=timing.iterations,
        repeats_ns=list(timing.repeats_ns),
        per_frame_us_median=_round(median),
        per_frame_us_min=_round(min(per_frame_us)),
        per_frame_us_max=_round(max(per_frame_us)),
        frames_per_s=_round(1e6 / median),
        mb_per_s=_round(case.payload / median),  # bytes/µs == MB/s
        version=version,
        notes=notes,
    )


def _untimed(case: Case, status: str, notes: str, version: str | None) -> Record:
    """The record of a case that was not timed, saying why."""
    return Record(
        case=case.id,
        library=case.library,
        variant=case.variant,
        op=case.op,
        masked=case.masked,
        payload=case.payload,
        status=status,
        version=version,
        notes=notes,
    )


def write_records(run_dir: Path, records: Sequence[Record]) -> tuple[Path, Path]:
    """Store ``records`` as ``codec.json`` (complete) and ``codec.csv`` (tidy), atomically."""
    from pushbench.results import atomic_write_json, atomic_write_text

    json_path = run_dir / "codec.json"
    csv_path = run_dir / "codec.csv"
    atomic_write_json(json_path, [asdict(r) for r in records])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        row = asdict(r)
        row["repeats"] = len(row.pop("repeats_ns"))
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path


def load_records(run_dir: Path | str) -> list[Record]:
    """Read the records of a run back from its ``codec.json``."""
    from pushbench.results import read_json

    return [Record.from_dict(d) for d in read_json(Path(run_dir) / "codec.json")]


# --- workloads and preparation ------------------------------------------------


class Workloads:
    """Deterministic payloads and pre-encoded streams, built once per run.

    Streams are built with the reference encoder in :mod:`.peers`, so no
    library under test produces another's input.
    """

    def __init__(self, seed: int = _SEED) -> None:
        self._seed = seed
        self._payloads: dict[int, list[bytes]] = {}
        self._streams: dict[tuple[int, bool], bytes] = {}

    def payloads(self, size: int) -> list[bytes]:
        """``frames_per_call(size)`` distinct random payloads of ``size`` bytes."""
        got = self._payloads.get(size)
        if got is None:
            rng = random.Random(f"{self._seed}/payload/{size}")
            got = [rng.randbytes(size) for _ in range(frames_per_call(size))]
            self._payloads[size] = got
        return got

    def stream(self, size: int, masked: bool) -> bytes:
        """The wire bytes of :meth:`payloads`, masked with per-frame keys if ``masked``."""
        key = (size, masked)
        got = self._streams.get(key)
        if got is None:
            from .peers import reference_encode

            rng = random.Random(f"{self._seed}/keys/{size}")
            got = b"".join(
                reference_encode(p, key=rng.randbytes(4) if masked else None)
                for p in self.payloads(size)
            )
            self._streams[key] = got
        return got

    def mask_input(self) -> tuple[bytes, bytes]:
        """The 1 MiB buffer and key of the unmask cases."""
        rng = random.Random(f"{self._seed}/unmask")
        return rng.randbytes(UNMASK_SIZE), rng.randbytes(4)


@dataclass(frozen=True)
class Prepared:
    """A case ready to time: ``call()`` processes ``frames`` frames."""

    call: Callable[[], object]
    frames: int


class CheckFailed(Exception):
    """A library's output differed from the reference: the case is not timed."""


def _expect_equal(got: Sequence[Any], want: Sequence[Any], what: str) -> None:
    if len(got) != len(want):
        raise CheckFailed(f"{what}: {len(got)} frames, expected {len(want)}")
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if g != w:
            raise CheckFailed(f"{what}: frame {i} differs")


def prepare(case: Case, workloads: Workloads) -> Prepared:
    """Build the timed call for ``case`` and check its output once.

    Raises :class:`~pushbench.bench.peers.NotApplicable`,
    :class:`~pushbench.bench.peers.Unavailable` or :class:`CheckFailed`.
    """
    from . import peers

    if case.op == "unmask":
        masker = peers.masker_for(case.library, case.variant)
        data, key = workloads.mask_input()
        call, result = masker.make(data, key)
        call()
        want = data if masker.expect == "copy" else peers.reference_mask(data, key)
        if result() != want:
            raise CheckFailed(f"{case.id}: result differs from the reference mask")
        return Prepared(call, 1)

    peer = peers.peer_by_name(case.library)
    payloads = workloads.payloads(case.payload)
    if case.op == "decode":
        decoder = peer.make_decoder(case.masked)
        stream = workloads.stream(case.payload, case.masked)
        got = decoder.frames(decoder.decode(stream))
        _expect_equal(got, [(peers.OPCODE_BINARY, p) for p in payloads], case.id)
        decode = decoder.decode
        return Prepared(lambda: decode(stream), len(payloads))
    if case.op == "encode":
        encode = peer.make_encoder(case.masked)
        wire = b"".join(bytes(chunk) for chunk in encode(payloads))
        keys: list[bytes] = []
        try:
            frames = peers.reference_decode(wire, masked=case.masked, keys=keys)
        except ValueError as exc:
            raise CheckFailed(f"{case.id}: {exc}") from exc
        _expect_equal(frames, [(peers.OPCODE_BINARY, True, p) for p in payloads], case.id)
        # A client must draw a fresh key per frame; ≥ 4 random 32-bit keys
        # practically never repeat, so a repeat means a fixed or weak key.
        if len(set(keys)) != len(keys):
            raise CheckFailed(f"{case.id}: masking keys repeat across frames")
        return Prepared(lambda: encode(payloads), len(payloads))
    raise ValueError(f"unknown op {case.op!r}")


# --- timing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Raw result of :func:`measure`: ``repeats_ns[i]`` is ``iterations`` calls."""

    iterations: int
    repeats_ns: tuple[int, ...]


def _time_calls(call: Callable[[], object], iterations: int) -> int:
    """Nanoseconds for ``iterations`` calls, with the cyclic GC paused.

    Why pause the GC: decoders allocate thousands of container objects (frame
    tuples, lists) per call, which trigger generation-0 collections at points
    that depend on the harness's heap rather than on the codec; their cost
    lands on whichever case happens to run then and makes repeats noisy. The
    outputs hold no reference cycles, so reference counting frees them all
    anyway and memory stays flat. (A server pays GC too, but that cost depends
    on the application's heap, not on the codec.)
    """
    loop = range(iterations)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in loop:
            call()
        return time.perf_counter_ns() - start
    finally:
        if was_enabled:
            gc.enable()


def measure(call: Callable[[], object], *, repeats: int, min_time: float) -> Timing:
    """Calibrate, warm up, then time ``repeats`` repeats of ≥ ``min_time`` seconds.

    Calibration doubles the iteration count until a batch takes a fifth of
    ``min_time``, then scales it to ``min_time``; a warm-up of half that many
    calls follows (caches, branch predictors, allocator pools and CPU clock
    settle), and is discarded.
    """
    min_ns = max(1, int(min_time * 1e9))
    iterations = 1
    while True:
        elapsed = _time_calls(call, iterations)
        if elapsed >= min_ns // 5 or iterations >= 1 << 30:
            break
        iterations *= 2
    iterations = max(1, math.ceil(iterations * min_ns / max(elapsed, 1)))
    _time_calls(call, max(1, iterations // 2))
    out = []
    for _ in range(repeats):
        gc.collect()  # start each repeat from a clean heap
        out.append(_time_calls(call, iterations))
    return Timing(iterations, tuple(out))


def run_cases(
    cases: Sequence[Case],
    *,
    repeats: int = DEFAULT_REPEATS,
    min_time: float = DEFAULT_MIN_TIME,
    progress: Callable[[int, int, Record], None] | None = None,
    workloads: Workloads | None = None,
) -> list[Record]:
    """The runner: prepare, check, time and summarise every case, in order."""
    from importlib import metadata

    from . import peers

    workloads = workloads or Workloads()
    probes: dict[str, tuple[str, str | None]] = {}  # library → (note, unavailable reason)
    records: list[Record] = []
    for i, case in enumerate(cases, 1):
        unavailable: str | None = None
        if case.op == "unmask":
            masker = peers.masker_for(case.library, case.variant)
            note, distribution = masker.description, masker.distribution
        else:
            peer = peers.peer_by_name(case.library)
            if case.library not in probes:
                try:
                    probes[case.library] = (peer.probe(), None)
                except peers.Unavailable as exc:
                    probes[case.library] = ("", str(exc))
            note, unavailable = probes[case.library]
            distribution = peer.distribution
        version: str | None = None
        if distribution:
            try:
                version = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                version = None
        if unavailable is not None:
            record = _untimed(case, "unavailable", unavailable, version)
        else:
            try:
                prepared = prepare(case, workloads)
            except peers.NotApplicable as exc:
                record = _untimed(case, "n/a", str(exc), version)
            except peers.Unavailable as exc:
                record = _untimed(case, "unavailable", str(exc), version)
            except Exception as exc:  # a wrong result or a crash: record, don't time
                record = _untimed(case, "error", f"check failed: {exc!r}", version)
            else:
                timing = measure(prepared.call, repeats=repeats, min_time=min_time)
                record = summarize(case, timing, prepared.frames, note, version)
        records.append(record)
        if progress is not None:
            progress(i, len(cases), record)
    return records


def print_progress(i: int, n: int, record: Record) -> None:
    """One line per case on stdout: median µs/frame, spread and MB/s."""
    width = len(str(n))
    head = f"[{i:>{width}}/{n}] {record.case:<48}"
    if record.status != "ok" or record.per_frame_us_median is None:
        print(f"{head} {record.status}: {record.notes}", flush=True)
        return
    med = record.per_frame_us_median
    spread = ((record.per_frame_us_max or med) - (record.per_frame_us_min or med)) / med * 100
    print(
        f"{head} {med:>11.3f} µs/frame ±{spread:4.1f}%  {record.mb_per_s or 0:>10.1f} MB/s",
        flush=True,
    )


# --- profile -------------------------------------------------------------------


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


# --- command line -------------------------------------------------------------------


def _library_list(text: str) -> list[str]:
    from .peers import MASKERS

    known = list(LIBRARIES) + [m.library for m in MASKERS if m.library not in LIBRARIES]
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown library {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return names


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
        type=_library_list,
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
    """Run every case, store the records, profile, render the report, print targets."""
    from pushbench import results
    from pushbench.report import codec as report

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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pushbench.bench.codec``: the same as ``pushbench bench-codec``."""
    parser = argparse.ArgumentParser(prog="pushbench bench-codec", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

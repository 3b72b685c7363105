"""The codec benchmark's runner: prepare, check, time and summarise every case in order.

Cases come from :mod:`.codec` (data), the timing loop from :mod:`.timing`, and
what comes out is one :class:`~pushbench.schema.codec.Record` per case, timed
or saying why not (``n/a``, ``unavailable``, ``error``). Storing the records is
:func:`pushbench.schema.codec.write_records`; nothing here renders.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from pushbench.schema.codec import Record

from .codec import DEFAULT_MIN_TIME, DEFAULT_REPEATS, Case, Workloads, prepare
from .timing import Timing, measure

__all__ = ["print_progress", "run_cases", "summarize"]


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

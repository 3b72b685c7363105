"""The codec benchmark's targets, judged from a run's stored records, and the number
formats its report shares: our figure against each threshold, with the ratios to
the peers measured in the same run. Reads records only; runs nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pushbench.schema.codec import LIBRARIES, Record, library_label

OURS = "pushbench"

__all__ = ["TargetResult", "evaluate_targets", "format_targets"]


_SIZE_LABELS = {16: "16 B", 125: "125 B", 1024: "1 KiB", 16384: "16 KiB", 1 << 20: "1 MiB"}


def _size_label(n: int) -> str:
    return _SIZE_LABELS.get(n, f"{n} B")


def _with_unit(x: float | None, unit: str) -> str:
    """``1.5 GB/s``, but ``1.5× aiohttp-c's time`` (a ratio hugs its ×)."""
    sep = "" if unit.startswith("×") else " "
    return f"{_fmt(x)}{sep}{unit}"


def _fmt(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, without scientific notation."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    out = f"{x:.{digits}g}"
    if "e" in out:
        out = f"{x:,.0f}"
    return out


# --- targets -------------------------------------------------------------------


@dataclass(frozen=True)
class TargetResult:
    """One target line: our measured value against its threshold.

    ``met`` is None when the needed case was not measured in this run.
    ``comparisons`` are ratios against the peers measured in the same run.
    """

    name: str
    value: float | None
    unit: str
    threshold: float
    higher_is_better: bool
    met: bool | None
    comparisons: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: "not measured"}[self.met]

    @property
    def requirement(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        return f"{op} {_with_unit(self.threshold, self.unit)}"


def _ok(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.status == "ok" and r.per_frame_us_median is not None]


def _find(
    records: Sequence[Record], op: str, masked: bool, payload: int, library: str, variant: str = ""
) -> Record | None:
    for r in _ok(records):
        if (r.op, r.masked, r.payload, r.library, r.variant) == (
            op,
            masked,
            payload,
            library,
            variant,
        ):
            return r
    return None


def _gbps(r: Record | None) -> float | None:
    return None if r is None or r.mb_per_s is None else r.mb_per_s / 1e3


def _per_frame_target(
    records: Sequence[Record], name: str, op: str, masked: bool, threshold: float
) -> TargetResult:
    ours = _find(records, op, masked, 125, OURS)
    value = ours.per_frame_us_median if ours else None
    comparisons = []
    for lib in LIBRARIES:
        peer = _find(records, op, masked, 125, lib)
        if lib == OURS or peer is None or value is None or not peer.per_frame_us_median:
            continue
        comparisons.append(
            f"{value / peer.per_frame_us_median:.2f}× the time of {library_label(lib)} "
            f"({_fmt(peer.per_frame_us_median)} µs)"
        )
    return TargetResult(
        name,
        value,
        "µs/frame",
        threshold,
        False,
        None if value is None else value <= threshold,
        tuple(comparisons),
    )


def evaluate_targets(records: Sequence[Record]) -> list[TargetResult]:
    """The codec's targets, judged on ``records`` of one run (no re-measuring).

    - decode 125 B masked ≤ 1.0 µs/frame, and (compiled path) ≤ 1.2× aiohttp-c's
      time; the pure Python path ("pushbench (pure)") ≤ 0.8 µs/frame;
    - unmask 1 MiB ≥ 10 GB/s; stretch ≥ 20 GB/s — judged for both of our
      functions, since the decoder uses the allocating one;
    - encode 125 B server (unmasked) frame ≤ 0.5 µs.
    """
    out: list[TargetResult] = []
    decode = _per_frame_target(records, "decode 125 B masked", "decode", True, 1.0)
    out.append(decode)
    aio = _find(records, "decode", True, 125, "aiohttp-c")
    ratio = (
        decode.value / aio.per_frame_us_median
        if decode.value is not None and aio is not None and aio.per_frame_us_median
        else None
    )
    out.append(
        TargetResult(
            "decode 125 B masked vs aiohttp-c",
            ratio,
            "× aiohttp-c's time",
            1.2,
            False,
            None if ratio is None else ratio <= 1.2,
        )
    )
    pure = _find(records, "decode", True, 125, "pushbench-py")
    pure_value = pure.per_frame_us_median if pure is not None else None
    out.append(
        TargetResult(
            f"decode 125 B masked, {library_label('pushbench-py')}",
            pure_value,
            "µs/frame",
            0.8,
            False,
            None if pure_value is None else pure_value <= 0.8,
        )
    )

    peers_unmask = [
        ("pushbench", "apply_mask_into in place"),
        ("pushbench-py", "apply_mask"),
        ("websockets", "speedups.apply_mask"),
        ("aiohttp-c", "_websocket_mask_cython"),
        ("numpy", "uint64 xor"),
        ("floor", "copy into"),
        ("floor", "copy new"),
    ]
    for variant in ("apply_mask_into", "apply_mask"):
        gbps = _gbps(_find(records, "unmask", True, 1 << 20, OURS, variant))
        comparisons = []
        for lib, var in peers_unmask:
            other = _gbps(_find(records, "unmask", True, 1 << 20, lib, var))
            if gbps is not None and other:
                comparisons.append(
                    f"{gbps / other:.2f}× the speed of {library_label(lib)} {var} "
                    f"({_fmt(other)} GB/s)"
                )
        for threshold, label in ((10.0, ""), (20.0, "stretch: ")):
            out.append(
                TargetResult(
                    f"{label}unmask 1 MiB ({variant})",
                    gbps,
                    "GB/s",
                    threshold,
                    True,
                    None if gbps is None else gbps >= threshold,
                    tuple(comparisons) if not label else (),
                )
            )

    out.append(
        _per_frame_target(records, "encode 125 B server frame (unmasked)", "encode", False, 0.5)
    )
    return out


def format_targets(results: Sequence[TargetResult]) -> str:
    """Plain-text targets summary (what ``pushbench bench-codec`` prints)."""
    lines = ["Targets (pushbench, against peers measured in this same run):"]
    for t in results:
        lines.append(
            f"  {t.verdict.upper():<13} {t.name}: {_with_unit(t.value, t.unit)} "
            f"(target {t.requirement})"
        )
        lines.extend(f"                  {c}" for c in t.comparisons)
    return "\n".join(lines)


# --- Markdown -----------------------------------------------------------------------

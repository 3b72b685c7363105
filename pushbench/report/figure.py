"""What every figure of the report shares: the :class:`Plot` record, the figure and PNG
helpers, and the order, colours and labels of the cells drawn.

matplotlib is imported inside the functions and used through its
object-oriented ``Figure`` API (no pyplot, no global state, no display).
Colours follow the transport and line styles the stack (:mod:`.style`, read
from :mod:`pushbench.registry`). Every number on an axis or a bar is written by
one function, :func:`tick_label` (3 significant digits, ``k``/``M``/``G``
from a thousand, never an exponent), set on each axis by :func:`format_axes`;
axis titles are :func:`axis_label` (``what (unit, log)``, units as in the
tables).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushbench.results import atomic_write_bytes

from . import style
from .load import Run, variant_label

__all__ = [
    "DPI",
    "MAX_POINT_FIGURES",
    "Plot",
    "axis_label",
    "cells_by_point",
    "finite",
    "format_axes",
    "label",
    "line_kw",
    "log_if_wide",
    "new_figure",
    "png_bytes",
    "save",
    "tick_label",
    "variants",
]

#: At most this many scenario points get their own percentile figure (the notebook draws any).
MAX_POINT_FIGURES = 6
DPI = 100


@dataclass(frozen=True)
class Plot:
    """One figure of the report, or the reason it could not be drawn."""

    key: str
    title: str
    caption: str
    path: Path | None = None
    missing: str = ""


# --- helpers -------------------------------------------------------------------


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` × ``height`` inches, constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def png_bytes(fig: Any, *, dpi: int = DPI, **savefig: Any) -> bytes:
    """The figure as a PNG with a 256-colour palette: plots use a few colours, so this
    loses nothing visible and makes the files (and the HTML that embeds them) about a
    third the size."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, **savefig)
    buf.seek(0)
    with Image.open(buf) as image:
        palette = image.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True)
    return out.getvalue()


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a palette PNG, atomically; return ``path``."""
    atomic_write_bytes(path, png_bytes(fig))
    return path


def variants(rows: Any) -> list[dict[str, Any]]:
    """Summary rows as dicts, in the transport × stack order of every table and legend."""
    recs: list[dict[str, Any]] = rows.to_dict("records")
    return sorted(recs, key=lambda r: style.order_key(r["transport"], r["stack"], r["client"]))


def label(rec: dict[str, Any]) -> str:
    """The legend label of a summary row: ``transport · stack`` (and client)."""
    return variant_label(rec["stack"], rec["transport"], rec["client"])


def line_kw(rec: dict[str, Any]) -> dict[str, Any]:
    """Colour (transport), line style and marker (stack) and label of a row's line."""
    return {
        "color": style.color(rec["transport"]),
        "linestyle": style.linestyle(rec["stack"]),
        "marker": style.marker(rec["stack"]),
        "label": label(rec),
    }


def cells_by_point(run: Run, summary: Any) -> list[tuple[dict[str, Any], Any]]:
    """(point, summary rows measured there) for each scenario point of the grid."""
    grid = summary[~summary["probe"]] if "probe" in summary else summary
    return [(p, run.at(p, grid)) for p in run.points()]


def finite(x: Any) -> bool:
    """A real, finite number (not None, not NaN)."""
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def log_if_wide(ax: Any, values: Sequence[float], axis: str = "y", decades: float = 1.5) -> None:
    """Put ``axis`` on a log scale when the positive ``values`` span ≥ ``decades`` decades."""
    vals = [v for v in values if finite(v) and v > 0]
    if vals and max(vals) / min(vals) >= 10**decades:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


# --- numbers on axes ---------------------------------------------------------------

#: Scales of :func:`tick_label`, largest first: (the value from which it applies, suffix).
SCALES: tuple[tuple[float, str], ...] = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))
#: Significant digits of :func:`tick_label`.
DIGITS = 3


def _plain(v: float) -> str:
    """``v`` (already rounded to :data:`DIGITS` significant digits) without an exponent
    or trailing zeros."""
    decimals = max(0, DIGITS - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def tick_label(value: float) -> str:
    """The one way a figure writes a number (ticks, bar labels): :data:`DIGITS`
    significant digits, a suffix of :data:`SCALES` from 1,000 up, never an exponent —
    3280 → ``3.28k``, 18200 → ``18.2k``, 0.05 → ``0.05``."""
    if not finite(value):
        return ""
    if value == 0:
        return "0"
    v = float(f"{value:.{DIGITS}g}")  # 999,600 → 1e6: "1M", not "1e+03k"
    for scale, suffix in SCALES:
        if abs(v) >= scale:
            return _plain(v / scale) + suffix
    return _plain(v)


def axis_label(what: str, unit: str, *, log: bool = False) -> str:
    """An axis title: ``what (unit)``, ``what (unit, log)`` on a log axis."""
    return f"{what} ({unit}{', log' if log else ''})"


def format_axes(ax: Any, which: str = "xy") -> None:
    """Write the numbers of ``ax``'s ``x`` and/or ``y`` axis with :func:`tick_label`.

    Call after the axis scale is set (setting a scale resets its formatters). On a
    log axis matplotlib's own rule picks which minor ticks get a label (the axis
    spans few decades); only their text changes."""
    from matplotlib.ticker import FuncFormatter, LogFormatter

    class _Log(LogFormatter):  # the labelling rule of LogFormatter, our text
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            return tick_label(x)

    for name in which:
        axis = ax.xaxis if name == "x" else ax.yaxis
        if axis.get_scale() == "log":
            base = float(axis.get_transform().base)
            axis.set_major_formatter(_Log(base=base, labelOnlyBase=False))
            axis.set_minor_formatter(_Log(base=base, labelOnlyBase=False))
        else:
            axis.set_major_formatter(FuncFormatter(lambda x, _pos: tick_label(x)))

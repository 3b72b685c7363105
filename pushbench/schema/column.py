"""What a column of a stored table is: a name, a :class:`Unit` and what it holds.

The records :mod:`pushbench.schema.cells` lists ``cells.csv`` and
``saturation.csv`` with; a unit also says how precisely its numbers are written
(the written precision is not part of the meaning: a reader parses every numeric
field as a number either way).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["CPU_NS", "UNITS", "Column", "Unit", "columns_of"]

#: How the CPU columns are read (their descriptions say it).
CPU_NS = (
    "to the ns from the process's CPU clock (pushbench.cputime: every thread, exited ones "
    "too), not /proc's 10 ms ticks"
)


@dataclass(frozen=True)
class Unit:
    """What a column's numbers count, and how precisely they are written.

    A numeric value is rounded to ``decimals`` places or to ``significant``
    digits (one of the two), then written as the shortest text that reads back
    as that rounded number; an integer stays an integer. ``kind`` is
    ``number``, ``text`` (written as is) or ``bool`` (``True``/``False``).
    """

    name: str
    meaning: str
    decimals: int | None = None
    significant: int | None = None
    kind: str = "number"

    def rule(self) -> str:
        """How values of this unit are written, for the documentation."""
        if self.kind != "number":
            return "as is" if self.kind == "text" else "`True` or `False`"
        if self.decimals is not None:
            step = 10.0**-self.decimals
            return "integer" if self.decimals == 0 else f"to {step:.{self.decimals}f}"
        return f"{self.significant} significant digits"

    def write(self, value: Any) -> str:
        """``value`` as a CSV field: empty for ``None`` and NaN, rounded per the unit."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if self.kind == "bool" and not isinstance(value, str):
            return str(bool(value))
        if self.kind != "number" or isinstance(value, (str, bool)):
            return str(value)
        if isinstance(value, numbers.Integral):
            return str(int(value))
        v = float(value)
        if not math.isfinite(v):
            return repr(v)
        if self.decimals is not None:
            v = round(v, self.decimals)
            if self.decimals == 0:
                return str(int(v))
        else:
            v = float(f"{v:.{self.significant or 6}g}")
        return repr(v + 0.0)  # the shortest text of the rounded number; + 0.0: never "-0.0"


def _units(*units: Unit) -> dict[str, Unit]:
    return {u.name: u for u in units}


#: Every unit a column may have → how it is written (table-driven: a column names its unit).
UNITS: dict[str, Unit] = _units(
    Unit("text", "text or an identifier", kind="text"),
    Unit("bool", "a flag", kind="bool"),
    Unit("count", "a whole number of things", decimals=0),
    Unit("µs", "microseconds", decimals=1),
    Unit("ms", "milliseconds", decimals=3),
    Unit("s", "seconds", decimals=6),
    Unit("fraction", "a ratio, 1.0 = all", significant=6),
    Unit("cores", "CPU seconds per wall second (1.0 = one core busy)", significant=6),
    Unit("B", "bytes", decimals=2),
    Unit("B/msg", "bytes per delivered message", decimals=2),
    Unit("B/conn", "bytes per connection", decimals=2),
    Unit("B/conn/s", "bytes per connection per second", decimals=2),
    Unit("msgs/s", "messages per second", decimals=3),
    Unit("µs/msg", "CPU microseconds per delivered message", decimals=3),
    Unit("msgs/CPU-s", "messages per CPU second", decimals=2),
    Unit("requests/msg", "HTTP requests per delivered message", significant=6),
    # issue 17 item 6 (soak): drift over time, fitted slopes
    Unit("KiB/min", "kibibytes per minute (a fitted slope)", decimals=3),
    Unit("1/min", "things per minute (a fitted slope)", decimals=4),
    # issue 18 item 2 (100,000 connections on one box)
    Unit("conns/s", "connections opened per second", decimals=1),
    Unit("ns/conn-s", "CPU nanoseconds per connection per second held open", decimals=3),
    # the machine's speed around each repeat (pushbench.runner.speed)
    Unit("ns", "nanoseconds", decimals=0),
    Unit("ratio", "a ratio to the reference its column names (1.0 = the same)", significant=4),
)


@dataclass(frozen=True)
class Column:
    """One column: its name, its unit (a key of :data:`UNITS`) and what it holds and
    includes."""

    name: str
    unit: str
    description: str

    def write(self, value: Any) -> str:
        """``value`` as this column's CSV field (:meth:`Unit.write` of its unit)."""
        return UNITS[self.unit].write(value)


def columns_of(*columns: Column) -> dict[str, Column]:
    out: dict[str, Column] = {}
    for c in columns:
        if c.name in out:
            raise ValueError(f"column {c.name} listed twice")
        out[c.name] = c
    return out

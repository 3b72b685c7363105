"""A scenario's ``[browser_streams]`` table (issue 18 item 3, h43): the browser's streams
per origin, measured — Chromium opens ``streams`` EventSources to one origin over HTTP/1.1
and over HTTP/2 (the six-connection limit of HTTP/1.1 against one multiplexed connection).

    [browser_streams]
    streams = 8                    # EventSources the page opens at once
    stack = "starlette-hypercorn"  # a stack that speaks both protocols (HTTP/2 by ALPN)
    rate = 20.0                    # the ticker's messages/s on the probe's topic
    hold_s = 3.0                   # how long the page holds its streams

The runner (:mod:`pushbench.runner.browser_streams`) runs it after the cells; the records
are :mod:`pushbench.schema.browser_streams`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from pushbench import registry

__all__ = ["BROWSER_STREAMS_KEYS", "BrowserStreamsSpec", "parse_browser_streams"]


@dataclass(frozen=True)
class BrowserStreamsSpec:
    """The probe's sizes (counts ≥ 1, times and rates > 0) and its stack."""

    streams: int = 8
    stack: str = "starlette-hypercorn"
    rate: float = 20.0
    hold_s: float = 3.0


BROWSER_STREAMS_KEYS: tuple[str, ...] = tuple(f.name for f in fields(BrowserStreamsSpec))


def parse_browser_streams(table: Mapping[str, Any]) -> tuple[BrowserStreamsSpec, str, str]:
    """``[browser_streams]`` → (spec, "", "") or (defaults, the bad key, the problem)."""
    spec = BrowserStreamsSpec()
    for key, value in table.items():
        if key not in BROWSER_STREAMS_KEYS:
            allowed = ", ".join(BROWSER_STREAMS_KEYS)
            return spec, key, f"unknown key {key!r}; allowed: {allowed}"
        if key == "stack":
            able = [s.name for s in registry.stacks() if s.http2 and "sse" in s.serves]
            if value not in able:
                return spec, key, f"{value!r}: expected a stack that speaks HTTP/2: {able}"
            spec = replace(spec, stack=value)
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key == "streams":
            if not (isinstance(value, int) and number and 1 <= value <= 100):
                return spec, key, f"{value!r} is not allowed; expected an integer 1..100"
            spec = replace(spec, streams=value)
        else:
            if not number or value <= 0:
                return spec, key, f"{value!r} is not allowed; expected a number > 0"
            spec = replace(spec, rate=float(value)) if key == "rate" else spec
            spec = replace(spec, hold_s=float(value)) if key == "hold_s" else spec
    return spec, "", ""

"""The records of the browser's streams-per-origin probe (issue 18 item 3, h43): Chromium
opening N EventSources to one origin over HTTP/1.1 and over HTTP/2, the six-connection
limit as data. One :class:`StreamsRecord` per protocol, written by the runner
(:mod:`pushbench.runner.browser_streams`) as ``browser_streams.json`` in the run
directory (atomically, versioned), read by the report's HTTP/2 table
(:mod:`pushbench.report.http2`), which never re-runs anything.

The page (:mod:`pushbench.clients.browser_streams`) writes :class:`PageResult` (what
Chromium saw, per stream), the runner wraps it with what it asked for and why it failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pushbench.results import atomic_write_json, read_json

__all__ = [
    "BROWSER_STREAMS_JSON",
    "BROWSER_STREAMS_SCHEMA_VERSION",
    "PageResult",
    "PageSpec",
    "StreamResult",
    "StreamsRecord",
    "read_records",
    "write_records",
]

BROWSER_STREAMS_JSON = "browser_streams.json"
BROWSER_STREAMS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PageSpec:
    """What the browser process does: open ``streams`` EventSources on ``topic`` from a
    page of ``base_url``, hold them ``hold_s`` seconds, write a :class:`PageResult` to
    ``out``. ``chromium``: the executable."""

    base_url: str
    streams: int
    hold_s: float
    topic: str
    out: str
    chromium: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageSpec:
        return cls(**data)


@dataclass(frozen=True)
class StreamResult:
    """One EventSource, times in ms from its creation (None: never happened in the hold)."""

    index: int
    open_ms: float | None
    first_message_ms: float | None
    messages: int
    ready_state: int  # at the end of the hold: 0 CONNECTING (waiting), 1 OPEN, 2 CLOSED

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamResult:
        """From JSON (the page's numbers may come as integers)."""

        def ms(key: str) -> float | None:
            v = data.get(key)
            return None if v is None else float(v)

        return cls(
            int(data["index"]),
            ms("open_ms"),
            ms("first_message_ms"),
            int(data["messages"]),
            int(data["ready_state"]),
        )


@dataclass(frozen=True)
class PageResult:
    """What Chromium saw: the page's ``nextHopProtocol`` and each stream."""

    protocol: str
    streams: tuple[StreamResult, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PageResult:
        streams = tuple(StreamResult.from_dict(s) for s in data["streams"])
        return cls(str(data["protocol"]), streams)


@dataclass(frozen=True)
class StreamsRecord:
    """One protocol's half of the probe: ``asked`` (``http/1.1`` on http://, ``h2`` on
    https://), the stack, the sizes, ``status`` ok/failed with ``reason``, and the page."""

    asked: str
    stack: str
    streams: int
    hold_s: float
    rate: float
    status: str = "ok"
    reason: str = ""
    protocol: str = ""  # what the page negotiated (nextHopProtocol)
    per_stream: tuple[StreamResult, ...] = field(default_factory=tuple)

    @property
    def open(self) -> int:
        """Streams that opened within the hold."""
        return sum(1 for s in self.per_stream if s.open_ms is not None)

    @property
    def receiving(self) -> int:
        """Streams that received at least one message."""
        return sum(1 for s in self.per_stream if s.messages > 0)

    @property
    def waiting(self) -> int:
        """Streams still CONNECTING at the hold's end (queued behind the connection limit)."""
        return sum(1 for s in self.per_stream if s.ready_state == 0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamsRecord:
        data = dict(data)
        data["per_stream"] = tuple(StreamResult.from_dict(s) for s in data.get("per_stream", ()))
        return cls(**data)


def write_records(run_dir: Path, records: list[StreamsRecord]) -> None:
    """``browser_streams.json`` (versioned), written atomically."""
    atomic_write_json(
        run_dir / BROWSER_STREAMS_JSON,
        {"schema": BROWSER_STREAMS_SCHEMA_VERSION, "records": [asdict(r) for r in records]},
    )


def read_records(run_dir: Path) -> list[StreamsRecord]:
    """The run's browser-streams records; [] when it ran no ``[browser_streams]``."""
    path = run_dir / BROWSER_STREAMS_JSON
    if not path.exists():
        return []
    data = read_json(path)
    return [StreamsRecord.from_dict(r) for r in data.get("records", [])]

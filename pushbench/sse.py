"""Server-Sent Events framing (WHATWG HTML §9.2), sans-I/O, both directions.

The server side turns an item into one event block; the client side
(:class:`EventParser`) turns a byte stream in any chunking into events. Lines
end with LF only: the spec allows CR, LF or CRLF, and LF is the cheapest.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Event", "EventParser", "comment", "event", "retry"]


def event(data: bytes, event_id: int | None = None) -> bytes:
    """One event: ``id: N`` then one ``data:`` line per line of ``data``."""
    lines = data.split(b"\n")
    body = b"".join(b"data: " + line + b"\n" for line in lines)
    if event_id is None:
        return body + b"\n"
    return b"id: %d\n" % event_id + body + b"\n"


def comment(text: bytes = b"") -> bytes:
    """A comment line: ignored by EventSource, keeps proxies from timing out."""
    return b":" + text + b"\n\n"


def retry(ms: int) -> bytes:
    """Tell EventSource how long to wait before reconnecting."""
    return b"retry: %d\n\n" % ms


@dataclass(frozen=True, slots=True)
class Event:
    data: bytes
    id: str | None
    event: str


class EventParser:
    """Incremental parser of an event stream; ``last_id`` survives for resume."""

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event = b""
        self._id: bytes | None = None
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk
        out: list[Event] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            self._line(line, out)
        self._buf = buf[start:]
        return out

    def _line(self, line: bytes, out: list[Event]) -> None:
        if not line:
            if self._data:
                ident = self._id.decode() if self._id is not None else self.last_id
                self.last_id = ident
                out.append(Event(b"\n".join(self._data), ident, self._event.decode() or "message"))
            self._data = []
            self._event = b""
            self._id = None
            return
        if line.startswith(b":"):
            self.comments += 1
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"id":
            if b"\0" not in value:
                self._id = value
        elif name == b"event":
            self._event = value
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)

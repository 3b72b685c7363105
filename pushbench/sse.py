"""Server-Sent Events framing (WHATWG HTML §9.2), sans-I/O, both directions.

The server side turns an item into one event block (:func:`event`, :func:`comment`,
:func:`retry`; they write LF line ends, the cheapest the format allows). The client
side, :class:`EventParser`, turns a byte stream in any chunking into events following
the spec's "interpreting an event stream" (§9.2.6) exactly:

* lines end with CRLF, LF or a lone CR, also when a CR ends one chunk and the LF
  that completes the CRLF starts the next;
* one UTF-8 byte order mark at the very start of the stream is stripped;
* fields ``event``, ``data``, ``id`` (ignored if it contains NULL) and ``retry``
  (ASCII digits only); others are ignored; a line starting with ``:`` is a
  comment; a line without a colon is a field name with an empty value; one space
  after the colon is removed;
* a blank line dispatches: it always sets the last event ID (so an ``id:`` block
  without data still moves the resume point), and makes an event only when the
  data buffer is not empty;
* at the end of the stream an incomplete event is discarded
  (:meth:`EventParser.feed_eof`).

Bytes stay bytes where that is exact: the stream is split on the ASCII bytes CR,
LF and ``:``, which UTF-8 never uses inside a multi-byte sequence and which a
replacement-decoding of invalid bytes never swallows, so splitting before decoding
gives the same lines as decoding first. ``Event.data`` is the data buffer's UTF-8
bytes (decode with ``errors="replace"`` for the spec's string); the id and event
type are decoded that way, as the spec's strings.
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
    """One dispatched event, as a ``MessageEvent`` would carry it.

    ``data`` is the data buffer with its trailing LF removed (UTF-8 bytes);
    ``id`` is the ``lastEventId``: the last event ID at dispatch, ``""`` when none
    was ever set; ``event`` is the event type, ``"message"`` unless an ``event:``
    field named another.
    """

    data: bytes
    id: str
    event: str


_BOM = b"\xef\xbb\xbf"
_INT_CHUNK = 4000  # under Python's int()/str() digit limit (4300 by default)


def _decimal(digits: bytes) -> int:
    """``int(digits)`` for ASCII digits of any length (``int`` refuses > 4300 digits)."""
    digits = digits.lstrip(b"0") or b"0"
    if len(digits) <= _INT_CHUNK:
        return int(digits)
    n = 0
    for i in range(0, len(digits), _INT_CHUNK):
        part = digits[i : i + _INT_CHUNK]
        n = n * 10 ** len(part) + int(part)
    return n


class EventParser:
    """Incremental parser of one event stream after another (one per connection).

    :meth:`feed` takes the body bytes in any chunking and returns the events they
    completed; :meth:`feed_eof` ends the stream, discarding an incomplete event, and
    readies the parser for the next connection's stream. What EventSource keeps
    across reconnections lives here too: :attr:`last_event_id` (what to send as
    ``Last-Event-ID``; ``""`` means send none) and :attr:`retry_ms` (the reconnection
    time the server last set; ``None`` until it sets one). :attr:`comments` counts
    comment lines (heartbeats).

    ``last_event_id`` is set only at dispatch (a blank line), as the spec says:
    an ``id:`` line of an event the stream cut off does not move it.

    Each stream's last event ID *buffer* starts as ``last_event_id`` rather than
    as the empty string a literal reading of §9.2.6 gives: taken literally, the
    first blank line of a reconnected stream that carries no ``id`` (the
    ``retry:`` block servers send first) would clear the resume point, and the
    next reconnection would start over. Browsers seed it the same way. On a fresh
    parser the two readings agree.
    """

    __slots__ = (
        "_buf",
        "_cr",
        "_data",
        "_id",
        "_start",
        "_type",
        "comments",
        "last_event_id",
        "retry_ms",
    )

    def __init__(self, last_event_id: str = "") -> None:
        """A parser for a first stream, or for a reconnection resuming at ``last_event_id``."""
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self.comments = 0
        self._reset()

    def _reset(self) -> None:
        """The state of a stream not yet begun: buffers empty, the id buffer seeded."""
        self._buf = b""  # the line being received, without its end (or the BOM so far)
        self._cr = False  # the last chunk ended with CR: an LF opening the next completes it
        self._start = True  # nothing decided yet about a leading BOM
        self._data: list[bytes] = []  # the data buffer, one item per data line
        self._type = b""  # the event type buffer
        self._id = self.last_event_id  # the last event ID buffer

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk``, the next bytes of the stream."""
        if self._cr:
            if not chunk:
                return []
            self._cr = False
            if chunk[0] == 10:  # the LF of a CRLF whose CR ended the last chunk
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if self._start:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf  # maybe a BOM, split across chunks: wait for more
                return []
            self._start = False
            if buf.startswith(_BOM):
                buf = buf[3:]
        if b"\r" in buf:
            self._cr = buf[-1] == 13
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        out: list[Event] = []
        if not lines:
            return out
        data = self._data
        for line in lines:
            if not line:  # blank line: dispatch the event
                self.last_event_id = self._id
                if data:
                    kind = self._type.decode("utf-8", "replace") if self._type else "message"
                    out.append(Event(b"\n".join(data), self._id, kind))
                    data = self._data = []
                self._type = b""
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"id":
                if b"\0" not in value:
                    self._id = value.decode("utf-8", "replace")
            elif not name:  # the line starts with a colon
                self.comments += 1
            elif name == b"event":
                self._type = value
            elif name == b"retry" and value.isdigit():  # ASCII digits only, not empty
                self.retry_ms = _decimal(value)
        return out

    def feed_eof(self) -> bool:
        """End the stream: discard what did not end with a blank line (the spec's rule).

        Returns whether anything was discarded: a line without its end, or fields of
        an event not yet dispatched (``data``, ``event``, or an ``id`` that had not
        reached :attr:`last_event_id`). ``last_event_id``, ``retry_ms`` and
        ``comments`` are kept; the next :meth:`feed` begins a new stream (its own
        leading BOM, empty buffers), as a reconnection does.
        """
        pending = bool(self._buf or self._data or self._type) or self._id != self.last_event_id
        self._reset()
        return pending

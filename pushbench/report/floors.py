"""Protocol floors: the fewest bytes each transport can put on the wire per pushed message.

A floor is what the protocol itself demands around a message of ``n`` bytes,
counted like the runner counts bytes (TCP payload, both directions, IP and TCP
headers not included: those add 40 B per segment, 52 B with timestamps, to
every transport alike). The figures are the ones ``../shared/REFERENCE.md``
agreed on:

- **WebSocket**, server → client: a 2-byte header for messages up to 125 B,
  4 up to 65,535, 10 above (RFC 6455 §5.2); a client's frames add a 4-byte
  masking key. Nothing flows client → server for a pushed message.
- **SSE** over HTTP/1.1 chunked encoding: ``id: N\\n``, ``data: `` + message +
  ``\\n``, a blank line, and the chunk framing (hex length, CRLF, CRLF) around
  each event — the shortest form a conforming server can send with resume ids
  (:func:`pushbench.sse.event` writes exactly that event).
- **Polling** (long and short): a whole HTTP request and response per poll.
  The smallest request is ``GET /p HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n`` (28 B), the
  smallest response a status line plus ``Content-Length``. How many polls a
  message costs is not a protocol constant (a long poll may carry a batch, a
  short poll is paid also when empty), so the polling floor takes the
  measured requests per message as input.

The floor counts the pushed message as ``payload_bytes``: pushbench's own
envelope (topic, sequence number and two timestamps as JSON, see
:func:`envelope_overhead`) sits between the floor and the measured bytes, beside
what each stack adds (headers, CRLF line ends, batch wrappers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pushbench import contract, registry

__all__ = [
    "MIN_HTTP_REQUEST",
    "Floor",
    "chunk_overhead",
    "envelope_overhead",
    "floor",
    "http_response_head",
    "sse_event_overhead",
    "ws_header",
]

#: The smallest HTTP/1.1 request a poll can be: ``GET /p HTTP/1.1\r\nHost: a\r\n\r\n``.
MIN_HTTP_REQUEST = len(b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n")


def ws_header(payload_len: int, *, masked: bool = False) -> int:
    """Bytes of a WebSocket frame header (RFC 6455 §5.2), masking key included when masked."""
    if payload_len < 0:
        raise ValueError("payload_len must be >= 0")
    base = 2 if payload_len <= 125 else 4 if payload_len <= 65_535 else 10
    return base + (4 if masked else 0)


def sse_event_overhead(data_len: int, event_id: int | None = 1) -> int:
    """Bytes around a one-line message in an SSE event: ``id: N\\n`` + ``data: `` + ``\\n\\n``."""
    if data_len < 0:
        raise ValueError("data_len must be >= 0")
    id_line = 0 if event_id is None else len(b"id: \n") + len(str(event_id))
    return id_line + len(b"data: ") + len(b"\n\n")


def chunk_overhead(chunk_len: int) -> int:
    """HTTP/1.1 chunked framing around one chunk: hex length + CRLF, then CRLF."""
    if chunk_len <= 0:
        raise ValueError("a data chunk has at least one byte")
    return len(f"{chunk_len:x}") + 4


def http_response_head(body_len: int) -> int:
    """The smallest 200 response head: status line, ``Content-Length``, blank line."""
    return len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % body_len)


@dataclass(frozen=True)
class Floor:
    """The fewest bytes per pushed message, payload included, in each direction."""

    bytes_in: float  # server → client (what the client receives)
    bytes_out: float  # client → server

    @property
    def total(self) -> float:
        return self.bytes_in + self.bytes_out


def _ws(n: int, requests_per_msg: float | None) -> Floor:
    return Floor(n + ws_header(n), 0.0)


def _sse(n: int, requests_per_msg: float | None) -> Floor:
    event = n + sse_event_overhead(n)
    return Floor(event + chunk_overhead(event), 0.0)


def _poll(n: int, requests_per_msg: float | None) -> Floor | None:
    if requests_per_msg is None or requests_per_msg <= 0:
        return None
    msgs_per_poll = 1.0 / requests_per_msg
    body = round(n * max(msgs_per_poll, 1.0))
    return Floor(
        n + http_response_head(body) * requests_per_msg, MIN_HTTP_REQUEST * requests_per_msg
    )


#: Floor rule (a transport row's ``floor`` in :mod:`pushbench.registry`) → how it is computed.
_RULES: dict[str, Callable[[int, float | None], Floor | None]] = {
    "ws": _ws,
    "sse": _sse,
    "poll": _poll,
}


def floor(
    transport: str, payload_bytes: int, *, requests_per_msg: float | None = None
) -> Floor | None:
    """The protocol floor per pushed message of ``payload_bytes``, or None when unknown.

    The rule is the one the transport's registry row names (both WebSocket
    clients share ``ws``; long and short polling share ``poll``).
    ``requests_per_msg`` (measured, polling only) is how many polls each
    delivered message cost; without it a polling floor is unknown. An unknown
    transport also gives None.
    """
    if payload_bytes < 0:
        raise ValueError("payload_bytes must be >= 0")
    try:
        row = registry.transport(transport)
    except registry.RegistryError:
        return None
    rule = _RULES.get(row.floor)
    return None if rule is None else rule(payload_bytes, requests_per_msg)


def envelope_overhead(seq: int = 1000, timestamp_ns: int = 10**14) -> int:
    """Bytes pushbench's JSON envelope adds to a payload (topic ``bench``, seq, two stamps).

    Depends on the digits of the sequence number and of the CLOCK_MONOTONIC
    stamps (time since boot), hence the parameters; the defaults (4-digit seq,
    15-digit stamps: about a day of uptime) are typical of a benchmark cell.
    """
    env = contract.Envelope("bench", seq, timestamp_ns, timestamp_ns, "")
    return len(contract.encode(env))

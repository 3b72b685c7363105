"""TCP payload bytes and segments of one TCP connection, from the kernel's ``TCP_INFO``.

Counting at the socket layer would miss nothing a client writes, but it sees
what aiohttp hands up, not what crossed the wire; the kernel's counters are
exact and cost one ``getsockopt`` per snapshot, so a connection is measured
with two snapshots: right after its handshake and at its end.

``struct tcp_info`` (``include/uapi/linux/tcp.h``) starts with eight ``__u8``
(state, ca_state, retransmits, probes, backoff, options, the two window-scale
nibbles, two flag bit-fields), then twenty-four ``__u32`` (rto … total_retrans,
ending at offset 104), then the ``__u64`` fields ``tcpi_pacing_rate`` (104),
``tcpi_max_pacing_rate`` (112), ``tcpi_bytes_acked`` (120, Linux ≥ 4.1) and
``tcpi_bytes_received`` (128, Linux ≥ 4.1), then the ``__u32`` ``tcpi_segs_out``
(136) and ``tcpi_segs_in`` (140, Linux ≥ 4.2). ``tests/test_clients.py`` checks
these offsets against a loopback transfer of known size.

The byte counters are TCP *payload*: no IP or TCP header is in them. The segment
counters (every segment, pure ACKs and retransmissions included) let the runner
estimate the bytes on the wire (:func:`pushbench.metrics.wire_bytes`: 52 B of IPv4 +
TCP + timestamps headers per segment).

The counters are TCP sequence-space deltas, so control flags count as one byte
each: on an actively opened socket ``bytes_acked`` includes our SYN, and
``bytes_received`` includes the peer's FIN once it arrived (state CLOSE_WAIT,
CLOSING, LAST_ACK or TIME_WAIT). :func:`payload` removes both, leaving
exactly the payload bytes; our own FIN never counts because the final snapshot
is taken before we close.

A :class:`TcpMeter` reads through a duplicate of the socket's descriptor, so
the final snapshot still works after the transport closed its own descriptor
(aiohttp closes it as soon as the peer goes away). The duplicate keeps the
socket open, so :meth:`TcpMeter.finish` must be called when the connection
ends: every client does so in a ``finally`` block.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
from typing import NamedTuple, Protocol

__all__ = [
    "AVAILABLE",
    "BYTES_ACKED_OFFSET",
    "BYTES_RECEIVED_OFFSET",
    "SEGS_OUT_OFFSET",
    "HasFileno",
    "Moved",
    "TcpInfo",
    "TcpMeter",
    "parse",
    "payload",
    "plus",
    "read",
]

BYTES_ACKED_OFFSET = 120
BYTES_RECEIVED_OFFSET = 128
SEGS_OUT_OFFSET = 136  # then tcpi_segs_in at 140
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_INFO_LEN = 256  # larger than any kernel's struct; the kernel returns what it has
_U64 = struct.Struct("<QQ" if sys.byteorder == "little" else ">QQ")
_U32 = struct.Struct("<II" if sys.byteorder == "little" else ">II")
# Linux TCP states in which the peer's FIN has been received (and counted once).
_PEER_FIN_STATES = frozenset({6, 8, 9, 11})  # TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING

AVAILABLE = _TCP_INFO is not None and sys.platform.startswith("linux")


class HasFileno(Protocol):
    """What a socket-like object must offer (asyncio's and uvloop's wrappers do)."""

    def fileno(self) -> int: ...


class TcpInfo(NamedTuple):
    state: int
    bytes_acked: int
    bytes_received: int
    segs_out: int | None = None  # None: a kernel older than 4.2
    segs_in: int | None = None


class Moved(NamedTuple):
    """A connection's TCP payload bytes and segments each way over some span (segments
    None when the kernel does not count them)."""

    bytes_out: int
    bytes_in: int
    segs_out: int | None
    segs_in: int | None


def plus(a: Moved, b: Moved) -> Moved:
    """``a`` + ``b`` field by field; a segment count unknown on either side stays unknown."""
    return Moved(
        a.bytes_out + b.bytes_out,
        a.bytes_in + b.bytes_in,
        None if a.segs_out is None or b.segs_out is None else a.segs_out + b.segs_out,
        None if a.segs_in is None or b.segs_in is None else a.segs_in + b.segs_in,
    )


def parse(buf: bytes) -> TcpInfo | None:
    """A ``struct tcp_info`` as the kernel returned it → the state, the two byte counters
    and the two segment counters; None when it is too short for the byte counters."""
    if len(buf) < BYTES_RECEIVED_OFFSET + 8:
        return None  # kernel older than 4.1
    acked, received = _U64.unpack_from(buf, BYTES_ACKED_OFFSET)
    if len(buf) < SEGS_OUT_OFFSET + 8:
        return TcpInfo(buf[0], acked, received)
    return TcpInfo(buf[0], acked, received, *_U32.unpack_from(buf, SEGS_OUT_OFFSET))


def read(sock: socket.socket) -> TcpInfo | None:
    """:func:`parse` of ``sock``'s ``TCP_INFO``; None where the kernel lacks the counters."""
    if not AVAILABLE or _TCP_INFO is None:
        return None
    try:
        buf = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return None
    return parse(buf)


def _less(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def payload(info: TcpInfo, *, active_open: bool = True) -> tuple[int, int]:
    """(payload bytes sent and acknowledged, payload bytes received): SYN and FIN removed."""
    out = info.bytes_acked - (1 if active_open and info.bytes_acked > 0 else 0)
    received = info.bytes_received - (1 if info.state in _PEER_FIN_STATES else 0)
    return out, max(received, 0)


class TcpMeter:
    """Handshake bytes and bytes after it, for one TCP connection of a client, and the
    segments after the handshake.

    :meth:`start` right after the handshake (WebSocket 101, first HTTP
    response), :meth:`finish` at the end; both are cheap and idempotent enough
    to call from several cleanup paths. Until :meth:`finish` ran, ``bytes_out``
    and ``bytes_in`` are 0 and the segment counts None (None after it too when the
    kernel does not count segments).
    """

    __slots__ = (
        "_handshake_segs",
        "_sock",
        "bytes_in",
        "bytes_out",
        "finished",
        "handshake_in",
        "handshake_out",
        "segs_in",
        "segs_out",
    )

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self.handshake_out = 0
        self.handshake_in = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.segs_out: int | None = None
        self.segs_in: int | None = None
        self._handshake_segs: tuple[int | None, int | None] = (None, None)
        self.finished = False

    def _since_handshake(self, info: TcpInfo) -> Moved:
        out, received = payload(info)
        segs_out, segs_in = self._handshake_segs
        return Moved(
            out - self.handshake_out,
            received - self.handshake_in,
            _less(info.segs_out, segs_out),
            _less(info.segs_in, segs_in),
        )

    @property
    def started(self) -> bool:
        return self._sock is not None

    def start(self, sock: HasFileno | None) -> bool:
        """Duplicate ``sock``'s descriptor and take the handshake snapshot → success."""
        if sock is None or self._sock is not None or not AVAILABLE:
            return False
        try:
            fd = os.dup(sock.fileno())
        except OSError:
            return False
        dup = socket.socket(fileno=fd)
        info = read(dup)
        if info is None:
            dup.close()
            return False
        self._sock = dup
        self.handshake_out, self.handshake_in = payload(info)
        self._handshake_segs = (info.segs_out, info.segs_in)
        return True

    @property
    def moved(self) -> Moved:
        """Bytes and segments after the handshake, as :meth:`finish` counted them."""
        return Moved(self.bytes_out, self.bytes_in, self.segs_out, self.segs_in)

    def peek(self) -> Moved | None:
        """Bytes and segments after the handshake so far, the connection still open:
        one ``getsockopt``, for a worker's window marks; None when not started or
        unreadable."""
        dup = self._sock
        info = None if dup is None else read(dup)
        return None if info is None else self._since_handshake(info)

    def finish(self) -> bool | None:
        """Take the final snapshot and release the duplicate descriptor → whether the
        snapshot worked; None when there was nothing to finish (never started, or
        finished already), so a caller can account each socket exactly once."""
        dup = self._sock
        if dup is None:
            return None
        self._sock = None
        try:
            info = read(dup)
            if info is None:
                return False
            self.bytes_out, self.bytes_in, self.segs_out, self.segs_in = self._since_handshake(info)
            self.finished = True
            return True
        finally:
            with contextlib.suppress(OSError):
                dup.close()

"""WebSocket frames (RFC 6455 §5): encoding, and a streaming decoder.

The decoder takes bytes in any chunking — one byte at a time or megabytes at
once — and yields :class:`Frame` values. It enforces every framing rule the RFC
puts on a receiver before it buffers a payload: reserved opcodes and RSV bits,
masking direction, minimal length encoding, the 2^63 ceiling, control frames
≤ 125 bytes and never fragmented, continuation frames only inside a fragmented
message, and the configured frame and message size limits (1009). Text is
validated as UTF-8 incrementally so a bad byte fails the message at once, even
when the frame carrying it has not fully arrived.

Memory is bounded: at most one partial header (< 14 bytes) is kept between
calls, and a payload is accepted only after its length passed the limits.

Two paths, one behaviour: when the compiled parser is in use
(:mod:`.speedups`), it decodes the complete frames that need no reader state;
every other frame — incomplete, fragmented, or breaking a rule — goes through
the pure Python loop, which is the reference and raises every error. Within
that loop, runs of whole unfragmented frames of ≤ 125 bytes take a table-driven
fast path (:mod:`.fastpath`) that hands every other frame back to it.
"""

from __future__ import annotations

import os
from enum import IntEnum
from typing import NamedTuple, cast

from . import fastpath
from . import speedups as _speedups
from .errors import CloseCode, ProtocolError, is_valid_close_code
from .mask import MASK_NUMPY_MIN, apply_mask, rotate_key
from .utf8 import Utf8Validator

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "RSV1",
    "Frame",
    "FrameReader",
    "Opcode",
    "encode_close_payload",
    "encode_frame",
    "parse_close_payload",
]

DEFAULT_MAX_FRAME_SIZE = 1 << 20
DEFAULT_MAX_MESSAGE_SIZE = 1 << 22


class Opcode(IntEnum):
    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


_CONTROL = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})
_DATA = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})


class Frame(NamedTuple):
    """One frame as received or to be sent. ``rsv`` holds RSV1-3 as bits 4-6."""

    opcode: int
    payload: bytes | bytearray
    fin: bool = True
    rsv: int = 0


_new_frame = tuple.__new__
_from_bytes = int.from_bytes


# --- encoding -------------------------------------------------------------


def encode_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview,
    *,
    fin: bool = True,
    mask: bool | bytes = False,
    rsv: int = 0,
) -> bytes:
    """Serialize one frame with the minimal length encoding.

    ``mask=True`` draws a fresh random key (what a client must do for every
    frame); a 4-byte ``bytes`` key makes the output deterministic for tests.
    Control-frame limits are the caller's to respect; :class:`FrameReader`
    enforces them on the receiving side.
    """
    b0 = (0x80 if fin else 0) | rsv | opcode
    c_encode = _speedups.C_ENCODE
    if c_encode is not None:
        return c_encode(b0, payload, (os.urandom(4) if mask is True else mask) if mask else None)
    n = len(payload)
    if n < 126:
        head = bytes((b0, n | 0x80 if mask else n))
    elif n < 65536:
        head = bytes((b0, 0xFE if mask else 126, n >> 8, n & 0xFF))
    else:
        head = bytes((b0, 0xFF if mask else 127)) + n.to_bytes(8)
    if not mask:
        return head + payload
    key = os.urandom(4) if mask is True else mask
    return head + key + apply_mask(payload, key)


def encode_close_payload(code: int | None = None, reason: str = "") -> bytes:
    """The payload of a Close frame: empty, or a 2-byte code plus UTF-8 reason."""
    if code is None:
        return b""
    data = code.to_bytes(2) + reason.encode()
    if len(data) > 125:
        raise ValueError("close reason too long for a control frame")
    return data


def parse_close_payload(payload: bytes | bytearray) -> tuple[int, str]:
    """Validate a received Close payload (§5.5.1, §7.4) → (code, reason).

    An empty payload means "no status" and maps to 1005. A 1-byte payload, a
    code that may not appear on the wire, or a reason that is not UTF-8 raise
    :class:`ProtocolError` (1002, 1002, 1007).
    """
    n = len(payload)
    if n == 0:
        return CloseCode.NO_STATUS, ""
    if n == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "close payload of 1 byte")
    code = int.from_bytes(payload[:2])
    if not is_valid_close_code(code):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = bytes(payload[2:]).decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError(CloseCode.INVALID_DATA, "close reason is not UTF-8") from exc
    return code, reason


# --- decoding -------------------------------------------------------------


#: What a first byte says, when valid on its own: (opcode, FIN, RSV bits, kind).
B0Info = tuple[int, bool, int, int]
KIND_FRAGMENT = 0  # a continuation, or a data frame without FIN: the message state decides
KIND_BINARY = 1  # a data frame with FIN that starts no fragmented message
KIND_TEXT = 2  # the same, text: its payload must be UTF-8
KIND_CONTROL = 3


#: RSV1: "per-message compressed" once permessage-deflate is negotiated (RFC 7692 §6):
#: allowed on the first frame of a data message only, never on a continuation or a
#: control frame, and its payload is not UTF-8 until inflated (:mod:`.deflate`).
RSV1 = 0x40


def _b0_table(rsv_allowed: int, in_message: bool) -> tuple[B0Info | None, ...]:
    """For each first byte: None if invalid on its own, else what it says.

    Folds the RSV check, the reserved-opcode check and "control frames are
    never fragmented" into one indexed load on the hot path, and decodes the
    byte once per value instead of once per frame. With ``in_message`` (a
    fragmented message is open) every data frame is ``KIND_FRAGMENT``: the
    message state decides, so the hot path tests the kind alone.
    """
    table: list[B0Info | None] = []
    for b0 in range(256):
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        compressed = bool(b0 & RSV1)
        ok = (
            (b0 & 0x70 & ~rsv_allowed) == 0
            and opcode in Opcode._value2member_map_
            and (opcode < 8 or fin)
            and not (compressed and (opcode == 0 or opcode >= 8))
        )
        if opcode >= 8:
            kind = KIND_CONTROL
        elif opcode == 0 or not fin or in_message:
            kind = KIND_FRAGMENT
        else:  # a compressed text message is checked as UTF-8 once inflated
            kind = KIND_TEXT if opcode == 1 and not compressed else KIND_BINARY
        table.append((opcode, fin, b0 & 0x70, kind) if ok else None)
    return tuple(table)


def _b0_tables(rsv_allowed: int) -> tuple[tuple[B0Info | None, ...], tuple[B0Info | None, ...]]:
    """The two tables of :func:`_b0_table`, indexed by "a fragmented message is open"."""
    tables = _TABLES.get(rsv_allowed)
    if tables is None:
        tables = _TABLES[rsv_allowed] = (
            _b0_table(rsv_allowed, False),
            _b0_table(rsv_allowed, True),
        )
    return tables


_TABLES: dict[int, tuple[tuple[B0Info | None, ...], tuple[B0Info | None, ...]]] = {}
#: (rsv_allowed, masked, length limit) → the fast path's table (:func:`.fastpath.rows_for`).
_FAST: dict[tuple[int, bool, int], fastpath.FastRows] = {}


def _fast_rows(rsv_allowed: int, masked: bool, limit: int) -> fastpath.FastRows:
    key = (rsv_allowed, masked, limit)
    rows = _FAST.get(key)
    if rows is None:
        rows = _FAST[key] = fastpath.rows_for(_b0_tables(rsv_allowed)[0], masked, limit)
    return rows


def _explain_b0(b0: int, rsv_allowed: int) -> ProtocolError:
    opcode = b0 & 0x0F
    if b0 & 0x70 & ~rsv_allowed:
        return ProtocolError(CloseCode.PROTOCOL_ERROR, "reserved RSV bit set")
    if opcode not in Opcode._value2member_map_:
        return ProtocolError(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
    if b0 & RSV1 and (opcode == 0 or opcode >= 8):
        return ProtocolError(CloseCode.PROTOCOL_ERROR, "RSV1 on a continuation or control frame")
    return ProtocolError(CloseCode.PROTOCOL_ERROR, "fragmented control frame")


# Statuses of the compiled parser (``_speedups.c``): where it stopped, and why.
C_END = 0  # every complete frame taken; what is left is an incomplete frame (or nothing)
C_FRAGMENT = 1  # a frame of a fragmented message: the reader's state decides
C_CONTROL = 2  # a control frame, in payloads-only mode
C_FIRST_ERROR = 16
#: The compiled parser's error statuses → the close code and reason of the rule broken.
#: FrameReader re-reads such a frame on its pure path, which raises the same error
#: with its own message; the table is the fallback should the pure path not raise.
C_ERRORS: dict[int, tuple[int, str]] = {
    16: (CloseCode.PROTOCOL_ERROR, "reserved RSV bit set"),
    17: (CloseCode.PROTOCOL_ERROR, "reserved opcode"),
    18: (CloseCode.PROTOCOL_ERROR, "fragmented control frame"),
    19: (CloseCode.PROTOCOL_ERROR, "wrong masking direction"),
    20: (CloseCode.PROTOCOL_ERROR, "control frame over 125 bytes"),
    21: (CloseCode.PROTOCOL_ERROR, "non-minimal 16-bit length"),
    22: (CloseCode.PROTOCOL_ERROR, "length over 2^63"),
    23: (CloseCode.PROTOCOL_ERROR, "non-minimal 64-bit length"),
    24: (CloseCode.MESSAGE_TOO_BIG, "frame over the size limit"),
    25: (CloseCode.MESSAGE_TOO_BIG, "message over the size limit"),
    26: (CloseCode.INVALID_DATA, "invalid UTF-8 in text"),
}


class FrameReader:
    """Streaming frame decoder for one direction of one connection.

    ``masked`` is what the peer must send: True on a server (client frames are
    masked), False on a client. ``rsv_allowed`` holds the RSV bits an
    extension negotiated (0 when none). After a :class:`ProtocolError` the
    reader is failed and every later call raises the same error.
    """

    __slots__ = (
        "_acc",
        "_cur_b0",
        "_error",
        "_fast",
        "_key",
        "_key_off",
        "_length",
        "_masked",
        "_max_frame",
        "_max_message",
        "_msg_opcode",
        "_msg_size",
        "_pending",
        "_remaining",
        "_rsv_allowed",
        "_tables",
        "_utf8",
    )

    def __init__(
        self,
        *,
        masked: bool,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        rsv_allowed: int = 0,
    ) -> None:
        self._masked = masked
        self._max_frame = max_frame_size
        self._max_message = max_message_size
        self._rsv_allowed = rsv_allowed
        self._tables = _b0_tables(rsv_allowed)
        # Whole unfragmented frames of ≤ 125 bytes within both limits: the fast path.
        limit = min(125, max_frame_size, max_message_size)
        self._fast = _fast_rows(rsv_allowed, masked, limit)
        self._pending = b""  # an incomplete header carried to the next call
        self._msg_opcode = 0  # TEXT/BINARY while a fragmented message is open
        self._msg_size = 0
        self._utf8: Utf8Validator | None = None
        # State of a frame whose payload is still arriving (-1: none).
        self._remaining = -1
        self._cur_b0 = 0
        self._key: bytes | None = None
        self._key_off = 0
        self._acc = bytearray()  # payload of that frame received so far
        self._length = 0  # the last extended length read (_extended_length)
        self._error: ProtocolError | None = None

    @property
    def in_message(self) -> bool:
        """Whether a fragmented message has started and not yet finished."""
        return self._msg_opcode != 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Decode what ``data`` completes; keep the rest for the next call."""
        out: list[Frame] = []
        self.feed_into(data, out)
        return out

    def feed_into(self, data: bytes | bytearray | memoryview, out: list[Frame]) -> None:
        """Like :meth:`feed`, appending to ``out``.

        Frames decoded before a violation stay in ``out`` when the
        :class:`ProtocolError` propagates, so nothing valid is lost.
        """
        if self._error is not None:
            raise self._error
        try:
            self._feed(data, cast("list[Frame | bytes]", out), 0)
        except ProtocolError as exc:
            self._error = exc
            raise

    def feed_payloads_into(
        self, data: bytes | bytearray | memoryview, out: list[Frame | bytes]
    ) -> bool:
        """Like :meth:`feed_into`, but a frame that is a whole data message on its own
        (FIN set, no fragmented message open) arrives as its payload ``bytes`` alone,
        text and binary alike, when the compiled parser decoded it; every other frame
        as a :class:`Frame`, in order. → whether ``out`` may hold any :class:`Frame`
        (always, on the pure path): the receive path of a client that only records
        data, with one object per message instead of three.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data, out, 4)
        except ProtocolError as exc:
            self._error = exc
            raise

    def _feed(
        self, data: bytes | bytearray | memoryview, out: list[Frame | bytes], mode: int
    ) -> bool:
        """Decode ``data`` into ``out`` (``mode`` 4: payloads only, see
        :meth:`feed_payloads_into`) → whether a :class:`Frame` may have been appended."""
        frames = cast("list[Frame]", out)
        if not isinstance(data, bytes):
            data = bytes(data)
        if self._pending:
            data = self._pending + data
            self._pending = b""
        end = len(data)
        pos = 0
        mixed = False
        if self._remaining >= 0:
            mixed = True
            pos = self._continue_payload(data, 0, frames)
            if self._remaining >= 0:
                return mixed
        parse = _speedups.C_PARSE
        if parse is None:
            self._parse(data, pos, end, frames)
            return True
        # The compiled parser takes every complete frame that needs no reader
        # state; each frame it stops at (incomplete, fragmented, a control frame
        # in payloads mode, or breaking a rule) goes through the pure loop alone,
        # which handles or raises it.
        masked = mode | 1 if self._masked else mode
        rsv = self._rsv_allowed
        max_frame = self._max_frame
        max_message = self._max_message
        while pos < end:
            flags = masked | 2 if self._msg_opcode else masked
            pos, status = parse(Frame, out, data, pos, flags, rsv, max_frame, max_message)
            if pos >= end:
                return mixed
            pos = self._parse(data, pos, pos + 1, frames)
            mixed = True
            if status >= C_FIRST_ERROR:  # the pure loop should have raised: trust the C check
                code, reason = C_ERRORS[status]
                raise ProtocolError(code, reason)
        return mixed

    def _parse(self, data: bytes, pos: int, limit: int, out: list[Frame]) -> int:
        """The pure decoder: frames starting before ``limit`` → where it stopped.

        Stops at ``limit`` (the position after the last frame decoded) or, when
        the data ends inside a frame, keeps that frame's start (``_pending``) or
        streams its payload, and returns ``len(data)``.
        """
        end = len(data)
        tables = self._tables
        table = tables[self._msg_opcode != 0]
        whole = tables[0]  # no fragmented message open: the fast path may run
        fast = self._fast
        run = fastpath.decode_run
        mbit = 0x80 if self._masked else 0
        head0 = 6 if mbit else 2
        max_frame = self._max_frame
        max_message = self._max_message
        new = _new_frame
        frame = Frame
        from_bytes = _from_bytes
        c_mask = _speedups.C_MASK
        # How payloads are unmasked: 0 not at all, 1 by the C helper, 2 as integers.
        how = 0 if not mbit else 1 if c_mask is not None else 2
        keys = fastpath.KEY_REPEAT
        small = MASK_NUMPY_MIN
        while pos < limit:
            if end - pos < 2:
                break
            b0 = data[pos]
            if table is whole and fast[b0][data[pos + 1]] is not None:
                # A run of whole short frames; it stops at the first frame it
                # does not take, which the general loop below decodes (or raises).
                pos = run(data, pos, min(limit, end - 1), fast, mbit != 0, frame, out)
                if pos >= limit or end - pos < 2:
                    continue
                b0 = data[pos]
            info = table[b0]
            if info is None:
                raise _explain_b0(b0, self._rsv_allowed)
            # The length byte with the mask bit we expect cleared: ≥ 128 if it was wrong.
            length = data[pos + 1] ^ mbit
            if length < 126:
                start = pos + head0
                if start > end:
                    break
            else:
                start = self._extended_length(data, pos, b0, length, head0)
                if start < 0:
                    break
                length = self._length
            if length > max_frame:
                raise ProtocolError(
                    CloseCode.MESSAGE_TOO_BIG, f"frame of {length} bytes over {max_frame}"
                )
            opcode, fin, rsv, kind = info
            # Fast path: a whole message in one frame, or a control frame (kinds
            # 1-3); a fragment (kind 0) goes through the message state.
            if kind == 0:  # KIND_FRAGMENT (a compressed one counts as binary until inflated)
                self._check_data_frame(2 if rsv & RSV1 else opcode, fin, length)
            elif length > max_message and kind != 3:  # not KIND_CONTROL
                raise ProtocolError(
                    CloseCode.MESSAGE_TOO_BIG, f"message of {length} bytes over {max_message}"
                )
            stop = start + length
            if stop > end:
                # Payload still arriving: stream it so memory stays bounded and
                # text fails fast; nothing of this frame is re-buffered.
                self._cur_b0 = b0
                self._key = data[start - 4 : start] if mbit else None
                self._key_off = 0
                self._remaining = length
                self._acc = bytearray()
                self._continue_payload(data, start, out)
                return end
            payload: bytes | bytearray
            if how == 0:
                payload = data[start:stop]
            elif how == 2 and length < small:
                # apply_mask's small path, inlined (the hottest line): key and
                # payload as one integer w; the key, repeated over all of it,
                # is the key (w's top 32 bits) times 1 at every 32nd bit.
                w = from_bytes(data[start - 4 : stop])
                rep, shift = keys[length] or fastpath.key_repeat(length)
                payload = (w ^ ((w >> (length << 3)) * rep >> shift)).to_bytes(length)
            elif c_mask is not None:
                payload = c_mask(data[start:stop], data[start - 4 : start])
            else:
                payload = apply_mask(data[start:stop], data[start - 4 : start])
            if kind == 0:
                self._fragment_done(2 if rsv & RSV1 else opcode, fin, payload)
                table = tables[self._msg_opcode != 0]
            elif kind == 2:  # KIND_TEXT
                try:
                    payload.decode()
                except UnicodeDecodeError as exc:
                    raise ProtocolError(CloseCode.INVALID_DATA, "invalid UTF-8 in text") from exc
            out.append(new(frame, (opcode, payload, fin, rsv)))
            pos = stop
        else:
            return pos
        if pos < end:
            self._pending = data[pos:]
        return end

    def _extended_length(self, data: bytes, pos: int, b0: int, length: int, head0: int) -> int:
        """Check a 16- or 64-bit length (or a wrong mask bit) → where the payload starts
        (-1: the header is incomplete), with the length in ``_length``."""
        if length > 127:
            raise ProtocolError(
                CloseCode.PROTOCOL_ERROR,
                "unmasked client frame" if head0 == 6 else "masked server frame",
            )
        if b0 & 0x08:
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "control frame over 125 bytes")
        end = len(data)
        if length == 126:
            start = pos + head0 + 2
            if start > end:
                return -1
            length = (data[pos + 2] << 8) | data[pos + 3]
            if length < 126:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "non-minimal 16-bit length")
        else:
            start = pos + head0 + 8
            if start > end:
                return -1
            length = _from_bytes(data[pos + 2 : pos + 10])
            if length >> 63:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "length over 2^63")
            if length < 65536:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "non-minimal 64-bit length")
        self._length = length
        return start

    def _check_data_frame(self, opcode: int, fin: bool, length: int) -> None:
        if opcode == 0:
            if not self._msg_opcode:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "continuation outside a message")
            size = self._msg_size + length
        else:
            if self._msg_opcode:
                raise ProtocolError(
                    CloseCode.PROTOCOL_ERROR, "new data frame inside a fragmented message"
                )
            size = length
            if not fin:
                self._msg_opcode = opcode
        if size > self._max_message:
            raise ProtocolError(
                CloseCode.MESSAGE_TOO_BIG, f"message of {size}+ bytes over {self._max_message}"
            )
        self._msg_size = size

    def _fragment_done(self, opcode: int, fin: bool, payload: bytes | bytearray) -> None:
        """Validate a complete fragment's text and close the message on FIN."""
        if opcode == 1 or (opcode == 0 and self._msg_opcode == 1):
            v = self._utf8
            if v is None:
                v = self._utf8 = Utf8Validator()
            v.feed(payload, bool(fin))
            if fin:
                self._utf8 = None
        if fin:
            self._msg_opcode = 0
            self._msg_size = 0

    def _continue_payload(self, data: bytes, pos: int, out: list[Frame]) -> int:
        """Consume payload bytes of the frame in progress; return the new pos."""
        take = min(self._remaining, len(data) - pos)
        chunk: bytes | bytearray = data[pos : pos + take]
        if self._key is not None and take:
            chunk = apply_mask(chunk, rotate_key(self._key, self._key_off))
            self._key_off += take
        self._remaining -= take
        b0 = self._cur_b0
        opcode = b0 & 0x0F
        fin = b0 >> 7
        done = self._remaining == 0
        text = (opcode == 1 and not b0 & RSV1) or (opcode == 0 and self._msg_opcode == 1)
        if take and text:
            v = self._utf8
            if v is None:
                v = self._utf8 = Utf8Validator()
            v.feed(chunk, bool(fin and done))
        self._acc += chunk
        if not done:
            return pos + take
        payload = self._acc
        self._acc = bytearray()
        self._remaining = -1
        if opcode < 8 and fin:
            if opcode == 1 or (opcode == 0 and self._msg_opcode == 1):
                self._utf8 = None
            self._msg_opcode = 0
            self._msg_size = 0
        out.append(_new_frame(Frame, (opcode, payload, fin == 1, b0 & 0x70)))
        return pos + take

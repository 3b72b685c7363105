"""Shared helpers and hypothesis strategies for the wire-codec tests."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from hypothesis import strategies as st

from pushbench.wire.frames import Frame, FrameReader, Opcode, encode_frame
from pushbench.wire.protocol import Close, Event, Message, Ping, Pong

# Sizes where the length encoding changes, plus the upper bound.
BOUNDARY_SIZES = (0, 1, 125, 126, 127, 65535, 65536, 200 * 1024)
MAX_PAYLOAD = 200 * 1024

# Characters of every UTF-8 length, including the extremes of each range.
_TEXT_ALPHABET = ("a", "~", "\x00", "é", "\u07ff", "\u0800", "€", "\uffff", "😀", "\U0010ffff")

MaskArg = bool | bytes


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (out-of-range and duplicate cuts ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    chunks: list[bytes] = []
    prev = 0
    for p in points:
        chunks.append(data[prev:p])
        prev = p
    chunks.append(data[prev:])
    return chunks


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """All at once, one byte at a time (small streams) or cut at arbitrary points."""
    modes = ["whole", "cuts", "cuts"]
    if len(data) <= 3000:
        modes.append("bytes")
    mode = draw(st.sampled_from(modes))
    if mode == "whole":
        return [data]
    if mode == "bytes":
        return one_byte_chunks(data)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=24))
    return split_at(data, cuts)


def feed_all(reader: FrameReader, chunks: Iterable[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(reader.feed(chunk))
    return frames


def encode(frame: Frame, mask: MaskArg = False) -> bytes:
    return encode_frame(frame.opcode, frame.payload, fin=frame.fin, mask=mask, rsv=frame.rsv)


def encode_all(frames: Sequence[Frame], mask: MaskArg = False) -> bytes:
    return b"".join(encode(f, mask) for f in frames)


def pattern_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def pattern_text(size: int, seed: int) -> bytes:
    """UTF-8 text of about ``size`` bytes (at most 3 more) mixing 1-4 byte characters."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    total = 0
    while total < size:
        ch = rng.choice(_TEXT_ALPHABET).encode()
        parts.append(ch)
        total += len(ch)
    return b"".join(parts)


payload_sizes = st.one_of(
    st.sampled_from(BOUNDARY_SIZES),
    st.integers(0, 300),
    st.integers(0, MAX_PAYLOAD),
)


@st.composite
def data_payloads(draw: st.DrawFn, opcode: int, small: bool = False) -> bytes:
    """A payload for a TEXT (valid UTF-8) or BINARY message."""
    sizes = st.integers(0, 300) if small else payload_sizes
    if opcode == Opcode.TEXT:
        if draw(st.booleans()):
            return draw(st.text(max_size=40)).encode()
        return pattern_text(draw(sizes), draw(st.integers(0, 2**32)))
    if draw(st.booleans()):
        return draw(st.binary(max_size=40))
    return pattern_bytes(draw(sizes), draw(st.integers(0, 2**32)))


control_frames = st.builds(
    lambda op, payload: Frame(op, payload),
    st.sampled_from([Opcode.PING, Opcode.PONG]),
    st.binary(max_size=125),
)


@st.composite
def message_frames(draw: st.DrawFn, small: bool = False) -> list[Frame]:
    """One data message as 1-4 fragments, with control frames between fragments.

    Fragment boundaries fall anywhere, so text code points get split across frames.
    """
    opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
    payload = draw(data_payloads(opcode, small))
    cuts = draw(st.lists(st.integers(0, len(payload)), max_size=3))
    points = sorted(cuts)
    pieces: list[bytes] = []
    prev = 0
    for p in points:  # duplicates allowed here: they make empty fragments
        pieces.append(payload[prev:p])
        prev = p
    pieces.append(payload[prev:])
    frames: list[Frame] = []
    last = len(pieces) - 1
    for i, piece in enumerate(pieces):
        frames.append(Frame(opcode if i == 0 else Opcode.CONT, piece, fin=i == last))
        if i < last:
            frames.extend(draw(st.lists(control_frames, max_size=2)))
    return frames


@st.composite
def frame_streams(draw: st.DrawFn, small: bool = False, close: bool = True) -> list[Frame]:
    """A valid frame sequence: messages and control frames, maybe a final Close."""
    frames: list[Frame] = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 3)) == 0:
            frames.append(draw(control_frames))
        else:
            frames.extend(draw(message_frames(small)))
    if close and draw(st.booleans()):
        code = draw(st.sampled_from([1000, 1001, 1003, 1011, 3000, 4999]))
        reason = draw(st.text(max_size=20))
        frames.append(Frame(Opcode.CLOSE, code.to_bytes(2) + reason.encode()))
    return frames


masks = st.one_of(st.just(True), st.binary(min_size=4, max_size=4))


def expected_events(frames: Sequence[Frame]) -> list[Event]:
    """What a Connection should report for a valid frame sequence."""
    events: list[Event] = []
    parts: list[bytes] = []
    opcode = 0
    for f in frames:
        if f.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            if f.opcode != Opcode.CONT:
                opcode = f.opcode
                parts = []
            parts.append(bytes(f.payload))
            if f.fin:
                events.append(Message(opcode, b"".join(parts)))
        elif f.opcode == Opcode.PING:
            events.append(Ping(f.payload))
        elif f.opcode == Opcode.PONG:
            events.append(Pong(f.payload))
        else:
            code = int.from_bytes(f.payload[:2]) if f.payload else 1005
            events.append(Close(code, bytes(f.payload[2:]).decode()))
            break
    return events


# Mostly-valid UTF-8 with the troublesome bytes sprinkled in.
utf8_ish = st.lists(
    st.one_of(
        st.text(max_size=3).map(str.encode),
        st.binary(min_size=1, max_size=2),
        st.sampled_from([b"\xed", b"\xa0", b"\x80", b"\xf4", b"\x90", b"\xe0", b"\xc0"]),
    ),
    max_size=8,
).map(b"".join)


def is_utf8_prefix(data: bytes) -> bool:
    """Reference oracle: can ``data`` be extended into valid UTF-8?

    Continuation-byte validity depends only on the byte's range at each
    position, so trying every second byte and 0x80 fillers is exhaustive.
    """
    tails = [b"", b"\x80", b"\x80\x80", b"\x80\x80\x80"]
    tails += [bytes([b]) + b"\x80" * k for b in range(0x80, 0xC0) for k in range(3)]
    for tail in tails:
        try:
            (data + tail).decode()
        except UnicodeDecodeError:
            continue
        return True
    return False


def first_invalid_utf8(data: bytes) -> int | None:
    """Index of the byte at which ``data`` stops being a UTF-8 prefix.

    ``len(data)`` when every prefix is fine but the end is an incomplete code
    point; None when ``data`` is valid UTF-8.
    """
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        # Only the last <= 3 bytes before exc.start can matter; scan from there.
        for i in range(exc.start, len(data)):
            if not is_utf8_prefix(data[exc.start : i + 1]):
                return i
        return len(data)
    return None

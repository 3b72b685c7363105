"""The pure decoder's fast path: whole, unfragmented, short data frames.

Most frames a push benchmark receives are the same shape: one text or binary
message in one frame (FIN set, no fragmented message open), a 7-bit length
(≤ 125 bytes), the mask bit the direction requires, and the whole frame in the
buffer. :func:`decode_run` decodes a run of such frames with one lookup per
frame — a table indexed by the frame's first two bytes (:func:`rows_for`)
whose entry holds everything the header says, and what masking that length
needs — instead of the general loop's per-rule checks.

It never raises and never touches reader state: every frame it does not take
(a control frame, a fragment, a longer or incomplete frame, a rule broken,
text that is not UTF-8) stops the run, and :class:`~.frames.FrameReader`'s
general loop — the reference, which raises every error — takes that frame.
A frame is in the table only if the general loop would accept it as it is and
produce the same :class:`~.frames.Frame`: its first byte is valid on its own
and is a whole text or binary message (the caller passes those bytes in), and
its length is within the frame and message limits.

A long run of masked frames that all share their first two bytes (so the same
opcode, RSV bits and length: what a publisher's burst or the codec benchmark's
stream is) is unmasked in one go by :func:`decode_uniform`, a numpy XOR over
the run seen as a (frames × frame size) matrix; only the payload slices and
:class:`~.frames.Frame` objects are made per frame. numpy's fixed cost (~15 µs
a call) pays from about two dozen frames, hence :data:`UNIFORM_MIN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any, TypeVar

import numpy as np

from .mask import MASK_NUMPY_MIN

__all__ = [
    "KEY_REPEAT",
    "NO_ROWS",
    "UNIFORM_MIN",
    "FastEntry",
    "FastRows",
    "decode_run",
    "decode_uniform",
    "key_repeat",
    "rows_for",
]

#: Per payload length n < MASK_NUMPY_MIN, once seen: (R, s) such that ``(key * R) >> s``
#: is the 4-byte key repeated over n + 4 bytes (R has a 1 every 32 bits). Masking a
#: small payload is then one multiply and one XOR of Python integers, no byte string
#: of the repeated key to build and convert.
KEY_REPEAT: list[tuple[int, int] | None] = [None] * MASK_NUMPY_MIN


def key_repeat(length: int) -> tuple[int, int]:
    """Compute and remember ``KEY_REPEAT[length]``."""
    words = (length + 7) >> 2  # ceil((length + 4) / 4)
    got = KEY_REPEAT[length] = (
        ((1 << (32 * words)) - 1) // 0xFFFFFFFF,
        (words * 4 - length - 4) << 3,
    )
    return got


#: What a frame's first two bytes say, when the fast path takes the frame:
#: (opcode, rsv, is text, payload length n, header + payload size,
#: 8n, R, s) — the last three unmask a masked payload (see :data:`KEY_REPEAT`).
FastEntry = tuple[int, int, bool, int, int, int, int, int]
#: Indexed by the first byte, then the second: the entry, or None (not fast).
FastRows = tuple[tuple[FastEntry | None, ...], ...]

_NO_ROW: tuple[FastEntry | None, ...] = (None,) * 256
#: Rows where no frame is fast: the general loop takes everything.
NO_ROWS: FastRows = (_NO_ROW,) * 256


def rows_for(
    whole: Sequence[tuple[int, bool, int, int] | None], masked: bool, limit: int
) -> FastRows:
    """The fast table of a reader.

    ``whole[b0]`` is (opcode, FIN, RSV bits, kind) for each first byte that
    starts a whole text (kind 2) or binary (kind 1) message on its own, None
    (or another kind) otherwise; ``masked`` is the mask bit the reader
    requires; ``limit`` the largest payload it accepts without a size error
    (min of 125 and its frame and message limits). The caller caches the
    result per configuration (a table is built in about a millisecond).
    """
    mbit = 0x80 if masked else 0
    head = 6 if masked else 2
    table: list[tuple[FastEntry | None, ...]] = []
    for info in whole:
        if info is None or info[3] not in (1, 2):
            table.append(_NO_ROW)
            continue
        opcode, _fin, rsv, kind = info
        row: list[FastEntry | None] = [None] * 256
        for n in range(min(limit, 125) + 1):
            rep, shift = KEY_REPEAT[n] or key_repeat(n)
            row[n | mbit] = (opcode, rsv, kind == 2, n, head + n, n << 3, rep, shift)
        table.append(tuple(row))
    return tuple(table)


_F = TypeVar("_F", bound=tuple[Any, ...])

#: The fewest same-shape masked frames :func:`decode_run` hands to :func:`decode_uniform`.
UNIFORM_MIN = 32
_MASKED_MIN = 6  # the smallest masked frame: 2 header bytes and the 4-byte key
_U8 = np.uint8
_U32 = np.uint32


def decode_uniform(
    data: bytes, pos: int, count: int, entry: FastEntry, frame: type[_F], out: list[_F]
) -> int:
    """Decode the run of masked frames like the one at ``pos`` → where it stopped.

    ``entry`` is the fast entry of the frame at ``pos``; up to ``count`` whole
    frames of its size must follow in ``data``. The run is the longest prefix of
    them whose first two bytes equal those at ``pos`` (so every one is a frame
    ``entry`` describes), cut before the first text payload that is not UTF-8.
    Its keys and payloads are strided views of one (frames × size) array; the
    payloads are copied into rows padded to a multiple of 4 bytes and XORed, as
    32-bit words, with each row's key; one ``tobytes`` then gives every payload
    as a slice.
    """
    opcode, rsv, text, n, size, _bits, _rep, _shift = entry
    grid = np.frombuffer(data, _U8, count * size, pos).reshape(count, size)
    differ = np.flatnonzero((grid[:, 0] != data[pos]) | (grid[:, 1] != data[pos + 1]))
    k = int(differ[0]) if differ.size else count
    grid = grid[:k]
    width = (n + 3) & ~3
    rows = np.empty((k, width), _U8)
    rows[:, :n] = grid[:, 6:]
    words = rows.view(_U32)
    words ^= grid[:, 2:6].view(_U32)
    flat = rows.tobytes()
    payloads = [flat[o : o + n] for o in range(0, k * width, width)]
    if text:
        for i, payload in enumerate(payloads):
            try:
                payload.decode()
            except UnicodeDecodeError:
                del payloads[i:]  # the general loop raises 1007 for this frame
                break
    out.extend(
        map(tuple.__new__, repeat(frame), zip(repeat(opcode), payloads, repeat(True), repeat(rsv)))
    )
    return pos + len(payloads) * size


def decode_run(
    data: bytes, pos: int, last: int, rows: FastRows, masked: bool, frame: type[_F], out: list[_F]
) -> int:
    """Decode the fast frames starting at ``pos`` → where the run stopped.

    Takes frames while they start before ``last`` (which must be at most
    ``len(data) - 1``, so a frame's second byte is always there) and are in
    ``rows``; each is appended to ``out`` as ``frame(opcode, payload, True,
    rsv)``, its payload unmasked if ``masked``. A masked run of at least
    :data:`UNIFORM_MIN` frames of one shape goes to :func:`decode_uniform`.
    """
    end = len(data)
    if masked and last - pos > UNIFORM_MIN * _MASKED_MIN:
        entry = rows[data[pos]][data[pos + 1]]
        if entry is not None and entry[3]:  # a payload to unmask (empty ones: per frame)
            size = entry[4]
            count = min((end - pos) // size, (last - pos + size - 1) // size)
            # Probes at the second and the UNIFORM_MIN-th frame keep most runs
            # that break early off numpy's fixed cost.
            second = pos + size
            last_min = pos + (UNIFORM_MIN - 1) * size
            head = data[pos : pos + 2]
            if (
                count >= UNIFORM_MIN
                and data[second : second + 2] == head
                and data[last_min : last_min + 2] == head
            ):
                pos = decode_uniform(data, pos, count, entry, frame, out)
    append = out.append
    new = tuple.__new__
    from_bytes = int.from_bytes
    while pos < last:
        entry = rows[data[pos]][data[pos + 1]]
        if entry is None:
            break
        opcode, rsv, text, n, size, bits, rep, shift = entry
        stop = pos + size
        if stop > end:
            break
        payload: bytes
        if masked:
            # Key and payload as one integer w (the key in the top 32 bits); the
            # key, repeated over all of it, is the key times 1 at every 32nd bit.
            w = from_bytes(data[pos + 2 : stop])
            payload = (w ^ ((w >> bits) * rep >> shift)).to_bytes(n)
        else:
            payload = data[pos + 2 : stop]
        if text:
            try:
                payload.decode()
            except UnicodeDecodeError:
                break  # the general loop raises 1007 for this frame
        append(new(frame, (opcode, payload, True, rsv)))
        pos = stop
    return pos

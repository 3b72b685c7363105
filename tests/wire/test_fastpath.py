"""The pure decoder's fast path (:mod:`pushbench.wire.fastpath`) changes nothing but speed.

A reader with the fast path and one without it (every frame through the
general loop, the reference) must return the same frames and raise the same
errors for any input, in any chunking; and :func:`decode_run` must take
exactly the frames it claims (whole, unfragmented, ≤ 125 bytes, within the
limits, valid) and stop at every other one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushbench.wire import fastpath, frames
from pushbench.wire.errors import ProtocolError
from pushbench.wire.frames import RSV1, Frame, FrameReader, encode_frame

from .helpers import chunkings, utf8_ish
from .test_fuzz import mutated

pytestmark = pytest.mark.usefixtures("mask_impl")

KEY = bytes.fromhex("37fa213d")
EQUIV = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# (max_frame_size, max_message_size): defaults, and limits that cut into the 7-bit range.
LIMITS = [(1 << 20, 1 << 22), (100, 1 << 22), (1 << 20, 60), (0, 0)]


@contextmanager
def general_only() -> Iterator[None]:
    """Readers built inside have no fast path: every frame takes the general loop."""
    with mock.patch.object(frames, "_fast_rows", lambda *args: fastpath.NO_ROWS):
        yield


Outcome = tuple[list[tuple[int, bytes, bool, int]], str | None]


def outcome(reader: FrameReader, chunks: Sequence[bytes]) -> Outcome:
    """Every frame decoded (payloads as bytes) and the error that stopped it, if any."""
    got: list[Frame] = []
    error: str | None = None
    try:
        for chunk in chunks:
            reader.feed_into(chunk, got)
    except ProtocolError as exc:
        error = f"{exc.code} {exc.reason}"
    return [(f.opcode, bytes(f.payload), f.fin, f.rsv) for f in got], error


def assert_paths_agree(
    chunks: Sequence[bytes], masked: bool, rsv_allowed: int, limits: tuple[int, int]
) -> None:
    """A reader with the fast path and one without it decode ``chunks`` alike."""
    kwargs: dict[str, Any] = {
        "masked": masked,
        "rsv_allowed": rsv_allowed,
        "max_frame_size": limits[0],
        "max_message_size": limits[1],
    }
    fast = FrameReader(**kwargs)
    with general_only():
        general = FrameReader(**kwargs)
    assert outcome(fast, chunks) == outcome(general, chunks)


@st.composite
def raw_frame(draw: st.DrawFn, masked: bool) -> bytes:
    """One frame of any opcode, FIN, RSV and length around 125, text often not UTF-8,
    usually masked as ``masked`` requires."""
    # Mostly the fast path's own frames (whole text and binary), some of everything else.
    opcode = draw(st.sampled_from([1, 1, 1, 2, 2, 2, 0, 3, 8, 9, 10, 11]))
    payload = draw(
        st.one_of(
            utf8_ish,
            st.binary(max_size=8),
            st.integers(118, 130).map(lambda n: bytes([0x61]) * n),
            st.integers(118, 130).map(lambda n: "é".encode() * (n // 2) + b"\xc3"[: n % 2]),
        )
    )
    fin = draw(st.integers(0, 7)) > 0
    rsv = draw(st.sampled_from([0, 0, 0, 0, 0, 0, RSV1, 0x20, 0x10]))
    mask: bool | bytes = masked if draw(st.integers(0, 15)) else not masked
    if mask:
        mask = draw(st.sampled_from([KEY, b"\x00\x00\x00\x00", b"\xff\x01\x80\x7f"]))
    return encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv)


@st.composite
def streams(draw: st.DrawFn, masked: bool) -> bytes:
    if draw(st.booleans()):
        return draw(mutated(masked))
    return b"".join(draw(st.lists(raw_frame(masked), min_size=1, max_size=8)))


@EQUIV
@given(
    masked=st.booleans(),
    rsv_allowed=st.sampled_from([0, RSV1]),
    limits=st.sampled_from(LIMITS),
    data=st.data(),
)
def test_fast_and_general_paths_agree(
    masked: bool, rsv_allowed: int, limits: tuple[int, int], data: st.DataObject
) -> None:
    stream = data.draw(streams(masked))
    chunks = data.draw(chunkings(stream))
    assert_paths_agree(chunks, masked, rsv_allowed, limits)


def test_many_short_frames_in_one_buffer_agree() -> None:
    """The benchmark's shape: 1000 masked binary frames and some text, one feed."""
    payloads = [bytes(range(i % 126)) for i in range(1000)]
    stream = b"".join(
        encode_frame(1 if i % 7 == 0 else 2, p if i % 7 else b"x" * len(p), mask=KEY)
        for i, p in enumerate(payloads)
    )
    with general_only():
        general = FrameReader(masked=True)
    assert outcome(FrameReader(masked=True), [stream]) == outcome(general, [stream])


def run_one(
    frame: bytes, *, masked: bool = True, rsv_allowed: int = 0, limits: tuple[int, int] = LIMITS[0]
) -> tuple[int, list[Frame]]:
    """``decode_run`` over one frame (then a byte of padding) → where it stopped, frames."""
    rows = frames._fast_rows(rsv_allowed, masked, min(125, *limits))
    data = frame + b"\x00"
    out: list[Frame] = []
    return fastpath.decode_run(data, 0, len(data) - 1, rows, masked, Frame, out), out


def _enc(opcode: int, payload: bytes, **kw: Any) -> bytes:
    kw.setdefault("mask", KEY)
    return encode_frame(opcode, payload, **kw)


# (id, frame, run_one keyword arguments, taken by the fast path?)
CASES: list[tuple[str, bytes, dict[str, Any], bool]] = [
    ("binary-125-masked", _enc(2, b"b" * 125), {}, True),
    ("binary-0-masked", _enc(2, b""), {}, True),
    ("text-utf8-masked", _enc(1, "héllo €".encode()), {}, True),
    ("binary-unmasked-client", _enc(2, b"abc", mask=False), {"masked": False}, True),
    ("text-not-utf8", _enc(1, b"ab\xff"), {}, False),
    ("text-surrogate", _enc(1, b"\xed\xa0\x80"), {}, False),
    ("binary-126", _enc(2, b"b" * 126), {}, False),
    ("ping", _enc(9, b"p"), {}, False),
    ("close", _enc(8, b"\x03\xe8"), {}, False),
    ("fragment-first", _enc(2, b"ab", fin=False), {}, False),
    ("continuation", _enc(0, b"ab"), {}, False),
    ("unmasked-on-server", _enc(2, b"ab", mask=False), {}, False),
    ("masked-on-client", _enc(2, b"ab"), {"masked": False}, False),
    ("rsv1-not-negotiated", _enc(2, b"ab", rsv=RSV1), {}, False),
    ("rsv1-negotiated", _enc(2, b"ab", rsv=RSV1), {"rsv_allowed": RSV1}, True),
    ("rsv1-text-negotiated-not-utf8", _enc(1, b"\xff", rsv=RSV1), {"rsv_allowed": RSV1}, True),
    ("rsv2", _enc(2, b"ab", rsv=0x20), {}, False),
    ("reserved-opcode", _enc(3, b"ab"), {}, False),
    ("over-frame-limit", _enc(2, b"b" * 11), {"limits": (10, 1 << 22)}, False),
    ("at-frame-limit", _enc(2, b"b" * 10), {"limits": (10, 1 << 22)}, True),
    ("over-message-limit", _enc(2, b"b" * 11), {"limits": (1 << 20, 10)}, False),
]


@pytest.mark.parametrize(
    ("frame", "kwargs", "taken"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decode_run_takes_exactly_whole_short_valid_frames(
    frame: bytes, kwargs: dict[str, Any], taken: bool
) -> None:
    stopped, out = run_one(frame, **kwargs)
    if not taken:
        assert (stopped, out) == (0, [])
        return
    assert stopped == len(frame)
    max_frame, max_message = kwargs.get("limits", LIMITS[0])
    with general_only():
        general = FrameReader(
            masked=kwargs.get("masked", True),
            rsv_allowed=kwargs.get("rsv_allowed", 0),
            max_frame_size=max_frame,
            max_message_size=max_message,
        )
    assert out == general.feed(frame)


def test_decode_run_stops_at_an_incomplete_frame() -> None:
    frame = _enc(2, b"b" * 50)
    rows = frames._fast_rows(0, True, 125)
    out: list[Frame] = []
    data = frame + frame[:-1]
    assert fastpath.decode_run(data, 0, len(data) - 1, rows, True, Frame, out) == len(frame)
    assert [f.payload for f in out] == [b"b" * 50]


def test_reader_decodes_whole_short_frames_on_the_fast_path() -> None:
    """Guards the wiring: the reader hands such frames to ``decode_run`` (pure path)."""
    stream = b"".join(_enc(2, bytes([i]) * i) for i in range(126)) + _enc(9, b"p")
    taken: list[int] = []
    real = fastpath.decode_run

    def counting(data: bytes, pos: int, *args: Any) -> int:
        stop = real(data, pos, *args)
        taken.append(stop - pos)
        return stop

    reader = FrameReader(masked=True)
    with mock.patch.object(fastpath, "decode_run", counting):
        got = reader.feed(stream)
    assert [f.payload for f in got] == [bytes([i]) * i for i in range(126)] + [b"p"]
    if frames._speedups.C_PARSE is None:  # the compiled parser takes them otherwise
        assert sum(taken) == len(stream) - len(_enc(9, b"p"))


@st.composite
def uniform_runs(draw: st.DrawFn) -> bytes:
    """A long run of same-shape masked frames (what :func:`fastpath.decode_uniform`
    takes), each with its own key and payload, often broken part-way by a frame of
    another shape, an invalid text payload or a truncated tail."""
    count = draw(st.integers(fastpath.UNIFORM_MIN - 2, 3 * fastpath.UNIFORM_MIN))
    opcode = draw(st.sampled_from([1, 2]))
    length = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 60, 124, 125]))
    rsv = draw(st.sampled_from([0, 0, RSV1]))
    keys = st.binary(min_size=4, max_size=4)
    text = st.text(st.characters(max_codepoint=0x7F), min_size=length, max_size=length)
    body = text.map(str.encode) if opcode == 1 else st.binary(min_size=length, max_size=length)
    stream = [encode_frame(opcode, draw(body), mask=draw(keys), rsv=rsv) for _ in range(count)]
    breaker = draw(
        st.sampled_from(
            [
                None,
                encode_frame(opcode, b"y" * (length % 125 + 1), mask=KEY),  # another length
                encode_frame(9, b"p", mask=KEY),  # a control frame
                encode_frame(2 if opcode == 1 else 1, b"z" * length, mask=KEY),  # other opcode
                encode_frame(opcode, b"q" * length, mask=False),  # unmasked on a server
                encode_frame(opcode, b"\xff" * length, mask=KEY),  # text: invalid UTF-8
                encode_frame(opcode, b"r" * length, fin=False, mask=KEY),  # a fragment
            ]
        )
    )
    if breaker is not None:
        stream.insert(draw(st.integers(0, count)), breaker)
    data = b"".join(stream)
    return data[: len(data) - draw(st.integers(0, 3))]


@EQUIV
@given(
    rsv_allowed=st.sampled_from([0, RSV1]),
    limits=st.sampled_from(LIMITS),
    data=st.data(),
)
def test_uniform_runs_decode_as_the_general_loop_does(
    rsv_allowed: int, limits: tuple[int, int], data: st.DataObject
) -> None:
    stream = data.draw(uniform_runs())
    chunks = data.draw(st.one_of(st.just([stream]), chunkings(stream)))
    assert_paths_agree(chunks, True, rsv_allowed, limits)


def test_a_long_run_is_unmasked_by_decode_uniform_up_to_where_it_breaks() -> None:
    """Guards the wiring and the cut: a 100-frame run, broken by a ping at 70 and
    by invalid text at 90, goes to ``decode_uniform`` at its start (pure path)."""
    keys = [bytes([i, 255 - i, i ^ 0x5A, 7]) for i in range(100)]
    texts = [f"{i:03d}".encode() * 20 for i in range(100)]
    texts[90] = b"\xc3" * 60
    parts = [_enc(1, t, mask=k) for t, k in zip(texts, keys, strict=True)]
    parts.insert(70, _enc(9, b"p"))
    stream = b"".join(parts)
    spans: list[tuple[int, int]] = []
    real = fastpath.decode_uniform

    def spy(data: bytes, pos: int, *args: Any) -> int:
        stop = real(data, pos, *args)
        spans.append((pos, stop))
        return stop

    out: list[Frame] = []
    with mock.patch.object(fastpath, "decode_uniform", spy), pytest.raises(ProtocolError) as err:
        FrameReader(masked=True).feed_into(stream, out)
    assert err.value.code == 1007
    assert [f.payload for f in out] == [*texts[:70], b"p", *texts[70:90]]
    assert [f.opcode for f in out] == [1] * 70 + [9] + [1] * 20
    if frames._speedups.C_PARSE is None:
        assert spans == [(0, 70 * len(parts[0]))]

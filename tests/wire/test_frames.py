"""Frame encoding and the streaming FrameReader (RFC 6455 §5)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushbench.wire.errors import ProtocolError
from pushbench.wire.frames import (
    Frame,
    FrameReader,
    Opcode,
    encode_close_payload,
    encode_frame,
    parse_close_payload,
)
from pushbench.wire.mask import apply_mask

from .helpers import (
    BOUNDARY_SIZES,
    MaskArg,
    chunkings,
    encode,
    encode_all,
    feed_all,
    first_invalid_utf8,
    frame_streams,
    masks,
    one_byte_chunks,
    pattern_bytes,
    pattern_text,
    split_at,
    utf8_ish,
)

pytestmark = pytest.mark.usefixtures("mask_impl")

KEY = bytes.fromhex("37fa213d")  # the RFC 6455 §5.7 example key
P256 = pattern_bytes(256, 1)
P64K = pattern_bytes(65536, 2)

# (id, frames, mask key or None, wire bytes): both directions must hold exactly.
VECTORS: list[tuple[str, list[Frame], bytes | None, bytes]] = [
    # RFC 6455 §5.7
    ("hello-unmasked", [Frame(1, b"Hello")], None, bytes.fromhex("810548656c6c6f")),
    ("hello-masked", [Frame(1, b"Hello")], KEY, bytes.fromhex("818537fa213d7f9f4d5158")),
    (
        "fragmented-hel-lo",
        [Frame(1, b"Hel", fin=False), Frame(0, b"lo")],
        None,
        bytes.fromhex("010348656c" + "80026c6f"),
    ),
    ("ping-hello", [Frame(9, b"Hello")], None, bytes.fromhex("890548656c6c6f")),
    ("pong-hello-masked", [Frame(10, b"Hello")], KEY, bytes.fromhex("8a8537fa213d7f9f4d5158")),
    ("binary-256", [Frame(2, P256)], None, bytes.fromhex("827e0100") + P256),
    ("binary-65536", [Frame(2, P64K)], None, bytes.fromhex("827f0000000000010000") + P64K),
    # More, in the same style.
    ("empty-text", [Frame(1, b"")], None, b"\x81\x00"),
    ("empty-binary-masked", [Frame(2, b"")], b"\x01\x02\x03\x04", b"\x82\x80\x01\x02\x03\x04"),
    ("close-1000", [Frame(8, b"\x03\xe8")], None, b"\x88\x02\x03\xe8"),
    ("close-empty", [Frame(8, b"")], None, b"\x88\x00"),
    (
        "close-1001-bye-masked",
        [Frame(8, b"\x03\xe9bye")],
        b"\x00\x00\x00\x00",  # the zero key leaves the payload as is
        b"\x88\x85\x00\x00\x00\x00\x03\xe9bye",
    ),
    ("binary-125", [Frame(2, b"x" * 125)], None, b"\x82\x7d" + b"x" * 125),
    ("binary-126", [Frame(2, b"x" * 126)], None, b"\x82\x7e\x00\x7e" + b"x" * 126),
    (
        "binary-65535-masked",
        [Frame(2, P64K[:65535])],
        KEY,
        b"\x82\xfe\xff\xff" + KEY + bytes(apply_mask(P64K[:65535], KEY)),
    ),
    (
        "binary-65536-masked",
        [Frame(2, P64K)],
        KEY,
        b"\x82\xff" + (65536).to_bytes(8) + KEY + bytes(apply_mask(P64K, KEY)),
    ),
    ("rsv1-text", [Frame(1, b"x", rsv=0x40)], None, b"\xc1\x01x"),
    ("rsv-all-binary", [Frame(2, b"", rsv=0x70)], None, b"\xf2\x00"),
    ("continuation-not-final", [Frame(2, b"a", fin=False), Frame(0, b"b", fin=False)], None,
     b"\x02\x01a\x00\x01b"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("frames", "key", "data"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_vector_serialize(frames: list[Frame], key: bytes | None, data: bytes) -> None:
    assert encode_all(frames, key if key is not None else False) == data


@pytest.mark.parametrize(
    ("frames", "key", "data"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
def test_vector_parse(frames: list[Frame], key: bytes | None, data: bytes) -> None:
    def reader() -> FrameReader:
        return FrameReader(masked=key is not None, rsv_allowed=0x70)

    assert reader().feed(data) == frames
    assert feed_all(reader(), [data[:1], data[1:3], data[3:]]) == frames
    if len(data) < 1000:
        assert feed_all(reader(), one_byte_chunks(data)) == frames
    else:
        assert feed_all(reader(), [data[i : i + 997] for i in range(0, len(data), 997)]) == frames


def test_parsed_frame_fields() -> None:
    (frame,) = FrameReader(masked=True).feed(bytes.fromhex("818537fa213d7f9f4d5158"))
    assert frame.opcode == Opcode.TEXT
    assert bytes(frame.payload) == b"Hello"
    assert frame.fin is True
    assert frame.rsv == 0


# --- minimal length encoding --------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x82\x00"),
        (1, b"\x82\x01"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (127, b"\x82\x7e\x00\x7f"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (200 * 1024, b"\x82\x7f" + (200 * 1024).to_bytes(8)),
    ],
)
def test_minimal_length_encoding(size: int, header: bytes) -> None:
    payload = bytes(size)
    assert encode_frame(Opcode.BINARY, payload) == header + payload
    masked = encode_frame(Opcode.BINARY, payload, mask=KEY)
    assert masked[:1] == header[:1]
    assert masked[1] == header[1] | 0x80
    assert masked[2 : len(header)] == header[2:]
    assert masked[len(header) : len(header) + 4] == KEY


@pytest.mark.parametrize(
    "header",
    [
        b"\x82\x7e\x00\x00",  # 16-bit form for 0
        b"\x82\x7e\x00\x7d",  # 16-bit form for 125
        b"\x82\x7f" + (0).to_bytes(8),  # 64-bit form for 0
        b"\x82\x7f" + (125).to_bytes(8),
        b"\x82\x7f" + (126).to_bytes(8),
        b"\x82\x7f" + (65535).to_bytes(8),  # 64-bit form for a 16-bit length
        b"\x82\x7f" + (1 << 63).to_bytes(8),  # most significant bit set
        b"\x82\x7f" + ((1 << 64) - 1).to_bytes(8),
        b"\x82\x7f" + ((1 << 63) + 65536).to_bytes(8),
    ],
)
@pytest.mark.parametrize("masked", [False, True])
def test_rejects_non_minimal_and_oversized_lengths(header: bytes, masked: bool) -> None:
    if masked:
        header = header[:1] + bytes([header[1] | 0x80]) + header[2:] + KEY
    reader = FrameReader(masked=masked, max_frame_size=1 << 62, max_message_size=1 << 62)
    with pytest.raises(ProtocolError) as info:
        reader.feed(header)  # the header alone is enough
    assert info.value.code == 1002


def test_accepts_largest_minimal_64bit_header_without_payload() -> None:
    reader = FrameReader(masked=False, max_frame_size=(1 << 63) - 1, max_message_size=1 << 63)
    assert reader.feed(b"\x82\x7f" + ((1 << 63) - 1).to_bytes(8)) == []
    assert reader.feed(b"abc") == []  # streaming, nothing complete


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
@pytest.mark.parametrize("masked", [False, True])
def test_every_split_inside_the_header(size: int, masked: bool) -> None:
    """Cut the stream at every offset of the header (and just after): same frame."""
    frame = Frame(Opcode.BINARY, pattern_bytes(size, size))
    data = encode_all([frame, Frame(Opcode.PING, b"next")], KEY if masked else False)
    header = len(data) - size - (10 if masked else 6)  # minus the ping frame
    for cut in range(header + 2):
        assert feed_all(FrameReader(masked=masked), [data[:cut], data[cut:]]) == [
            frame,
            Frame(Opcode.PING, b"next"),
        ]
    reader = FrameReader(masked=masked)
    for i in range(header - 1):  # the header one byte at a time, kept in _pending
        assert reader.feed(data[i : i + 1]) == []
        assert len(reader._pending) == i + 1
    assert reader.feed(data[header - 1 :]) == [frame, Frame(Opcode.PING, b"next")]
    assert reader._pending == b""


# --- masking direction --------------------------------------------------------


def test_server_reader_rejects_unmasked() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameReader(masked=True).feed(encode_frame(Opcode.TEXT, b"hi"))
    assert info.value.code == 1002


def test_client_reader_rejects_masked() -> None:
    with pytest.raises(ProtocolError) as info:
        FrameReader(masked=False).feed(encode_frame(Opcode.TEXT, b"hi", mask=KEY))
    assert info.value.code == 1002


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE, Opcode.BINARY])
def test_masking_checked_for_every_opcode(opcode: int) -> None:
    with pytest.raises(ProtocolError):
        FrameReader(masked=True).feed(encode_frame(opcode, b""))
    with pytest.raises(ProtocolError):
        FrameReader(masked=False).feed(encode_frame(opcode, b"", mask=True))


def test_random_mask_keys_differ() -> None:
    frames = {encode_frame(Opcode.TEXT, b"same", mask=True)[2:6] for _ in range(20)}
    assert len(frames) > 1


# --- framing violations -------------------------------------------------------


def _reject(data: bytes, code: int = 1002, *, masked: bool = False, **kw: int) -> None:
    """``data`` must fail with ``code``, fed whole and one byte at a time."""
    with pytest.raises(ProtocolError) as info:
        FrameReader(masked=masked, **kw).feed(data)
    assert info.value.code == code
    reader = FrameReader(masked=masked, **kw)
    with pytest.raises(ProtocolError) as info:
        feed_all(reader, one_byte_chunks(data))
    assert info.value.code == code


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes(opcode: int) -> None:
    _reject(bytes([0x80 | opcode, 0]))
    _reject(encode_frame(opcode, b"x", mask=KEY), masked=True)


@pytest.mark.parametrize("bit", [0x40, 0x20, 0x10])
def test_rsv_bits_rejected_unless_allowed(bit: int) -> None:
    data = encode_frame(Opcode.TEXT, b"hi", rsv=bit)
    _reject(data)
    _reject(data, rsv_allowed=0x70 & ~bit)
    assert FrameReader(masked=False, rsv_allowed=bit).feed(data) == [Frame(1, b"hi", rsv=bit)]
    assert FrameReader(masked=False, rsv_allowed=0x70).feed(data) == [Frame(1, b"hi", rsv=bit)]


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
@pytest.mark.parametrize("size", [126, 127, 65535, 65536])
def test_control_frames_over_125_bytes(opcode: int, size: int) -> None:
    data = encode_frame(opcode, b"\x03\xe8" + bytes(size - 2))
    _reject(data)
    # The error comes from the header: the payload never has to arrive.
    with pytest.raises(ProtocolError):
        FrameReader(masked=False).feed(data[:10])


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG])
def test_control_frame_of_125_bytes_is_fine(opcode: int) -> None:
    assert FrameReader(masked=False).feed(encode_frame(opcode, bytes(125))) == [
        Frame(opcode, bytes(125))
    ]


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_fragmented_control_frames(opcode: int) -> None:
    _reject(encode_frame(opcode, b"", fin=False))
    _reject(encode_frame(opcode, b"", fin=False, mask=KEY), masked=True)


@pytest.mark.parametrize("fin", [True, False])
def test_continuation_without_start(fin: bool) -> None:
    _reject(encode_frame(Opcode.CONT, b"x", fin=fin))


def test_continuation_after_finished_message() -> None:
    _reject(encode_frame(Opcode.TEXT, b"a") + encode_frame(Opcode.CONT, b"b"))


@pytest.mark.parametrize("first", [Opcode.TEXT, Opcode.BINARY])
@pytest.mark.parametrize("second", [Opcode.TEXT, Opcode.BINARY])
@pytest.mark.parametrize("fin", [True, False])
def test_new_data_frame_inside_fragmented_message(first: int, second: int, fin: bool) -> None:
    data = encode_frame(first, b"a", fin=False) + encode_frame(second, b"b", fin=fin)
    _reject(data)
    # ... also with a control frame and a continuation in between
    data = (
        encode_frame(first, b"a", fin=False)
        + encode_frame(Opcode.PING, b"p")
        + encode_frame(Opcode.CONT, b"a", fin=False)
        + encode_frame(second, b"b", fin=fin)
    )
    _reject(data)


def test_in_message_property() -> None:
    reader = FrameReader(masked=False)
    assert not reader.in_message
    reader.feed(encode_frame(Opcode.BINARY, b"a", fin=False))
    assert reader.in_message
    reader.feed(encode_frame(Opcode.PING, b""))
    assert reader.in_message
    reader.feed(encode_frame(Opcode.CONT, b"b"))
    assert not reader.in_message


def test_control_frames_between_fragments() -> None:
    frames = [
        Frame(1, "κό".encode()[:3], fin=False),
        Frame(9, b"ping-1"),
        Frame(10, b"pong"),
        Frame(0, "κό".encode()[3:], fin=False),
        Frame(9, b""),
        Frame(0, b"!"),
        Frame(2, b"next"),
    ]
    data = encode_all(frames)
    assert FrameReader(masked=False).feed(data) == frames
    assert feed_all(FrameReader(masked=False), one_byte_chunks(data)) == frames


def test_reader_stays_failed() -> None:
    reader = FrameReader(masked=False)
    with pytest.raises(ProtocolError) as first:
        reader.feed(b"\x83\x00")
    with pytest.raises(ProtocolError) as second:
        reader.feed(encode_frame(Opcode.TEXT, b"fine"))
    assert second.value is first.value


def test_frames_before_violation_are_kept() -> None:
    reader = FrameReader(masked=False)
    out: list[Frame] = []
    data = encode_frame(Opcode.TEXT, b"a") + encode_frame(Opcode.PING, b"b") + b"\x8b\x00"
    with pytest.raises(ProtocolError):
        reader.feed_into(data, out)
    assert out == [Frame(1, b"a"), Frame(9, b"b")]


# --- size limits (1009), from the header --------------------------------------


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("size", [1001, 65535, 65536, 1 << 40, (1 << 63) - 1])
def test_max_frame_size_from_header(masked: bool, size: int) -> None:
    header = encode_frame(Opcode.BINARY, b"", mask=KEY if masked else False)[:1]
    if size < 65536:
        header += bytes([0xFE if masked else 0x7E]) + size.to_bytes(2)
    else:
        header += bytes([0xFF if masked else 0x7F]) + size.to_bytes(8)
    if masked:
        header += KEY
    reader = FrameReader(masked=masked, max_frame_size=1000, max_message_size=1 << 62)
    with pytest.raises(ProtocolError) as info:
        reader.feed(header)
    assert info.value.code == 1009


def test_max_frame_size_boundary() -> None:
    reader = FrameReader(masked=False, max_frame_size=1000)
    assert reader.feed(encode_frame(Opcode.BINARY, bytes(1000))) == [Frame(2, bytes(1000))]
    with pytest.raises(ProtocolError) as info:
        reader.feed(encode_frame(Opcode.BINARY, bytes(1001))[:4])
    assert info.value.code == 1009


def test_max_message_size_single_frame() -> None:
    reader = FrameReader(masked=False, max_frame_size=10_000, max_message_size=1000)
    assert reader.feed(encode_frame(Opcode.TEXT, b"x" * 1000)) == [Frame(1, b"x" * 1000)]
    with pytest.raises(ProtocolError) as info:
        reader.feed(encode_frame(Opcode.TEXT, b"x" * 1001)[:4])
    assert info.value.code == 1009


@pytest.mark.parametrize("masked", [False, True])
def test_max_message_size_fragmented(masked: bool) -> None:
    mask: MaskArg = KEY if masked else False
    reader = FrameReader(masked=masked, max_frame_size=1000, max_message_size=1000)
    ok = (
        encode_frame(Opcode.BINARY, bytes(400), fin=False, mask=mask)
        + encode_frame(Opcode.PING, b"ping payloads do not count", mask=mask)
        + encode_frame(Opcode.CONT, bytes(400), fin=False, mask=mask)
    )
    assert len(reader.feed(ok)) == 3
    third = encode_frame(Opcode.CONT, bytes(201), mask=mask)
    header_len = 8 if masked else 4
    with pytest.raises(ProtocolError) as info:
        reader.feed(third[:header_len])  # only the header of the frame going over
    assert info.value.code == 1009


def test_max_message_size_resets_between_messages() -> None:
    reader = FrameReader(masked=False, max_frame_size=1000, max_message_size=1000)
    for _ in range(5):
        frames = reader.feed(
            encode_frame(Opcode.BINARY, bytes(600), fin=False)
            + encode_frame(Opcode.CONT, bytes(400))
        )
        assert len(frames) == 2


# --- text is validated incrementally (1007) -----------------------------------


def test_invalid_utf8_unfragmented() -> None:
    _reject(encode_frame(Opcode.TEXT, b"\xff"), 1007)
    _reject(encode_frame(Opcode.TEXT, b"abc\xed\xa0\x80"), 1007)
    _reject(encode_frame(Opcode.TEXT, b"\xc0\xaf"), 1007)  # overlong
    _reject(encode_frame(Opcode.TEXT, b"\xe2\x82"), 1007)  # incomplete at the end
    _reject(encode_frame(Opcode.TEXT, b"\xe2\x82", mask=KEY), 1007, masked=True)


def test_binary_is_not_validated() -> None:
    assert FrameReader(masked=False).feed(encode_frame(Opcode.BINARY, b"\xff\xed\xa0\x80")) == [
        Frame(2, b"\xff\xed\xa0\x80")
    ]


def test_invalid_byte_in_first_fragment_fails_before_final_fragment() -> None:
    reader = FrameReader(masked=False)
    with pytest.raises(ProtocolError) as info:
        reader.feed(encode_frame(Opcode.TEXT, b"ok\xff", fin=False))
    assert info.value.code == 1007


def test_code_point_split_across_fragments() -> None:
    euro = "€".encode()
    frames = [Frame(1, euro[:1], fin=False), Frame(0, euro[1:2], fin=False), Frame(0, euro[2:])]
    assert FrameReader(masked=False).feed(encode_all(frames)) == frames
    # U+D800 split the same way is caught when its second byte arrives.
    reader = FrameReader(masked=False)
    reader.feed(encode_frame(Opcode.TEXT, b"\xed", fin=False))
    with pytest.raises(ProtocolError) as info:
        reader.feed(encode_frame(Opcode.CONT, b"\xa0", fin=False))
    assert info.value.code == 1007


def test_incomplete_code_point_at_end_of_final_fragment() -> None:
    reader = FrameReader(masked=False)
    reader.feed(encode_frame(Opcode.TEXT, b"a\xf0\x9f", fin=False))
    reader.feed(encode_frame(Opcode.PING, b""))
    with pytest.raises(ProtocolError) as info:
        reader.feed(encode_frame(Opcode.CONT, b"\x98"))
    assert info.value.code == 1007
    reader = FrameReader(masked=False)
    reader.feed(encode_frame(Opcode.TEXT, b"a\xf0\x9f\x98", fin=False))
    with pytest.raises(ProtocolError):
        reader.feed(encode_frame(Opcode.CONT, b""))  # empty final fragment


@pytest.mark.parametrize("masked", [False, True])
def test_surrogate_fails_after_two_bytes_of_a_streamed_frame(masked: bool) -> None:
    data = encode_frame(Opcode.TEXT, b"abc\xed\xa0\x80def", mask=KEY if masked else False)
    header = 6 if masked else 2
    reader = FrameReader(masked=masked)
    assert reader.feed(data[: header + 4]) == []  # "abc\xed": still a valid prefix
    with pytest.raises(ProtocolError) as info:
        reader.feed(data[header + 4 : header + 5])  # "\xa0"
    assert info.value.code == 1007


@pytest.mark.parametrize("masked", [False, True])
def test_large_frame_with_bad_start_fails_before_the_rest_arrives(masked: bool) -> None:
    payload = b"\xc3\x28" + pattern_text(150_000, 3)
    data = encode_frame(Opcode.TEXT, payload, mask=KEY if masked else False)
    reader = FrameReader(masked=masked)
    header = 14 if masked else 10
    with pytest.raises(ProtocolError) as info:
        reader.feed(data[: header + 100])
    assert info.value.code == 1007


def test_large_frame_fails_at_bad_byte_byte_by_byte() -> None:
    payload = pattern_text(3000, 4) + b"\xf8" + pattern_text(3000, 5)
    bad = payload.index(b"\xf8")
    data = encode_frame(Opcode.TEXT, payload, mask=KEY)
    reader = FrameReader(masked=True)
    header = 8  # 16-bit length and a mask key
    for i in range(header + bad):
        assert reader.feed(data[i : i + 1]) == []
    with pytest.raises(ProtocolError) as info:
        reader.feed(data[header + bad : header + bad + 1])
    assert info.value.code == 1007


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=30), data=st.data())
def test_valid_text_any_fragmentation_and_chunking(text: str, data: st.DataObject) -> None:
    payload = text.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=4)))
    bounds = [0, *cuts, len(payload)]
    pieces = [payload[a:b] for a, b in itertools.pairwise(bounds)]
    frames = [
        Frame(Opcode.TEXT if i == 0 else Opcode.CONT, p, fin=i == len(pieces) - 1)
        for i, p in enumerate(pieces)
    ]
    stream = encode_all(frames, KEY)
    got = feed_all(FrameReader(masked=True), data.draw(chunkings(stream)))
    assert got == frames


@settings(max_examples=150, deadline=None)
@given(payload=utf8_ish, masked=st.booleans(), data=st.data())
def test_text_fails_in_the_read_holding_the_first_bad_byte(
    payload: bytes, masked: bool, data: st.DataObject
) -> None:
    """Fragmented, interleaved with pings, chunked: 1007 arrives exactly on time.

    The feed() call that raises must be the one delivering the first byte at
    which the text can no longer be valid UTF-8 (or the last byte of the final
    fragment, for an incomplete code point at the end), and no earlier call.
    """
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    bounds = [0, *cuts, len(payload)]
    pieces = [payload[a:b] for a, b in itertools.pairwise(bounds)]
    frames: list[Frame] = []
    for i, piece in enumerate(pieces):
        if i:
            frames.append(Frame(Opcode.PING, b"p" * i))
        frames.append(Frame(Opcode.CONT if i else Opcode.TEXT, piece, fin=i == len(pieces) - 1))
    mask: MaskArg = data.draw(masks) if masked else False
    stream = b""
    where: list[int] = []  # stream offset of each payload byte
    for frame in frames:
        enc = encode(frame, mask)
        if frame.opcode < 8:
            start = len(stream) + len(enc) - len(frame.payload)
            where.extend(range(start, start + len(frame.payload)))
        stream += enc
    bad_at = first_invalid_utf8(payload)
    if bad_at is None:
        deadline = None
    elif bad_at < len(payload):
        deadline = where[bad_at]
    else:
        deadline = len(stream) - 1  # the last byte of the final fragment
    reader = FrameReader(masked=masked)
    got: list[Frame] = []
    offset = 0
    for chunk in split_at(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=8))):
        end = offset + len(chunk)
        if deadline is not None and offset <= deadline < end:
            with pytest.raises(ProtocolError) as info:
                reader.feed(chunk)
            assert info.value.code == 1007
            return
        got.extend(reader.feed(chunk))
        offset = end
    assert deadline is None
    assert got == frames


# --- close payloads -----------------------------------------------------------


def test_close_payload_empty_is_1005() -> None:
    assert parse_close_payload(b"") == (1005, "")
    assert encode_close_payload(None) == b""


def test_close_payload_one_byte() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(b"\x03")
    assert info.value.code == 1002


@pytest.mark.parametrize(
    "code", [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_close_payload_invalid_codes(code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(code.to_bytes(2) + b"reason")
    assert info.value.code == 1002


@pytest.mark.parametrize(
    "code",
    [
        1000,
        1001,
        1002,
        1003,
        1007,
        1008,
        1009,
        1010,
        1011,
        1012,
        1013,
        1014,
        3000,
        3999,
        4000,
        4999,
    ],
)
def test_close_payload_valid_codes(code: int) -> None:
    assert parse_close_payload(encode_close_payload(code, "bye ✓")) == (code, "bye ✓")
    assert parse_close_payload(code.to_bytes(2)) == (code, "")


def test_close_reason_not_utf8() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(b"\x03\xe8\xff")
    assert info.value.code == 1007
    with pytest.raises(ProtocolError) as info:
        parse_close_payload(b"\x03\xe8\xed\xa0\x80")
    assert info.value.code == 1007


def test_close_reason_too_long() -> None:
    assert len(encode_close_payload(1000, "x" * 123)) == 125
    with pytest.raises(ValueError):
        encode_close_payload(1000, "x" * 124)


# --- round trips --------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(stream=frame_streams(), mask=masks, data=st.data())
def test_round_trip_client_to_server(
    stream: list[Frame], mask: MaskArg, data: st.DataObject
) -> None:
    encoded = encode_all(stream, mask)
    chunks = data.draw(chunkings(encoded))
    assert feed_all(FrameReader(masked=True), chunks) == stream


@settings(max_examples=80, deadline=None)
@given(stream=frame_streams(), data=st.data())
def test_round_trip_server_to_client(stream: list[Frame], data: st.DataObject) -> None:
    encoded = encode_all(stream)
    chunks = data.draw(chunkings(encoded))
    assert feed_all(FrameReader(masked=False), chunks) == stream


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from(BOUNDARY_SIZES),
    opcode=st.sampled_from([Opcode.TEXT, Opcode.BINARY]),
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0x10, 0x20, 0x40, 0x70]),
    mask=st.one_of(st.just(False), masks),
    data=st.data(),
)
def test_round_trip_single_frame_at_boundaries(
    size: int, opcode: int, fin: bool, rsv: int, mask: MaskArg, data: st.DataObject
) -> None:
    payload = pattern_text(size, size)[:size] if opcode == Opcode.TEXT else pattern_bytes(size, 9)
    if opcode == Opcode.TEXT:
        payload = payload.decode(errors="ignore").encode()  # trimmed to valid text
    frame = Frame(opcode, payload, fin=fin, rsv=rsv)
    encoded = encode_all([frame], mask)
    assert len(encoded) == len(payload) + (
        2 if len(payload) < 126 else 4 if len(payload) < 65536 else 10
    ) + (4 if mask is not False else 0)
    reader = FrameReader(masked=mask is not False, rsv_allowed=rsv)
    assert feed_all(reader, data.draw(chunkings(encoded))) == [frame]
    assert reader.in_message is not fin

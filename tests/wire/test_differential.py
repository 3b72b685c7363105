"""Differential tests against wsproto 1.3 and websockets: same bytes, same frames.

Both directions: what our encoder writes decodes identically with theirs, and
what theirs writes decodes identically with ours. With the masking key pinned
(patching their random source) the bytes themselves must be identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ProtocolError as WsProtocolError
from websockets.frames import Close as WsClose
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode as WsOpcode
from websockets.streams import StreamReader
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection
from wsproto.events import Request as WsprotoRequest
from wsproto.frame_protocol import FrameProtocol, ParseFailed
from wsproto.handshake import H11Handshake

from pushbench.wire.errors import HandshakeError, ProtocolError, is_valid_close_code
from pushbench.wire.frames import Frame, FrameReader, Opcode, encode_frame, parse_close_payload
from pushbench.wire.handshake import (
    accept,
    check_response,
    client_request,
    parse_request,
    parse_response,
)
from pushbench.wire.protocol import Connection, Role

from .helpers import encode_all, frame_streams, masks, split_at

pytestmark = pytest.mark.usefixtures("mask_impl")

KEY = bytes.fromhex("37fa213d")

# A normalized view both libraries can be brought to: the frame "shape" (message
# opcode and FIN of every frame) and the content (whole messages, control payloads).
Normalized = tuple[list[tuple[int, bool]], list[tuple[Any, ...]]]


def normalize_ours(frames: list[Frame]) -> Normalized:
    shape: list[tuple[int, bool]] = []
    content: list[tuple[Any, ...]] = []
    parts: list[bytes] = []
    opcode = 0
    for f in frames:
        if f.opcode < 8:
            if f.opcode != Opcode.CONT:
                opcode, parts = f.opcode, []
            parts.append(bytes(f.payload))
            shape.append((opcode, f.fin))
            if f.fin:
                content.append(("msg", opcode, b"".join(parts)))
        elif int(f.opcode) == Opcode.CLOSE:
            shape.append((8, f.fin))
            content.append(("close", *parse_close_payload(f.payload)))
        else:
            shape.append((f.opcode, f.fin))
            content.append(("ctl", f.opcode, bytes(f.payload)))
    return shape, content


def wsproto_decode(data: bytes, *, client: bool) -> Normalized:
    """Decode with wsproto's FrameProtocol (``client``: the receiving side is a client)."""
    proto = FrameProtocol(client=client, extensions=[])
    proto.receive_bytes(data)
    shape: list[tuple[int, bool]] = []
    content: list[tuple[Any, ...]] = []
    parts: list[bytes] = []
    for f in proto.received_frames():
        assert f.frame_finished  # everything was fed at once
        opcode = int(f.opcode)
        if not f.opcode.iscontrol():
            payload = f.payload
            parts.append(payload.encode() if isinstance(payload, str) else bytes(payload))  # type: ignore[arg-type]
            shape.append((opcode, f.message_finished))
            if f.message_finished:
                content.append(("msg", opcode, b"".join(parts)))
                parts = []
        elif opcode == Opcode.CLOSE:
            code, reason = cast("tuple[int, str]", f.payload)
            shape.append((8, True))
            content.append(("close", int(code), reason))
        else:
            shape.append((opcode, True))
            content.append(("ctl", opcode, bytes(f.payload)))  # type: ignore[arg-type]
    return shape, content


def websockets_decode(data: bytes, *, mask: bool, chunks: list[bytes] | None = None) -> list[Frame]:
    """Decode with websockets' Frame.parse over a StreamReader, as its own tests do."""
    reader = StreamReader()
    frames: list[Frame] = []
    pending = list(chunks if chunks is not None else [data])
    reader.feed_data(pending.pop(0))
    while True:
        if not reader.buffer and not pending:
            return frames
        parser = WsFrame.parse(reader.read_exact, mask=mask, max_size=None)
        while True:
            try:
                next(parser)
            except StopIteration as done:
                f = done.value
                break
            # The parser wants more bytes.
            assert pending, "websockets wants more data than was sent"
            reader.feed_data(pending.pop(0))
        rsv = (f.rsv1 << 6) | (f.rsv2 << 5) | (f.rsv3 << 4)
        frames.append(Frame(int(f.opcode), bytes(f.data), f.fin, rsv))


@contextlib.contextmanager
def pinned_keys(*keys: bytes) -> Iterator[None]:
    """Make wsproto's and websockets' masking keys come from ``keys`` in order."""
    it = iter(keys)
    with (
        mock.patch("wsproto.frame_protocol.os.urandom", side_effect=lambda n: next(it)),
        mock.patch("websockets.frames.secrets.token_bytes", side_effect=lambda n: next(it)),
    ):
        yield


# --- ours → theirs ---------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(stream=frame_streams(), mask=st.one_of(st.just(False), masks))
def test_ours_decoded_by_wsproto(stream: list[Frame], mask: bool | bytes) -> None:
    data = encode_all(stream, mask)
    # Masked frames are client → server, so a server-side (client=False) wsproto reads them.
    assert wsproto_decode(data, client=mask is False) == normalize_ours(stream)


@settings(max_examples=60, deadline=None)
@given(stream=frame_streams(), mask=st.one_of(st.just(False), masks), data=st.data())
def test_ours_decoded_by_websockets(
    stream: list[Frame], mask: bool | bytes, data: st.DataObject
) -> None:
    encoded = encode_all(stream, mask)
    cuts = data.draw(st.lists(st.integers(0, len(encoded)), max_size=6))
    assert (
        websockets_decode(encoded, mask=mask is not False, chunks=split_at(encoded, cuts)) == stream
    )


# --- theirs → ours ---------------------------------------------------------------

# An operation for wsproto's sender: ("data", payload, fin) / ("ping", b) / ("pong", b)
ws_ops = st.lists(
    st.one_of(
        st.tuples(st.just("ping"), st.binary(max_size=125)),
        st.tuples(st.just("pong"), st.binary(max_size=125)),
        st.tuples(
            st.just("message"),
            st.one_of(
                st.lists(st.text(max_size=30), min_size=1, max_size=3),
                st.lists(st.binary(max_size=70_000), min_size=1, max_size=3),
            ),
        ),
    ),
    max_size=4,
)


@settings(max_examples=50, deadline=None)
@given(ops=ws_ops, client=st.booleans(), close=st.sampled_from([None, 1000, 1001, 3000, 4999]))
def test_wsproto_encoded_decoded_by_ours(
    ops: list[tuple[Any, Any]], client: bool, close: int | None
) -> None:
    """wsproto's FrameProtocol as the sender; every frame byte-identical to ours."""
    sender = FrameProtocol(client=client, extensions=[])
    expected: list[Frame] = []
    keys = [bytes([i, 255 - i, i * 7 & 0xFF, 42]) for i in range(64)]
    mask_for = iter(keys)
    wire = b""
    ours = b""
    with pinned_keys(*keys):
        for op in ops:
            pieces: list[tuple[bytes | str, Frame]] = []
            if op[0] == "message":
                last = len(op[1]) - 1
                for i, part in enumerate(op[1]):
                    raw = part.encode() if isinstance(part, str) else part
                    first = Opcode.TEXT if isinstance(part, str) else Opcode.BINARY
                    pieces.append(
                        (part, Frame(first if i == 0 else Opcode.CONT, raw, fin=i == last))
                    )
                for part, frame in pieces:
                    wire += sender.send_data(part, fin=frame.fin)
                    expected.append(frame)
            else:
                wire += sender.ping(op[1]) if op[0] == "ping" else sender.pong(op[1])
                expected.append(Frame(Opcode.PING if op[0] == "ping" else Opcode.PONG, op[1]))
        if close is not None:
            wire += sender.close(close, "bye")
            expected.append(Frame(Opcode.CLOSE, close.to_bytes(2) + b"bye"))
    for frame in expected:
        ours += encode_frame(
            frame.opcode, frame.payload, fin=frame.fin, mask=next(mask_for) if client else False
        )
    assert wire == ours
    assert FrameReader(masked=client).feed(wire) == expected


@settings(max_examples=60, deadline=None)
@given(stream=frame_streams(), mask=st.one_of(st.just(False), masks))
def test_websockets_encoded_decoded_by_ours(stream: list[Frame], mask: bool | bytes) -> None:
    key = mask if isinstance(mask, bytes) else KEY
    with pinned_keys(*[key] * len(stream)):
        wire = b"".join(
            WsFrame(WsOpcode(f.opcode), f.payload, f.fin).serialize(mask=mask is not False)
            for f in stream
        )
    assert wire == encode_all(stream, key if mask is not False else False)
    assert FrameReader(masked=mask is not False).feed(wire) == stream


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200 * 1024])
def test_boundary_sizes_byte_identical(size: int) -> None:
    payload = bytes(i * 31 & 0xFF for i in range(size))
    with pinned_keys(KEY, KEY):
        ws_masked = WsFrame(WsOpcode.BINARY, payload).serialize(mask=True)
        wp_masked = FrameProtocol(client=True, extensions=[]).send_data(payload)
    ours_masked = encode_frame(Opcode.BINARY, payload, mask=KEY)
    assert ws_masked == ours_masked == wp_masked
    ws_plain = WsFrame(WsOpcode.BINARY, payload).serialize(mask=False)
    wp_plain = FrameProtocol(client=False, extensions=[]).send_data(payload)
    assert ws_plain == encode_frame(Opcode.BINARY, payload) == wp_plain


# --- agreement on what is invalid ---------------------------------------------------


def test_close_code_validity_agrees_with_websockets() -> None:
    for code in range(0, 5100):
        try:
            WsClose.parse(code.to_bytes(2))
            theirs = True
        except WsProtocolError:
            theirs = False
        assert is_valid_close_code(code) is theirs, code
        try:
            parse_close_payload(code.to_bytes(2))
            ours = True
        except ProtocolError as exc:
            assert exc.code == 1002
            ours = False
        assert ours is theirs, code


# Inputs to a server-side reader (masked frames), each invalid at the frame level.
INVALID_TO_SERVER = [
    ("unmasked", encode_frame(1, b"x"), 1002),
    ("reserved-opcode", encode_frame(3, b"", mask=KEY), 1002),
    ("reserved-opcode-ctl", encode_frame(0xB, b"", mask=KEY), 1002),
    ("rsv1", encode_frame(1, b"x", rsv=0x40, mask=KEY), 1002),
    ("ping-126", encode_frame(9, bytes(126), mask=KEY), 1002),
    ("fragmented-ping", encode_frame(9, b"", fin=False, mask=KEY), 1002),
    ("non-minimal-16", b"\x82\xfe\x00\x05" + KEY + b"12345", 1002),
    ("non-minimal-64", b"\x82\xff" + (65535).to_bytes(8) + KEY + bytes(65535), 1002),
    ("msb-64", b"\x82\xff" + (1 << 63).to_bytes(8) + KEY, 1002),
    ("lone-continuation", encode_frame(0, b"x", mask=KEY), 1002),
    ("text-in-binary",
     encode_frame(2, b"a", fin=False, mask=KEY) + encode_frame(1, b"b", mask=KEY), 1002),
    ("close-1-byte", encode_frame(8, b"\x03", mask=KEY), 1002),
    ("close-1005", encode_frame(8, b"\x03\xed", mask=KEY), 1002),
    ("close-999", encode_frame(8, b"\x03\xe7", mask=KEY), 1002),
    ("close-5000", encode_frame(8, (5000).to_bytes(2), mask=KEY), 1002),
    ("close-bad-reason", encode_frame(8, b"\x03\xe8\xff", mask=KEY), 1007),
    ("bad-utf8", encode_frame(1, b"\xc0\xaf", mask=KEY), 1007),
    ("surrogate", encode_frame(1, b"\xed\xa0\x80", mask=KEY), 1007),
    ("bad-utf8-fragmented",
     encode_frame(1, b"\xe2", fin=False, mask=KEY) + encode_frame(0, b"(", mask=KEY), 1007),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "code"), [v[1:] for v in INVALID_TO_SERVER], ids=[v[0] for v in INVALID_TO_SERVER]
)
def test_wsproto_rejects_the_same_inputs_with_the_same_code(data: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as ours:
        Connection(Role.SERVER).receive_data(data)
    assert ours.value.code == code
    proto = FrameProtocol(client=False, extensions=[])
    proto.receive_bytes(data)
    with pytest.raises(ParseFailed) as theirs:
        list(proto.received_frames())
    assert int(theirs.value.code) == code


# --- the opening handshake against wsproto's h11-based implementation --------------


def test_our_client_request_accepted_by_wsproto_server() -> None:
    data, key = client_request("example.com", "/ws", subprotocols=["v2", "v1"])
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(data)
    (event,) = list(server.events())
    assert isinstance(event, WsprotoRequest)
    assert event.host == "example.com"
    assert event.target == "/ws"
    assert event.subprotocols == ["v2", "v1"]
    response = server.send(AcceptConnection(subprotocol="v1"))
    end = response.index(b"\r\n\r\n") + 4
    assert check_response(parse_response(response[:end]), key, subprotocols=["v2", "v1"]) == "v1"


def test_wsproto_rejection_reaches_our_client_as_its_status() -> None:
    data, key = client_request("example.com")
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(data)
    list(server.events())
    response = server.send(RejectConnection(status_code=403))
    end = response.index(b"\r\n\r\n") + 4
    with pytest.raises(HandshakeError) as info:
        check_response(parse_response(response[:end]), key)
    assert info.value.status == 403


def test_wsproto_client_request_accepted_by_us() -> None:
    client = H11Handshake(ConnectionType.CLIENT)
    request = client.send(
        WsprotoRequest(host="example.com", target="/feed?x=1", subprotocols=["chat", "superchat"])
    )
    parsed = parse_request(request)
    assert parsed.path == "/feed"
    response = accept(parsed, subprotocols=["superchat"])
    client.receive_data(response.serialize())
    (event,) = list(client.events())
    assert isinstance(event, AcceptConnection)
    assert event.subprotocol == "superchat"

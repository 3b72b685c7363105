"""permessage-deflate (RFC 7692): the RFC's own examples, negotiation edge cases, the
decompression bomb, RSV1 rules in both parser paths, and a differential against the
``websockets`` library's implementation (each side compresses, the other inflates)."""

from __future__ import annotations

import json
import zlib

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.extensions.permessage_deflate import PerMessageDeflate as TheirDeflate
from websockets.frames import Frame as TheirFrame
from websockets.frames import Opcode as TheirOpcode
from websockets.headers import build_extension, parse_extension

from pushbench.wire import CloseCode, Connection, Message, ProtocolError, Role
from pushbench.wire.deflate import (
    DeflateParams,
    PerMessageDeflate,
    accept_response,
    negotiate,
    offer,
)
from pushbench.wire.errors import HandshakeError
from pushbench.wire.frames import RSV1, FrameReader, Opcode, encode_frame
from pushbench.wire.handshake import Response, accept_key, check_response

pytestmark = pytest.mark.usefixtures("mask_impl")

KEY = b"\x01\x02\x03\x04"


def _json_messages(n: int = 12) -> list[bytes]:
    """Realistic pushes: similar envelopes, and a repeat further back than 512 bytes
    (so a wrong window size shows up as 'distance too far back')."""
    out = []
    for i in range(n):
        items = [{"sym": f"S{j:03d}", "px": 100 + (i * j) % 17} for j in range(12)]
        body = {"seq": i, "topic": "prices", "ts": 1700000000000 + i * 37, "items": items}
        out.append(json.dumps(body).encode())
    return out


def _server_frames(data: bytes) -> list[tuple[int, bytes, bool, int]]:
    reader = FrameReader(masked=False, rsv_allowed=RSV1)
    return [(f.opcode, bytes(f.payload), f.fin, f.rsv) for f in reader.feed(data)]


def _decode_one(conn: Connection, frame: bytes) -> Message:
    events = conn.receive_data(frame)
    assert len(events) == 1 and isinstance(events[0], Message)
    return events[0]


# --- RFC 7692 §7.2.3 examples -------------------------------------------------------------


def test_rfc_hello_compressed_and_context_takeover() -> None:
    codec = PerMessageDeflate()
    assert codec.compress(b"Hello") == bytes.fromhex("f248cdc9c90700")  # §7.2.3.1
    assert codec.compress(b"Hello") == bytes.fromhex("f200110000")  # §7.2.3.2: shared window
    fresh = PerMessageDeflate(local_no_context_takeover=True)
    assert fresh.compress(b"Hello") == fresh.compress(b"Hello") == bytes.fromhex("f248cdc9c90700")


@pytest.mark.parametrize(
    "wire",
    [
        "c107f248cdc9c90700",  # §7.2.3.1 one frame
        "41 03 f248cd 80 04 c9c90700",  # §7.2.3.1 fragmented: RSV1 on the first frame only
        "c10a 00 0500faff 48656c6c6f",  # §7.2.3.3 a stored (uncompressed) DEFLATE block
        "c108f348cdc9c9070000",  # §7.2.3.4 BFINAL set
    ],
)
def test_rfc_examples_decode(wire: str) -> None:
    conn = Connection(Role.CLIENT, deflate=PerMessageDeflate())
    assert conn.receive_data(bytes.fromhex(wire.replace(" ", ""))) == [Message(1, b"Hello")]


def test_rfc_shared_window_decodes() -> None:
    conn = Connection(Role.CLIENT, deflate=PerMessageDeflate())
    events = conn.receive_data(bytes.fromhex("c107f248cdc9c90700" + "c105f200110000"))
    assert events == [Message(1, b"Hello"), Message(1, b"Hello")]


def test_empty_message_round_trip() -> None:
    server = Connection(Role.SERVER, deflate=PerMessageDeflate())
    server.send_binary(b"")
    client = Connection(Role.CLIENT, deflate=PerMessageDeflate())
    assert client.receive_data(server.data_to_send()) == [Message(2, b"")]


# --- RSV1 rules, in the C and the pure parser ------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (encode_frame(Opcode.PING, b"x", rsv=RSV1), CloseCode.PROTOCOL_ERROR),  # control
        (  # continuation with RSV1
            encode_frame(Opcode.TEXT, b"\xf2\x48", fin=False, rsv=RSV1)
            + encode_frame(Opcode.CONT, b"\xcd\xc9\xc9\x07\x00", rsv=RSV1),
            CloseCode.PROTOCOL_ERROR,
        ),
        (encode_frame(Opcode.TEXT, b"\xff\xff\xff\xff", rsv=RSV1), CloseCode.PROTOCOL_ERROR),
        (  # inflates to bytes that are not UTF-8, in a text message
            encode_frame(Opcode.TEXT, PerMessageDeflate().compress(b"ok \xc3\x28"), rsv=RSV1),
            CloseCode.INVALID_DATA,
        ),
    ],
    ids=["rsv1-on-ping", "rsv1-on-continuation", "corrupt-deflate", "bad-utf8-inflated"],
)
def test_rsv1_violations(frame: bytes, code: int) -> None:
    conn = Connection(Role.CLIENT, deflate=PerMessageDeflate())
    with pytest.raises(ProtocolError) as err:
        conn.receive_data(frame)
    assert err.value.code == code
    assert conn.close_sent is not None and conn.close_sent[0] == code


def test_rsv1_without_negotiation_is_1002() -> None:
    frame = encode_frame(Opcode.TEXT, bytes.fromhex("f248cdc9c90700"), rsv=RSV1)
    with pytest.raises(ProtocolError) as err:
        Connection(Role.CLIENT).receive_data(frame)
    assert err.value.code == CloseCode.PROTOCOL_ERROR


def test_payloads_path_inflates() -> None:
    """The light client's receive path (C: payloads only) hands compressed frames on."""
    server = Connection(Role.SERVER, deflate=PerMessageDeflate())
    messages = _json_messages(5)
    for m in messages:
        server.send_text(m)
    server.send_text(b"plain")
    client = Connection(Role.CLIENT, deflate=PerMessageDeflate())
    data = server.data_to_send() + encode_frame(Opcode.TEXT, b"uncompressed")
    assert client.receive_payloads(data) == [*messages, b"plain", b"uncompressed"]


def test_control_frames_never_compressed() -> None:
    conn = Connection(Role.SERVER, deflate=PerMessageDeflate())
    conn.send_ping(b"ping")
    conn.send_close(1000, "bye")
    frames = _server_frames(conn.data_to_send())
    assert [(op, rsv) for op, _, _, rsv in frames] == [(Opcode.PING, 0), (Opcode.CLOSE, 0)]


# --- the decompression bomb -------------------------------------------------------------


def test_bomb_closes_1009() -> None:
    limit = 1 << 16
    bomb = PerMessageDeflate().compress(bytes(50 * limit))  # ~3 KB on the wire
    assert len(bomb) < limit
    conn = Connection(
        Role.SERVER, max_message_size=limit, deflate=PerMessageDeflate(), auto_pong=True
    )
    before = encode_frame(Opcode.TEXT, b"valid", mask=KEY)
    with pytest.raises(ProtocolError) as err:
        conn.receive_data(before + encode_frame(Opcode.BINARY, bomb, mask=KEY, rsv=RSV1))
    assert err.value.code == CloseCode.MESSAGE_TOO_BIG
    assert conn.events_after_error() == [Message(1, b"valid")]
    assert conn.data_to_send()[2:4] == (1009).to_bytes(2)


def test_bomb_inflate_is_bounded() -> None:
    codec = PerMessageDeflate()
    with pytest.raises(ProtocolError):
        codec.decompress(PerMessageDeflate().compress(bytes(1 << 22)), 1000)
    # A message of exactly the limit passes.
    assert len(PerMessageDeflate().decompress(PerMessageDeflate().compress(bytes(1000)), 1000))


# --- differential against websockets --------------------------------------------------


SETTINGS = [(False, 15), (True, 15), (False, 9), (True, 10), (False, 12)]


@pytest.mark.parametrize(("no_takeover", "bits"), SETTINGS)
def test_ours_compress_theirs_inflate(no_takeover: bool, bits: int) -> None:
    ours = Connection(
        Role.SERVER,
        deflate=PerMessageDeflate(
            local_no_context_takeover=no_takeover, local_max_window_bits=bits
        ),
    )
    theirs = TheirDeflate(no_takeover, False, bits, 15)
    messages = [*_json_messages(), b"x" * 3000, b""]
    for m in messages:
        ours.send_text(m)
    got = []
    for opcode, payload, fin, rsv in _server_frames(ours.data_to_send()):
        assert rsv == RSV1 and fin and opcode == Opcode.TEXT
        frame = theirs.decode(TheirFrame(TheirOpcode.TEXT, payload, rsv1=True), max_size=1 << 20)
        got.append(bytes(frame.data))
    assert got == messages


@pytest.mark.parametrize(("no_takeover", "bits"), SETTINGS)
def test_theirs_compress_ours_inflate(no_takeover: bool, bits: int) -> None:
    theirs = TheirDeflate(False, no_takeover, 15, bits)
    ours = Connection(
        Role.SERVER,
        deflate=PerMessageDeflate(
            remote_no_context_takeover=no_takeover, remote_max_window_bits=bits
        ),
    )
    messages = [*_json_messages(), b"y" * 70000]
    for m in messages:
        frame = theirs.encode(TheirFrame(TheirOpcode.TEXT, m))
        wire = encode_frame(Opcode.TEXT, frame.data, mask=KEY, rsv=RSV1 if frame.rsv1 else 0)
        assert _decode_one(ours, wire) == Message(1, m)


def test_their_fragmented_compressed_message() -> None:
    theirs = TheirDeflate(False, False, 15, 15)
    message = b"".join(_json_messages(4))
    parts = [message[:100], message[100:900], message[900:]]
    opcodes = [TheirOpcode.TEXT, TheirOpcode.CONT, TheirOpcode.CONT]
    wire = b""
    for i, (op, part) in enumerate(zip(opcodes, parts, strict=True)):
        f = theirs.encode(TheirFrame(op, part, fin=i == 2))
        wire += encode_frame(int(op), f.data, fin=f.fin, mask=KEY, rsv=RSV1 if f.rsv1 else 0)
    ours = Connection(Role.SERVER, deflate=PerMessageDeflate())
    assert ours.receive_data(wire) == [Message(1, message)]


# --- negotiation --------------------------------------------------------------------------


def _their_offer(**kw: object) -> str:
    factory = ClientPerMessageDeflateFactory(**kw)  # type: ignore[arg-type]
    return build_extension([(factory.name, factory.get_request_params())])


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"server_no_context_takeover": True},
        {"client_no_context_takeover": True, "server_max_window_bits": 10},
        {"client_max_window_bits": 11},
        {"client_max_window_bits": None},
    ],
)
@pytest.mark.parametrize("prefs", [DeflateParams(), DeflateParams(server_no_context_takeover=True,
                                   client_max_window_bits=12)])  # fmt: skip
def test_their_offer_our_response(kw: dict[str, object], prefs: DeflateParams) -> None:
    """Our server's answer to websockets' offers is one websockets' client accepts, and
    both ends agree on every parameter."""
    got = negotiate(_their_offer(**kw), prefs)
    assert got is not None
    header, ours = got
    [(_name, params)] = parse_extension(header)
    theirs = ClientPerMessageDeflateFactory(**kw).process_response_params(params, [])  # type: ignore[arg-type]
    assert theirs.remote_no_context_takeover == ours.local_no_context_takeover
    assert theirs.local_no_context_takeover == ours.remote_no_context_takeover
    assert theirs.remote_max_window_bits == ours.local_max_window_bits
    assert theirs.local_max_window_bits == ours.remote_max_window_bits


@pytest.mark.parametrize(
    "ours",
    [
        DeflateParams(client_window_offered=True),
        DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
        DeflateParams(server_max_window_bits=11, client_max_window_bits=10),
    ],
)
@pytest.mark.parametrize(
    "kw", [{}, {"server_no_context_takeover": True}, {"client_max_window_bits": 9}]
)
def test_our_offer_their_response(ours: DeflateParams, kw: dict[str, object]) -> None:
    [(name, params)] = parse_extension(offer(ours))
    factory = ServerPerMessageDeflateFactory(**kw)  # type: ignore[arg-type]
    try:
        response, theirs = factory.process_request_params(params, [])
    except Exception:  # websockets declined the offer: nothing to agree on
        return
    codec = accept_response(build_extension([(name, response)]), ours)
    assert codec.local_no_context_takeover == theirs.remote_no_context_takeover
    assert codec.remote_no_context_takeover == theirs.local_no_context_takeover
    assert codec.local_max_window_bits == theirs.remote_max_window_bits
    assert codec.remote_max_window_bits == theirs.local_max_window_bits


@pytest.mark.parametrize(
    "header",
    [
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; server_max_window_bits=8",  # we cannot compress with 8 bits
        "x-webkit-deflate-frame",
        "permessage-deflate; a=b c",
    ],
)
def test_bad_offers_declined(header: str) -> None:
    assert negotiate(header, DeflateParams()) is None


def test_declined_offer_falls_back_to_next() -> None:
    got = negotiate(
        'permessage-deflate; foo, permessage-deflate; server_max_window_bits="10"',
        DeflateParams(),
    )
    assert got is not None and got[0] == "permessage-deflate; server_max_window_bits=10"


def test_client_window_only_when_offered() -> None:
    got = negotiate("permessage-deflate", DeflateParams(client_max_window_bits=10))
    assert got is not None and got[0] == "permessage-deflate"


@pytest.mark.parametrize(
    ("offered", "response"),
    [
        (DeflateParams(), "permessage-deflate; client_max_window_bits=10"),  # not offered
        (DeflateParams(client_max_window_bits=10, client_window_offered=True),
         "permessage-deflate; client_max_window_bits=12"),  # over our value
        (DeflateParams(server_no_context_takeover=True), "permessage-deflate"),  # not granted
        (DeflateParams(server_max_window_bits=10), "permessage-deflate"),
        (DeflateParams(server_max_window_bits=10),
         "permessage-deflate; server_max_window_bits=12"),
        (DeflateParams(), "permessage-deflate, permessage-deflate"),
        (DeflateParams(), "x-other"),
        (DeflateParams(), "permessage-deflate; bogus"),
        (DeflateParams(client_window_offered=True),
         "permessage-deflate; client_max_window_bits"),  # a response must give the value
        (DeflateParams(client_window_offered=True),
         "permessage-deflate; client_max_window_bits=8"),  # zlib cannot
    ],
)  # fmt: skip
def test_bad_responses_fail_the_client(offered: DeflateParams, response: str) -> None:
    with pytest.raises(HandshakeError):
        accept_response(response, offered)


def test_check_response_extension_needs_offer() -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    headers = (
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
        ("Sec-WebSocket-Extensions", "permessage-deflate"),
    )
    response = Response(101, "Switching Protocols", headers)
    with pytest.raises(HandshakeError):
        check_response(response, key)
    assert check_response(response, key, extensions_offered=True) is None


def test_share_key_only_without_takeover() -> None:
    assert PerMessageDeflate().share_key is None
    shared = PerMessageDeflate(local_no_context_takeover=True, local_max_window_bits=12)
    assert shared.share_key == (12, 6)
    data = b"".join(_json_messages(3))
    assert shared.compress(data) == shared.compress(data)
    assert zlib.decompressobj(-15).decompress(shared.compress(data) + b"\x00\x00\xff\xff") == data

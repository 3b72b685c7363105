"""Connection: reassembly, ping/pong, the close handshake and failing the connection."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushbench.wire.errors import ProtocolError
from pushbench.wire.frames import Frame, FrameReader, Opcode, encode_frame
from pushbench.wire.protocol import Close, Connection, Message, Ping, Pong, Role, State

from .helpers import (
    chunkings,
    encode_all,
    expected_events,
    frame_streams,
    one_byte_chunks,
    pattern_bytes,
)

pytestmark = pytest.mark.usefixtures("mask_impl")

KEY = bytes.fromhex("37fa213d")


def peer_bytes(role: Role, frames: list[Frame]) -> bytes:
    """What the peer of a ``role`` endpoint sends: clients mask, servers do not."""
    return encode_all(frames, role is Role.SERVER)


def sent_frames(conn: Connection) -> list[Frame]:
    """Decode what ``conn`` queued, with the reader of the other direction.

    That reader insists on the right masking: client frames masked, server not.
    """
    return FrameReader(masked=conn.role is Role.CLIENT).feed(conn.data_to_send())


def close_frame(code: int | None, reason: bytes = b"") -> Frame:
    return Frame(Opcode.CLOSE, b"" if code is None else code.to_bytes(2) + reason)


roles = pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT])


# --- receiving messages ---------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(role=st.sampled_from(Role), stream=frame_streams(), data=st.data())
def test_events_for_any_valid_stream(role: Role, stream: list[Frame], data: st.DataObject) -> None:
    conn = Connection(role)
    events = []
    for chunk in data.draw(chunkings(peer_bytes(role, stream))):
        events.extend(conn.receive_data(chunk))
    assert events == expected_events(stream)
    # Every ping got a pong with its payload, then a close echo if a Close came.
    replies = sent_frames(conn)
    pings = [Frame(Opcode.PONG, e.payload) for e in events if isinstance(e, Ping)]
    closes = [e for e in events if isinstance(e, Close)]
    if closes:
        assert conn.state is State.CLOSED
        assert replies[:-1] == pings
        assert replies[-1].opcode == Opcode.CLOSE
        echoed = closes[0].code.to_bytes(2) if closes[0].code != 1005 else b""
        assert replies[-1].payload == echoed
    else:
        assert conn.state is State.OPEN
        assert replies == pings


def test_reassembly_with_interleaved_control_frames() -> None:
    conn = Connection(Role.SERVER)
    frames = [
        Frame(Opcode.TEXT, "h€".encode()[:2], fin=False),
        Frame(Opcode.PING, b"1"),
        Frame(Opcode.CONT, "h€".encode()[2:], fin=False),
        Frame(Opcode.PONG, b"2"),
        Frame(Opcode.CONT, b"llo"),
        Frame(Opcode.BINARY, b"\x00\xff"),
    ]
    events = conn.receive_data(peer_bytes(Role.SERVER, frames))
    assert events == [
        Ping(b"1"),
        Pong(b"2"),
        Message(Opcode.TEXT, "h€llo".encode()),
        Message(2, b"\x00\xff"),
    ]
    message = events[2]
    assert isinstance(message, Message)
    assert message.text == "h€llo"


def test_messages_split_across_calls() -> None:
    conn = Connection(Role.CLIENT)
    data = peer_bytes(Role.CLIENT, [Frame(1, b"abc", fin=False), Frame(0, b"def")])
    events = []
    for b in one_byte_chunks(data):
        events.extend(conn.receive_data(b))
    assert events == [Message(1, b"abcdef")]


def test_large_message() -> None:
    payload = pattern_bytes(200 * 1024, 7)
    conn = Connection(Role.SERVER)
    data = encode_frame(Opcode.BINARY, payload, mask=True)
    events = conn.receive_data(data[:5000]) + conn.receive_data(data[5000:])
    assert events == [Message(2, payload)]


# --- sending ---------------------------------------------------------------------


def test_client_masks_every_frame_with_a_fresh_key() -> None:
    client = Connection(Role.CLIENT)
    client.send_text("same")
    first = client.data_to_send()
    client.send_text("same")
    second = client.data_to_send()
    assert first[1] & 0x80 and second[1] & 0x80
    assert first[2:6] != second[2:6]  # 1 in 2^32 to fail by chance
    keys = set()
    for _ in range(10):
        client.send_binary(b"x")
        client.send_ping(b"p")
        client.send_pong(b"q")
        client.send_fragments(Opcode.TEXT, [b"a", b"b"])
        out = client.data_to_send()
        frames = FrameReader(masked=True).feed(out)  # would raise on an unmasked frame
        assert [f.opcode for f in frames] == [2, 9, 10, 1, 0]
        # Collect the keys: every header is 2 bytes + key for these tiny frames.
        pos = 0
        for f in frames:
            keys.add(out[pos + 2 : pos + 6])
            pos += 6 + len(f.payload)
    assert len(keys) > 40  # 50 frames; repeats would mean a reused key


def test_server_sends_unmasked() -> None:
    server = Connection(Role.SERVER)
    server.send_text("hi ✓")
    server.send_binary(b"\x01")
    server.send_fragments(Opcode.BINARY, [b"a", b"", b"c"])
    server.send_ping(b"p")
    server.send_pong()
    assert FrameReader(masked=False).feed(server.data_to_send()) == [
        Frame(1, "hi ✓".encode()),
        Frame(2, b"\x01"),
        Frame(2, b"a", fin=False),
        Frame(0, b"", fin=False),
        Frame(0, b"c"),
        Frame(9, b"p"),
        Frame(10, b""),
    ]
    assert server.data_to_send() == b""


@roles
def test_connection_to_connection(role: Role) -> None:
    a = Connection(role)
    b = Connection(Role.CLIENT if role is Role.SERVER else Role.SERVER)
    a.send_text("tëxt")
    a.send_binary(b"bin")
    a.send_fragments(Opcode.TEXT, [b"fr", "ä".encode()[:1], "ä".encode()[1:]])
    a.send_ping(b"are you there")
    events = b.receive_data(a.data_to_send())
    assert events == [
        Message(1, "tëxt".encode()),
        Message(2, b"bin"),
        Message(1, "frä".encode()),
        Ping(b"are you there"),
    ]
    assert a.receive_data(b.data_to_send()) == [Pong(b"are you there")]


def test_send_raw() -> None:
    server = Connection(Role.SERVER)
    frame = encode_frame(Opcode.TEXT, b"shared")
    server.send_raw(frame)
    assert server.data_to_send() == frame


def test_send_argument_checks() -> None:
    conn = Connection(Role.SERVER)
    with pytest.raises(ValueError):
        conn.send_ping(bytes(126))
    with pytest.raises(ValueError):
        conn.send_pong(bytes(126))
    with pytest.raises(ValueError):
        conn.send_fragments(Opcode.TEXT, [])
    with pytest.raises(ValueError):
        conn.send_fragments(Opcode.PING, [b"x"])
    with pytest.raises(ValueError):
        conn.send_close(1000, "x" * 124)
    assert conn.state is State.OPEN
    assert conn.data_to_send() == b""


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_send_close_refuses_codes_that_may_not_be_sent(code: int) -> None:
    conn = Connection(Role.SERVER)
    with pytest.raises(ValueError):
        conn.send_close(code)
    assert conn.state is State.OPEN
    assert conn.data_to_send() == b""


# --- ping / pong -----------------------------------------------------------------


@roles
@pytest.mark.parametrize("payload", [b"", b"Hello", bytes(range(125))])
def test_auto_pong_same_payload(role: Role, payload: bytes) -> None:
    conn = Connection(role)
    assert conn.receive_data(peer_bytes(role, [Frame(Opcode.PING, payload)])) == [Ping(payload)]
    out = conn.data_to_send()
    assert bool(out[1] & 0x80) is (role is Role.CLIENT)  # the client's pong is masked
    assert FrameReader(masked=role is Role.CLIENT).feed(out) == [Frame(Opcode.PONG, payload)]


def test_auto_pong_off() -> None:
    conn = Connection(Role.SERVER, auto_pong=False)
    assert conn.receive_data(peer_bytes(Role.SERVER, [Frame(Opcode.PING, b"x")])) == [Ping(b"x")]
    assert conn.data_to_send() == b""


def test_pong_is_just_an_event() -> None:
    conn = Connection(Role.SERVER)
    assert conn.receive_data(peer_bytes(Role.SERVER, [Frame(Opcode.PONG, b"x")])) == [Pong(b"x")]
    assert conn.data_to_send() == b""


# --- the close handshake ---------------------------------------------------------


@roles
def test_we_close_first(role: Role) -> None:
    conn = Connection(role)
    conn.send_close(1001, "bye")
    assert conn.state is State.CLOSING
    assert conn.close_sent == (1001, "bye")
    assert sent_frames(conn) == [close_frame(1001, b"bye")]
    assert not conn.closes_transport
    # Data still arrives while CLOSING.
    assert conn.receive_data(peer_bytes(role, [Frame(1, b"late")])) == [Message(1, b"late")]
    events = conn.receive_data(peer_bytes(role, [close_frame(1001)]))
    assert events == [Close(1001, "")]
    assert conn.state.value == "closed"  # (not `is State.CLOSED`: mypy narrowed it above)
    assert conn.close_received == Close(1001, "")
    assert conn.data_to_send() == b""  # no second Close
    assert conn.closes_transport is (role is Role.SERVER)


@roles
def test_ping_while_closing_still_gets_a_pong(role: Role) -> None:
    # RFC 6455 §5.5.2: answer every Ping "unless it already received a Close frame";
    # having *sent* one (CLOSING) does not count, and a Pong is not a data frame.
    conn = Connection(role)
    conn.send_close()
    conn.data_to_send()
    assert conn.receive_data(peer_bytes(role, [Frame(Opcode.PING, b"x")])) == [Ping(b"x")]
    assert sent_frames(conn) == [Frame(Opcode.PONG, b"x")]
    assert conn.state is State.CLOSING


@roles
@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_peer_closes_first_and_we_echo(role: Role, code: int) -> None:
    conn = Connection(role)
    events = conn.receive_data(peer_bytes(role, [close_frame(code, "reason ✓".encode())]))
    assert events == [Close(code, "reason ✓")]
    assert conn.state is State.CLOSED
    assert conn.error is None
    assert sent_frames(conn) == [close_frame(code)]
    assert conn.close_sent == (code, "")
    # The server drops TCP now; the client waits for the server to do it (§7.1.1).
    assert conn.closes_transport is (role is Role.SERVER)


@roles
def test_empty_close_is_1005_and_echoed_empty(role: Role) -> None:
    conn = Connection(role)
    assert conn.receive_data(peer_bytes(role, [close_frame(None)])) == [Close(1005, "")]
    assert sent_frames(conn) == [close_frame(None)]
    assert conn.state is State.CLOSED


@roles
def test_send_close_without_code(role: Role) -> None:
    conn = Connection(role)
    conn.send_close(None)
    assert sent_frames(conn) == [close_frame(None)]
    assert conn.close_sent == (1005, "")


@roles
@pytest.mark.parametrize("how", ["sent", "received", "failed"])
@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.send_text("x"),
        lambda c: c.send_binary(b"x"),
        lambda c: c.send_fragments(Opcode.BINARY, [b"x"]),
        lambda c: c.send_ping(),
        lambda c: c.send_pong(),
        lambda c: c.send_close(),
        lambda c: c.send_raw(b"\x81\x00"),
    ],
    ids=["text", "binary", "fragments", "ping", "pong", "close", "raw"],
)
def test_sending_after_close_raises(
    role: Role, how: str, send: Callable[[Connection], None]
) -> None:
    conn = Connection(role)
    if how == "sent":
        conn.send_close()
    elif how == "received":
        conn.receive_data(peer_bytes(role, [close_frame(1000)]))
    else:
        with pytest.raises(ProtocolError):
            conn.receive_data(b"\x83\x00")
    conn.data_to_send()
    with pytest.raises(RuntimeError):
        send(conn)
    assert conn.data_to_send() == b""


@roles
def test_data_after_close_is_ignored(role: Role) -> None:
    conn = Connection(role)
    frames = [Frame(1, b"before"), close_frame(1000), Frame(1, b"after"), Frame(9, b"ping")]
    assert conn.receive_data(peer_bytes(role, frames)) == [Message(1, b"before"), Close(1000, "")]
    assert sent_frames(conn) == [close_frame(1000)]  # no pong for the ignored ping
    assert conn.receive_data(peer_bytes(role, [Frame(1, b"later")])) == []
    assert conn.data_to_send() == b""


@roles
def test_garbage_after_close_is_ignored(role: Role) -> None:
    # Bytes after the Close in the same read are not a violation: they are ignored.
    conn = Connection(role)
    data = peer_bytes(role, [close_frame(1000)]) + b"\xff\xff\xff\xff"
    assert conn.receive_data(data) == [Close(1000, "")]
    assert conn.error is None
    assert sent_frames(conn) == [close_frame(1000)]
    assert conn.receive_data(b"\x83\x00") == []


def test_receive_eof_without_close_is_1006() -> None:
    conn = Connection(Role.CLIENT)
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.close_received == Close(1006, "")
    conn = Connection(Role.CLIENT)
    conn.receive_data(peer_bytes(Role.CLIENT, [close_frame(1000)]))
    conn.receive_eof()
    assert conn.close_received == Close(1000, "")


# --- violations fail the connection ----------------------------------------------

BEFORE = [Frame(1, b"before"), Frame(9, b"p")]


def _violations() -> list[tuple[str, Role, bytes, int, dict[str, int]]]:
    srv, cli = Role.SERVER, Role.CLIENT
    v: list[tuple[str, Role, bytes, int, dict[str, int]]] = [
        ("unmasked-to-server", srv, encode_frame(1, b"x"), 1002, {}),
        ("masked-to-client", cli, encode_frame(1, b"x", mask=KEY), 1002, {}),
        ("non-minimal-16", srv, b"\x82\xfe\x00\x05" + KEY + b"12345", 1002, {}),
        ("non-minimal-64", cli, b"\x82\x7f" + (300).to_bytes(8), 1002, {}),
        ("length-2^63", cli, b"\x82\x7f" + (1 << 63).to_bytes(8), 1002, {}),
        ("frame-too-big", cli, b"\x82\x7e\x01\x00", 1009, {"max_frame_size": 255}),
        ("message-too-big", cli, encode_frame(2, bytes(200), fin=False) + b"\x00\x7e\x00\x80", 1009,
         {"max_message_size": 300}),
    ]  # fmt: skip
    for role in (srv, cli):
        mask: bool | bytes = KEY if role is srv else False
        name = role.value
        for op in (3, 7, 0xB, 0xF):
            v.append((f"{name}-opcode-{op}", role, encode_frame(op, b"", mask=mask), 1002, {}))
        for rsv in (0x40, 0x20, 0x10):
            v.append(
                (f"{name}-rsv-{rsv:#x}", role, encode_frame(1, b"x", rsv=rsv, mask=mask), 1002, {})
            )
        v += [
            (f"{name}-ping-126", role, encode_frame(9, bytes(126), mask=mask), 1002, {}),
            (f"{name}-fragmented-ping", role, encode_frame(9, b"", fin=False, mask=mask), 1002, {}),
            (
                f"{name}-fragmented-close",
                role,
                encode_frame(8, b"", fin=False, mask=mask),
                1002,
                {},
            ),
            (f"{name}-lone-continuation", role, encode_frame(0, b"x", mask=mask), 1002, {}),
            (
                f"{name}-text-inside-fragmented",
                role,
                encode_frame(2, b"a", fin=False, mask=mask) + encode_frame(1, b"b", mask=mask),
                1002,
                {},
            ),
            (f"{name}-close-1-byte", role, encode_frame(8, b"\x03", mask=mask), 1002, {}),
            (f"{name}-bad-utf8", role, encode_frame(1, b"\xc0\xaf", mask=mask), 1007, {}),
            (f"{name}-surrogate", role, encode_frame(1, b"\xed\xa0\x80", mask=mask), 1007, {}),
            (
                f"{name}-bad-utf8-fragment",
                role,
                encode_frame(1, b"ok", fin=False, mask=mask)
                + encode_frame(0, b"\xff", fin=False, mask=mask),
                1007,
                {},
            ),
            (f"{name}-close-reason", role, encode_frame(8, b"\x03\xe8\xff", mask=mask), 1007, {}),
        ]
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000):
            payload = code.to_bytes(2)
            v.append(
                (f"{name}-close-code-{code}", role, encode_frame(8, payload, mask=mask), 1002, {})
            )
    return v


VIOLATIONS = _violations()


@pytest.mark.parametrize(
    ("role", "bad", "code", "limits"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_violation_fails_the_connection(
    role: Role, bad: bytes, code: int, limits: dict[str, int]
) -> None:
    conn = Connection(
        role,
        max_frame_size=limits.get("max_frame_size", 1 << 20),
        max_message_size=limits.get("max_message_size", 1 << 22),
    )
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(peer_bytes(role, BEFORE) + bad)
    assert info.value.code == code
    assert conn.error is info.value
    assert conn.state is State.CLOSED
    assert conn.closes_transport  # a failed client closes TCP too
    # Events decoded before the violation, in the same call, are not lost.
    assert conn.events_after_error() == [Message(1, b"before"), Ping(b"p")]
    assert conn.events_after_error() == []
    # The pong for that ping, then a Close carrying the violation's code.
    replies = sent_frames(conn)
    assert replies[0] == Frame(Opcode.PONG, b"p")
    assert replies[1].opcode == Opcode.CLOSE
    assert int.from_bytes(replies[1].payload[:2]) == code
    assert len(replies) == 2
    assert conn.close_sent is not None and conn.close_sent[0] == code
    # Afterwards: nothing more is decoded and nothing can be sent.
    assert conn.receive_data(peer_bytes(role, [Frame(1, b"more")])) == []
    with pytest.raises(RuntimeError):
        conn.send_text("x")


@pytest.mark.parametrize(
    ("role", "bad", "code", "limits"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_violation_fed_byte_by_byte(
    role: Role, bad: bytes, code: int, limits: dict[str, int]
) -> None:
    conn = Connection(
        role,
        max_frame_size=limits.get("max_frame_size", 1 << 20),
        max_message_size=limits.get("max_message_size", 1 << 22),
    )
    events = conn.receive_data(peer_bytes(role, BEFORE))
    assert events == [Message(1, b"before"), Ping(b"p")]
    with pytest.raises(ProtocolError) as info:
        for b in one_byte_chunks(bad):
            conn.receive_data(b)
    assert info.value.code == code
    replies = sent_frames(conn)
    assert replies[-1].opcode == Opcode.CLOSE
    assert int.from_bytes(replies[-1].payload[:2]) == code


def test_violation_while_closing_sends_no_second_close() -> None:
    conn = Connection(Role.SERVER)
    conn.send_close(1000)
    conn.data_to_send()
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(encode_frame(3, b"", mask=True))
    assert info.value.code == 1002
    assert conn.state is State.CLOSED
    assert conn.data_to_send() == b""
    assert conn.closes_transport


def test_client_failing_closes_transport() -> None:
    conn = Connection(Role.CLIENT)
    with pytest.raises(ProtocolError):
        conn.receive_data(encode_frame(1, b"masked", mask=True))
    assert conn.closes_transport


# --- UTF-8 and size limits at the connection level -------------------------------


@roles
def test_text_fails_fast_on_first_fragment(role: Role) -> None:
    conn = Connection(role)
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(peer_bytes(role, [Frame(1, b"\xf5", fin=False)]))
    assert info.value.code == 1007
    assert int.from_bytes(sent_frames(conn)[0].payload[:2]) == 1007


@roles
def test_text_fails_fast_inside_large_frame(role: Role) -> None:
    conn = Connection(role)
    data = peer_bytes(role, [Frame(1, b"ok\xed\xa0" + b"x" * 100_000)])
    head = 14 if role is Role.SERVER else 10
    assert conn.receive_data(data[: head + 3]) == []  # "ok\xed" may still be valid
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(data[head + 3 : head + 4])
    assert info.value.code == 1007


@roles
def test_size_limits_from_the_header(role: Role) -> None:
    conn = Connection(role, max_frame_size=1000, max_message_size=1500)
    data = peer_bytes(role, [Frame(2, bytes(1001))])
    head = 8 if role is Role.SERVER else 4
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(data[:head])
    assert info.value.code == 1009
    conn = Connection(role, max_frame_size=1000, max_message_size=1500)
    ok = peer_bytes(role, [Frame(2, bytes(1000), fin=False)])
    assert conn.receive_data(ok) == []
    over = peer_bytes(role, [Frame(0, bytes(501))])
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(over[:head])
    assert info.value.code == 1009
    assert int.from_bytes(sent_frames(conn)[0].payload[:2]) == 1009


# --- replies before the final Close (strict conformance) ---------------------------


@pytest.mark.parametrize(
    ("tail", "code"),
    [
        (encode_frame(1, b"bad", rsv=4, mask=True), 1002),
        (encode_frame(8, b"\x03\xe8", mask=True), 1000),
    ],
    ids=["violation", "peer-close"],
)
def test_reply_to_a_message_of_the_last_read_goes_before_the_close(tail: bytes, code: int) -> None:
    """A message decoded in the same read as a violation or the peer's Close can still be
    answered, and the answer precedes our Close (Autobahn 3.2, 5.15 strict)."""
    conn = Connection(Role.SERVER)
    data = encode_frame(1, b"hello", mask=True) + tail
    try:
        events = conn.receive_data(data)
    except ProtocolError:
        events = conn.events_after_error()
    assert events[0] == Message(1, b"hello")
    assert conn.may_reply
    conn.send_raw(encode_frame(1, b"hello"))
    replies = sent_frames(conn)
    assert replies[0] == Frame(Opcode.TEXT, b"hello")
    assert replies[1].opcode == Opcode.CLOSE
    assert int.from_bytes(replies[1].payload[:2]) == code
    assert not conn.may_reply
    with pytest.raises(RuntimeError):
        conn.send_raw(b"\x81\x00")

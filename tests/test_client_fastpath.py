"""The light clients' receive fast path records exactly what the per-message path records.

Two shortcuts, each checked against the path it replaces, with the compiled
helpers on and off: :meth:`Connection.receive_payloads` (whole messages as
payload bytes, no frame or event objects) against the messages of
:meth:`Connection.receive_data`, in any chunking, errors and Close included;
and :meth:`Recorder.record_many` (one call per read; the C scanner
``clients/_scan.c``) against :meth:`Recorder.record` per payload: the same
rows, counters and returned sequence numbers, including every input the fast
parse refuses; and :meth:`Recorder.record_batch` (a poll answer) with the C
scan against the pure one, on odd and mangled answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire.helpers import encode_all, frame_streams, split_at

from pushbench.clients import recorder as recorder_module
from pushbench.clients.recorder import Recorder
from pushbench.contract import Envelope, encode
from pushbench.wire import speedups
from pushbench.wire.errors import ProtocolError
from pushbench.wire.frames import Frame
from pushbench.wire.protocol import Connection, Message, Role

COMPILED = all(speedups.built().values()) and recorder_module._SCAN is not None
PATHS = [
    pytest.param(True, id="compiled", marks=pytest.mark.skipif(not COMPILED, reason="not built")),
    pytest.param(False, id="pure"),
]


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    saved = speedups.state()
    yield
    speedups.restore(saved)


def envelope(seq: int, payload: str = "x") -> bytes:
    return encode(Envelope("bench", seq, 1000 + seq, 2000 + seq, payload))


ODD_INPUTS: list[bytes | bytearray] = [
    envelope(1),
    bytearray(envelope(2)),
    json.dumps({"s": 3, "p": "y", "pub": 2003, "t": "a", "sch": 1003}).encode(),  # key order
    b'{"t":"a","s":+4,"sch":1,"pub":2,"p":""}',  # a sign int() takes, the scanner not
    b'{"t":"a","s":0005,"sch":-1,"pub":-2,"p":""}',  # leading zeros, negative times
    b'{"t":"a","s":6,"sch":%d,"pub":1,"p":""}' % 2**63,  # beyond int64
    b'{"t":"a","s":7,"sch":%d,"pub":1,"p":""}' % -(2**63),  # the int64 minimum
    b'{"t":"a","s":00000000000000000000008,"sch":1,"pub":1,"p":""}',  # 23 digits, fits
    b'{"t":"a","s":1_0,"sch":1,"pub":1,"p":""}',  # int() reads 10
    b"",
    b"not json",
    b'{"t":"a","s":1}',
    envelope(9, 'with "s": inside ,"sch": the payload'),
    envelope(10, "ünïcode"),
]


def _one_by_one(capacity: int, conn: int, payloads: list[bytes | bytearray]) -> Recorder:
    rec = Recorder(capacity)
    for p in payloads:
        rec.record(conn, p, 77)
    return rec


def _same(a: Recorder, b: Recorder) -> None:
    assert a.counters() == b.counters()
    for name, arr in a.arrays().items():
        assert np.array_equal(arr, b.arrays()[name]), name


@pytest.mark.parametrize("compiled", PATHS)
@pytest.mark.parametrize("capacity", [100, 5, 0])
def test_record_many_matches_record_one_by_one(compiled: bool, capacity: int) -> None:
    speedups.use_speedups(compiled)
    payloads = [*ODD_INPUTS, *(envelope(i) for i in range(20, 30))]
    rec = Recorder(capacity)
    last, count = rec.record_many(3, payloads, 77)
    want = _one_by_one(capacity, 3, payloads)
    _same(rec, want)
    assert count == len(payloads)
    assert last == max(Recorder(len(payloads)).record(3, p, 77) for p in payloads)
    assert rec.overflow == max(0, want.n + want.overflow - capacity)


@pytest.mark.parametrize("compiled", PATHS)
def test_record_many_of_nothing_and_of_a_connection_id_beyond_uint32(compiled: bool) -> None:
    speedups.use_speedups(compiled)
    rec = Recorder(10)
    assert rec.record_many(1, [], 5) == (-1, 0) and rec.n == 0
    payloads: list[bytes | bytearray] = [envelope(1), envelope(2)]
    rec.record_many(2**32, payloads, 5)
    _same(rec, _one_by_one(10, 2**32, payloads))  # no rows: both count parse errors


@pytest.mark.skipif(not COMPILED, reason="not built")
def test_record_many_scans_in_c_only_while_the_speedups_are_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = recorder_module._SCAN
    assert real is not None
    calls: list[int] = []

    def spy(*args: Any) -> tuple[int, int, int, int]:
        calls.append(args[1])
        return real(*args)

    monkeypatch.setattr(recorder_module, "_SCAN", spy)
    speedups.use_speedups(True)
    payloads = [envelope(1), b"odd", envelope(3)]
    Recorder(10).record_many(0, payloads, 1)
    assert calls == [0, 2]  # stopped at the odd one, which Python read, then resumed
    speedups.use_speedups(False)
    Recorder(10).record_many(0, payloads, 1)
    assert calls == [0, 2]


def _answer(last: bytes, items: list[bytes], tail: bytes = b"]}") -> bytes:
    return b'{"last":' + last + b',"messages":[' + b",".join(items) + tail


#: Poll answers the compiled scan must read as the pure scan does, or hand to it.
ODD_ANSWERS: list[bytes | bytearray] = [
    _answer(b"29", [envelope(i) for i in range(20, 30)]),
    bytearray(_answer(b"3", [envelope(1), envelope(2), envelope(3)])),
    _answer(b"7", []),
    _answer(b"7", [], b"]}trailing"),  # the pure scan stops at "]}" of an empty list
    _answer(b"-1", [envelope(1)]),
    _answer(b"+4", [envelope(4)]),  # a sign int() takes, the scanner not
    _answer(b"1_0", [envelope(10)]),
    _answer(b"%d" % 2**63, [envelope(1)]),  # beyond int64: the pure scan returns it
    _answer(b"2", [envelope(1), b'{"t":"a","s":%d,"sch":1,"pub":1,"p":""}' % 2**63]),
    _answer(b"2", [envelope(1), b'{"t":"a","s":2,"sch":1,"pub":1,"p":"x","z":1}']),
    _answer(b"2", [envelope(1), envelope(2)], b"]}x"),  # bytes after the answer
    _answer(b"2", [envelope(1), envelope(2)], b"]"),  # cut short
    _answer(b"2", [envelope(1), envelope(2)], b""),
    _answer(b"2", [envelope(1, 'a \\"} b \\\\'), envelope(2)]),  # escapes before "}
    _answer(b"1", [envelope(1, 'with "s": inside ,"sch": the payload')]),
    _answer(b"1", [envelope(1, "ünïcode")]),
    json.dumps({"last": 2, "messages": [{"s": 2, "t": "a", "sch": 1, "pub": 1, "p": ""}]})
    .replace(" ", "")
    .encode(),
    b'{"last":5}',
    b"",
    b"not json",
]


def _batches(capacity: int, conn: int, bodies: list[bytes | bytearray]) -> tuple[Recorder, list]:
    rec = Recorder(capacity)
    return rec, [rec.record_batch(conn, body, 77) for body in bodies]


@pytest.mark.skipif(not COMPILED, reason="not built")
@pytest.mark.parametrize("capacity", [100, 5, 0])
def test_record_batch_compiled_matches_the_pure_scan(capacity: int) -> None:
    speedups.use_speedups(True)
    compiled = _batches(capacity, 6, ODD_ANSWERS)
    speedups.use_speedups(False)
    pure = _batches(capacity, 6, ODD_ANSWERS)
    assert compiled[1] == pure[1]
    _same(compiled[0], pure[0])
    assert pure[0].n + pure[0].overflow >= 15  # most bodies were read, some of them by json


@pytest.mark.skipif(not COMPILED, reason="not built")
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seqs=st.lists(st.integers(-(2**64), 2**64), max_size=5),
    texts=st.lists(st.text(alphabet='ab"}\\,:{[]s ', max_size=8), min_size=5, max_size=5),
    cut=st.integers(0, 400),
    byte=st.sampled_from(b'"}],:{\\0 9-'),
)
def test_record_batch_compiled_matches_the_pure_scan_on_mangled_answers(
    seqs: list[int], texts: list[str], cut: int, byte: int
) -> None:
    items = [envelope(s, t) if -(2**63) <= s < 2**63 else
             b'{"t":"a","s":%d,"sch":1,"pub":1,"p":"%s"}' % (s, t.encode())
             for s, t in zip(seqs, texts, strict=False)]  # fmt: skip
    good = _answer(b"%d" % (max(seqs) if seqs else 0), items)
    mangled = bytearray(good)
    if cut < len(mangled):
        mangled[cut] = byte
    bodies: list[bytes | bytearray] = [good, bytes(mangled), good[: cut % (len(good) + 1)]]
    speedups.use_speedups(True)
    compiled = _batches(50, 1, bodies)
    speedups.use_speedups(False)
    pure = _batches(50, 1, bodies)
    assert compiled[1] == pure[1]
    _same(compiled[0], pure[0])


@pytest.mark.skipif(not COMPILED, reason="not built")
def test_record_batch_scans_in_c_only_while_the_speedups_are_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = recorder_module._SCAN_POLL
    assert real is not None
    got: list[Any] = []

    def spy(*args: Any) -> Any:
        got.append(real(*args))
        return got[-1]

    monkeypatch.setattr(recorder_module, "_SCAN_POLL", spy)
    speedups.use_speedups(True)
    rec = Recorder(10)
    assert rec.record_batch(0, _answer(b"2", [envelope(1), envelope(2)]), 1) == (2, 2)
    assert rec.record_batch(0, _answer(b"+3", [envelope(3)]), 1) == (3, 1)
    assert got == [(2, 2, 2), None]  # the second: refused by C, read by the pure scan
    assert rec.arrays()["seq"].tolist() == [1, 2, 3] and rec.slow_parses == 0
    speedups.use_speedups(False)
    Recorder(10).record_batch(0, _answer(b"1", [envelope(1)]), 1)
    assert len(got) == 2


def _messages(conn: Connection, chunks: list[bytes]) -> tuple[list[Any], Any]:
    out: list[Any] = []
    try:
        for chunk in chunks:
            out += [bytes(e.data) for e in conn.receive_data(chunk) if e.__class__ is Message]
    except ProtocolError as exc:
        out += [bytes(e.data) for e in conn.events_after_error() if e.__class__ is Message]
        return out, exc.code
    return out, None


def _payloads(conn: Connection, chunks: list[bytes]) -> tuple[list[Any], Any]:
    out: list[Any] = []
    try:
        for chunk in chunks:
            out += [bytes(p) for p in conn.receive_payloads(chunk)]
    except ProtocolError as exc:
        out += [bytes(p) for p in conn.payloads_after_error()]
        return out, exc.code
    return out, None


@st.composite
def _server_streams(draw: st.DrawFn) -> bytes:
    """What a server sends a client (unmasked frames), sometimes broken or cut."""
    data = bytearray(encode_all(draw(frame_streams(small=True)), False))
    if draw(st.booleans()) and data:
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.sampled_from([0x00, 0x80, 0xFF, 0x89, 0x01, 0xC1, 0x7E]))
    if draw(st.booleans()):
        data += encode_all([Frame(2, b"after"), Frame(8, b"\x03\xe8"), Frame(2, b"late")])
    return bytes(data)


@pytest.mark.parametrize("compiled", PATHS)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_receive_payloads_matches_the_messages_of_receive_data(
    compiled: bool, data: st.DataObject
) -> None:
    speedups.use_speedups(compiled)
    stream = data.draw(_server_streams())
    chunks = split_at(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    events_conn, payloads_conn = Connection(Role.CLIENT), Connection(Role.CLIENT)
    assert _payloads(payloads_conn, chunks) == _messages(events_conn, chunks)
    assert payloads_conn.close_received == events_conn.close_received
    assert payloads_conn.state is events_conn.state
    # What each queued in reply (pongs, close echo): the same frames, under fresh keys.
    assert len(payloads_conn.data_to_send()) == len(events_conn.data_to_send())


@pytest.mark.skipif(not COMPILED, reason="not built")
def test_receive_payloads_hands_whole_messages_over_as_bytes_alone() -> None:
    speedups.use_speedups(True)
    conn = Connection(Role.CLIENT)
    stream = encode_all([Frame(1, b"one"), Frame(2, b"two"), Frame(9, b"ping"), Frame(1, b"3")])
    got = conn.receive_payloads(stream)
    assert got == [b"one", b"two", b"3"] and all(type(p) is bytes for p in got)
    assert conn.data_to_send()[:1] == b"\x8a"  # the pong, masked (client)

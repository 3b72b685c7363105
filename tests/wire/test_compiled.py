"""The compiled codec (``_speedups.c``) against the pure Python path: same frames, same errors.

Every stream is decoded twice, with the C helpers on and off
(:mod:`pushbench.wire.speedups`), whole, one byte at a time and cut at random
points: the frames, the error's close code and reason, and the frames
decoded before it must be identical. The corpus holds valid streams and one
stream per rule the parser checks; hypothesis adds mutated streams. The C
parser's own error statuses must name the close code the pure path raises,
the encoder must write the pure encoder's bytes, and the settings switch must
select the path.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushbench.settings import Settings
from pushbench.wire import speedups
from pushbench.wire.errors import ProtocolError
from pushbench.wire.frames import C_ERRORS, C_FIRST_ERROR, Frame, FrameReader, encode_frame
from pushbench.wire.protocol import Connection, Role

from .helpers import encode_all, frame_streams, one_byte_chunks, split_at

pytestmark = pytest.mark.skipif(
    not all(speedups.built().values()), reason="the C helpers are not built"
)

ROOT = Path(__file__).resolve().parents[2]
KEY = b"\x37\xfa\x21\x3d"
MAX_FRAME = 1024
MAX_MESSAGE = 3000
# The outcome of a decode: the frames (as plain tuples) and the error, if any.
Outcome = tuple[list[tuple[Any, ...]], tuple[int, str] | None]


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    saved = speedups.state()
    yield
    speedups.restore(saved)


def _decode(chunks: Sequence[bytes], masked: bool, compiled: bool, rsv: int = 0) -> Outcome:
    speedups.use_speedups(compiled)
    reader = FrameReader(
        masked=masked, max_frame_size=MAX_FRAME, max_message_size=MAX_MESSAGE, rsv_allowed=rsv
    )
    out: list[Frame] = []
    try:
        for chunk in chunks:
            reader.feed_into(chunk, out)
    except ProtocolError as exc:
        return [(*f[:1], bytes(f.payload), *f[2:]) for f in out], (exc.code, exc.reason)
    return [(*f[:1], bytes(f.payload), *f[2:]) for f in out], None


def _both(data: bytes, masked: bool, rsv: int = 0) -> Outcome:
    """Decode ``data`` in three chunkings on both paths: per chunking the two paths must
    agree exactly; across chunkings the frames and the close code (a reason may say
    more when text arrives byte by byte: the streaming validator names a surrogate)."""
    chunkings = [[data], one_byte_chunks(data), split_at(data, range(3, len(data), 7))]
    outcomes = []
    for chunks in chunkings:
        compiled = _decode(chunks, masked, True, rsv)
        assert compiled == _decode(chunks, masked, False, rsv)
        outcomes.append(compiled)
    for frames, error in outcomes[1:]:
        assert frames == outcomes[0][0]
        assert (error and error[0]) == (outcomes[0][1] and outcomes[0][1][0])
    return outcomes[0]


def _frame(b0: int, payload: bytes, masked: bool, length_bytes: bytes | None = None) -> bytes:
    """One frame's bytes with a chosen first byte and, optionally, a raw length field."""
    mbit = 0x80 if masked else 0
    if length_bytes is None:
        n = len(payload)
        if n < 126:
            length_bytes = bytes([n | mbit])
        elif n < 65536:
            length_bytes = bytes([126 | mbit]) + n.to_bytes(2)
        else:
            length_bytes = bytes([127 | mbit]) + n.to_bytes(8)
    if not masked:
        return bytes([b0]) + length_bytes + payload
    masked_payload = bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))
    return bytes([b0]) + length_bytes + KEY + masked_payload


def _valid(masked: bool) -> list[bytes]:
    f = lambda b0, p: _frame(b0, p, masked)  # noqa: E731
    text = "héllo €😀".encode()
    return [
        f(0x82, b"x" * 125) * 3,
        f(0x81, text) + f(0x89, b"ping") + f(0x82, b""),
        f(0x01, b"hel") + f(0x89, b"") + f(0x80, b"lo") + f(0x82, b"after"),  # fragmented
        f(0x02, b"a" * 126) + f(0x00, b"b" * 200) + f(0x80, b"") + f(0x81, b""),
        f(0x82, bytes(range(256)) * 3) + f(0x8A, b"pong") + f(0x88, b"\x03\xe8bye"),
        f(0x81, text[:4]) + f(0x81, b"ok"),  # é is 2 bytes: text[:4] is whole characters
        f(0x01, text[:2]) + f(0x80, text[2:]),  # a character split across fragments
    ]


def _invalid(masked: bool) -> dict[str, bytes]:
    f = lambda b0, p, lb=None: _frame(b0, p, masked, lb)  # noqa: E731
    m = 0x80 if masked else 0
    ok = f(0x82, b"fine")
    return {
        "rsv1": ok + f(0xC2, b"x"),
        "rsv3": f(0x92, b"x"),
        "opcode-3": ok + f(0x83, b"x"),
        "opcode-b": f(0x8B, b""),
        "fragmented-ping": ok + f(0x09, b""),
        "wrong-mask-bit": ok + _frame(0x82, b"abc", not masked),
        "control-126": f(0x89, b"p" * 126),
        "non-minimal-16": f(0x82, b"y" * 100, bytes([126 | m]) + (100).to_bytes(2)),
        "non-minimal-64": f(0x82, b"y" * 300, bytes([127 | m]) + (300).to_bytes(8)),
        "over-2-63": ok + bytes([0x82, 127 | m]) + (1 << 63).to_bytes(8) + KEY * masked,
        "frame-too-big": ok + f(0x82, b"z" * (MAX_FRAME + 1)),
        "continuation-alone": ok + f(0x80, b"x"),
        "new-message-inside-fragments": f(0x01, b"a") + f(0x81, b"b"),
        "message-too-big": f(0x02, b"m" * 1000) + f(0x00, b"m" * 1000) + f(0x80, b"m" * 1001),
        "bad-utf8": ok + f(0x81, b"ok\xff"),
        "surrogate": f(0x81, b"\xed\xa0\x80"),
        "overlong": f(0x81, b"\xc0\xaf"),
        "over-10ffff": f(0x81, b"\xf4\x90\x80\x80"),
        "truncated-utf8": f(0x81, "é".encode()[:1]),
        "bad-utf8-in-fragment": f(0x01, b"ok") + f(0x80, b"\xfe"),
        "close-with-bad-utf8": f(0x88, b"\x03\xe8\xff"),  # framing is fine: no error here
    }


@pytest.mark.parametrize("masked", [True, False], ids=["server", "client"])
@pytest.mark.parametrize("index", range(7))
def test_valid_streams_decode_identically(masked: bool, index: int) -> None:
    frames, error = _both(_valid(masked)[index], masked)
    assert error is None and frames


@pytest.mark.parametrize("masked", [True, False], ids=["server", "client"])
@pytest.mark.parametrize("name", sorted(_invalid(True)))
def test_malformed_streams_fail_identically(masked: bool, name: str) -> None:
    frames, error = _both(_invalid(masked)[name], masked)
    if name == "close-with-bad-utf8":
        assert error is None  # the close payload is the protocol layer's to judge
    else:
        assert error is not None, name
    if name.startswith(("rsv1", "opcode-3", "fragmented-ping", "wrong", "over-2", "frame-too")):
        assert frames == [(2, b"fine", True, 0)]  # what came before the violation is kept


def test_negotiated_rsv_bits_pass_on_both_paths() -> None:
    frames, error = _both(_frame(0xC2, b"compressed?", True), True, rsv=0x40)
    assert error is None and frames == [(2, b"compressed?", True, 0x40)]


@pytest.mark.parametrize("masked", [True, False], ids=["server", "client"])
@pytest.mark.parametrize("name", sorted(set(_invalid(True)) - {"close-with-bad-utf8"}))
def test_c_error_status_names_the_pure_close_code(masked: bool, name: str) -> None:
    """Where the C parser itself stops at the violation, its status maps to the close
    code the pure path raises (the frame is re-read there; the table is the fallback)."""
    from pushbench.wire import _speedups

    data = _invalid(masked)[name]
    speedups.use_speedups(False)
    _, error = _decode([data], masked, compiled=False)
    assert error is not None
    pos = 0
    statuses = []
    while pos < len(data):
        out: list[Any] = []
        pos, status = _speedups.parse_frames(
            Frame, out, data, pos, 1 if masked else 0, 0, MAX_FRAME, MAX_MESSAGE
        )
        statuses.append(status)
        if status != 1:  # a fragment: the pure path would take it; skip past it here
            break
        pos = len(data)  # fragmented-message rules are the pure path's alone
    if statuses[-1] >= C_FIRST_ERROR:
        assert C_ERRORS[statuses[-1]][0] == error[0], (name, statuses)
    else:
        assert name in {
            "continuation-alone",
            "new-message-inside-fragments",
            "message-too-big",
            "bad-utf8-in-fragment",
        }, (name, statuses)


def test_c_parser_takes_complete_frames_and_stops_at_the_rest() -> None:
    from pushbench.wire import _speedups

    whole = _frame(0x82, b"a" * 10, False) + _frame(0x89, b"p", False)
    tail = _frame(0x82, b"b" * 300, False)
    out: list[Any] = []
    pos, status = _speedups.parse_frames(Frame, out, whole + tail[:5], 0, 0, 0, 1 << 20, 1 << 20)
    assert (pos, status) == (len(whole), 0)
    assert out == [Frame(2, b"a" * 10), Frame(9, b"p")] and type(out[0]) is Frame
    payloads: list[Any] = []
    pos, status = _speedups.parse_frames(Frame, payloads, whole, 0, 4, 0, 1 << 20, 1 << 20)
    assert (pos, status, payloads) == (12, 2, [b"a" * 10])  # payloads only: stops at control
    pos, status = _speedups.parse_frames(Frame, [], whole, 0, 2, 0, 1 << 20, 1 << 20)
    assert (pos, status) == (0, 1)  # inside a fragmented message: data frames are the reader's


FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def _mutated(draw: st.DrawFn, masked: bool) -> bytes:
    data = bytearray(encode_all(draw(frame_streams(small=True)), masked))
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "set", "insert", "truncate"]))
        if kind == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and pos < len(data):
            data[pos] = draw(st.sampled_from([0x00, 0x7E, 0x7F, 0x80, 0xFF, 0x88, 0x01, 0xED]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        else:
            del data[pos:]
    return bytes(data)


@FUZZ
@given(data=st.data(), masked=st.booleans())
def test_mutated_streams_agree(data: st.DataObject, masked: bool) -> None:
    stream = data.draw(_mutated(masked))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    chunks = split_at(stream, cuts)
    assert _decode(chunks, masked, True) == _decode(chunks, masked, False)


@FUZZ
@given(payload=st.binary(max_size=40), masked=st.booleans())
def test_text_validation_agrees_with_python(payload: bytes, masked: bool) -> None:
    stream = _frame(0x81, payload, masked)
    frames, error = _decode([stream], masked, True)
    try:
        payload.decode()
    except UnicodeDecodeError:
        assert error is not None and error[0] == 1007
    else:
        assert error is None and frames == [(1, payload, True, 0)]


@pytest.mark.parametrize("size", [0, 1, 7, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("mask", [False, KEY], ids=["unmasked", "masked"])
@pytest.mark.parametrize("fin", [True, False])
def test_encoder_writes_the_pure_bytes(size: int, mask: bool | bytes, fin: bool) -> None:
    payload = bytes(i * 7 & 0xFF for i in range(size))
    speedups.use_speedups(True)
    compiled = encode_frame(2, payload, fin=fin, mask=mask, rsv=0x40)
    speedups.use_speedups(False)
    assert compiled == encode_frame(2, payload, fin=fin, mask=mask, rsv=0x40)


def test_encoder_rejects_a_bad_key() -> None:
    speedups.use_speedups(True)
    with pytest.raises(ValueError):
        encode_frame(2, b"x", mask=b"abc")


def test_protocol_events_agree_on_a_fragmented_conversation() -> None:
    frames = [Frame(1, b"fragmented ", fin=False), Frame(9, b"!"), Frame(0, "é".encode())]
    stream = encode_all(frames, KEY) + encode_all(
        [Frame(2, b"x" * 300), Frame(8, b"\x03\xe8")], KEY
    )
    results = []
    for compiled in (True, False):
        speedups.use_speedups(compiled)
        conn = Connection(Role.SERVER, max_frame_size=MAX_FRAME, max_message_size=MAX_MESSAGE)
        events = [e for chunk in one_byte_chunks(stream) for e in conn.receive_data(chunk)]
        results.append((events, conn.data_to_send()))
    assert results[0][0] == results[1][0] and len(results[0][0]) == 4
    assert results[0][1][:2] == results[1][1][:2]  # pong and close (keys are random)


@pytest.mark.parametrize("on", [True, False])
def test_the_settings_switch_selects_the_path(on: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {} if on else {"PUSHBENCH_NO_SPEEDUPS": "1"}
    Settings.from_environ(environ).apply()
    assert speedups.enabled() is on
    assert (speedups.C_MASK is not None) is on and (speedups.C_ENCODE is not None) is on
    calls: list[int] = []
    if on:
        real = speedups.C_PARSE
        assert real is not None

        def spy(*args: Any) -> tuple[int, int]:
            calls.append(1)
            return real(*args)

        monkeypatch.setattr(speedups, "C_PARSE", spy)
    FrameReader(masked=True).feed(_frame(0x82, b"data", True))
    assert bool(calls) is on


def test_setup_py_builds_the_parser(tmp_path: Path) -> None:
    """``setup.py build_ext`` (what ``pip install -e .`` runs) compiles all three helpers."""
    src = tmp_path / "src"
    (src / "pushbench" / "wire").mkdir(parents=True)
    (src / "setup.py").write_bytes((ROOT / "setup.py").read_bytes())
    c_file = "pushbench/wire/_speedups.c"
    (src / c_file).write_bytes((ROOT / c_file).read_bytes())
    built = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", "lib"],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (so,) = (src / "lib" / "pushbench" / "wire").glob("_speedups*.so")
    probe = (
        "import importlib.util as u, sys; s = u.spec_from_file_location('pushbench.wire._speedups',"
        f" {str(so)!r}); m = u.module_from_spec(s); s.loader.exec_module(m);"
        " print(sorted(n for n in dir(m) if not n.startswith('_')))"
    )
    names = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert names.stdout.strip() == "['apply_mask', 'encode_frame', 'parse_frames']"

"""h45: the compiled receive loop (``clients/_rxloop.c``) records exactly what the asyncio
path records from the same bytes, and the light clients use it by default.

Differential: one byte stream, cut into reads (fragmented, several frames per read, a
frame or an event split across reads, a Ping in the middle, a Close), goes once through
the asyncio path's parsers (the codec's ``receive_payloads`` + ``Recorder.record_many``;
the response reader + ``EventParser`` + ``Recorder.record``) and once through the loop
over a socket pair, each read handed over whole (the next is sent only once the loop has
read the last, so every read is one ``recv``). The rows must be the same, each stamped
by the read that completed it. End to end: a short raw-stack cell of each of ws and sse
whose worker says ``rx_engine = c-epoll`` and delivers every message exactly once.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import start_server

from pushbench.clients import rxengine
from pushbench.clients.recorder import FIELDS, Recorder
from pushbench.contract import Envelope, encode
from pushbench.schema.worker import WorkerSpec
from pushbench.sse import EventParser
from pushbench.wire import Connection, Role, speedups
from pushbench.wire.http_response import ResponseReader

_rxloop = pytest.importorskip("pushbench.clients._rxloop")
pytestmark = pytest.mark.timeout(60)


def _env(seq: int, payload: str = "x" * 20) -> bytes:
    return encode(Envelope("t", seq, 1000 + seq, 2000 + seq, payload))


def _frame(op: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | op])
    n = len(payload)
    if n < 126:
        return head + bytes([n]) + payload
    if n < 65536:
        return head + bytes([126]) + struct.pack("!H", n) + payload
    return head + bytes([127]) + struct.pack("!Q", n) + payload


def _ws_stream() -> tuple[bytes, list[int]]:
    """Frames of every kind, and the cuts that make the reads."""
    frames = [_frame(1, _env(1)), _frame(1, _env(2)), _frame(1, _env(3))]  # three in a read
    frames.append(_frame(1, _env(4)))  # split across two reads (cut below)
    frames.append(_frame(9, b"ping!"))  # a Ping in the middle
    whole = _env(5)
    frames += [_frame(1, whole[:10], fin=False), _frame(9, b""), _frame(0, whole[10:])]
    frames.append(_frame(1, b'{"s":6,"t":"t","sch":1006,"pub":2006,"p":"slow"}'))  # json path
    frames.append(_frame(2, _env(7, "y" * 70_000)))  # a long one (64-bit length)
    frames.append(_frame(1, b"not json"))  # a parse error, still a message
    frames.append(_frame(1, _env(8)))
    frames.append(_frame(8, struct.pack("!H", 1001) + b"bye"))
    frames.append(_frame(1, _env(9)))  # after the Close: never read
    stream = b"".join(frames)
    first3 = sum(len(f) for f in frames[:3])
    cuts = [first3, first3 + 5, first3 + len(frames[3]) + 3, len(stream) - 200, len(stream)]
    cuts += list(range(cuts[2] + 7, cuts[3], 997))
    return stream, sorted(set(cuts))


def _sse_stream(chunked: bool) -> tuple[bytes, list[int]]:
    body = b"\xef\xbb\xbfretry: 250\n\n: heartbeat\n\n"
    body += b"id: 1\ndata: " + _env(1) + b"\n\n"
    body += b"id: 2\r\ndata: " + _env(2) + b"\r\n\r\n"  # CRLF, and a CR cut from its LF
    body += b"data: " + _env(3)[:15] + b"\ndata: " + _env(3)[15:] + b"\n\n"  # two data lines
    body += b"id: 4\ndata: " + _env(4) + b"\rid: 5\n\n"  # lone CR; an id after the data
    body += b"event: other\ndata: " + _env(6) + b"\n\n"
    body += b"id: 7\ndata: " + _env(7)  # cut off: never dispatched
    if chunked:
        parts = [body[i : i + 37] for i in range(0, len(body), 37)]
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    else:
        wire = body
    cuts = [*list(range(1, len(wire), 53)), 2, 3, len(wire)]
    crlf = wire.index(b"\r\n\r\n", wire.index(b"id: 2"))
    cuts.append(crlf + 1)
    return wire, sorted(set(cuts))


def _reads(stream: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *cuts]
    return [stream[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _python_ws(reads: list[bytes]) -> Recorder:
    rec = Recorder(100)
    ws = Connection(Role.CLIENT)
    for i, data in enumerate(reads):
        payloads = ws.receive_payloads(data)
        if payloads:
            rec.record_many(7, payloads, i)
        if ws.close_received is not None:
            break
    return rec


def _python_sse(reads: list[bytes], head: bytes) -> Recorder:
    rec = Recorder(100)
    reader = ResponseReader()
    reader.feed(head)
    parser = EventParser()
    for i, data in enumerate(reads):
        for event in parser.feed(reader.feed(data)):
            rec.record(7, event.data, i)
    return rec


class Loop:
    """The compiled loop over one end of a socket pair, fed read by read."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.engine = _rxloop.Engine(
            rec.seq, rec.sched_ns, rec.pub_ns, rec.recv_ns, rec.conn, rec.n, rec.overflow
        )
        self.ours, self.theirs = socket.socketpair()
        self.theirs.setblocking(False)
        self.slow: list[tuple[int, bytes, int]] = []
        self.thread = threading.Thread(target=self.engine.run, args=(self.sync,))
        self.thread.start()

    def sync(self) -> None:  # what RxEngine._sync does, without asyncio
        n, overflow, _, slow, _ = self.engine.take()
        self.rec.n, self.rec.overflow = n, overflow
        for _, conn, payload, recv_ns in slow:
            self.rec.record(conn, payload, recv_ns)
        self.engine.set_counts(self.rec.n, self.rec.overflow)

    def feed(self, reads: list[bytes]) -> list[int]:
        """Send each read once the loop has taken the one before → the time of each send."""
        sent: list[int] = []
        for data in reads:
            self._drained()
            sent.append(time.monotonic_ns())
            self.ours.sendall(data)
        self._drained()
        return sent

    def _drained(self) -> None:
        buf = bytearray(4)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            fcntl.ioctl(self.theirs.fileno(), termios.FIONREAD, buf)
            if struct.unpack("i", buf)[0] == 0:
                return
            time.sleep(0.001)
        # the loop stopped reading (the connection ended): the rest is never read

    def close(self, ident: int) -> tuple[int, ...]:
        time.sleep(0.05)
        self.engine.remove(ident)
        info = self.engine.info(ident)
        self.engine.release(ident)
        self.engine.stop()
        self.thread.join()
        self.sync()
        self.engine.close()
        self.ours.close()
        self.theirs.close()
        return tuple(info)


def _rows(rec: Recorder) -> list[tuple[int, ...]]:
    arrays = rec.arrays()
    return list(zip(*(arrays[f].tolist() for f in FIELDS), strict=True))


def _by_read(rec: Recorder, sent: list[int]) -> list[tuple[int, ...]]:
    """The loop's rows with recv_ns replaced by the index of the read that carried it."""
    stamps = np.searchsorted(np.array(sent), rec.arrays()["recv_ns"], side="right") - 1
    return [(*row[:4], int(i)) for row, i in zip(_rows(rec), stamps.tolist(), strict=True)]


@pytest.fixture
def speedups_on() -> Iterator[None]:
    saved = speedups.state()
    speedups.use_speedups(True)
    yield
    speedups.restore(saved)


def test_ws_loop_records_what_the_codec_and_recorder_record(speedups_on: None) -> None:
    stream, cuts = _ws_stream()
    reads = _reads(stream, cuts)
    want = _python_ws(reads)
    rec = Recorder(100)
    loop = Loop(rec)
    ident = loop.engine.add(loop.theirs.fileno(), 7, rxengine.KIND_WS, b"", 0, 0, 0, b"")
    sent = loop.feed(reads)
    pong = loop.ours.recv(100)
    ended, status, code, _, messages, last_seq, _, _, received = loop.close(ident)
    assert _by_read(rec, sent) == _rows(want)
    assert (rec.slow_parses, rec.parse_errors) == (want.slow_parses, want.parse_errors) == (1, 1)
    assert (ended, status, code) == (1, rxengine.CLOSED, 1001)
    assert messages == 9 and last_seq == 8 and received == len(stream)
    # the Pongs: masked, the Ping's payload
    assert pong[0] == 0x8A and pong[1] == 0x80 | 5
    key = pong[2:6]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(pong[6:11])) == b"ping!"


@pytest.mark.parametrize("chunked", [True, False])
def test_sse_loop_records_what_the_reader_and_event_parser_record(
    speedups_on: None, chunked: bool
) -> None:
    stream, cuts = _sse_stream(chunked)
    head = b"HTTP/1.1 200 OK\r\n" + (b"Transfer-Encoding: chunked\r\n" if chunked else b"")
    head += b"\r\n"
    reads = _reads(stream, cuts)
    want = _python_sse(reads, head)
    rec = Recorder(100)
    loop = Loop(rec)
    framing = 2 if chunked else 0
    ident = loop.engine.add(loop.theirs.fileno(), 7, rxengine.KIND_SSE, b"", 0, framing, 0, b"")
    sent = loop.feed(reads)
    _, status, _, _, messages, last_seq, last_id, retry_ms, _ = loop.close(ident)
    assert _by_read(rec, sent) == _rows(want)
    assert [r[1] for r in _rows(want)] == [1, 2, 3, 4, 6]
    assert (messages, last_seq, last_id, retry_ms) == (5, 6, b"5", 250)
    assert status == rxengine.REMOVED


def test_sse_stream_end_and_leftover_with_the_head() -> None:
    """The bytes that came with the head are parsed at once with its stamp; the chunked
    stream's last chunk ends the connection normally (DONE)."""
    rec = Recorder(10)
    loop = Loop(rec)
    body = b"id: 1\ndata: " + _env(1) + b"\n\n"
    rest = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    ident = loop.engine.add(loop.theirs.fileno(), 3, rxengine.KIND_SSE, rest, 42, 2, 0, b"")
    info = loop.close(ident)
    assert info[:2] == (1, rxengine.DONE)
    assert _rows(rec) == [(3, 1, 1001, 2001, 42)]


def test_choice_is_the_loop_for_light_ws_and_sse_only(speedups_on: None) -> None:
    base = {"base_url": "http://127.0.0.1:1", "topic": "t", "connections": 1, "capacity": 1}
    rec = Recorder(1)
    for transport in ("ws", "sse"):
        spec = WorkerSpec.from_dict({**base, "transport": transport})
        assert rxengine.choice(spec, rec) == rxengine.COMPILED
        speedups.use_rx_loop(False)
        try:
            assert rxengine.choice(spec, rec) == rxengine.ASYNCIO
        finally:
            speedups.use_rx_loop(True)
        chat = WorkerSpec.from_dict({**base, "transport": transport, "publish": {"rate": 1.0}})
        assert rxengine.choice(chat, rec) == rxengine.ASYNCIO
    for transport in ("ws-aiohttp", "longpoll"):
        spec = WorkerSpec.from_dict({**base, "transport": transport})
        assert rxengine.choice(spec, rec) == rxengine.ASYNCIO
    stalled = Recorder(1)
    stalled.asyncio_only = True
    assert rxengine.choice(WorkerSpec.from_dict({**base, "transport": "ws"}), stalled) == "asyncio"
    speedups.use_speedups(False)
    assert rxengine.choice(WorkerSpec.from_dict({**base, "transport": "ws"}), rec) == "asyncio"


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_a_raw_stack_cell_is_received_by_the_loop(transport: str, tmp_path: Path) -> None:
    """A short cell against the raw stack: the worker says the loop received it, and every
    connection got every message exactly once, counted per connection."""
    server = start_server(tmp_path / "server.stderr", "--sse-retry-ms", "100", stack="raw")
    try:
        spec = {
            "transport": transport,
            "base_url": server.url("").rstrip("/"),
            "topic": "t",
            "connections": 3,
            "duration_s": 1.5,
            "warmup_s": 0.1,
            "capacity": 1000,
        }
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "pushbench.clients.worker", str(tmp_path / "spec.json")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHBENCH_NO_")}
        proc = subprocess.Popen([*cmd, str(out)], stdout=subprocess.PIPE, env=env)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"worker ready"
            query = "topic=t&rate=500&count=100&size=100"
            req = urllib.request.Request(server.url(f"/control/ticker?{query}"), method="POST")
            with urllib.request.urlopen(req, timeout=5) as answer:
                assert answer.status == 200
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        server.stop()
    server.check()
    result = json.loads(out.with_name("out.json").read_text())
    with np.load(out.with_name("out.npz")) as npz:
        conn, seq = npz["conn"], npz["seq"]
    assert result["rx_engine"] == rxengine.COMPILED
    # the loop-lag probe ran in the receive loop, every 5 ms of the ~1.6 s after ready
    assert result["loop_lag_probe"].startswith("receive loop's timerfd every 5 ms")
    assert result["loop_lag_samples"] > 100  # the asyncio timer alone: one per 50 ms
    assert result["complete"] is True and result["messages"] == 300
    for c in range(3):
        assert sorted(seq[conn == c].tolist()) == list(range(1, 101))
        per = result["per_connection"][c]
        assert (per["messages"], per["last_seq"], per["errors"]) == (100, 100, 0)
        assert per["bytes_in"] > 100 * 100


def test_the_loops_lag_probe_counts_its_firings_and_sees_it_held() -> None:
    """The worker's loop-lag probe inside the compiled loop (``probe``/``lag``): its 5 ms
    timerfd fires while the loop idles; a sync callback that holds the loop 40 ms (as the
    GIL held by the worker's other thread would) shows as one lag of ≥ 30 ms, in a bucket
    of 20 ms or more; ``lag(True)`` forgets what came before; the figures outlive close()."""
    rec = Recorder(100)
    engine = _rxloop.Engine(
        rec.seq, rec.sched_ns, rec.pub_ns, rec.recv_ns, rec.conn, rec.n, rec.overflow
    )
    held: list[int] = []

    def sync() -> None:
        engine.take()
        if not held and engine.counts()[0] > 0:  # the first sync after a receipt
            held.append(time.monotonic_ns())
            time.sleep(0.04)

    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    engine.probe(5_000_000)
    thread = threading.Thread(target=engine.run, args=(sync,))
    thread.start()
    try:
        time.sleep(0.1)
        top, _, total, samples, counts = engine.lag(True)
        assert samples >= 5 and sum(counts) == samples and 0 <= top <= total
        time.sleep(0.02)  # past the firing in flight at the reset, which is not counted
        ident = engine.add(theirs.fileno(), 0, 0, b"", 0, 0, 0, b"")
        ours.sendall(_frame(1, _env(1)))
        time.sleep(0.15)
        top, at, _, samples, counts = engine.lag(False)
        assert held and top >= 30_000_000, (top, held)
        assert held[0] < at and sum(counts[8:]) >= 1 and sum(counts) == samples
        engine.remove(ident)
    finally:
        engine.stop()
        thread.join()
        engine.close()
        ours.close()
        theirs.close()
    assert engine.lag(False)[0] == top  # still readable
    with pytest.raises(RuntimeError):
        engine.probe(5_000_000)

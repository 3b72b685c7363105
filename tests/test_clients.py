"""The load clients (``clients/``) against the aiohttp stack served in-process.

Every transport's client must record exactly the messages a server-side ticker
published, once each, with the server's stamps; SSE and WebSocket clients must
resume after the server drops them without loss or duplicates; the kernel's
byte counters must be read at the right offsets; the worker process must write
valid output when it completes and when it is stopped by SIGTERM. How many
messages per second a client takes on one core is measured by the benchmark
``pushbench bench-client`` (:mod:`pushbench.bench.client`), not here.

Everything binds 127.0.0.1 port 0 and stops what it started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import uvloop

from pushbench.auth import make_control_token, make_token
from pushbench.browser import chromium_path
from pushbench.clients import tcpinfo
from pushbench.clients.browser_worker import BrowserWorker
from pushbench.clients.common import ConnStats
from pushbench.clients.recorder import GcMonitor, LoopLagMonitor, Recorder
from pushbench.clients.status import (
    STATUS_JS,
    STEPS_PER_STATUS,
    SUB_BITS,
    LatencyWindow,
    bucket_of,
)
from pushbench.clients.worker import READY_LINE, Worker, client_run, output_paths
from pushbench.clients.worker import main as worker_main
from pushbench.contract import Envelope, decode, encode
from pushbench.hub import Hub
from pushbench.schema.worker import WorkerResult, WorkerSpec, read_output
from pushbench.servers.aiohttp_stack import run as run_aiohttp
from pushbench.servers.base import StackOptions
from pushbench.service import PushService, ServerConfig
from pushbench.wire import Opcode, encode_frame

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
STEP = 5.0  # s: the most any single wait may take
CONFIG = ServerConfig(sse_retry_ms=100)  # quick SSE reconnects
TOPIC = "t"
COUNT = 200
RATE = 500
INTERVAL_NS = int(1e9 / RATE)
#: Every asyncio client: the light ones and the aiohttp variants of every protocol.
EVERY = [
    "ws",
    "ws-aiohttp",
    "sse",
    "sse-aiohttp",
    "longpoll",
    "longpoll-aiohttp",
    "shortpoll",
    "shortpoll-aiohttp",
]


def arun(coro: Coroutine[Any, Any, None], loop: str = "asyncio") -> None:
    """Run ``coro`` on a fresh event loop of the kind the worker spec names."""
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


async def eventually(check: Any, what: str, seconds: float = STEP) -> None:
    """Poll ``check()`` until true, failing with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# --- an in-process server ---------------------------------------------------------------------


@dataclass
class Server:
    hub: Hub
    service: PushService
    port: int
    http: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start_ticker(self, count: int = COUNT, rate: int = RATE) -> None:
        query = f"topic={TOPIC}&rate={rate}&count={count}&size=100"
        secret = self.service.config.auth_secret  # a closed control plane: a control token
        headers = {"Authorization": f"Bearer {make_control_token(secret)}"} if secret else {}
        url = f"{self.base_url}/control/ticker?{query}"
        async with self.http.post(url, headers=headers) as resp:
            assert resp.status == 200, await resp.text()

    def published(self) -> list[Envelope]:
        return [decode(item.data) for item in self.hub.since(TOPIC, 0)]


@asynccontextmanager
async def serving(config: ServerConfig = CONFIG) -> AsyncIterator[Server]:
    """The aiohttp stack on a free loopback port until the block ends (always stopped)."""
    hub = Hub()
    service = PushService(hub, config)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    opts = StackOptions()
    task = asyncio.create_task(run_aiohttp(service, "127.0.0.1", 0, ready.set_result, stop, opts))
    try:
        first: set[asyncio.Future[Any]] = {ready, task}
        await asyncio.wait(first, timeout=STEP, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        async with aiohttp.ClientSession() as http:
            yield Server(hub, service, ready.result(), http)
    finally:
        if service.ticker is not None:
            await service.ticker.stop()
        stop.set()
        await asyncio.wait_for(task, 10.0)


# --- clients in this process ------------------------------------------------------------------


@dataclass
class Running:
    recorder: Recorder
    stats: list[ConnStats]
    stop: asyncio.Event
    tasks: list[asyncio.Future[None]]

    def received(self, conn: int) -> int:
        return self.stats[conn].messages

    async def finish(self) -> None:
        self.stop.set()
        done, pending = await asyncio.wait(self.tasks, timeout=STEP)
        assert not pending, "clients did not stop"
        for task in done:
            task.result()

    def column(self, conn: int, name: str) -> np.ndarray[Any, Any]:
        arrays = self.recorder.arrays()
        selected: np.ndarray[Any, Any] = arrays[name][arrays["conn"] == conn]
        return selected


@asynccontextmanager
async def clients(transport: str, base_url: str, n: int = 3, **spec: Any) -> AsyncIterator[Running]:
    """``n`` clients of ``transport``, all settled (connected or failed) on entry."""
    spec.setdefault("poll_interval_s", 0.01)
    spec.setdefault("capacity", 10 * COUNT)
    spec.update(transport=transport, base_url=base_url, topic=TOPIC, connections=n)
    full = WorkerSpec.from_dict(spec)
    recorder = Recorder(full.capacity)
    stats = [ConnStats(i) for i in range(n)]
    stop = asyncio.Event()
    run = client_run(transport)
    tasks: list[asyncio.Future[None]] = [
        asyncio.ensure_future(run(i, full, recorder, s, stop)) for i, s in enumerate(stats)
    ]
    running = Running(recorder, stats, stop, tasks)
    try:
        await asyncio.wait_for(asyncio.gather(*(s.settled.wait() for s in stats)), STEP)
        yield running
    finally:
        if not stop.is_set():
            await running.finish()


def check_exact(run: Running, server: Server, n: int, count: int = COUNT) -> None:
    """Each of ``n`` connections recorded seqs 1..count once, with the server's stamps."""
    published = {e.seq: e for e in server.published()}
    assert sorted(published) == list(range(1, count + 1))
    for conn in range(n):
        seq = run.column(conn, "seq")
        assert sorted(seq.tolist()) == list(range(1, count + 1)), f"conn {conn}"
        for s, sch, pub, recv in zip(
            seq.tolist(),
            run.column(conn, "sched_ns").tolist(),
            run.column(conn, "pub_ns").tolist(),
            run.column(conn, "recv_ns").tolist(),
            strict=True,
        ):
            env = published[s]
            assert (sch, pub) == (env.scheduled_ns, env.published_ns)
            assert sch <= pub <= recv
    assert run.recorder.parse_errors == run.recorder.slow_parses == run.recorder.overflow == 0


# --- every transport --------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("transport", EVERY)
def test_every_client_records_exactly_what_was_published(transport: str, loop: str) -> None:
    async def main() -> None:
        async with serving() as server, clients(transport, server.base_url) as run:
            assert all(s.connected and s.connect_ns > 0 for s in run.stats)
            await server.start_ticker()
            await eventually(
                lambda: all(run.received(c) >= COUNT for c in range(3)), f"{COUNT} messages"
            )
            await run.finish()
            check_exact(run, server, 3)
            # The ticker's schedule: message i is due at start + (i - 1) / rate.
            first = server.published()[0].scheduled_ns
            sched = np.sort(run.column(0, "sched_ns"))
            assert (np.diff(sched) == INTERVAL_NS).all() and sched[0] == first
            frames = sum(
                len(encode_frame(Opcode.TEXT, item.data)) for item in server.hub.since(TOPIC, 0)
            )
            for s in run.stats:
                assert (s.connects, s.reconnects, s.errors) == (1, 0, 0), s.last_error
                assert s.messages == COUNT and s.last_seq == COUNT
                assert s.bytes_source == "tcp_info"
                assert s.handshake_bytes_out > 0 and s.handshake_bytes_in > 0
                assert s.bytes_in > 0
                if transport.startswith("ws"):
                    # Nothing but the 200 frames arrived after the 101.
                    assert s.bytes_in == frames
                    assert s.bytes_out == 0
                else:
                    assert s.bytes_in > COUNT * 100
                if transport.endswith("poll"):
                    assert s.requests >= 2 and s.bytes_out > 0

    arun(main(), loop)


def test_short_poll_keeps_its_schedule() -> None:
    async def main() -> None:
        async with serving() as server:
            interval = 0.02
            async with clients("shortpoll", server.base_url, n=2, poll_interval_s=interval) as run:
                await asyncio.sleep(0.5)
            for s in run.stats:
                # First (connecting) poll + one per slot in 0.5 s, give or take one.
                assert abs(s.requests - (1 + 0.5 / interval)) <= 2, s.requests
                assert s.empty_polls == s.requests and s.missed_polls == 0

    arun(main())


@pytest.mark.parametrize("transport", ["sse", "sse-aiohttp", "ws", "ws-aiohttp"])
def test_resume_after_the_server_drops_the_connection(transport: str) -> None:
    """The hub drops every subscriber mid-stream; SSE resumes with Last-Event-ID, the
    WebSocket clients with since: nothing lost, nothing twice."""

    async def main() -> None:
        async with serving() as server, clients(transport, server.base_url) as run:
            await server.start_ticker()
            await eventually(lambda: all(run.received(c) >= 50 for c in range(3)), "50 messages")
            await server.hub.stop()  # every subscription ends: streams close
            await eventually(
                lambda: all(run.received(c) >= COUNT for c in range(3)), f"{COUNT} messages"
            )
            await run.finish()
            check_exact(run, server, 3)
            for s in run.stats:
                assert s.reconnects == 1 and s.messages == COUNT
                # SSE: the end of a stream is routine; WebSocket: a 1013 close is an error.
                assert s.errors == (0 if transport.startswith("sse") else 1), s.last_error

    arun(main())


@pytest.mark.parametrize(
    "transport", ["ws", "ws-aiohttp", "sse", "sse-aiohttp", "longpoll", "longpoll-aiohttp"]
)
def test_clients_publish_over_their_transport(transport: str) -> None:
    """Chat-like cells: each client also publishes (WebSocket frames, else POST /publish)
    and everyone receives everyone's messages."""
    publish = {"rate": 200.0, "payload_size": 10}

    async def main() -> None:
        async with serving() as server:
            async with clients(transport, server.base_url, n=2, publish=publish) as run:
                await eventually(
                    lambda: (
                        all(run.received(c) >= 40 for c in range(2))
                        and all(s.published >= 20 for s in run.stats)
                    ),
                    "messages",
                )
            published = {e.seq: e for e in server.published()}
        for s in run.stats:
            assert s.published >= 20 and s.publish_errors == 0, s.last_error
            assert s.publish_lag_max_ns < 1e9
        assert run.recorder.parse_errors == 0
        for conn in range(2):
            for seq, pub in zip(
                run.column(conn, "seq").tolist(), run.column(conn, "pub_ns").tolist(), strict=True
            ):
                assert published[seq].payload == "x" * 10 and published[seq].published_ns == pub

    arun(main())


@pytest.mark.parametrize("transport", EVERY)
def test_tokens_are_sent_and_refusals_counted(transport: str) -> None:
    secret = b"s3cret"
    config = ServerConfig(auth_secret=secret, sse_retry_ms=100)

    async def main() -> None:
        async with serving(config) as server:
            async with clients(transport, server.base_url, n=1) as refused:
                await eventually(lambda: refused.stats[0].errors >= 1, "a refusal")
            assert not refused.stats[0].connected
            assert refused.stats[0].last_error is not None
            token = make_token(secret, TOPIC, ttl_s=60)
            async with clients(transport, server.base_url, n=1, token=token) as run:
                assert run.stats[0].connected
                await server.start_ticker(count=10, rate=1000)
                await eventually(lambda: run.received(0) >= 10, "10 messages")
            assert run.stats[0].errors == 0

    arun(main())


def test_unreachable_server_counts_errors_and_keeps_trying() -> None:
    async def main() -> None:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            async with clients("ws", url, n=2) as run:
                await eventually(lambda: all(s.errors >= 2 for s in run.stats), "retries")
        assert not any(s.connected for s in run.stats)
        assert all(s.bytes_source == "unavailable" for s in run.stats)

    arun(main())


# --- the recorder -----------------------------------------------------------------------------


def envelope(seq: int, payload: str = "x", topic: str = "bench") -> bytes:
    return encode(Envelope(topic, seq, 1000 + seq, 2000 + seq, payload))


def test_recorder_fast_path_fallback_and_errors() -> None:
    rec = Recorder(10)
    assert rec.record(7, envelope(5), 3000) == 5
    assert rec.record(7, bytearray(envelope(6)), 3001) == 6
    other_order = json.dumps({"s": 9, "p": "y", "pub": 2009, "t": "a", "sch": 1009}).encode()
    assert rec.record(8, other_order, 3002) == 9
    assert rec.slow_parses == 1
    for bad in (b"", b"not json", b"[1,2]", b'{"t":"a","s":1}', b'{"t":"a","s":"1","sch":2}'):
        assert rec.record(1, bad, 1) == -1
    too_big = b'{"t":"a","s":1,"sch":%d,"pub":1,"p":""}' % 2**63
    assert rec.record(1, too_big, 1) == -1
    assert rec.parse_errors == 6
    arrays = rec.arrays()
    assert arrays["conn"].dtype == np.uint32 and arrays["seq"].dtype == np.int64
    assert arrays["conn"].tolist() == [7, 7, 8]
    assert arrays["seq"].tolist() == [5, 6, 9]
    assert arrays["sched_ns"].tolist() == [1005, 1006, 1009]
    assert arrays["pub_ns"].tolist() == [2005, 2006, 2009]
    assert arrays["recv_ns"].tolist() == [3000, 3001, 3002]


def test_recorder_overflow_never_grows() -> None:
    rec = Recorder(3)
    seqs = [rec.record(0, envelope(i), i) for i in range(1, 6)]
    assert seqs == [1, 2, 3, 4, 5]  # still parsed: clients resume from it
    assert rec.n == 3 and rec.overflow == 2 and len(rec.seq) == 3
    assert rec.arrays()["seq"].tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    "payloads",
    [
        [],
        ["plain"],
        ['"}', "\\", '\\"}', "},{", '"},{"t":"x","s":99,', "ünï", ""],
    ],
)
def test_recorder_batch_scans_poll_answers(payloads: list[str]) -> None:
    items = [envelope(i + 1, p) for i, p in enumerate(payloads)]
    body = b'{"last":%d,"messages":[' % len(items) + b",".join(items) + b"]}"
    rec = Recorder(100)
    assert rec.record_batch(4, body, 123) == (len(items), len(items))
    assert rec.arrays()["seq"].tolist() == list(range(1, len(items) + 1))
    assert set(rec.arrays()["recv_ns"].tolist()) <= {123}
    assert rec.slow_parses == rec.parse_errors == 0


def test_recorder_batch_falls_back_without_double_counting() -> None:
    rec = Recorder(100)
    messages = [
        {"t": "a", "s": 1, "sch": 11, "pub": 21, "p": "x"},
        {"t": "a", "sch": 12, "s": 2, "pub": 22, "p": "y"},  # unexpected order
    ]
    body = json.dumps({"last": 2, "messages": messages}).encode()
    assert rec.record_batch(0, body, 5) == (2, 2)
    assert rec.arrays()["seq"].tolist() == [1, 2] and rec.slow_parses == 1
    # Half-understood: the first message is scanned, then the body breaks off.
    broken = b'{"last":3,"messages":[' + envelope(3) + b",{oops"
    assert rec.record_batch(0, broken, 6) == (-1, 0)
    assert rec.n == 2 and rec.parse_errors == 1


def test_receive_path_keeps_no_objects_for_the_collector() -> None:
    rec = Recorder(100_000)
    data = [envelope(i, "x" * 100) for i in range(1, 1001)]
    body = b'{"last":1000,"messages":[' + b",".join(data) + b"]}"
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(50):
        for d in data:
            rec.record(1, d, 1)
    rec.record_batch(2, body, 2)
    after = len(gc.get_objects())
    assert rec.n == 51_000
    assert after - before < 50  # 51,000 messages, no per-message survivors


def test_loop_lag_and_gc_monitors() -> None:
    async def main() -> None:
        lag = LoopLagMonitor()
        lag.start()
        await asyncio.sleep(0.02)
        time.sleep(0.05)  # the harness stalls itself
        await asyncio.sleep(0.02)
        await lag.stop()
        summary = lag.summary()
        assert summary["max_loop_lag_ns"] >= 40_000_000
        # 50 ms blocked minus the part of the 5 ms interval already gone: ≥ 20 ms buckets
        assert sum(summary["loop_lag_hist"]["counts"][-3:]) >= 1
        assert sum(summary["loop_lag_hist"]["counts"]) == summary["loop_lag_samples"]

    arun(main())
    mon = GcMonitor()
    mon.install()
    try:
        gc.collect()
    finally:
        mon.uninstall()
    summary = mon.summary()
    assert summary["gc_collections_by_generation"][2] >= 1
    assert 0 < summary["gc_pause_ns_max"] <= summary["gc_pause_ns_sum"]


def test_loop_lag_reset_drops_the_sample_in_flight() -> None:
    """What ran before ``reset()`` (the connection ramp, gc.freeze) is not the run: the
    sleep in flight at the reset is dropped, a stall after it is counted, with its time."""

    async def main() -> None:
        lag = LoopLagMonitor()
        lag.start()
        await asyncio.sleep(0.01)
        time.sleep(0.05)  # before the reset
        lag.reset()
        await asyncio.sleep(0.02)
        assert lag.max_lag_ns < 40_000_000
        time.sleep(0.03)  # after it
        before = time.monotonic_ns()
        await asyncio.sleep(0.02)
        await lag.stop()
        summary = lag.summary()
        assert summary["max_loop_lag_ns"] >= 25_000_000
        assert summary["max_loop_lag_at_ns"] <= before + 5_000_000

    arun(main())


def test_an_attached_probe_is_merged_and_reset_with_the_loops_own() -> None:
    """A worker whose connections the compiled loop receives attaches that loop's probe:
    the summary takes the larger max (with its time), sums the histograms, samples and
    means over both, says which timers it came from; reset() resets the attached one too,
    and the loop's own timer slows to ATTACHED_INTERVAL_S."""

    class Other:
        def __init__(self) -> None:
            self.resets = 0

        def lag(self, reset: bool, /) -> tuple[int, int, int, int, tuple[int, ...]]:
            if reset:
                self.resets += 1
            return (30_000_000, 123, 30_400_000, 3, (1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0))

    lag = LoopLagMonitor()
    assert lag.summary()["loop_lag_probe"] == "asyncio timer every 5 ms"
    lag.max_lag_ns, lag.max_lag_at_ns, lag.sum_lag_ns, lag.samples = 2_000_000, 9, 2_000_000, 1
    lag.counts[5] = 1
    other = Other()
    lag.attach(other)
    assert lag.interval_s == LoopLagMonitor.ATTACHED_INTERVAL_S
    got = lag.summary()
    assert (got["max_loop_lag_ns"], got["max_loop_lag_at_ns"]) == (30_000_000, 123)
    assert got["loop_lag_samples"] == 4 and got["mean_loop_lag_ns"] == 32_400_000 // 4
    assert got["loop_lag_hist"]["counts"] == [1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0]
    assert got["loop_lag_probe"] == (
        "receive loop's timerfd every 5 ms + asyncio timer every 50 ms"
    )
    lag.reset()
    assert other.resets == 1 and lag.samples == 0


# --- TCP_INFO -------------------------------------------------------------------------------


def _wait_acked(sock: socket.socket, want: int) -> None:
    deadline = time.monotonic() + STEP
    while (info := tcpinfo.read(sock)) is not None and info.bytes_acked < want:
        assert time.monotonic() < deadline, "bytes never acknowledged"
        time.sleep(0.001)


def _recv_exactly(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = sock.recv(min(65536, n - got))
        assert chunk
        got += len(chunk)


@pytest.mark.skipif(not tcpinfo.AVAILABLE, reason="TCP_INFO byte counters are Linux-only")
def test_tcp_info_counts_payload_bytes_exactly() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            # "Handshake": 300 bytes up, 129 down.
            client.sendall(b"q" * 300)
            _recv_exactly(server, 300)
            server.sendall(b"r" * 129)
            _recv_exactly(client, 129)
            _wait_acked(client, 301)  # the SYN counts one in bytes_acked
            raw = tcpinfo.read(client)
            assert raw is not None and (raw.bytes_acked, raw.bytes_received) == (301, 129)
            meter = tcpinfo.TcpMeter()
            assert meter.start(client)
            assert (meter.handshake_out, meter.handshake_in) == (300, 129)
            # Then 123,457 bytes up and 70,001 down; then the server closes (FIN).
            client.sendall(b"a" * 123_457)
            _recv_exactly(server, 123_457)
            server.sendall(b"b" * 70_001)
            _recv_exactly(client, 70_001)
            server.close()
            assert client.recv(1) == b""  # the peer's FIN: one more in bytes_received
            _wait_acked(client, 301 + 123_457)
            client_fd = client.detach()
            os.close(client_fd)  # the meter still reads through its duplicate
            assert meter.finish() is True
            assert (meter.bytes_out, meter.bytes_in) == (123_457, 70_001)
            assert meter.finish() is None  # once only


# --- the worker process -----------------------------------------------------------------------


async def _start_worker(spec: dict[str, Any], tmp: Path) -> tuple[Any, Path]:
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp / "out"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pushbench.clients.worker",
        str(spec_path),
        str(out),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), STEP)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    assert line.decode().strip() == READY_LINE, line
    return proc, out


async def _wait_worker(proc: Any) -> str:
    try:
        _, err = await asyncio.wait_for(proc.communicate(), STEP)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()
    text: str = err.decode()
    return text


def _outputs(out: Path) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Any]]:
    npz_path, json_path = output_paths(out)
    with np.load(npz_path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    result: dict[str, Any] = json.loads(json_path.read_text())
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    return arrays, result


@pytest.mark.parametrize(("transport", "loop"), [("ws", "uvloop"), ("longpoll", "asyncio")])
def test_worker_writes_its_output(transport: str, loop: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with serving() as server:
            spec = {
                "transport": transport,
                "base_url": server.base_url,
                "topic": TOPIC,
                "connections": 3,
                "duration_s": 1.5,
                "warmup_s": 0.1,
                "capacity": 1000,
                "loop": loop,
            }
            proc, out = await _start_worker(spec, tmp_path)
            await server.start_ticker(count=100)
            await _wait_worker(proc)
        arrays, result = _outputs(out)
        assert set(arrays) == {"conn", "seq", "sched_ns", "pub_ns", "recv_ns"}
        assert arrays["conn"].dtype == np.uint32 and len(arrays["seq"]) == 300
        for conn in range(3):
            assert sorted(arrays["seq"][arrays["conn"] == conn].tolist()) == list(range(1, 101))
        assert (arrays["recv_ns"] >= arrays["pub_ns"]).all()
        assert result["complete"] is True and result["reason"] == "completed"
        assert result["connected"] == 3 and result["connect_failures"] == 0
        assert result["messages"] == 300 and result["overflow"] == 0
        assert result["ready_ns"] < result["warmup_end_ns"] < result["end_ns"]
        assert result["bytes_source"] == "tcp_info"
        assert result["totals"]["messages"] == 300 and result["totals"]["errors"] == 0
        assert len(result["per_connection"]) == 3
        assert all(c["connect_ns"] > 0 for c in result["per_connection"])
        assert result["cpu_user_s"] > 0 and result["max_loop_lag_ns"] > 0
        assert "gc_collections" in result and result["spec"]["loop"] == loop
        record = read_output(result)  # the typed record the runner reads
        assert isinstance(record, WorkerResult) and record.gc_collections is not None
        assert record.messages == 300 and record.total("messages") == 300

    arun(main())


def test_worker_stopped_by_sigterm_still_writes_output(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving() as server:
            spec = {
                "transport": "sse",
                "base_url": server.base_url,
                "topic": TOPIC,
                "connections": 2,
                "duration_s": 60.0,
                "capacity": 1000,
            }
            proc, out = await _start_worker(spec, tmp_path)
            await server.start_ticker(count=20, rate=1000)
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            await _wait_worker(proc)
        arrays, result = _outputs(out)
        assert result["complete"] is False and result["reason"] == "SIGTERM"
        assert len(arrays["seq"]) == result["messages"] == 40
        assert result["end_ns"] - result["ready_ns"] < 10e9

    arun(main())


def test_worker_refuses_a_bad_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"transport": "carrier-pigeon", "base_url": "http://x"}))
    assert worker_main([str(spec), str(tmp_path / "out")]) == 2
    assert "transport must be one of" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_worker_entry_point_applies_the_settings_of_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker is a process entry point: it reads its environment into Settings once."""
    from pushbench import timers
    from pushbench.settings import Settings

    monkeypatch.setenv("PUSHBENCH_COARSE_TIMERS", "1")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"transport": "carrier-pigeon", "base_url": "http://x"}))
    try:
        assert worker_main([str(spec), str(tmp_path / "out")]) == 2
        assert timers._PRECISE is False
    finally:
        Settings().apply()


def test_worker_counts_connections_that_fail(tmp_path: Path) -> None:
    """Nobody listens: the worker is still ready (nothing left to wait for), counts the
    failures, keeps retrying, and completes its window."""

    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            spec = {
                "transport": "ws-aiohttp",
                "base_url": f"http://127.0.0.1:{sock.getsockname()[1]}",
                "connections": 2,
                "duration_s": 0.5,
                "capacity": 10,
            }
            proc, out = await _start_worker(spec, tmp_path)
            await _wait_worker(proc)
        arrays, result = _outputs(out)
        assert result["complete"] is True and result["connect_failures"] == 2
        assert result["connected"] == 0 and result["totals"]["errors"] >= 2
        assert len(arrays["seq"]) == 0 and result["bytes_source"] == "unavailable"

    arun(main())


# --- the live status file (no observer effect) ------------------------------------------------


def _exact_p99_ns(lat_ns: np.ndarray[Any, Any]) -> float:
    """The order statistic of rank ⌈0.99·n⌉ of the latencies as the window clamps them."""
    ordered = np.sort(np.clip(lat_ns, 1, 2**40))
    return float(ordered[int(np.ceil(0.99 * len(ordered))) - 1])


def test_status_window_p99_is_within_a_tenth_of_a_percent() -> None:
    """Fed a slice at a time, the window's p99 is the exact one or ≤ 0.1 % above it, and the
    scalar bucket rule (the browser page's) agrees with the vectorised one."""
    rng = np.random.default_rng(11)
    for scale_ns in (3_000, 400_000, 80_000_000):
        lat = rng.lognormal(np.log(scale_ns), 0.8, 300_000).astype(np.int64)
        lat[:50] = -5  # clock granularity: counted as the lowest bucket
        sched = rng.integers(10**12, 10**13, len(lat))
        window = LatencyWindow()
        for part in np.array_split(np.arange(len(lat)), STEPS_PER_STATUS):
            window.add(sched[part] + lat[part], sched[part])
        assert window.total == len(lat)
        exact = _exact_p99_ns(lat)
        got = window.take(99.0)
        assert got is not None and exact <= got * 1e3 <= exact * (1 + 2**-SUB_BITS) + 1
        assert window.total == 0 and window.take(99.0) is None  # the next second starts empty
    one = LatencyWindow()
    for value in (1, 999, 1024, 2047, 2048, 123_456, 10**9 + 7, 2**40 + 5, -3):
        one.add(np.array([value], np.int64), np.zeros(1, np.int64))
        (bucket,) = np.flatnonzero(one.counts)
        assert bucket_of(value) == bucket, value
        one.take(99.0)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's code")
def test_browser_status_code_buckets_like_the_worker() -> None:
    """The page's half of the browser worker's status (:data:`STATUS_JS`, run here by node's
    V8 with a stub of the page's ``pushbench.latencies``) puts each latency in the bucket
    the Python worker would."""
    rng = np.random.default_rng(3)
    lat_us = [0.0, 0.0005, 1.0, 1.023, 1.024, 2.048, 999.999, 1e6, 2e9]
    lat_us += (rng.lognormal(np.log(500), 1.5, 2000)).round(3).tolist()
    script = (
        f"globalThis.pushbench = {{ latencies: f => ({{ n: 7, messages: 9, "
        f"lat_us: {json.dumps(lat_us)} }}) }};\n"
        f"console.log(JSON.stringify(({STATUS_JS})(0)));"
    )
    done = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    answer = json.loads(done.stdout)
    assert (answer["n"], answer["messages"]) == (7, 9)
    want: dict[str, int] = {}
    for us in lat_us:
        key = str(bucket_of(us * 1000))
        want[key] = want.get(key, 0) + 1
    assert answer["buckets"] == want


def test_worker_status_is_bucketed_not_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's status file (messages so far, p99 of the last second) comes from the
    histogram, never a percentile over a second of receipts in its event loop; without a
    status file asked for, no window is even built."""
    import pushbench.clients.worker as worker_module

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a percentile over the receipts in the worker's loop")

    monkeypatch.setattr(np, "percentile", refuse)
    spec = {
        "transport": "ws",
        "topic": TOPIC,
        "connections": 2,
        "duration_s": 1.6,
        "capacity": 10_000,
    }

    async def main() -> None:
        async with serving() as server:
            status = tmp_path / "w.status.json"
            worker = Worker(WorkerSpec.from_dict({**spec, "base_url": server.base_url}))
            worker.spec = dataclasses.replace(worker.spec, status_path=str(status))
            run = asyncio.ensure_future(worker.run())
            await eventually(lambda: worker.ready_ns > 0, "the worker's connections")
            await server.start_ticker(count=1000, rate=1000)
            result = await asyncio.wait_for(run, 10)
            assert result.complete
            body = json.loads(status.read_text())
            rec = worker.recorder
            lat = rec.recv_ns[: rec.n] - rec.sched_ns[: rec.n]
            assert 0 < body["messages"] <= rec.n and body["t_ns"] > worker.ready_ns
            assert lat.min() / 1e3 <= body["p99_us"] <= lat.max() / 1e3 * (1 + 2**-SUB_BITS)
            assert not list(tmp_path.glob(".*.tmp"))

            def no_window() -> None:
                raise AssertionError("a status window without a status file")

            monkeypatch.setattr(worker_module, "LatencyWindow", no_window)
            quiet = Worker(WorkerSpec.from_dict({**spec, "base_url": server.base_url}))
            quiet.spec = dataclasses.replace(quiet.spec, duration_s=0.3)
            assert (await asyncio.wait_for(quiet.run(), 10)).complete

    arun(main())


@pytest.mark.skipif(chromium_path() is None, reason="needs Chromium")
@pytest.mark.timeout(60)
def test_browser_worker_status_comes_from_the_pages_buckets(tmp_path: Path) -> None:
    """The browser worker's status file: the pages' bucket counts merged, the same content
    as the Python worker's (messages so far, the last second's p99)."""
    status = tmp_path / "b.status.json"
    spec = {
        "transport": "ws",
        "topic": TOPIC,
        "connections": 1,
        "duration_s": 1.8,
        "capacity": 1000,
        "status_path": str(status),
    }

    async def main() -> None:
        async with serving() as server:
            worker = BrowserWorker(WorkerSpec.from_dict({**spec, "base_url": server.base_url}))
            ready = asyncio.Event()
            run = asyncio.ensure_future(worker.run(ready.set))
            await asyncio.wait_for(ready.wait(), 30)
            await server.start_ticker(count=200, rate=400)
            result = await asyncio.wait_for(run, 30)
        assert result["complete"] is True, result
        body = json.loads(status.read_text())
        assert 0 < body["messages"] <= 200
        assert body["p99_us"] is not None and 0 < body["p99_us"] < 1e6

    arun(main())

"""The client receive benchmark: the feeder speaks WebSocket, a tiny run goes through the
real code path (feeder and worker processes, pinned) and stores consistent files, its report
re-renders from those files alone, and the verdicts (saturated side, lower bound, target)
follow their rules.

No timing is asserted beyond "more than zero": performance figures belong to the
benchmark's output, not to tests.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushbench import cli, results
from pushbench.bench import client as bench
from pushbench.bench.client import Case
from pushbench.bench.feeder import FEEDER_READY, FeederSpec, PollAnswers
from pushbench.clients.recorder import Recorder
from pushbench.contract import decode
from pushbench.procs import ProcessGroup
from pushbench.report import client as report
from pushbench.schema.client_bench import CASE_COLUMNS, CaseResult, Sample
from pushbench.sse import EventParser
from pushbench.wire import FrameReader, Opcode, encode_frame
from pushbench.wire.frames import encode_close_payload, parse_close_payload
from pushbench.wire.handshake import check_response, client_request, parse_response
from pushbench.wire.http_response import ResponseReader, request

pytestmark = pytest.mark.timeout(60)

TINY = ["--connections", "10", "--duration", "0.5", "--warmup", "0.2", "--repeats", "1"]
OFFERED = 4000


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One tiny run of the light client, at saturation and at an offered rate → (run dir,
    what it printed)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("results")
    printed = io.StringIO()
    argv = [*TINY, "--clients", "ws", "--offered", str(OFFERED), "--out", str(out)]
    with contextlib.redirect_stdout(printed):
        assert cli.main(["bench-client", *argv]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.name != results.LATEST]
    return run_dir, printed.getvalue()


# --- the stored run ---------------------------------------------------------------------------


def test_tiny_run_writes_its_files(tiny_run: tuple[Path, str]) -> None:
    run_dir, _ = tiny_run
    for name in ("metadata.json", "client.json", "client.csv", "client-report.md"):
        assert (run_dir / name).stat().st_size > 0, name
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # atomic writes
    assert results.resolve_run(run_dir.parent) == run_dir.resolve()
    meta = results.read_json(run_dir / "metadata.json")
    assert meta["status"] == "complete" and meta["benchmark"] == "client"
    assert meta["options"]["connections"] == 10 and meta["options"]["cases"] == [
        "ws/saturation",
        f"ws/offered-{OFFERED}",
    ]
    feeder_cpus, client_cpus = (
        meta["options"]["pinning"][k] for k in ("feeder_cpus", "client_cpus")
    )
    if len(os.sched_getaffinity(0)) >= 2:
        assert set(feeder_cpus).isdisjoint(client_cpus)
    # The worker's receipts are counted, then dropped; its counters are kept.
    work = run_dir / "work"
    assert sorted(p.name for p in work.iterdir() if p.suffix == ".npz") == []
    assert (work / "ws-saturation-r0.json").is_file()


def test_tiny_run_figures_are_measured_and_consistent(tiny_run: tuple[Path, str]) -> None:
    run_dir, _ = tiny_run
    data = results.read_json(run_dir / "client.json")
    samples = [Sample.from_dict(s) for s in data["samples"]]
    assert [s.case for s in samples] == ["ws/saturation", f"ws/offered-{OFFERED}"]
    for s in samples:
        assert s.status == "ok", s.reason
        assert s.messages > 0 and s.msgs_per_s is not None and s.msgs_per_s > 0
        assert s.window_s is not None and s.window_s > 0
        assert s.msgs_per_s == pytest.approx(s.messages / s.window_s, rel=1e-3)
        assert s.client_cpu is not None and s.client_cpu > 0
        assert s.feeder_cpu is not None and s.feeder_cpu >= 0
        assert s.max_loop_lag_ms is not None and s.max_loop_lag_ms > 0
        assert s.gc_collections is not None and s.gc_collections >= 0
        assert (s.connected, s.errors, s.overflow) == (10, 0, 0)
        assert s.queue_samples > 0 and s.fed_fraction is not None
        assert s.saturated in ("client", "feeder", "both", "neither")
        assert s.lower_bound == (s.verdict == "lower bound")
        if s.contended:  # other processes took part of the client's CPU
            assert s.client_core_busy is not None and s.client_core_busy >= 0.9 > s.client_cpu
    assert samples[0].verdict in ("client-bound", "lower bound")
    assert samples[1].verdict in ("kept up", "fell behind")
    # What the feeder says it sent covers what the client received in the window.
    for s in samples:
        log = run_dir / "logs" / f"{s.case.replace('/', '-')}-r0" / "feeder.log"
        sent = re.search(r"feeder: sent ([\d,]+) messages on 10 connections", log.read_text())
        assert sent is not None and int(sent.group(1).replace(",", "")) >= s.messages
    # The summary is the (single) repeat, and the CSV carries it.
    cases = [CaseResult.from_dict(c) for c in data["cases"]]
    assert cases[0].msgs_per_s_median == samples[0].msgs_per_s == cases[0].msgs_per_s_max
    with open(run_dir / "client.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CASE_COLUMNS
    assert [r["case"] for r in rows] == [c.case for c in cases]
    assert float(rows[0]["msgs_per_s_median"]) == cases[0].msgs_per_s_median


def test_tiny_run_prints_table_and_target(tiny_run: tuple[Path, str]) -> None:
    run_dir, printed = tiny_run
    assert "ws/saturation" in printed and f"ws/offered-{OFFERED}" in printed
    (line,) = [x for x in printed.splitlines() if x.startswith("target:")]
    assert re.search(r": (MET|NOT MET|rate MET, ratio to aiohttp NOT MEASURED)", line)
    assert "10 connections" in line and "not the target's conditions" in line
    text = (run_dir / "client-report.md").read_text()
    assert line in text and "| ws/saturation |" in text
    # The report is rendered from the stored files alone.
    (run_dir / "client-report.md").unlink()
    assert report.render_report(run_dir).read_text() == text


def test_report_module_rerenders_a_stored_run(tiny_run: tuple[Path, str], tmp_path: Path) -> None:
    """``python -m pushbench.report.client RUN_DIR`` needs only client.json and metadata.json."""
    run_dir, printed = tiny_run
    stored = tmp_path / run_dir.name
    stored.mkdir()
    for name in ("client.json", "metadata.json"):
        shutil.copy(run_dir / name, stored / name)

    def rerender() -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-m", "pushbench.report.client", str(stored)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout, (stored / "client-report.md").read_text()

    out, text = rerender()
    assert text == (run_dir / "client-report.md").read_text()
    (line,) = [x for x in printed.splitlines() if x.startswith("target:")]
    assert line in out.splitlines() and f"wrote {stored.resolve() / 'client-report.md'}" in out
    # What it shows comes from client.json: change a stored figure and it follows.
    data = results.read_json(stored / "client.json")
    data["cases"][0]["msgs_per_s_median"] = 123_456
    results.atomic_write_json(stored / "client.json", data)
    _, text = rerender()
    assert "| ws/saturation | 123,456 |" in text
    # No run there: an error, not a traceback.
    assert report.main([str(tmp_path / "nothing")]) == 1


# --- the feeder -------------------------------------------------------------------------------


def _recv_until(sock: socket.socket, reader: FrameReader, want: int) -> list[Any]:
    frames: list[Any] = []
    while len(frames) < want:
        data = sock.recv(65536)
        assert data, "the feeder closed early"
        frames += reader.feed(data)
    return frames


def test_feeder_answers_the_upgrade_sends_envelopes_and_closes(tmp_path: Path) -> None:
    spec = FeederSpec(connections=1, payload=100)
    group = ProcessGroup(tmp_path)
    try:
        feeder = group.start(
            "feeder",
            [sys.executable, "-m", "pushbench.bench.feeder", json.dumps(spec.__dict__)],
            ready_prefix=FEEDER_READY,
            timeout_s=20,
        )
        port = int(feeder.ready_line.removeprefix(FEEDER_READY))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            request, key = client_request(f"127.0.0.1:{port}", "/ws?topic=bench")
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            check_response(parse_response(head), key)
            reader = FrameReader(masked=False)
            frames = _recv_until(sock, reader, 50)
            for frame in frames:
                assert frame.opcode == Opcode.TEXT
                env = decode(frame.payload)
                assert env.topic == "bench" and env.payload == "x" * 100
            lengths = {len(encode_frame(Opcode.TEXT, f.payload)) for f in frames}
            assert lengths == {spec.frames(1)[1]}  # every frame the same size
            sock.sendall(encode_frame(Opcode.CLOSE, encode_close_payload(1000), mask=True))
            closing: list[Any] = []
            while not any(f.opcode == Opcode.CLOSE for f in closing):
                data = sock.recv(1 << 20)
                assert data, "no Close came back"
                closing += reader.feed(data)
            close = next(f for f in closing if f.opcode == Opcode.CLOSE)
            assert parse_close_payload(close.payload)[0] == 1000
            while sock.recv(1 << 20):  # then the feeder closes TCP
                pass
    finally:
        codes = group.stop_all()
    assert codes == {"feeder": 0}
    assert "feeder: sent" in (tmp_path / "feeder.log").read_text()


# --- the rules --------------------------------------------------------------------------------


def test_cases_are_every_client_at_saturation_then_every_offered_rate() -> None:
    cases = bench.build_cases(["ws", "ws-aiohttp"], [1000])
    assert [c.id for c in cases] == [
        "ws/saturation",
        "ws-aiohttp/saturation",
        "ws/offered-1000",
        "ws-aiohttp/offered-1000",
    ]
    assert [c.mode for c in cases] == ["saturation"] * 2 + ["offered"] * 2


@pytest.mark.parametrize(
    ("client", "feeder", "side"),
    [
        (0.95, 0.2, "client"),
        (0.5, 0.9, "feeder"),
        (0.99, 0.99, "both"),
        (0.89, 0.5, "neither"),
        (None, None, "neither"),
    ],
)
def test_saturated_side_is_the_core_at_least_90_percent_busy(
    client: float | None, feeder: float | None, side: str
) -> None:
    assert bench.saturated_side(client, feeder) == side


@pytest.mark.parametrize(
    ("case", "rate", "fed", "feeder_busy", "overflow", "want"),
    [
        (Case("ws"), 1e5, 1.0, True, 0, "client-bound"),  # data always waiting: the client's pace
        (Case("ws"), 1e5, 0.5, False, 0, "lower bound"),  # the client ran dry: the feeder's pace
        (Case("ws"), 1e5, None, True, 0, "lower bound"),  # no queue samples: the feeder's core
        (Case("ws"), 1e5, None, False, 0, "client-bound"),
        (Case("ws"), 1e5, 1.0, False, 3, "lower bound"),  # receipts lost to overflow
        (Case("ws", 1000), 990, 0.1, False, 0, "kept up"),
        (Case("ws", 1000), 500, 1.0, False, 0, "fell behind"),
    ],
)
def test_verdict(
    case: Case, rate: float, fed: float | None, feeder_busy: bool, overflow: int, want: str
) -> None:
    assert bench.verdict(case, rate, fed, feeder_busy, overflow) == want


def _sample(rate: float, repeat: int, **kw: Any) -> Sample:
    base: dict[str, Any] = {
        "case": "ws/saturation",
        "client": "ws",
        "mode": "saturation",
        "offered": 0,
        "repeat": repeat,
        "status": "ok",
        "msgs_per_s": rate,
        "client_cpu": 1.0,
        "saturated": "client",
        "verdict": "client-bound",
    }
    return Sample(**(base | kw))


def test_summary_is_the_median_with_min_and_max_and_any_lower_bound() -> None:
    samples = [
        _sample(300_000, 0),
        _sample(100_000, 1, lower_bound=True, verdict="lower bound", saturated="both"),
        _sample(200_000, 2, gc_pause_max_ms=4.0),
        _sample(0, 3, status="failed", msgs_per_s=None),
    ]
    got = bench.summarize(Case("ws"), samples, connections=100, payload=100)
    assert (got.msgs_per_s_median, got.msgs_per_s_min, got.msgs_per_s_max) == (2e5, 1e5, 3e5)
    assert (got.repeats, got.failed) == (3, 1)
    assert got.lower_bound and got.verdict == "lower bound 1/3, client-bound 2/3"
    assert got.saturated == "client" and got.gc_pause_max_ms == 4.0
    assert bench.summarize(Case("ws"), [samples[3]], 100, 100).msgs_per_s_median is None


def _result(
    client: str, median: float, *, connections: int = 100, lower: bool = False
) -> CaseResult:
    return CaseResult(
        case=Case(client).id,
        client=client,
        mode="saturation",
        offered=0,
        connections=connections,
        payload=100,
        repeats=3,
        failed=0,
        msgs_per_s_median=median,
        msgs_per_s_min=median,
        msgs_per_s_max=median,
        lower_bound=lower,
    )


def test_target_line() -> None:
    met = bench.evaluate_target([_result("ws", 300_000), _result("ws-aiohttp", 90_000)])
    line = report.format_target(met)
    assert met["met"] is True and ": MET (3.33× aiohttp's client, target 1.5×), 300,000" in line
    assert "aiohttp client (ws-aiohttp): 90,000 msgs/s" in line and "LOWER BOUND" not in line
    assert "not the target's conditions" not in line

    missed = report.format_target(bench.evaluate_target([_result("ws", 200_000)]))
    assert ": NOT MET, 200,000" in missed and "aiohttp client (" not in missed

    bound = report.format_target(bench.evaluate_target([_result("ws", 200_000, lower=True)]))
    assert "NOT MET (inconclusive)" in bound and "LOWER BOUND" in bound

    other = report.format_target(bench.evaluate_target([_result("ws", 300_000, connections=10)]))
    assert "MET" in other and "10 connections" in other and "not the target's conditions" in other

    busy = _result("ws", 200_000)
    busy.contended, busy.client_cpu_median, busy.msgs_per_client_cpu_s_median = 2, 0.5, 4e5
    contended = report.format_target(bench.evaluate_target([busy]))
    assert "NOT MET (inconclusive)" in contended and "CONTENDED in 2/3 repeats" in contended
    assert "50% of its CPU" in contended and "≈ 400,000 msgs/s" in contended

    nothing = bench.evaluate_target([_result("ws-aiohttp", 90_000)])
    assert nothing["met"] is None and "not measured" in report.format_target(nothing)


def test_the_light_clients_must_out_run_aiohttps() -> None:
    """Issue 16.5: ≥ 1.5× aiohttp's client for WebSocket; SSE and long-poll rates judged too."""
    slow = bench.evaluate_target([_result("ws", 300_000), _result("ws-aiohttp", 250_000)])
    assert slow["met"] is False and slow["ratio"] == 1.2
    assert ": NOT MET (1.2× aiohttp's client, target 1.5×)" in report.format_target(slow)
    alone = bench.evaluate_target([_result("ws", 300_000)])
    assert alone["met"] is None and "ratio to aiohttp NOT MEASURED" in report.format_target(alone)
    got = bench.evaluate_targets(
        [_result("sse", 260_000), _result("longpoll", 40_000), _result("ws", 600_000)]
    )
    assert [(t["client"], t["met"]) for t in got] == [
        ("ws", None),
        ("sse", True),
        ("longpoll", False),
    ]


def _bench_client(*argv: str) -> int:
    """``pushbench bench-client ARGV``, through the CLI (the only reader of argv)."""
    return cli.main(["bench-client", *argv])


def test_help_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _bench_client("--help")
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--connections", "--payload", "--duration", "--repeats", "--clients", "--out"):
        assert option in text
    assert "--quick" in text and "250,000" in text and "lower bound" in text
    with pytest.raises(SystemExit):
        _bench_client("--clients", "carrier-pigeon")
    assert "unknown client carrier-pigeon" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _bench_client("--offered", "-5")
    assert _bench_client("--repeats", "0", "--out", "/nonexistent") == 2


# --- the feeder's HTTP shapes: SSE streams and poll answers -------------------------------------


@contextlib.contextmanager
def _feeder(tmp_path: Path, spec: FeederSpec) -> Iterator[int]:
    """A feeder process for ``spec`` → its port; stopped (and its exit checked) after."""
    group = ProcessGroup(tmp_path)
    try:
        feeder = group.start(
            "feeder",
            [sys.executable, "-m", "pushbench.bench.feeder", json.dumps(spec.__dict__)],
            ready_prefix=FEEDER_READY,
            timeout_s=20,
        )
        yield int(feeder.ready_line.removeprefix(FEEDER_READY))
    finally:
        codes = group.stop_all()
    assert codes == {"feeder": 0}


def _answer(sock: socket.socket, reader: ResponseReader) -> bytes:
    """Read one whole response → its body (the reader is readied for the next one)."""
    body = reader.next_response() if reader.done else b""
    while not reader.done:
        data = sock.recv(65536)
        assert data, "the feeder closed early"
        body += reader.feed(data)
    return body


def test_feeder_streams_sse_events(tmp_path: Path) -> None:
    spec = FeederSpec(connections=1, payload=100)
    with _feeder(tmp_path, spec) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request(f"127.0.0.1:{port}", "/sse?topic=bench"))
        reader = ResponseReader()
        parser = EventParser()
        events: list[Any] = []
        while len(events) < 200:
            data = sock.recv(65536)
            assert data, "the feeder closed early"
            events += parser.feed(reader.feed(data))
        assert reader.head is not None and reader.head.status == 200
        assert reader.head.get("Content-Type") == "text/event-stream"
        assert reader.head.get("Transfer-Encoding") == "chunked"
        for event in events:
            env = decode(event.data)
            assert env.topic == "bench" and env.payload == "x" * 100
            assert event.id == str(env.seq)
    # Every event the same length: a prefix of k events is k lengths.
    joined, length = spec.events(5)
    assert len(joined) == 5 * length and EventParser().feed(joined)[4].id == str(10**9 + 4)


def test_feeder_answers_every_poll_on_a_keep_alive_connection(tmp_path: Path) -> None:
    spec = FeederSpec(connections=1, payload=10, batch=3)
    with _feeder(tmp_path, spec) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        get = request(f"127.0.0.1:{port}", "/poll?topic=bench&timeout=0.0")
        reader = ResponseReader()
        sock.sendall(get)
        assert _answer(sock, reader) == b'{"last":0,"messages":[]}'  # the connecting poll
        recorder = Recorder(100)
        sock.sendall(get[:5])  # a head split across sends is one request…
        time.sleep(0.05)
        sock.sendall(get[5:-2])
        time.sleep(0.05)
        sock.sendall(get[-2:] + get)  # …and two in one send are two
        for _ in range(2):
            body = _answer(sock, reader)
            assert reader.head is not None and reader.head.status == 200 and reader.keep_alive
            assert recorder.record_batch(0, body, time.monotonic_ns()) == (10**9 + 2, 3)
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing more: one answer per request
    assert recorder.arrays()["seq"].tolist() == [10**9, 10**9 + 1, 10**9 + 2] * 2


def test_feeder_holds_polls_at_an_offered_rate_and_answers_with_all_that_is_due(
    tmp_path: Path,
) -> None:
    spec = FeederSpec(connections=1, payload=10, rate=200.0)
    with _feeder(tmp_path, spec) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        get = request(f"127.0.0.1:{port}", "/poll?topic=bench&timeout=30")
        reader = ResponseReader()
        recorder = Recorder(1000)
        sent = time.monotonic()  # the feeder's schedule starts after this request arrives
        sock.sendall(get)
        _answer(sock, reader)  # the connecting poll
        counts = []
        total = 0
        for pause in (0.0, 0.0, 0.2):
            time.sleep(pause)
            sock.sendall(get)
            _, count = recorder.record_batch(0, _answer(sock, reader), 0)
            total += count
            counts.append((count, total, time.monotonic() - sent))
        # Held until a message is due (one every 5 ms), never ahead of the schedule: by each
        # answer at most rate × elapsed (+1) messages. Answering at once would break it (two
        # answers within ~1 ms); a slow machine only loosens the bound, never trips it.
        for count, total, elapsed in counts[:2]:
            assert count >= 1 and total <= 200.0 * elapsed + 1, counts
        assert 30 <= counts[2][0] <= 60  # 0.2 s at 200 msg/s ≈ 40 messages
    assert PollAnswers(b"", 0).answer(0).endswith(b'{"last":0,"messages":[]}')


def test_feeder_refuses_other_paths(tmp_path: Path) -> None:
    with (
        _feeder(tmp_path, FeederSpec(connections=1, payload=10)) as port,
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.sendall(request(f"127.0.0.1:{port}", "/nope"))
        reader = ResponseReader()
        while reader.head is None:
            reader.feed(sock.recv(65536))
        assert reader.head.status == 404


def test_tiny_run_of_the_http_clients(tmp_path: Path) -> None:
    """Each HTTP client, light and aiohttp, through a real feeder + worker pair."""
    clients = ["sse", "sse-aiohttp", "longpoll", "longpoll-aiohttp"]
    argv = [*TINY, "--clients", ",".join(clients), "--offered", str(OFFERED)]
    assert _bench_client(*argv, "--out", str(tmp_path)) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name != results.LATEST]
    samples = [Sample.from_dict(s) for s in results.read_json(run_dir / "client.json")["samples"]]
    assert [s.case for s in samples] == [
        *(f"{c}/saturation" for c in clients),
        *(f"{c}/offered-{OFFERED}" for c in clients),
    ]
    for s in samples:
        assert s.status == "ok", s.reason
        assert s.messages > 0 and s.msgs_per_s is not None and s.msgs_per_s > 0
        assert (s.connected, s.errors, s.overflow) == (10, 0, 0), s.case
        assert s.client_cpu is not None and s.client_cpu > 0

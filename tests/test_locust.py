"""The Locust users (``clients/locustfile.py``) and their wrapper
``pushbench.clients.locust_worker``.

Locust monkey-patches the standard library with gevent when it is imported,
so it never is here: every Locust run is a child process (the wrapper, or the
``locust`` command for the web UI), against a real ``pushbench serve`` whose
ticker publishes from startup. Each run is a few seconds with a handful of
users; every process started is stopped in a ``finally``.

What is checked: per transport, a headless run through the wrapper records
push events in Locust's own stats CSV with plausible latencies, exactly the
response times our receipts hold, and no loss or duplicate in the receipts;
a master with two workers merges the workers' counts exactly (and stops on
SIGTERM with its output written), and through the runner its row counts the three
processes that ran; the wrapper's output obeys the worker
contract; the web UI runs the same users by hand. The HTTP/1.1 reader the
users share is checked in-process (it imports no gevent).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, ServerProcess, StartServer, serving

from pushbench import metrics, registry, runner, scenario
from pushbench.clients.locust_http import BadResponse, ResponseReader, request
from pushbench.clients.locust_users import user_classes
from pushbench.clients.locust_worker import locust_files
from pushbench.clients.recorder import FIELDS

pytestmark = pytest.mark.timeout(60)

TOPIC = "lt"
RATE = 50  # messages/s from the server's ticker
REQUEST_TYPES = {"ws": "WS", "sse": "SSE", "longpoll": "LONGPOLL", "shortpoll": "SHORTPOLL"}
READY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("locust-server") / "server.stderr"
    # Pings every 0.5 s: a WebSocket user that did not answer them would be dropped.
    args = ("--ticker", f"topic={TOPIC},rate={RATE},size=60", "--ping-interval", "0.5")
    with serving(log, *args, "--ping-timeout", "1") as srv:
        yield srv


# --- running the wrapper ------------------------------------------------------------------


@dataclass
class WorkerRun:
    code: int
    stdout: str
    result: dict[str, Any]
    arrays: dict[str, Any]
    files: dict[str, Path]
    stderr: str


def run_worker(
    tmp_path: Path, spec: dict[str, Any], *, sigterm_after_s: float | None = None
) -> WorkerRun:
    """``python -m pushbench.clients.locust_worker SPEC OUT``; wait for ready, optionally SIGTERM
    it some seconds later, wait for it to exit; always reaped."""
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "w0"
    err_path = tmp_path / "worker.stderr"
    argv = [sys.executable, "-m", "pushbench.clients.locust_worker", str(spec_path), str(out)]
    with err_path.open("wb") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    stdout = b""
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b"\n" not in stdout:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                pytest.fail(f"no ready line; stderr:\n{err_path.read_text()[-3000:]}")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                pytest.fail(f"worker exited before ready; stderr:\n{err_path.read_text()[-3000:]}")
            stdout += chunk
        if sigterm_after_s is not None:
            time.sleep(sigterm_after_s)
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(EXIT_TIMEOUT_S)
        stdout += proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    stderr = err_path.read_text(errors="replace")
    result = json.loads(out.with_name("w0.json").read_text())
    with np.load(out.with_name("w0.npz")) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return WorkerRun(code, stdout.decode(), result, arrays, locust_files(out), stderr)


def spec_for(server: ServerProcess, transport: str, **extra: Any) -> dict[str, Any]:
    return {
        "transport": transport,
        "base_url": server.url("").rstrip("/"),
        "topic": TOPIC,
        "connections": 3,
        "warmup_s": 0.5,
        "duration_s": 2.5,
        "poll_interval_s": 0.1,
        "poll_timeout_s": 5.0,
        "capacity": 20_000,
        **extra,
    }


def stats_row(path: Path, request_type: str) -> dict[str, str]:
    """The row of Locust's stats CSV for our push events."""
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Type"] == request_type and r["Name"] == TOPIC]
    assert len(rows) == 1, rows
    return rows[0]


def locust_entry(path: Path, request_type: str) -> dict[str, Any]:
    """Locust's final stats entry (its ``--json-file``) for our push events."""
    entries = json.loads(path.read_text())
    found = [e for e in entries if e["method"] == request_type and e["name"] == TOPIC]
    assert len(found) == 1, entries
    entry: dict[str, Any] = found[0]
    return entry


def assert_no_loss(run: WorkerRun, connections: int) -> None:
    """Every connection received every message scheduled inside the window, once, in
    order. The window's seq range comes from the receipts themselves: what was scheduled
    after warm-up and at least 0.5 s before the end (polls are 0.1 s apart)."""
    a, r = run.arrays, run.result
    inside = (a["sched_ns"] >= r["warmup_end_ns"]) & (a["sched_ns"] <= r["end_ns"] - 500_000_000)
    seqs = a["seq"][inside]
    assert len(seqs) > 0
    deliv = metrics.delivery(
        a["conn"],
        a["seq"],
        first_seq=int(seqs.min()),
        last_seq=int(seqs.max()),
        connections=connections,
    )
    assert deliv.delivered.min() == int(seqs.max()) - int(seqs.min()) + 1
    assert deliv.lost.sum() == 0 and deliv.duplicated.sum() == 0
    assert deliv.out_of_order.sum() == 0


def assert_contract(run: WorkerRun, transport: str, connections: int) -> None:
    """The fields of ``docs/runner-design.md``'s worker output, consistent with each other."""
    r, a = run.result, run.arrays
    assert run.code == 0, run.stderr[-3000:]
    assert run.stdout == "worker ready\n"
    assert set(a) == set(FIELDS)
    assert a["conn"].dtype == np.uint32
    assert all(a[k].dtype == np.int64 for k in FIELDS if k != "conn")
    assert len({len(v) for v in a.values()}) == 1 and len(a["seq"]) == r["messages"] > 0
    assert (a["sched_ns"] <= a["pub_ns"]).all() and (a["pub_ns"] < a["recv_ns"]).all()
    assert 0 < r["ready_ns"] < r["warmup_end_ns"] < r["end_ns"]
    assert r["transport"] == transport and r["connections"] == connections
    assert r["connected"] == connections and r["connect_failures"] == 0
    assert r["bytes_source"] == "socket" and r["overflow"] == 0 and r["parse_errors"] == 0
    assert r["cpu_user_s_run"] + r["cpu_sys_s_run"] > 0
    assert r["max_loop_lag_ns"] >= 0
    per_conn = r["per_connection"]
    assert sorted(c["conn"] for c in per_conn) == list(range(connections))
    assert set(np.unique(a["conn"]).tolist()) == set(range(connections))
    totals = r["totals"]
    assert totals["messages"] == r["messages"] == sum(c["messages"] for c in per_conn)
    assert totals["connects"] == connections and totals["errors"] == 0
    assert totals["handshake_bytes_out"] > 0 and totals["handshake_bytes_in"] > 0
    assert totals["bytes_in"] > 0
    assert all(c["connect_ns"] > 0 for c in per_conn)
    if transport.endswith("poll"):
        assert totals["requests"] > connections
    locust = r["locust"]
    assert locust["requests"] == r["messages"]  # Locust's own count: one event per message
    assert locust["failures"] == 0
    assert sum(p["events"] for p in locust["processes"]) == r["messages"]
    assert locust["client_impl"].startswith("raw gevent socket")
    for key in ("stats_csv", "html", "json"):
        assert run.files[key].name == locust[key] and run.files[key].stat().st_size > 0
    assert not run.files["scratch"].exists()


# --- one headless run per transport ---------------------------------------------------------


@pytest.mark.parametrize("transport", list(user_classes()))
def test_headless_run_records_every_push_in_locust_and_in_receipts(
    transport: str, server: ServerProcess, tmp_path: Path
) -> None:
    run = run_worker(tmp_path, spec_for(server, transport))
    assert run.result["complete"] is True and run.result["reason"] == "completed"
    assert_contract(run, transport, 3)
    assert_no_loss(run, 3)
    request_type = REQUEST_TYPES[transport]
    row = stats_row(run.files["stats_csv"], request_type)
    assert int(row["Request Count"]) == run.result["messages"]
    assert int(row["Failure Count"]) == 0
    assert 0 < float(row["Median Response Time"]) < 1000
    # Locust was given exactly the receipts' latencies and the socket's bytes.
    entry = locust_entry(run.files["json"], request_type)
    a = run.arrays
    latency_ms = (a["recv_ns"] - a["sched_ns"]) / 1e6
    assert math.isclose(entry["total_response_time"], float(latency_ms.sum()), rel_tol=1e-9)
    assert math.isclose(entry["max_response_time"], float(latency_ms.max()), rel_tol=1e-9)
    assert 0 < entry["total_content_length"] <= run.result["totals"]["bytes_in"]


# --- distributed: one master, two workers ---------------------------------------------------


def test_master_and_two_workers_merge_their_counts(server: ServerProcess, tmp_path: Path) -> None:
    spec = spec_for(server, "ws", connections=4, duration_s=60.0, locust_workers=2)
    run = run_worker(tmp_path, spec, sigterm_after_s=2.5)
    assert run.result["complete"] is False and run.result["reason"] == "SIGTERM"
    assert_contract(run, "ws", 4)
    assert_no_loss(run, 4)
    processes = run.result["locust"]["processes"]
    assert [p["role"] for p in processes] == ["worker", "worker"]
    assert sorted(p["worker_index"] for p in processes) == [0, 1]
    assert sum(p["users"] for p in processes) == 4 and all(p["users"] > 0 for p in processes)
    assert all(p["events"] == p["messages"] > 0 for p in processes)
    # The master's stats are the sum of what each worker fired, in its JSON and its CSV.
    fired = sum(p["events"] for p in processes)
    assert locust_entry(run.files["json"], "WS")["num_requests"] == fired
    assert int(stats_row(run.files["stats_csv"], "WS")["Request Count"]) == fired


LW2 = """
name = "locust-lw2"
stacks = "aiohttp"
transports = "ws"
subscribers = 4
rate = 50
payload_size = 32
duration_s = 2
warmup_s = 0.5
repeats = 1
client = "locust"
client_processes = 2
"""


def test_the_row_of_a_master_and_two_workers_counts_three_processes(tmp_path: Path) -> None:
    """Through the runner: the ``…-locust-lw2`` row records the Locust processes that ran
    (the master and its two workers, as the wrapper's output reports them), not 1."""
    path = tmp_path / "lw2.toml"
    path.write_text(LW2)
    options = runner.RunOptions(out=tmp_path / "results", progress=False)
    result = runner.run_scenario(scenario.load(path), options)
    (row,) = result.rows
    assert row["cell_id"].endswith("-locust-lw2")
    assert row["status"] == "ok", row["reason"]
    assert row["msgs_delivered"] == row["msgs_expected"] > 0
    assert row["client_processes"] == 3


# --- failures -----------------------------------------------------------------------------


def test_refused_connections_are_locust_failures(
    server_factory: StartServer, tmp_path: Path
) -> None:
    """A server that takes two connections: the third user's upgrades are refused (429),
    each one a failed ``connect`` event in Locust's stats, and it keeps retrying."""
    full = server_factory("--max-connections", "2", "--ticker", f"topic={TOPIC},rate={RATE}")
    run = run_worker(tmp_path, spec_for(full, "ws", duration_s=1.5))
    r = run.result
    assert run.code == 0 and r["complete"] is True
    assert r["connected"] == 2 and r["connect_failures"] == 1
    refused = [c for c in r["per_connection"] if c["connects"] == 0]
    assert refused[0]["errors"] >= 2 and "429" in refused[0]["last_error"]
    assert r["totals"]["errors"] == r["locust"]["failures"] >= 2
    with run.files["stats_csv"].open(newline="") as f:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}
    connect = rows[("WS", "connect")]
    assert int(connect["Failure Count"]) == int(connect["Request Count"]) == r["totals"]["errors"]
    assert int(rows[("WS", TOPIC)]["Request Count"]) == r["messages"] > 0
    assert set(np.unique(run.arrays["conn"]).tolist()) < {0, 1, 2}


# --- what the wrapper refuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transport": "ws-aiohttp"}, "has no Locust user"),
        ({"locust_workers": -1}, "locust_workers must be >= 0"),
        ({"publish": {"rate": 1.0}}, "do not publish"),
    ],
)
def test_wrapper_refuses_what_it_cannot_run(
    change: dict[str, Any], message: str, tmp_path: Path
) -> None:
    spec = {"transport": "ws", "base_url": "http://127.0.0.1:9", **change}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    argv = [sys.executable, "-m", "pushbench.clients.locust_worker", str(tmp_path / "spec.json")]
    done = subprocess.run([*argv, str(tmp_path / "out")], cwd=ROOT, capture_output=True, timeout=30)
    assert done.returncode == 2 and message in done.stderr.decode()
    assert done.stdout == b"" and not list(tmp_path.glob("out*"))


# --- the users come from the registry ---------------------------------------------------------


def test_locust_users_are_the_rows_with_a_gevent_client() -> None:
    assert user_classes() == {
        "ws": "WsUser",
        "sse": "SseUser",
        "longpoll": "LongPollUser",
        "shortpoll": "ShortPollUser",
    }
    row = dataclasses.replace(
        registry.transport("sse"),
        name="sse-copy",
        clients={"gevent": "pushbench.clients.locust_sse:SseCopySession"},
        default=False,
    )
    with registry.extended(transports=(row,)):
        assert user_classes()["sse-copy"] == "SseCopyUser"
    assert "sse-copy" not in user_classes()


def test_every_gevent_entry_point_is_a_session_class() -> None:
    """Imported in a child process (gevent stays out of the test process)."""
    code = (
        "from pushbench import registry\n"
        "from pushbench.clients.locust_common import session_class\n"
        "for t in registry.transports():\n"
        "    if 'gevent' in t.clients:\n"
        "        print(t.name, session_class(t.name).REQUEST_TYPE)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    found = dict(line.split() for line in done.stdout.splitlines())
    assert found == REQUEST_TYPES


# --- by hand: the web UI ----------------------------------------------------------------------


def test_web_ui_runs_the_same_users(
    server: ServerProcess, tmp_path: Path, unused_tcp_port: int
) -> None:
    ui = f"http://127.0.0.1:{unused_tcp_port}"
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "clients" / "locustfile.py")]
    argv += ["--web-host", "127.0.0.1", "--web-port", str(unused_tcp_port)]
    argv += ["--host", server.url("").rstrip("/"), "--exit-code-on-error", "0", "SseUser"]
    log = tmp_path / "locust.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        page = _eventually(lambda: _get(ui + "/"), "the web UI")
        assert "push_topic" in page  # our options are the UI's custom parameters
        form = {"user_count": "2", "spawn_rate": "2", "push_topic": TOPIC}
        body = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(ui + "/swarm", data=body, timeout=5) as resp:
            assert json.loads(resp.read())["success"] is True

        def pushes() -> str | None:
            stats = json.loads(_get(ui + "/stats/requests") or "{}").get("stats", [])
            sse = [s for s in stats if s["method"] == "SSE" and s["name"] == TOPIC]
            return "ok" if sse and sse[0]["num_requests"] > 0 else None

        _eventually(pushes, "push events in the web UI's stats")
        with urllib.request.urlopen(ui + "/stop", data=b"", timeout=5) as resp:
            assert json.loads(resp.read())["success"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text: str = resp.read().decode()
            return text
    except OSError:
        return None


def _eventually(check: Any, what: str, seconds: float = 20.0) -> str:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return str(value)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


# --- the users' HTTP/1.1 reader, in-process ---------------------------------------------------


def _feed_all(data: bytes, step: int) -> tuple[ResponseReader, bytes]:
    reader = ResponseReader()
    body = b""
    for i in range(0, len(data), step):
        body += reader.feed(data[i : i + step])
    return reader, body


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\nTrailer: x\r\n\r\n"
)


@pytest.mark.parametrize("step", [1, 2, 7, 1000])
def test_reader_decodes_chunked_bodies_in_any_split(step: int) -> None:
    reader, body = _feed_all(CHUNKED + b"HTTP/1.1 204", step)
    assert body == b"hello" + b"z" * 26 and reader.done and reader.keep_alive
    assert reader.head is not None and reader.head.status == 200
    assert reader.head_size == CHUNKED.index(b"\r\n\r\n") + 4
    reader.next_response()  # the bytes after the body start the next response
    reader.feed(b" No Content\r\n\r\n")
    assert reader.head is not None and reader.head.status == 204 and reader.done


def test_reader_sized_and_until_close_bodies() -> None:
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdEXTRA"
    reader, body = _feed_all(sized, 3)
    assert body == b"abcd" and reader.done and reader.keep_alive
    closed = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstream"
    reader, body = _feed_all(closed, 4)
    assert body == b"stream" and not reader.done and not reader.keep_alive
    reader.feed_eof()
    assert reader.done
    with pytest.raises(BadResponse):
        ResponseReader().feed_eof()  # nothing arrived: not a response


@pytest.mark.parametrize(
    "bad",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ],
)
def test_reader_refuses_malformed_responses(bad: bytes) -> None:
    with pytest.raises(BadResponse):
        ResponseReader().feed(bad)


def test_request_is_a_keep_alive_get() -> None:
    data = request("h:1", "/poll?topic=t", (("Last-Event-ID", "7"),))
    assert data == b"GET /poll?topic=t HTTP/1.1\r\nHost: h:1\r\nLast-Event-ID: 7\r\n\r\n"

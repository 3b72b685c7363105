"""The browser client in real Chromium, against real ``pushbench serve`` processes.

- every stack serves the same page and a /clock that reads CLOCK_MONOTONIC;
- the page receives exactly the published sequence (seq numbers and payloads)
  over each transport on each stack, resuming from ``since``;
- server times beyond 2**53 ns survive the page's JSON parsing exactly;
- the WebSocket page reconnects after a server restart with growing back-off
  and resumes without a gap (the Redis hub keeps the history across the
  restart, and messages are published while the server is down);
- ``python -m pushbench.clients.browser_worker`` keeps the worker contract.

One Chromium is shared by the module (Playwright's sync API, system Chromium
through its executable path); every page gets a browser context of its own,
closed after the test. What needs Chromium or Playwright is skipped without them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from conftest import ROOT, ServerProcess, start_server
from test_hub_redis import redis_url  # noqa: F401  (a fixture: redis-server, or skip)

from pushbench import client_page as page_assets
from pushbench import registry
from pushbench.auth import make_control_token, make_token
from pushbench.browser import MISSING_HINT, chromium_path, playwright_available
from pushbench.clients.browser_worker import (
    SETTLED,
    SpecRefused,
    check_spec,
    launch_options,
    receipts,
)
from pushbench.clients.browser_worker import main as worker_main
from pushbench.clients.worker import READY_LINE, output_paths
from pushbench.schema.worker import WorkerSpec

CHROMIUM = chromium_path()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or not playwright_available(), reason=f"no Chromium: {MISSING_HINT}"
)

STACKS = tuple(s.name for s in registry.stacks() if s.module is not None)
TRANSPORTS = tuple(t.name for t in registry.transports() if "browser" in t.clients)
SECRET = "browser-secret"
# Payloads that trip framing and parsing: empty, non-ASCII, quotes, newlines, 1000 bytes.
PAYLOADS = ["", "plain", "äöü € 😀", 'quote " and \\ back', "line\nbreak\r\n", "x" * 1000]
SCHEDULE = [f"{i}:{p}" for i in range(2) for p in PAYLOADS]  # 12 messages
WAIT_MS = 15_000  # for a page to get what it is waiting for (a loaded machine is slow)
WORKER_STEP_S = 60.0


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    """One server per stack, tokens required."""
    logs = tmp_path_factory.mktemp("browser")
    env = {"PB_SECRET": SECRET}
    started: dict[str, ServerProcess] = {}
    try:
        for stack in STACKS:
            started[stack] = start_server(
                logs / f"{stack}.stderr", "--auth-secret-env", "PB_SECRET", stack=stack, env=env
            )
        yield started
    finally:
        for server in started.values():
            server.stop()
    for server in started.values():
        server.check()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or not playwright_available():
        pytest.skip(f"no Chromium: {MISSING_HINT}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(**launch_options(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


def token(topic: str) -> str:
    return make_token(SECRET.encode(), topic, ttl_s=300)


def publish(server: ServerProcess, topic: str, payload: str, secret: bool = True) -> int:
    query = {"topic": topic, **({"token": token(topic)} if secret else {})}
    request = urllib.request.Request(
        server.url(f"/publish?{urlencode(query)}"), data=payload.encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        seq: int = json.loads(response.read())["seq"]
        return seq


@contextlib.contextmanager
def client_page(browser: Any, server: ServerProcess, **params: str | float) -> Iterator[Any]:
    """A page of the browser client in a context of its own, settled (first attempt over)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url(f"/client?{urlencode(params)}"))
        page.wait_for_function(SETTLED, timeout=WAIT_MS)
        yield page
    finally:
        context.close()


def wait_messages(page: Any, count: int) -> None:
    page.wait_for_function("n => pushbench.stats.messages >= n", arg=count, timeout=WAIT_MS)


def time_origin_ns(page: Any) -> int:
    """The page's performance.now() origin on CLOCK_MONOTONIC (DevTools' NavigationStart)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    cdp.detach()
    return next(round(float(m["value"]) * 1e9) for m in metrics if m["name"] == "NavigationStart")


# --- the routes --------------------------------------------------------------------------------


def page_file(name: str) -> bytes:
    """A file of the page as served: client.html with the transport table in place."""
    data = (ROOT / "clients" / "browser" / name).read_bytes()
    if name == "client.html":
        assert data.count(page_assets.PLACEHOLDER) == 1
        data = data.replace(page_assets.PLACEHOLDER, page_assets.transport_script())
    return data


def served_table(html: bytes) -> dict[str, Any]:
    start = html.index(b'<script type="application/json" id="pushbench-transports">')
    body = html[start:].split(b">", 1)[1].split(b"</script>", 1)[0]
    table: dict[str, Any] = json.loads(body)
    return table


def test_the_page_gets_its_transports_from_the_registry() -> None:
    """The page's table is the registry's transports with a browser client, in its order,
    and the script names no transport list of its own."""
    table = served_table(page_assets.asset("/client").body)
    assert list(table) == list(TRANSPORTS) == ["ws", "sse", "longpoll", "shortpoll"]
    for name, row in table.items():
        t = registry.transport(name)
        assert row == {
            "protocol": t.protocol,
            "path": t.path,
            "starter": t.clients["browser"],
            "params": sorted(t.params),
        }
    script = page_assets.asset("/client.js").body.decode()
    assert "const TRANSPORTS" not in script and "pushbench-transports" in script
    for row in table.values():  # every starter the table names is one the script has
        assert f"    {row['starter']}: " in script.split("const STARTERS = {", 1)[1]


def test_a_new_browser_transport_row_reaches_the_page_and_the_worker() -> None:
    row = registry.Transport(
        name="sse-dummy",
        protocol="sse",
        label="SSE (dummy)",
        path="/sse",
        delivery="streaming",
        upgrade=False,
        floor="sse",
        color="#000000",
        marker="x",
        simplicity=1,
        simplicity_why="a test row",
        clients={"browser": "sse"},
        default=False,
    )
    with registry.extended(transports=(row,)):
        spec = WorkerSpec.from_dict({"base_url": "http://127.0.0.1:1", "transport": "sse-dummy"})
        table = served_table(page_assets.asset("/client").body)
        assert table["sse-dummy"]["starter"] == "sse"
        check_spec(spec)  # a browser transport now
    assert "sse-dummy" not in served_table(page_assets.asset("/client").body)
    with pytest.raises(SpecRefused, match="not a browser transport"):
        check_spec(spec)


def test_every_stack_serves_the_page_and_the_clock(servers: dict[str, ServerProcess]) -> None:
    files = {"/client": "client.html", "/client.js": "client.js"}
    for stack, server in servers.items():
        for path, name in files.items():
            with urllib.request.urlopen(server.url(path), timeout=10) as response:
                assert response.status == 200
                assert response.read() == page_file(name)
                kind = "text/html" if name.endswith(".html") else "text/javascript"
                assert response.headers["Content-Type"].startswith(kind), stack
                # cross-origin isolation: what gives performance.now() 5 µs resolution
                assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        before = time.monotonic_ns()
        with urllib.request.urlopen(server.url("/clock"), timeout=10) as response:
            body = json.loads(response.read())
        after = time.monotonic_ns()
        assert isinstance(body["mono_ns"], str), stack  # digits: exact beyond 2**53 in JS
        assert before <= int(body["mono_ns"]) <= after, stack  # one CLOCK_MONOTONIC per host


# --- exact delivery ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("stack", STACKS)
def test_page_receives_the_exact_sequence(
    servers: dict[str, ServerProcess], browser: Any, stack: str, transport: str
) -> None:
    server = servers[stack]
    topic = f"br-{stack}-{transport}-{os.getpid()}"
    # Two messages before the page opens; since=1 asks for the second one from history.
    assert [publish(server, topic, p) for p in SCHEDULE[:2]] == [1, 2]
    params: dict[str, str | float] = {"transport": transport, "topic": topic, "since": 1}
    params["token"] = token(topic)
    params |= {"keep": 1, "interval": 0.05, "timeout": 5}
    with client_page(browser, server, **params) as page:
        assert page.evaluate("pushbench.state.connected")
        for payload in SCHEDULE[2:]:
            publish(server, topic, payload)
        wait_messages(page, len(SCHEDULE) - 1)
        page.evaluate("pushbench.stop()")
        taken = page.evaluate("pushbench.take()")
        got = receipts(taken, time_origin_ns(page))
    received = list(zip(got.seq.tolist(), got.payloads or [], strict=True))
    assert received == [(i + 1, p) for i, p in enumerate(SCHEDULE)][1:]
    stats = taken["stats"]
    assert (stats["errors"], stats["parse_errors"], stats["overflow"]) == (0, 0, 0)
    assert stats["connects"] == 1 and stats["last_seq"] == len(SCHEDULE)
    assert (got.sched_ns == got.pub_ns).all()  # a POST publish is scheduled when it runs
    assert (got.recv_ns > got.pub_ns).all()  # received after published, on one clock
    assert taken["info"]["cross_origin_isolated"] is True


def test_server_times_beyond_2_53_ns_stay_exact(
    servers: dict[str, ServerProcess], browser: Any
) -> None:
    """A server up for more than 104 days: /clock and the envelopes' sch/pub exceed 2**53
    ns. Both are answered here by Playwright's router, so the page parses them for real."""
    server = servers["aiohttp"]
    huge = 2**62 + 123_456_789  # ns; 2**53 + 1 is the first integer a Number cannot hold
    sch = [huge + 1_000_001, huge + 2_000_003]
    pub = [huge + 1_000_777, huge + 2_000_999]
    batch = {
        "last": 2,
        "messages": [
            {"t": "big", "s": i + 1, "sch": sch[i], "pub": pub[i], "p": f"m{i}"} for i in range(2)
        ],
    }
    context = browser.new_context()
    try:
        served = {"polls": 0}

        def poll(route: Any) -> None:
            served["polls"] += 1
            body = batch if served["polls"] == 1 else {"last": 2, "messages": []}
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

        context.route(
            "**/clock",
            lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps({"mono_ns": str(huge)})
            ),
        )
        context.route("**/poll?*", poll)
        page = context.new_page()
        page.goto(server.url("/client?transport=shortpoll&topic=big&since=0&keep=1&interval=0.05"))
        page.wait_for_function(SETTLED, timeout=WAIT_MS)
        wait_messages(page, 2)
        page.evaluate("pushbench.stop()")
        taken = page.evaluate("pushbench.take()")
    finally:
        context.close()
    assert taken["info"]["exact_big_ints"] is True
    assert taken["clock"]["base_ns"] == str(huge)
    got = receipts(taken)  # the NTP mapping, onto the routed clock
    assert got.sched_ns.tolist() == sch and got.pub_ns.tolist() == pub
    assert float(sch[0]) == float(sch[0] + 1)  # the values a plain Number would have merged


# --- reconnecting ------------------------------------------------------------------------------


def test_websocket_page_reconnects_with_backoff_and_resumes(
    browser: Any,
    redis_url: str,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    """The server goes away (Close 1001) and comes back on the same port; meanwhile
    messages are published through another server on the same Redis. The page retries
    with growing full-jitter delays and resumes with since=: no message is lost."""
    topic = f"br-restart-{os.getpid()}"
    hub = ("--hub", "redis", "--redis-url", redis_url)
    fixed = (*hub, "--port", str(unused_tcp_port))  # the last --port wins over conftest's 0
    started: list[ServerProcess] = []

    def serve(name: str, *args: str, stack: str = "aiohttp") -> ServerProcess:
        server = start_server(tmp_path / f"{name}.stderr", *args, stack=stack)
        started.append(server)
        return server

    base_ms, cap_ms = 100, 800
    try:
        first = serve("first", *fixed)
        params: dict[str, str | float] = {"transport": "ws", "topic": topic, "keep": 1}
        params |= {"backoff_base": base_ms, "backoff_cap": cap_ms}
        with client_page(browser, first, **params) as page:
            assert [publish(first, topic, f"a{i}", secret=False) for i in range(4)] == [1, 2, 3, 4]
            wait_messages(page, 4)
            assert first.stop() == 0  # Close 1001 to the page
            other = serve("other", *hub, stack="starlette")  # the same Redis, another port
            for i in range(4):
                publish(other, topic, f"b{i}", secret=False)  # missed by the page
            page.wait_for_function("pushbench.attempts.length >= 4", timeout=WAIT_MS)
            again = serve("again", *fixed)  # the same stack back on the same port
            wait_messages(page, 8)  # the missed ones, from Redis history
            for i in range(2):
                publish(again, topic, f"c{i}", secret=False)
            wait_messages(page, 10)
            page.evaluate("pushbench.stop()")
            taken = page.evaluate("pushbench.take()")
    finally:
        for server in started:
            server.stop()
    for server in started:
        server.check()

    got = receipts(taken)
    expected = [f"a{i}" for i in range(4)] + [f"b{i}" for i in range(4)] + ["c0", "c1"]
    assert list(zip(got.seq.tolist(), got.payloads or [], strict=True)) == list(
        zip(range(1, 11), expected, strict=True)
    )
    stats = taken["stats"]
    assert (stats["connects"], stats["reconnects"]) == (2, 1)
    closes, attempts = taken["closes"], taken["attempts"]
    assert closes[0]["code"] == 1001 and closes[0]["opened"] is True
    failed = [c for c in closes[1:] if not c["opened"]]
    assert len(failed) >= 3 and len(failed) == len(attempts) - 1
    # Full jitter: the ceiling doubles from the base up to the cap, the delay is drawn below
    # it, and the next attempt never starts before that delay has passed.
    ceilings = [a["ceiling_ms"] for a in attempts]
    assert ceilings == [min(cap_ms, base_ms * 2**i) for i in range(len(attempts))]
    assert all(0 <= a["delay_ms"] < a["ceiling_ms"] for a in attempts)
    for prev, nxt in itertools.pairwise(attempts):
        assert nxt["at_ms"] - prev["at_ms"] >= prev["delay_ms"]


# --- the worker --------------------------------------------------------------------------------


def _spec(tmp: Path, server: ServerProcess, **fields: Any) -> Path:
    spec = {"base_url": server.url("").rstrip("/"), "capacity": 1000, **fields}
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _start_worker(spec: Path, out: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pushbench.clients.browser_worker", str(spec), str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the worker prints nothing else on stdout
    if line.decode().strip() != READY_LINE:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"no ready line: {line!r}; stderr:\n{err.decode()}")
    return proc


def _finish(proc: subprocess.Popen[bytes]) -> None:
    try:
        _, err = proc.communicate(timeout=WORKER_STEP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err.decode()


def _outputs(out: Path) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Any]]:
    npz_path, json_path = output_paths(out)
    with np.load(npz_path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads(json_path.read_text())


def start_ticker(server: ServerProcess, topic: str, count: int, rate: float = 100.0) -> None:
    query = urlencode({"topic": topic, "rate": rate, "size": 100, "count": count})
    control = {"Authorization": f"Bearer {make_control_token(SECRET.encode())}"}
    request = urllib.request.Request(
        server.url(f"/control/ticker?{query}"), data=b"", headers=control
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@needs_chromium
def test_worker_keeps_the_contract(servers: dict[str, ServerProcess], tmp_path: Path) -> None:
    server = servers["starlette"]
    topic = f"br-worker-{os.getpid()}"
    spec = _spec(tmp_path, server, transport="ws", topic=topic, token=token(topic))
    spec.write_text(
        json.dumps({**json.loads(spec.read_text()), "connections": 2, "duration_s": 1.5})
    )
    out = tmp_path / "out"
    proc = _start_worker(spec, out)
    start_ticker(server, topic, count=50)
    _finish(proc)
    arrays, result = _outputs(out)

    assert set(arrays) == {"conn", "seq", "sched_ns", "pub_ns", "recv_ns"}
    assert arrays["conn"].dtype == np.uint32 and arrays["seq"].dtype == np.int64
    for conn in (0, 1):
        assert arrays["seq"][arrays["conn"] == conn].tolist() == list(range(1, 51))
    latency = arrays["recv_ns"] - arrays["sched_ns"]
    assert (arrays["recv_ns"] > arrays["pub_ns"]).all()
    assert (latency > 0).all() and (latency < 1e9).all()  # plausible, not a target
    assert result["complete"] is True and result["reason"] == "completed"
    assert result["ready_ns"] == result["warmup_end_ns"] < result["end_ns"]  # no warm-up
    assert (result["connections"], result["connected"], result["connect_failures"]) == (2, 2, 0)
    assert result["messages"] == result["totals"]["messages"] == 100
    assert result["totals"]["errors"] == 0 and result["totals"]["reconnects"] == 0
    assert [c["conn"] for c in result["per_connection"]] == [0, 1]
    assert all(c["connect_ns"] > 0 for c in result["per_connection"])
    # The kernel's counters of the browser's sockets: at least every payload came in.
    assert result["bytes_source"] == "tcp_info-ss"
    assert result["totals"]["bytes_in"] >= 100 * 100
    assert result["cpu_user_s_run"] + result["cpu_sys_s_run"] > 0
    assert result["cpu_run_by_kind_s"]["chromium"] > 0
    assert result["clock_source"] == "cdp" and result["clock_uncertainty_us"] > 0
    assert result["clock_rtt_us"] > 0 and result["chromium_version"]


@needs_chromium
def test_worker_stopped_by_sigterm_still_writes_output(
    servers: dict[str, ServerProcess], tmp_path: Path
) -> None:
    server = servers["aiohttp"]
    topic = f"br-sigterm-{os.getpid()}"
    spec = _spec(tmp_path, server, transport="sse", topic=topic, token=token(topic))
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "duration_s": 60.0}))
    out = tmp_path / "out"
    proc = _start_worker(spec, out)
    start_ticker(server, topic, count=20, rate=1000)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _finish(proc)
    arrays, result = _outputs(out)
    assert result["complete"] is False and result["reason"] == "SIGTERM"
    assert arrays["seq"].tolist() == list(range(1, 21)) == list(range(1, result["messages"] + 1))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"transport": "ws-aiohttp"}, "not a browser transport"),
        ({"transport": "ws", "publish": {"rate": 1.0}}, "does not publish"),
    ],
)
def test_worker_refuses_what_a_browser_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: dict[str, Any], message: str
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"base_url": "http://127.0.0.1:1", **fields}))
    assert worker_main([str(spec), str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()

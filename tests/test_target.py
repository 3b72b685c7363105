"""``pushbench run --target URL``: the client side only, against a server someone deployed.

Proved with the Node ``ws`` reference server (``servers/node``, registry stack ``node-ws``)
started here as the user would start it, then measured as an external target: every
message reaches every subscriber, no server process is started by the runner, and the
server columns are empty with ``server_unmeasured`` saying why. A target lacking
``/control/ticker`` gets a message naming it, and its ticker cells are skipped with it as
the reason while the cells that do not need it still run.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from conftest import start_external

from pushbench import registry, runner, scenario
from pushbench.runner.server import unsupported_by_stack
from pushbench.runner.target import TARGET_STACK, TargetError, check_url, for_target, probe

SHORT = """
name = "target"
stacks = ["raw", "aiohttp"]  # one target: the two stacks' cells are one cell
transports = "ws"
subscribers = 4
rate = 100
payload_size = 64
duration_s = 1
warmup_s = 0.5
repeats = 1
"""


@pytest.mark.timeout(120)
def test_the_node_server_measured_as_an_external_target(tmp_path: Path) -> None:
    node = start_external(tmp_path / "node.stderr", "node-ws")  # skips without node
    started: list[object] = []
    try:
        path = tmp_path / "target.toml"
        path.write_text(SHORT)
        options = runner.RunOptions(
            out=tmp_path / "results",
            progress=False,
            target=node.url("").rstrip("/"),
            on_server_started=started.append,
        )
        result = runner.run_scenario(scenario.load(path), options)
    finally:
        node.stop()
    node.check()
    assert result.status == "complete", result.reason
    assert not started  # the runner started no server
    df = pd.read_csv(result.run_dir / "cells.csv", keep_default_na=False)
    assert list(df["stack"]) == [TARGET_STACK] and list(df["status"]) == ["ok"]
    row = df.iloc[0]
    assert row["msgs_delivered"] == row["msgs_expected"] == 4 * 100
    assert row["delivered_fraction"] == 1.0
    for column in ("server_cpu_us_per_msg", "server_cpu_s", "server_rss_bytes"):
        assert row[column] == "", column  # empty, not zero
    assert "did not start the server" in row["server_unmeasured"]
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["target"]["parts"]["ws"]["ok"] and meta["target"]["parts"]["ticker"]["ok"]
    assert meta["servers"][TARGET_STACK]["stack"] == "node-ws"  # the target's own /stats


class _NoTicker(BaseHTTPRequestHandler):
    """A target with /health, /stats and a /ws that upgrades, and no /control/ticker."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.close_connection = True
            return
        if path in ("/health", "/stats"):
            body = b"ok" if path == "/health" else b'{"published": 0}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_error(404)

    def do_DELETE(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def no_ticker() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NoTicker)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_a_target_without_the_ticker_is_told_so_and_its_ticker_cells_skipped(
    tmp_path: Path, no_ticker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = 'name = "t"\nduration_s = 1\ntransports = "ws"\nsubscribers = 4\nrate = 100\n'
    text += "[[cells]]\n[[cells]]\npublishers = 2\n"  # a ticker cell, a chat cell
    cells = for_target(scenario.loads(text, source="t.toml").cells())
    ticker_cell, chat_cell = cells[0], cells[-1]
    assert chat_cell.publishers == 2 and not ticker_cell.publishers
    found = probe(no_ticker, cells)
    assert not found.parts["ticker"].ok and found.parts["ws"].ok
    reason = found.unsupported(ticker_cell)
    assert "POST /control/ticker (404" in reason, reason
    assert found.unsupported(chat_cell) == ""  # clients publish: no ticker needed
    assert any(
        line.startswith("  MISSING  POST /control/ticker") and "ticker cells cannot run" in line
        for line in found.messages()
    ), found.messages()

    path = tmp_path / "t.toml"
    path.write_text(SHORT)  # its one cell needs the ticker: skipped, nothing started
    options = runner.RunOptions(out=tmp_path / "results", progress=False, target=no_ticker)
    result = runner.run_scenario(scenario.load(path), options)
    assert [r["status"] for r in result.rows] == ["skipped"]
    assert "lacks POST /control/ticker (404" in result.rows[0]["reason"]
    assert "MISSING  POST /control/ticker" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url", ["https://example.org:8443", "ws://127.0.0.1:1", "127.0.0.1:8080", "http://h/?q=1"]
)
def test_a_target_must_be_a_plain_http_url(url: str) -> None:
    with pytest.raises(TargetError, match="--target must be http://"):
        check_url(url)
    assert check_url("http://127.0.0.1:8080/prefix/") == "http://127.0.0.1:8080/prefix"


def test_a_stack_whose_program_is_missing_is_skipped_with_the_install_command() -> None:
    """node-ws without node (or without servers/node/node_modules): its cells are skipped,
    naming what is missing and `make system-deps`, instead of failing to start."""
    gone = dataclasses.replace(
        registry.stack("node-ws"),
        name="node-gone",
        argv=("no-such-node-binary", "server.js", "--port", "{port}"),
    )
    with registry.extended(stacks=(gone,)):
        text = 'stacks = "node-gone"\ntransports = "ws"\n'
        cell = scenario.loads(text, source="t.toml").cells()[0]
        reason = unsupported_by_stack(cell)
    assert "needs no-such-node-binary" in reason and "make system-deps" in reason

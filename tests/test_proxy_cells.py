"""Cells through real reverse proxies (h27, issue 12 item 1), end to end with the runner.

One tiny scenario: WebSocket and SSE through each proxy's good config (every message
delivered, the 101 seen on the wire with the proxy's Server header where it sets one,
the proxy's CPU in the row, the proxy pinned with the server and gone afterwards), and
WebSocket through the naive nginx config (the cell fails with the refusal and the status
line nginx answered, recorded in its row: not a crash). A proxy whose binary is missing
skips its cells with a message naming ``make system-deps``, unless CI is set: then the
test fails, so CI cannot pass vacuously (as ``tests/test_runner_redis.py`` does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pushbench import procs, proxies, runner, scenario

GOOD = ("nginx", "caddy", "haproxy")
TINY = """
name = "tiny-proxies"
stacks = "aiohttp"
subscribers = 2
rate = 50
payload_size = 32
duration_s = 0.5
warmup_s = 0.1
repeats = 1
client_processes = 1

[[cells]]
transports = ["ws", "sse"]
via = {good}

[[cells]]
transports = "ws"
via = "nginx-naive"
"""


def _need(names: tuple[str, ...]) -> None:
    missing = [n for n in names if proxies.missing(n)]
    if missing:
        why = "; ".join(proxies.missing(n) for n in missing)
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)


@pytest.mark.timeout(120)
def test_cells_through_each_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need(GOOD)
    started: list[procs.Started] = []
    real_start = procs.ProcessGroup.start

    def spy(self: procs.ProcessGroup, name: str, argv: Any, **kw: Any) -> procs.Started:
        entry = real_start(self, name, argv, **kw)
        started.append(entry)
        return entry

    monkeypatch.setattr(procs.ProcessGroup, "start", spy)
    path = tmp_path / "tiny-proxies.toml"
    path.write_text(TINY.format(good=list(GOOD)).replace("'", '"'))
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    df = pd.read_csv(result.run_dir / "cells.csv").set_index("cell_id")

    good = df[df["via"].isin(GOOD)]
    assert len(good) == 2 * len(GOOD)
    assert (good["status"] == "ok").all(), list(good["reason"])
    assert (good["delivered_fraction"] == 1).all() and (good["msgs_lost"] == 0).all()
    assert good["proxy_cpu_us_per_msg"].notna().all()
    assert (good["proxy_cpu_us_per_msg"] >= 0).all()
    ws = good[good["transport"] == "ws"]
    assert ws["upgrade_status"].str.startswith("HTTP/1.1 101 Switching Protocols").all()
    # the 101 came through nginx: its Server header replaced the stack's
    assert "server=nginx/" in str(ws.loc["aiohttp-ws-sub2-rate50-p32-via-nginx", "upgrade_status"])
    assert good[good["transport"] == "sse"]["upgrade_status"].isna().all()

    naive = df.loc["aiohttp-ws-sub2-rate50-p32-via-nginx-naive"]
    assert naive["status"] == "failed"
    assert str(naive["reason"]).startswith("WebSocket refused by nginx-naive")
    assert str(naive["upgrade_status"]).startswith("HTTP/1.1 400")
    assert "server=nginx" in str(naive["upgrade_status"])

    proxied = [s for s in started if s.name == "proxy"]
    servers = [s for s in started if s.name == "server"]
    assert len(proxied) == len(servers) == 2 * len(GOOD) + 1
    for p, s in zip(proxied, servers, strict=True):
        assert set(p.cpus) == set(s.cpus)  # pinned with the server
        assert str(result.run_dir) in " ".join(map(str, p.proc.args))  # config in the run dir
        assert p.proc.poll() is not None  # stopped by the runner

"""scenarios/topology.toml end to end (issue 12 "Done when", the short version).

The bundled scenario as shipped: WebSocket and SSE on aiohttp behind nginx, Caddy and
HAProxy configured for push, permessage-deflate through nginx, the lan relay in front
of HAProxy, TLS on one cell — every cell measured, its thresholds (100 % delivered,
none lost) passed, every part really in the path (the 101 through the proxy, the
deflate extension, the relay's calibration, the TLS handshake), and the report
judged by the decision guide's production situations, with the figure by proxy. A
missing proxy or openssl skips with the reason, except under CI (env CI set), where it
fails so CI cannot pass vacuously.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pushbench import proxies, runner, scenario, thresholds, tls
from pushbench.report import guide
from pushbench.report.load import load_run
from pushbench.report.plots_topology import latency_by_proxy


def _need() -> None:
    why = [m for m in (proxies.missing(p) for p in ("nginx", "caddy", "haproxy")) if m]
    if tls.openssl() is None:
        why.append("openssl is missing: run `make system-deps`")
    for binary in ("redis-server", "nats-server"):  # the broker hubs of the scale-out cells
        if shutil.which(binary) is None:
            why.append(f"{binary} is missing: run `make system-deps`")
    if why:
        if os.environ.get("CI"):
            pytest.fail("; ".join(why) + "; CI is set, so this is a failure", pytrace=False)
        pytest.skip("; ".join(why))


@pytest.mark.timeout(180)
def test_the_topology_scenario_delivers_everything(tmp_path: Path) -> None:
    _need()
    scen = scenario.load("topology")
    result = runner.run_scenario(scen, runner.RunOptions(out=tmp_path, progress=False))
    run_dir = result.run_dir
    rows = pd.read_csv(run_dir / "cells.csv")
    assert len(rows) == len(scen.cells()) == 10
    assert (rows["status"] == "ok").all(), list(rows["reason"])
    cells = thresholds.summarize_rows(rows.to_dict("records"))
    verdict = thresholds.evaluate(scen.name, scen.thresholds, cells)
    assert verdict.passed and len(verdict.outcomes) == 2 * 10, verdict.failed

    by_id = rows.set_index("cell_id")
    proxied = rows[rows["via"].isin(["nginx", "caddy", "haproxy"])]
    assert set(proxied["via"]) == {"nginx", "caddy", "haproxy"}
    assert proxied["proxy_cpu_us_per_msg"].notna().all()
    ws = proxied[proxied["transport"] == "ws"]
    assert ws["upgrade_status"].str.startswith("HTTP/1.1 101").all()
    deflate = by_id.loc["aiohttp-ws-sub2-rate50-p64-deflate-pljson-via-nginx"]
    assert deflate["compression"] == "deflate" and deflate["via"] == "nginx"
    relayed = by_id.loc["aiohttp-sse-sub2-rate50-p64-netlan-via-haproxy"]
    assert relayed["net"] == "lan" and relayed["relay_cpu_us_per_msg"] >= 0
    calibrated = json.loads((run_dir / "netem.json").read_text())["calibration"]
    assert [c["net"] for c in calibrated] == ["lan"]
    nodes = rows[rows["servers"] == 2]  # two nodes on each broker hub, both serving
    assert set(nodes["hub"]) == {"redis", "nats"}
    assert all(len(str(n).split(";")) == 2 for n in nodes["node_msgs_delivered"])
    (killed,) = rows[rows["fault"].fillna("").astype(str) != ""].to_dict("records")
    assert killed["fault_msgs_lost"] == 0 and bool(killed["fault_same_port"])
    assert killed["reconnected_clients"] == 2
    secure = by_id.loc["aiohttp-ws-sub2-rate50-p64-tls"]
    assert bool(secure["tls"]) and secure["tls_handshake_p50_us"] > 0

    run = load_run(run_dir)  # the report's parts for these cells, not its every figure
    (plot,) = latency_by_proxy(run, tmp_path)
    assert plot.path is not None and plot.path.exists()
    text = guide.text(run, width=10_000)
    assert "Production (TLS), decided at 2 subscribers · 50 msg/s · 64 B · TLS" in text
    assert "Unreliable networks, decided at 2 subscribers · 50 msg/s · 64 B" in text
    assert "Clients behind restrictive proxies" in text

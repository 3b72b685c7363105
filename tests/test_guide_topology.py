"""The decision guide's production situations (issue 12 item 8) from a hand-written run.

A tiny run directory (cells.csv only, three repeats a cell with a few per cent of
spread) holds what the topology dimensions write: cells direct and behind nginx
configured for push, behind nginx's and Caddy's naive configs (a refused WebSocket,
SSE held in lumps, an idle stream cut), TLS cells beside their plaintext twins, and
cells on the wan profile. The guide must decide each situation from those cells, cite
them, judge what was added by the rerun-margin rule, and say what it did not measure;
the figures by proxy and by network profile must render.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest

from pushbench.report import answer, doc, guide, guide_topology, md
from pushbench.report.load import Run, load_run
from pushbench.report.plots_topology import latency_by_net, latency_by_proxy

JITTER = (1.0, 1.05, 0.95)  # each repeat's factor: a spread the t test can work with
BASE = {  # transport → (p50 µs, p99 µs, server CPU µs/msg), direct on loopback
    "ws": (500.0, 2000.0, 100.0),
    "sse": (600.0, 2400.0, 110.0),
    "longpoll": (1500.0, 6000.0, 200.0),
}


def _cell(transport: str, suffix: str = "", **over: Any) -> dict[str, Any]:
    p50, p99, cpu = BASE[transport]
    cell = {
        "scenario": "hand",
        "cell_id": f"aiohttp-{transport}-sub10-rate50-p100{suffix}",
        "stack": "aiohttp",
        "transport": transport,
        "client": "python",
        "subscribers": 10,
        "publishers": 0,
        "rate_msgs_per_s": 50.0,
        "payload_bytes": 100,
        "hub": "memory",
        "loop": "asyncio",
        "check_delay_ms": 0,
        "check_pause_ms": 0,
        "check_drop_every": 0,
        "status": "ok",
        "reason": "",
        "lat_p50_us": p50,
        "lat_p99_us": p99,
        "lat_max_us": p99 * 1.2,
        "delivered_fraction": 1.0,
        "msgs_lost": 0,
        "server_cpu_us_per_msg": cpu,
        "errors": 0,
        "reconnects": 0,
        "via": "direct",
        "proxy_cpu_us_per_msg": "",
        "tls": False,
        "net": "loopback",
        "tcp_connect_p50_us": 80.0,
        "tls_handshake_p50_us": "",
        "connect_p50_us": 200.0,
        "handshake_bytes_per_conn": 370.0,
        "probe": False,
    }
    cell.update(over)
    return cell


def _cells() -> list[dict[str, Any]]:
    out = [_cell(t) for t in BASE]
    out += [  # nginx configured for push: +30 % on p50 (within the margin), ×3 on p99
        _cell(t, "-via-nginx", via="nginx", lat_p50_us=BASE[t][0] * 1.3,
              lat_p99_us=BASE[t][1] * 3, proxy_cpu_us_per_msg=7.0)
        for t in BASE
    ]  # fmt: skip
    out += [
        _cell("ws", "-via-nginx-naive", via="nginx-naive", status="failed",
              reason="WebSocket refused by nginx-naive: HTTP/1.1 400 Bad Request",
              lat_p50_us="", lat_p99_us="", delivered_fraction=""),
        _cell("sse", "-via-nginx-naive", via="nginx-naive", lat_p50_us=80_000.0,
              lat_p99_us=400_000.0),  # buffered: arrives in lumps
        _cell("longpoll", "-via-nginx-naive", via="nginx-naive", lat_p99_us=6500.0),
        _cell("ws", "-via-caddy-naive", via="caddy-naive"),
        _cell("sse", "-via-caddy-naive", via="caddy-naive"),
        _cell("longpoll", "-via-caddy-naive", via="caddy-naive"),
        _cell("sse", "-idle-via-caddy-naive", via="caddy-naive", rate_msgs_per_s=0.0,
              reconnects=3, lat_p50_us="", lat_p99_us=""),  # cut after the idle timeout
    ]  # fmt: skip
    out += [
        _cell(t, "-tls", tls=True, lat_p50_us=BASE[t][0] * 1.05, tls_handshake_p50_us=900.0,
              connect_p50_us=1100.0, handshake_bytes_per_conn=2600.0,
              server_cpu_us_per_msg=BASE[t][2] * 1.3)
        for t in ("ws", "sse")
    ]  # fmt: skip
    wan = {"ws": 10_500.0, "sse": 10_600.0, "longpoll": 31_500.0}  # +0.5, 0.5, 1.5 RTT
    out += [
        _cell(t, "-netwan", net="wan", lat_p50_us=p50, lat_p99_us=p50 * 1.5)
        for t, p50 in wan.items()
    ]
    return out


def _write(run: Path, cells: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    """``run``/cells.csv with three repeats of every cell (the figures × :data:`JITTER`)."""
    run.mkdir(parents=True)
    rows = []
    for cell in cells:
        for k, f in enumerate(JITTER):
            row = {**cell, **(extra or {}), "repeat": k}
            for col in ("lat_p50_us", "lat_p99_us", "lat_max_us", "server_cpu_us_per_msg"):
                if isinstance(row[col], float):
                    row[col] = row[col] * f
            rows.append(row)
    with (run / "cells.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("hand") / "run", _cells())


_LOADED: dict[Path, Run] = {}
_RENDERED: dict[Path, dict[str, str]] = {}


def _run(path: Path) -> Run:
    """The run at ``path``, loaded once (its summary is cached on it)."""
    if path not in _LOADED:
        _LOADED[path] = load_run(path)
    return _LOADED[path]


def _section(run_dir: Path, title: str) -> str:
    text = guide.text(_run(run_dir), width=10_000)
    return re.split(r"\n  (?=\S)", text.split(f"  {title}", 1)[1], maxsplit=1)[0]


def _md(run_dir: Path, key: str) -> str:
    """The guide section ``key`` as the report's markdown renders it."""
    if run_dir not in _RENDERED:
        sec = guide.section(_run(run_dir))
        _RENDERED[run_dir] = {
            s.anchor: md.render(doc.Document("t", sections=(s,))) for s in sec.subsections
        }
    return _RENDERED[run_dir][f"guide-{key}"]


def test_behind_restrictive_proxies_from_the_naive_cells(run_dir: Path) -> None:
    run = _run(run_dir)
    (v,) = [v for v in answer.verdicts(run) if v.key == "proxies"]
    # WebSocket was refused by nginx-naive and SSE held in lumps there: long polling wins
    assert v.protocol == "long polling" and v.sure == "beyond noise"
    assert v.cell_id == "aiohttp-longpoll-sub10-rate50-p100-via-nginx-naive"
    md_text = _md(run_dir, "proxies")
    assert "not measured here: real proxies" not in md_text
    assert "WebSocket refused by nginx-naive" in md_text  # left out, with the reason
    assert "worst naive config" in md_text
    assert "idle connections cut (3 reconnects" in md_text
    assert "got through under load: longpoll · aiohttp, sse · aiohttp, ws · aiohttp" in md_text
    ids = {c["cell_id"] for c in _cells()}
    cited = set(re.findall(r"cell `([^`]+)`", md_text)) | set(re.findall(r"`([^`]+)` vs", md_text))
    assert cited and cited <= ids
    # what the good nginx config added over direct, judged by the rerun margin
    good = [
        line
        for line in md_text.splitlines()
        if "**nginx** (configured for push) in front of ws" in line
    ]
    assert good, md_text
    assert "p50 +150 µs (×1.30; within the ±75% rerun margin)" in good[0]
    assert re.search(r"p99 \+4,000 µs \(×3\.00; beyond the rerun margin and the noise", good[0])
    assert "proxy CPU 7 µs/msg" in good[0]


def test_production_tls_from_the_pairs(run_dir: Path) -> None:
    line = _section(run_dir, "Production (TLS)")
    assert "decided at 10 subscribers · 50 msg/s · 100 B · TLS" in line
    assert "tie between SSE, WebSocket" in line and "aiohttp-sse-sub10-rate50-p100-tls" in line
    md_text = _md(run_dir, "tls")
    assert "+ TLS 900 µs" in md_text and "2,600 B/conn against 370 B/conn" in md_text
    assert "server CPU per message +30 µs/msg (×1.30; within the ±100% rerun margin)" in md_text
    assert "`aiohttp-ws-sub10-rate50-p100-tls` vs `aiohttp-ws-sub10-rate50-p100`" in md_text
    assert "not measured here: TLS" not in md_text


def test_unreliable_networks_from_the_profiles(run_dir: Path) -> None:
    run = _run(run_dir)
    (v,) = [v for v in answer.verdicts(run) if v.key == "network"]
    assert v.cell_id.endswith("-netwan") and v.protocol in ("WebSocket", "SSE")
    md_text = _md(run_dir, "network")
    assert "wan (RTT 20 ms)" in md_text
    assert "p50 grew by 0.50 RTT" in md_text and "p50 grew by 1.50 RTT" in md_text  # ws, long poll
    assert "beyond the rerun margin and the noise" in md_text
    assert "not measured here: network delay" not in md_text


def test_scale_out_is_named_until_a_run_has_servers(run_dir: Path, tmp_path: Path) -> None:
    run = _run(run_dir)
    (v,) = [v for v in answer.verdicts(run) if v.key == "scale-out"]
    assert v.sure == "not measured"
    assert "pushbench run scaleout" in _md(run_dir, "scale-out")
    two = _cell("ws", "-servers2-hubredis", servers=2, hub="redis", lat_p99_us=2600.0)
    scaled = _write(tmp_path / "scaled", [_cell("ws", servers=1), two], {})
    (v,) = [v for v in answer.verdicts(_run(scaled)) if v.key == "scale-out"]
    assert v.cell_id == two["cell_id"]
    md_text = _md(scaled, "scale-out")
    assert "ws · aiohttp on 2 servers, hub redis" in md_text
    assert "against one server (cell `aiohttp-ws-sub10-rate50-p100`)" in md_text
    assert "not measured in this run" not in md_text


def test_a_run_without_topology_cells_keeps_the_old_reading(tmp_path: Path) -> None:
    """A run older than the topology columns: the plain-HTTP transports direct, the static
    caveat, and no figure by proxy or network."""
    old = [
        {
            k: v
            for k, v in _cell(t).items()
            if k not in ("via", "tls", "net", "proxy_cpu_us_per_msg")
        }
        for t in BASE
    ]
    path = _write(tmp_path / "old", old)
    md_text = _md(path, "proxies")
    assert "not measured here: real proxies" in md_text and "over plain HTTP/1.1" in md_text
    assert "**ws ·" not in md_text.split("Caveats", 1)[0]  # no WebSocket verdict
    assert guide_topology.rtt_ms("wan") == 20 and guide_topology.rtt_ms("loopback") == 0
    assert latency_by_proxy(_run(path), tmp_path) == [] == latency_by_net(_run(path), tmp_path)


def test_latency_figures_by_proxy_and_by_network(run_dir: Path, tmp_path: Path) -> None:
    run = _run(run_dir)
    for draw, key in ((latency_by_proxy, "latency-by-proxy"), (latency_by_net, "latency-by-net")):
        (plot,) = draw(run, tmp_path)
        assert plot.key == key and plot.path is not None
        assert plot.path.read_bytes().startswith(b"\x89PNG")


def test_reconnect_times_figure_from_the_fault_cells(run_dir: Path, tmp_path: Path) -> None:
    """One panel per fault, drawn only when fault cells ran ok (issue 12 item 8)."""
    from pushbench.report.plots_faults import reconnect_times

    assert reconnect_times(_run(run_dir), tmp_path) == []  # no fault cell: no figure
    fault = "server-kill at 3 s, down 1 s"
    cells = [
        _cell(
            t,
            "-fault-server-kill-at3s-down1s",
            hub="redis",
            fault=fault,
            reconnect_p50_ms=1200.0 + 100 * k,
            reconnect_p99_ms=2100.0,
            reconnect_max_ms=2300.0,
        )
        for k, t in enumerate(("ws", "sse"))
    ]
    run = load_run(_write(tmp_path / "faults", cells))
    (plot,) = reconnect_times(run, tmp_path)
    assert plot.key == "reconnect-times" and plot.path is not None
    assert plot.path.read_bytes().startswith(b"\x89PNG")
    failed = load_run(_write(tmp_path / "failed", [{**cells[0], "status": "failed"}]))
    assert reconnect_times(failed, tmp_path) == []  # nothing ok: nothing drawn


def test_http2_figures_in_the_idle_and_proxies_situations(tmp_path: Path) -> None:
    """Issue 18 item 4: with an HTTP/2 cell beside its HTTP/1.1 twin and the browser probe's
    record, the guide cites both; the static six-connection caveat goes (measured now)."""
    from pushbench.schema.browser_streams import StreamResult, StreamsRecord, write_records

    h2 = _cell("sse", lat_p50_us=900.0, bytes_in_per_msg=196.0)
    h2.update(transport="sse-h2", cell_id="aiohttp-sse-h2-sub10-rate50-p100")
    path = _write(tmp_path / "h2", [_cell("sse", bytes_in_per_msg=193.0), h2])
    plain = _md(path, "idle")
    assert "6 HTTP/1.1 connections per origin" in plain  # no probe yet: the static caveat
    assert "sse on aiohttp over HTTP/2 vs HTTP/1.1: p50 900 µs vs 600 µs" in plain
    assert "(cells `aiohttp-sse-h2-sub10-rate50-p100` vs `aiohttp-sse-sub10-rate50-p100`)" in (
        _md(path, "proxies")
    )

    def streams(i: int, opened: bool) -> StreamResult:
        return StreamResult(i, 30.0, 40.0, 5, 1) if opened else StreamResult(i, None, None, 0, 0)

    probe = tmp_path / "probe"
    _write(probe, [_cell("sse", bytes_in_per_msg=193.0), h2])
    write_records(
        probe,
        [
            StreamsRecord("http/1.1", "starlette-hypercorn", 8, 1.5, 20.0, protocol="http/1.1",
                          per_stream=tuple(streams(i, i < 6) for i in range(8))),
            StreamsRecord("h2", "starlette-hypercorn", 8, 1.5, 20.0, protocol="h2",
                          per_stream=tuple(streams(i, True) for i in range(8))),
        ],
    )  # fmt: skip
    measured = _md(probe, "idle")
    assert "over **http/1.1**: 6 open, 2 waiting, 6 receiving after 1.5 s" in measured
    assert "over **h2**: 8 open, 0 waiting, 8 receiving" in measured
    assert "6 HTTP/1.1 connections per origin" not in measured  # replaced by the figure

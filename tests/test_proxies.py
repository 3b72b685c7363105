"""The ``via`` dimension's data (h27, issue 12 item 1): the values, the id and row at the
default, the config templates and what they are filled with, the upgrade status the
clients keep, and the reasons a naive proxy's failures are recorded with. No process is
started here (the end-to-end cells are in ``tests/test_proxy_cells.py``)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from pushbench import proxies, scenario
from pushbench.clients.common import ConnStats
from pushbench.procs import ProcSample
from pushbench.report import doc
from pushbench.report import proxies as report_proxies
from pushbench.report.load import load_run
from pushbench.runner import proxy, rows
from pushbench.schema.cells import ALL_COLUMNS, PARAM_COLUMNS

TINY = """
name = "tiny"
stacks = "aiohttp"
transports = ["ws", "sse"]
subscribers = 2
"""


def _cells(extra: str = "") -> list[scenario.Cell]:
    return list(scenario.loads(TINY + extra, source="tiny.toml").cells())


def test_via_values_direct_then_each_proxy_good_and_naive() -> None:
    assert proxies.via_names() == (
        "direct",
        "nginx",
        "nginx-naive",
        "caddy",
        "caddy-naive",
        "haproxy",
        "haproxy-naive",
    )
    assert proxies.proxy_of("direct") is None
    found = proxies.proxy_of("haproxy-naive")
    assert found is not None and (found[0].name, found[1]) == ("haproxy", "naive")
    with pytest.raises(ValueError, match="unknown via"):
        proxies.proxy_of("envoy")


def test_direct_is_the_default_and_leaves_the_id_alone() -> None:
    """At its default the dimension changes no cell id; a proxy shows in the id and row."""
    direct = _cells()
    assert [c.cell_id for c in direct] == [
        "aiohttp-ws-sub2-rate100-p100",
        "aiohttp-sse-sub2-rate100-p100",
    ]
    assert all(c.via == "direct" for c in direct)
    behind = _cells('via = ["nginx", "caddy-naive"]\n')
    assert [c.cell_id for c in behind] == [
        "aiohttp-ws-sub2-rate100-p100-via-nginx",
        "aiohttp-ws-sub2-rate100-p100-via-caddy-naive",
        "aiohttp-sse-sub2-rate100-p100-via-nginx",
        "aiohttp-sse-sub2-rate100-p100-via-caddy-naive",
    ]
    assert behind[0].param_columns()["via"] == "nginx"
    assert list(behind[0].param_columns()) == [c for c in PARAM_COLUMNS if c != "repeat"]
    with pytest.raises(scenario.ScenarioError, match="via"):
        _cells('via = "squid"\n')


def test_render_fills_every_placeholder_and_refuses_drift() -> None:
    assert proxies.render("listen @host@:@port@;", {"host": "h", "port": "1"}) == "listen h:1;"
    with pytest.raises(ValueError, match="without a value: port"):
        proxies.render("listen @host@:@port@;", {"host": "h"})
    with pytest.raises(ValueError, match="no placeholder uses: extra"):
        proxies.render("@host@", {"host": "h", "extra": "x"})


@pytest.mark.parametrize("via", proxies.via_names()[1:])
def test_plan_writes_a_config_under_the_work_dir(via: str, tmp_path: Path) -> None:
    """Every template renders completely; every path in it is under the work directory
    (no /var/log, /run or /var/lib), and the argv runs it in the foreground."""
    work = tmp_path / "proxy"
    plan = proxies.plan(via, "/usr/sbin/x", work, "127.0.0.1", 4321, "127.0.0.1:1234", 10)
    text = plan.config_path.read_text()
    assert plan.config_path.parent == work
    assert not re.search(r"@[a-z_]+@", text)  # nothing left unfilled
    assert "127.0.0.1:4321" in text and "127.0.0.1:1234" in text
    for system in ("/var/", "/run/", "/etc/"):
        assert system not in text
    assert plan.argv[0] == "/usr/sbin/x" and str(plan.config_path) in plan.argv
    if plan.proxy == "nginx":
        assert "daemon off;" in text and "master_process off;" in text
        assert f"pid {work}/nginx.pid;" in text
        assert "-p" in plan.argv and "-e" in plan.argv
        assert (work / "proxy").is_dir() and (work / "client_body").is_dir()
    if plan.proxy == "haproxy":
        assert "-db" in plan.argv and "nbthread 1" in text
    if plan.proxy == "caddy":
        config = json.loads(text)
        assert config["admin"]["disabled"] is True
        assert config["storage"]["root"].startswith(str(work))
        assert plan.argv[1] == "run"


def test_good_configs_forward_the_upgrade_and_stream(tmp_path: Path) -> None:
    def text(via: str) -> str:
        plan = proxies.plan(via, "x", tmp_path / via, "127.0.0.1", 2, "127.0.0.1:1", 10)
        lines = plan.config_path.read_text().splitlines()  # the directives, not the comments
        return "\n".join(x for x in lines if not x.lstrip().startswith("#"))

    nginx = text("nginx")
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "proxy_set_header Connection $connection_upgrade;" in nginx
    assert "proxy_http_version 1.1;" in nginx and "proxy_buffering off;" in nginx
    assert f"proxy_read_timeout {proxies.LONG_TIMEOUT_S}s;" in nginx
    naive = text("nginx-naive")
    assert "Upgrade" not in naive.split("http {")[1] and "proxy_buffering" not in naive
    assert f"proxy_read_timeout {proxies.NAIVE_IDLE_S}s;" in naive
    haproxy, haproxy_naive = text("haproxy"), text("haproxy-naive")
    assert f"timeout tunnel {proxies.LONG_TIMEOUT_S}s" in haproxy
    assert "timeout tunnel" not in haproxy_naive
    assert f"timeout client {proxies.NAIVE_IDLE_S}s" in haproxy_naive
    handler = json.loads(text("caddy"))["apps"]["http"]["servers"]["push"]["routes"][0]
    assert handler["handle"][0]["flush_interval"] == -1
    naive_handler = json.loads(text("caddy-naive"))["apps"]["http"]["servers"]["push"]
    transport = naive_handler["routes"][0]["handle"][0]["transport"]
    assert transport["read_timeout"] == f"{proxies.NAIVE_IDLE_S}s"


def test_missing_binary_names_make_system_deps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxies, "binary", lambda p: None)
    assert "make system-deps" in proxies.missing("caddy") and "caddy" in proxies.missing("caddy")
    assert proxies.missing("direct") == ""


def test_the_client_keeps_the_upgrade_answer() -> None:
    stats = ConnStats(0)
    assert "status_line" not in stats.to_dict()
    stats.upgrade_answer(b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nX: y")
    out = stats.to_dict()
    assert out["status_line"] == "HTTP/1.1 400 Bad Request"
    assert out["server_header"] == "nginx/1.22.1"
    status = proxy.upgrade_status([out, out, {"conn": 2}])
    assert status == "HTTP/1.1 400 Bad Request; server=nginx/1.22.1"
    assert proxy.upgrade_status([{"conn": 0}]) is None


def test_refusal_only_for_websocket_behind_a_proxy_without_a_101() -> None:
    ws, sse = _cells('via = "nginx-naive"\n')
    refused = proxy.refusal(ws, "HTTP/1.1 400 Bad Request; server=nginx/1.22.1")
    assert refused.startswith("WebSocket refused by nginx-naive")
    assert "400 Bad Request" in refused
    assert proxy.refusal(ws, "HTTP/1.1 101 Switching Protocols") == ""
    assert proxy.refusal(ws, None) == ""
    assert proxy.reason(sse, None) == "through nginx-naive"
    direct_ws = _cells()[0]
    assert proxy.refusal(direct_ws, "HTTP/1.1 400 Bad Request") == ""
    assert proxy.reason(direct_ws, None) == ""


def test_proxy_cpu_per_message_and_its_column() -> None:
    row = {"msgs_delivered": 100}
    start, end = ProcSample(2.0, 0, 0), ProcSample(2.005, 0, 0)
    assert rows.with_proxy_cpu(row, start, end)["proxy_cpu_us_per_msg"] == pytest.approx(50)
    assert rows.with_proxy_cpu(row, None, None)["proxy_cpu_us_per_msg"] is None
    assert "via" in PARAM_COLUMNS
    assert {"proxy_cpu_us_per_msg", "upgrade_status"} <= set(ALL_COLUMNS)
    assert "proxy" in rows.cpu_accounting()


# --- the report's "Behind a proxy" table, from stored rows ----------------------------------

FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "report-run"


def _with_proxy_rows(tmp_path: Path) -> Path:
    """The report fixture run (no via column: an older run) with a copy of its aiohttp rows
    behind nginx: p50 + 150 µs, 7 µs of proxy CPU per message; and one refused cell."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURE_RUN, run)
    with (run / "cells.csv").open() as f:
        rows = [dict(r, via="direct", proxy_cpu_us_per_msg="", upgrade_status="")
                for r in csv.DictReader(f)]  # fmt: skip
    extra = []
    for r in rows:
        if r["stack"] == "aiohttp" and r["status"] == "ok" and r["probe"] != "True":
            p = dict(r, via="nginx", cell_id=r["cell_id"] + "-via-nginx")
            p["lat_p50_us"] = str(float(r["lat_p50_us"]) + 150)
            p["proxy_cpu_us_per_msg"] = "7"
            p["upgrade_status"] = "HTTP/1.1 101 Switching Protocols; server=nginx/1.22.1"
            extra.append(p)
    refused = dict(extra[0], via="nginx-naive", cell_id=extra[0]["cell_id"] + "-naive")
    refused.update(status="failed", reason="WebSocket refused by nginx-naive: …")
    refused.update(upgrade_status="HTTP/1.1 400 Bad Request; server=nginx/1.22.1")
    with (run / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, *extra, refused])
    return run


def test_the_proxy_table_subtracts_the_direct_cell(tmp_path: Path) -> None:
    run = load_run(_with_proxy_rows(tmp_path))
    found = report_proxies.proxy_rows(run)
    good = [r for r in found if r.proxied["via"] == "nginx"]
    assert good and all(r.direct is not None for r in good)
    for r in good:
        assert r.added("lat_p50_us") == pytest.approx(150)
        assert r.proxied["proxy_cpu_us_per_msg"] == pytest.approx(7)
        assert r.upgrade_status.startswith("HTTP/1.1 101")
    (naive,) = [r for r in found if r.proxied["via"] == "nginx-naive"]
    assert naive.proxied["ok"] == 0 and "WebSocket refused" in naive.proxied["reasons"]
    (sec,) = report_proxies.section(run)
    table = sec.blocks[-1]
    assert isinstance(table, doc.Table) and sec.title == "Behind a proxy"
    text = "\n".join(" | ".join(row) for row in table.rows)
    assert "+150" in text and "400 Bad Request" in text and table.flags.count("failed") == 1


def test_no_proxy_section_for_a_direct_run() -> None:
    assert report_proxies.section(load_run(FIXTURE_RUN)) == []


@pytest.mark.parametrize("via", proxies.via_names()[1:])
def test_a_relative_work_dir_is_made_absolute(
    via: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--out results` (the default) gives relative run directories; nginx reads -c
    relative to its -p prefix, so every path in the argv and config must be absolute."""
    monkeypatch.chdir(tmp_path)
    plan = proxies.plan(via, "x", Path("results/run/proxy"), "127.0.0.1", 2, "127.0.0.1:1", 10)
    assert plan.config_path.is_absolute()
    assert plan.config_path == (tmp_path / "results/run/proxy" / plan.config_path.name)
    paths = [a for a in plan.argv[1:] if "/" in a]
    assert paths and all(Path(a).is_absolute() for a in paths), plan.argv

"""Scale-out (issue 12 item 4): ``servers = N`` processes of a stack behind nginx on one
broker hub, end to end with the runner, plus what the scenario refuses and the balancer's
config.

The runner test needs redis-server, nats-server and nginx (``make system-deps``): a
missing one skips its cells' test with the reason, unless CI is set, when it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from pushbench import proxies, runner, scenario
from pushbench.runner.nats import NATS_MISSING, nats_server
from pushbench.runner.server import REDIS_MISSING, redis_server
from pushbench.scenario import ScenarioError

CELLS = """
name = "tiny-scaleout"
stacks = "aiohttp"
subscribers = 4
rate = 40
payload_size = 32
duration_s = 0.6
warmup_s = 0.2
repeats = 1
client_processes = 1
via = "nginx"
servers = 2

[[cells]]
hub = "redis"
transports = "longpoll"

[[cells]]
hub = "nats"
transports = "sse"
"""


def _need() -> None:
    why = [
        m
        for m, ok in (
            (REDIS_MISSING, redis_server() is not None),
            (NATS_MISSING, nats_server() is not None),
            (proxies.missing("nginx"), not proxies.missing("nginx")),
        )
        if not ok
    ]
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{'; '.join(why)}; CI is set, so this is a failure", pytrace=False)
        pytest.skip("; ".join(why))


@pytest.mark.timeout(120)
def test_two_nodes_behind_nginx_deliver_everything(tmp_path: Path) -> None:
    """Both hubs: every message reaches every subscriber though the ticker runs on node 0
    only, and both nodes had subscribers (their own /stats) and CPU of their own."""
    _need()
    path = tmp_path / "tiny-scaleout.toml"
    path.write_text(CELLS)
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    df = pd.read_csv(result.run_dir / "cells.csv")
    assert len(df) == 2
    assert (df["status"] == "ok").all(), list(df["reason"])
    assert (df["servers"] == 2).all()
    assert (df["delivered_fraction"] == 1).all() and (df["msgs_lost"] == 0).all()
    assert df["broker_cpu_us_per_msg"].notna().all()
    for _, row in df.iterrows():
        conns = [int(x) for x in row["node_connections"].split(";")]
        sent = [int(x) for x in row["node_msgs_delivered"].split(";")]
        cpu = [float(x) for x in row["node_cpu_us_per_msg"].split(";")]
        assert len(conns) == len(sent) == len(cpu) == 2, row["cell_id"]
        assert min(sent) > 0, (row["cell_id"], sent)  # both nodes served subscribers
        if row["transport"] != "longpoll":  # a poll is a request, not a connection held
            assert min(conns) > 0, (row["cell_id"], conns)
        assert sum(cpu) == pytest.approx(row["server_cpu_us_per_msg"], rel=0.01, abs=0.01)
    assert sorted(df["hub"].unique()) == ["nats", "redis"]


BASE = """
name = "s"
stacks = "aiohttp"
transports = "sse"
"""


def test_memory_hub_with_several_servers_is_refused() -> None:
    with pytest.raises(ScenarioError) as err:
        scenario.loads(BASE + 'servers = 2\nvia = "nginx"\n')
    assert "servers" in str(err.value) and "hub = 'memory'" in str(err.value)


def test_several_servers_need_nginx_in_front_or_one_shared_port() -> None:
    with pytest.raises(ScenarioError) as err:
        scenario.loads(BASE + 'servers = 2\nhub = "redis"\nvia = "caddy"\n')
    assert "via" in str(err.value) and "nginx" in str(err.value)
    # h44: via = "direct" is N processes on one port (SO_REUSEPORT)
    shared = scenario.loads(BASE + 'servers = 2\nhub = "redis"\n').cells()[0]
    assert shared.servers == 2 and shared.via == "direct"


def test_servers_out_of_range_and_the_id() -> None:
    with pytest.raises(ScenarioError, match="servers"):
        scenario.loads(BASE + "servers = 9\n")
    one = scenario.loads(BASE).cells()[0]
    assert one.servers == 1 and "srv" not in one.cell_id
    two = scenario.loads(BASE + 'servers = 2\nhub = "nats"\nvia = "nginx"\n').cells()[0]
    assert two.cell_id == one.cell_id + "-nats-via-nginx-srv2"


def test_nginx_upstream_block_of_the_nodes(tmp_path: Path) -> None:
    nodes = ["127.0.0.1:1001", "127.0.0.1:1002"]
    plan = proxies.plan("nginx", "nginx", tmp_path / "n", "127.0.0.1", 9, nodes[0], 4, nodes)
    text = plan.config_path.read_text()
    assert f"upstream {proxies.NODES_UPSTREAM} {{" in text
    assert all(f"server {n} max_fails=1 fail_timeout=1s;" in text for n in nodes)  # h41
    assert "proxy_next_upstream error timeout;" in text
    assert f"proxy_pass http://{proxies.NODES_UPSTREAM};" in text
    single = proxies.plan("nginx", "nginx", tmp_path / "s", "127.0.0.1", 9, nodes[0], 4)
    assert f"upstream {proxies.NODES_UPSTREAM}" not in single.config_path.read_text()
    with pytest.raises(ValueError, match="nginx only"):
        proxies.plan("haproxy", "haproxy", tmp_path / "h", "127.0.0.1", 9, nodes[0], 4, nodes)

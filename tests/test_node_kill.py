"""A fault on one node of N (issue 12 item 5, h41): ``servers = 2`` behind nginx on the
Redis hub, node 1 killed (SIGKILL) mid-window and restarted on its port.

End to end, ws and sse: the clients node 1 was serving come back through nginx to node 0
and resume from Redis's history — every one of them back, nothing lost or duplicated,
the node and its client count recorded, the node CPU columns still filled (the killed
process's CPU before the kill and the restarted one's both count), every process gone
afterwards. Plus the scenario's checks of ``fault.node`` and the CPU and /stats
bookkeeping across the restart. The end-to-end test needs redis-server and nginx
(``make system-deps``): without them it skips, unless CI is set (then it fails).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pushbench import procs, proxies, runner, scenario
from pushbench.outage import Outage
from pushbench.procs import ProcSample
from pushbench.runner import outage
from pushbench.runner.server import REDIS_MISSING, redis_server
from pushbench.scenario import ScenarioError

BASE = """
name = "n"
stacks = "aiohttp"
transports = "ws"
hub = "redis"
via = "nginx"
servers = 2
duration_s = 4
"""


def test_node_key_parses_and_names_the_cell() -> None:
    text = BASE + 'fault = { kind = "server-kill", at_s = 1, down_s = 0.5, node = 1 }\n'
    (c,) = scenario.loads(text).cells()
    assert c.fault == Outage("server-kill", 1.0, 0.5, 1)
    assert c.cell_id.endswith("-fault-server-kill-at1s-down0.5s-node1")
    assert str(c.fault) == "server-kill at 1 s, down 0.5 s, node 1"
    # node 0 (the default) leaves the id and the description as they were
    (zero,) = scenario.loads(BASE + 'fault = { kind = "server-kill", at_s = 1 }\n').cells()
    assert zero.fault is not None and zero.fault.node == 0
    assert zero.cell_id.endswith("-fault-server-kill-at1s-down0s")
    assert zero.fault.to_dict() == {"kind": "server-kill", "at_s": 1.0, "down_s": 0.0}


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (BASE + 'fault = { kind = "server-kill", at_s = 1, node = 2 }\n', "fault.node", "0 to 1"),
        (
            BASE.replace("servers = 2\n", "").replace('via = "nginx"\n', "")
            + 'fault = { kind = "server-kill", at_s = 1, node = 1 }\n',
            "fault.node",
            "servers = 1",
        ),
        (BASE + 'fault = { kind = "server-kill", at_s = 1, node = -1 }\n', "fault", "node"),
        (BASE + 'fault = { kind = "server-kill", at_s = 1, node = true }\n', "fault", "node"),
        (BASE + 'fault = { kind = "broker-pause", at_s = 1 }\n', "fault", "only server-kill"),
    ],
)
def test_bad_nodes_are_named(text: str, field: str, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        scenario.loads(text).cells()
    assert field in str(err.value) and words in str(err.value)


def _run(node: int, **kw: Any) -> outage.FaultRun:
    return outage.FaultRun("server-kill", 0, 1, True, node=node, **kw)


def test_a_killed_nodes_cpu_and_counters_before_the_kill_still_count() -> None:
    start = [ProcSample(10.0, 1, 0), ProcSample(20.0, 1, 0)]
    # node 1 ran 20 → 23 s of CPU before the kill; its new process 0 → 2 s by the end
    run = _run(1, node_last=ProcSample(23.0, 1, 5), node_stats={"connections_total": 4})
    rebased = outage.rebase(start, run)
    assert rebased[0] == start[0]
    assert rebased[1] is not None and 2.0 - rebased[1].cpu_s == pytest.approx(5.0)
    assert outage.rebase(start, None) == start
    per_node = [{"connections_total": 5}, {"connections_total": 3, "messages_delivered": 7}]
    merged = outage.with_killed(per_node, run)
    assert merged == [{"connections_total": 5}, {"connections_total": 7, "messages_delivered": 7}]


# --- end to end: 2 nodes, redis, ws and sse, node 1 killed --------------------------------

TINY_NODE_KILL = """
name = "tiny-node-kill"
stacks = "aiohttp"
transports = ["ws", "sse"]
hub = "redis"
via = "nginx"
servers = 2
subscribers = 10
rate = 40
payload_size = 32
duration_s = 2.1
warmup_s = 0.2
repeats = 1
client_processes = 1
fault = { kind = "server-kill", at_s = 1.5, down_s = 0.5, node = 1 }
"""


def _need() -> None:
    why = [
        m
        for m, ok in (
            (REDIS_MISSING, redis_server() is not None),
            (proxies.missing("nginx"), not proxies.missing("nginx")),
        )
        if not ok
    ]
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{'; '.join(why)}; CI is set, so this is a failure", pytrace=False)
        pytest.skip("; ".join(why))


@pytest.mark.timeout(60)
def test_one_node_killed_its_clients_resume_on_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need()
    # the tail runs from the node's restart, after SSE's retry: of 1 s and ws's back-off
    monkeypatch.setattr(outage, "TAIL_S", 1.0)
    started: list[procs.Started] = []
    real_start = procs.ProcessGroup.start

    def spy(self: procs.ProcessGroup, name: str, argv: Any, **kw: Any) -> procs.Started:
        entry = real_start(self, name, argv, **kw)
        started.append(entry)
        return entry

    monkeypatch.setattr(procs.ProcessGroup, "start", spy)
    path = tmp_path / "tiny-node-kill.toml"
    path.write_text(TINY_NODE_KILL)
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    df = pd.read_csv(result.run_dir / "cells.csv").set_index("transport")
    assert list(df["status"]) == ["ok", "ok"], list(df["reason"])
    assert (df["fault"] == "server-kill at 1.5 s, down 0.5 s, node 1").all()
    assert (df["fault_node"] == 1).all()
    on_node = df["fault_node_clients"]
    assert (on_node > 0).all() and (on_node < 10).all(), list(on_node)  # round robin
    assert (df["reconnected_clients"] == on_node).all()  # every one of them back
    assert (df["fault_msgs_lost"] == 0).all() and (df["msgs_lost"] == 0).all()
    assert (df["fault_msgs_duplicated"] == 0).all()
    assert (df["delivered_fraction"] == 1).all()
    assert df["fault_same_port"].all() and (df["reconnects"] >= on_node).all()
    assert (df["reconnect_max_ms"] >= df["reconnect_p50_ms"]).all()
    for _, row in df.iterrows():  # both nodes' CPU, the killed one's across its restart
        conns = [int(x) for x in str(row["node_connections"]).split(";")]
        assert sum(conns) == 10 + row["fault_node_clients"], conns  # each moved one again
        cpu = [float(x) for x in str(row["node_cpu_us_per_msg"]).split(";")]
        assert len(cpu) == 2 and min(cpu) > 0, cpu
        assert sum(cpu) == pytest.approx(row["server_cpu_us_per_msg"], rel=0.01, abs=0.01)
    names = [s.name for s in started]
    assert names.count("server1") == 4 and names.count("server") == 2  # node 1 twice a cell
    for entry in started:
        assert entry.proc.returncode is not None, entry.name
        assert not Path(f"/proc/{entry.pid}").exists(), f"{entry.name} pid {entry.pid} left"


def test_the_report_names_the_node_and_its_clients() -> None:
    from pushbench.report.faults import label

    fault = "server-kill at 3 s, down 1 s, node 1"
    row = {"fault": fault, "fault_node": 1.0, "fault_node_clients": 5.0, "servers": 2}
    assert label(row) == f"{fault} · node 1 of 2, 5 clients on it"
    assert label(row, clients=False) == f"{fault} · node 1 of 2"
    plain = {"fault": "server-kill at 3 s, down 1 s", "fault_node": float("nan")}
    assert label(plain) == "server-kill at 3 s, down 1 s"

"""Faults in the measured window (issue 12 item 5): the back-off, the ``fault`` dimension,
the storm count, and one short server-kill cell per streaming transport end to end.

The end-to-end test runs a tiny ws and a tiny sse cell with hub = "redis" whose server is
killed (SIGKILL) half a second into the window and restarted on its port: nothing may be
lost (the clients resume from Redis's history), every client's reconnect time is
recorded, and every process the runner started is gone afterwards. Without redis-server
it skips, unless CI is set (then it fails, as in ``tests/test_runner_redis.py``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pushbench import procs, runner, scenario
from pushbench.clients.common import Client
from pushbench.outage import Outage, backoff_rng, backoff_s
from pushbench.runner import outage, server
from pushbench.scenario import ScenarioError

# --- the back-off ------------------------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_capped() -> None:
    rng = backoff_rng(3)
    for failures in range(12):
        ceiling = min(2.0, 0.05 * 2**failures)
        draws = [backoff_s(failures, rng, 0.05, 2.0) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in draws), failures
        # full jitter: spread over the whole range, not clustered at the ceiling
        assert min(draws) < 0.2 * ceiling and max(draws) > 0.8 * ceiling, failures


def _draws(conn: int) -> list[float]:
    rng = backoff_rng(conn)
    return [backoff_s(f, rng) for f in range(10)]


def test_backoff_is_seeded_per_connection() -> None:
    assert _draws(7) == _draws(7)
    assert _draws(7) != _draws(8)
    with pytest.raises(ValueError):
        backoff_s(-1, backoff_rng(0))


def test_a_client_backs_off_with_jitter() -> None:
    """The clients' retry delay draws from the seeded full-jitter back-off: two clients'
    delays after the same failures differ, one client's repeat per seed."""

    class Probe(Client):
        async def session(self) -> None:  # pragma: no cover - never connected here
            raise NotImplementedError

    def delays(conn: int) -> list[float]:
        client = Probe.__new__(Probe)
        client.backoff_rng = backoff_rng(conn)
        return [client.retry_delay(f) for f in (0, 3, 6, 9, 20)]

    assert delays(1) == delays(1)
    assert delays(1) != delays(2)
    assert all(d <= Client.RETRY_MAX_S for d in delays(1) + delays(2))


# --- the scenario dimension ----------------------------------------------------------------

BASE = """
name = "f"
stacks = "aiohttp"
transports = "ws"
hub = "redis"
duration_s = 4
"""


def test_fault_parses_into_the_cell_and_its_id() -> None:
    cell = scenario.loads(BASE + 'fault = { kind = "server-kill", at_s = 1, down_s = 0.5 }\n')
    (c,) = cell.cells()
    assert c.fault == Outage("server-kill", 1.0, 0.5)
    assert c.cell_id == "aiohttp-ws-sub10-rate100-p100-redis-fault-server-kill-at1s-down0.5s"
    assert str(c.fault) == "server-kill at 1 s, down 0.5 s"
    (plain,) = scenario.loads(BASE).cells()
    assert plain.fault is None and plain.cell_id == "aiohttp-ws-sub10-rate100-p100-redis"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ('fault = { kind = "reboot", at_s = 1 }\n', "fault"),
        ('fault = { kind = "server-kill", at_s = 1, when = 2 }\n', "fault"),
        ('fault = { kind = "server-kill", at_s = 3, down_s = 1 }\n', "below duration_s"),
        ('fault = { kind = "proxy-restart", at_s = 1 }\n', "proxy in front"),
        ('hub = "memory"\nfault = { kind = "broker-pause", at_s = 1 }\n', "redis"),
        ('publishers = 2\nfault = { kind = "server-kill", at_s = 1 }\n', "ticker"),
    ],
)
def test_bad_faults_are_named(extra: str, words: str) -> None:
    text = BASE.replace('hub = "redis"\n', "") if "hub" in extra else BASE
    with pytest.raises(ScenarioError, match="fault") as err:
        scenario.loads(text + extra).cells()
    assert words in str(err.value)


def test_memory_hub_kill_is_skipped_with_the_reason() -> None:
    text = BASE.replace('hub = "redis"\n', "")
    (c,) = scenario.loads(text + 'fault = { kind = "server-kill", at_s = 1 }\n').cells()
    assert "history and the sequence die" in outage.unsupported(c)


def test_restart_argv_and_storm_peak() -> None:
    assert outage.restart_argv(["serve", "--port", "0", "--hub", "redis"], 4242) == [
        "serve",
        "--port",
        "4242",
        "--hub",
        "redis",
    ]
    ms = 1_000_000
    assert outage.storm_peak([]) == 0
    assert outage.storm_peak([0, 10 * ms, 50 * ms, 99 * ms, 100 * ms, 300 * ms]) == 4
    assert outage.storm_peak([0, 150 * ms, 300 * ms]) == 1


# --- one short server-kill cell, ws and sse, end to end -----------------------------------

TINY_KILL = """
name = "tiny-kill"
stacks = "aiohttp"
transports = ["ws", "sse"]
hub = "redis"
subscribers = 3
rate = 40
payload_size = 32
duration_s = 1.5
warmup_s = 0.3
repeats = 1
client_processes = 1
fault = { kind = "server-kill", at_s = 0.3, down_s = 0.1 }
"""


def test_server_kill_with_redis_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if server.redis_server() is None:
        why = "redis-server is not installed (make system-deps)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)
    monkeypatch.setattr(outage, "TAIL_S", 2.0)  # the back-off's ceiling stays below 1 s here
    started: list[procs.Started] = []
    real_start = procs.ProcessGroup.start

    def spy(self: procs.ProcessGroup, name: str, argv: Any, **kw: Any) -> procs.Started:
        entry = real_start(self, name, argv, **kw)
        started.append(entry)
        return entry

    monkeypatch.setattr(procs.ProcessGroup, "start", spy)
    path = tmp_path / "tiny-kill.toml"
    path.write_text(TINY_KILL)
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    df = pd.read_csv(result.run_dir / "cells.csv").set_index("transport")
    assert list(df["status"]) == ["ok", "ok"], list(df["reason"])
    assert (df["fault"] == "server-kill at 0.3 s, down 0.1 s").all()
    assert (df["fault_msgs_lost"] == 0).all() and (df["msgs_lost"] == 0).all()
    assert (df["reconnected_clients"] == 3).all()
    assert (df["reconnect_p50_ms"] > 0).all() and (df["reconnect_max_ms"] >= 0).all()
    assert df["fault_same_port"].all() and (df["reconnects"] >= 3).all()
    assert (df["storm_source"] == "reconnects").all() and (df["storm_peak_per_100ms"] >= 1).all()
    servers = [s for s in started if s.name == "server"]
    assert len(servers) == 4  # two cells: each server once, and once again
    for first, again in (servers[0:2], servers[2:4]):
        url_port = re.search(r":(\d+)", first.ready_line.split("listening on ", 1)[1])
        assert url_port is not None
        args = [str(a) for a in again.proc.args]
        assert args[args.index("--port") + 1] == url_port.group(1)
    for entry in started:
        assert entry.proc.returncode is not None, entry.name
        assert not Path(f"/proc/{entry.pid}").exists(), f"{entry.name} pid {entry.pid} left"


def test_broker_pause_continues_the_broker_when_interrupted(tmp_path: Path) -> None:
    """A failure during the pause (the runner's wait raising) still SIGCONTs Redis."""
    from pushbench.runner.options import CellFailed
    from pushbench.runner.server import Server

    sleeper = procs.spawn(["sleep", "30"])
    try:
        fake = procs.Started("redis", sleeper, ())
        handle = Server(fake, "http://127.0.0.1:1", broker=fake)
        text = BASE + 'fault = { kind = "broker-pause", at_s = 1, down_s = 0.5 }\n'
        (cell,) = scenario.loads(text).cells()

        def state() -> str:
            return Path(f"/proc/{sleeper.pid}/stat").read_text().split(") ", 1)[1][0]

        def boom(until: float) -> None:
            for _ in range(200):  # the signal is delivered asynchronously
                if state() == "T":
                    break
                time.sleep(0.005)
            assert state() == "T"  # stopped
            raise CellFailed("interrupted")

        group = procs.ProcessGroup(tmp_path)
        pinning = procs.plan_pinning()
        with pytest.raises(CellFailed):
            outage.inject(cell, group, pinning, handle, None, "", tmp_path, boom, lambda: None)
        for _ in range(200):
            if state() != "T":
                break
            time.sleep(0.005)
        assert state() != "T"  # continued
    finally:
        sleeper.kill()
        sleeper.wait()

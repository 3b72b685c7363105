"""The network-conditions relay (``pushbench.netem``): its delay model, the relay on a
loopback echo path (delay, byte order under jitter, bandwidth cap, cut), the ``net``
dimension in scenarios, and one short cell through the relay end to end.

Tolerances are generous (the machine may be loaded): a delay is checked as at least the
declared one and far below anything a broken relay would show; never a tight bound."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import pandas as pd
import pytest

from pushbench import cli, scenario
from pushbench.netem import PROFILES, Direction, Profile
from pushbench.netem.aim import INITIAL_SLACK_S, MAX_SLACK_S, Aim
from pushbench.netem.probe import Calibration, echo_server, measure, summarize
from pushbench.netem.relay import Relay
from pushbench.netem.shaper import Shaper
from pushbench.report import doc
from pushbench.report import netem as report_netem
from pushbench.report.load import load_run
from pushbench.scenario import ScenarioError

# --- the delay model (no sockets) ------------------------------------------------------


def test_shaper_adds_the_delay() -> None:
    s = Shaper(Direction(delay_ms=20.0), random.Random(0))
    assert s.release_at(100.0, 10) == pytest.approx(100.02)


def test_shaper_never_reorders_under_jitter() -> None:
    s = Shaper(Direction(delay_ms=10.0, jitter_ms=10.0), random.Random(1))
    times = [s.release_at(i * 0.0001, 100) for i in range(2000)]
    assert times == sorted(times)
    # the jitter is really there: without the order rule some would have gone earlier
    assert len(set(times)) < len(times)


def test_shaper_token_bucket_caps_throughput() -> None:
    d = Direction(rate_bytes_per_s=100_000.0, burst_bytes=10_000)
    s = Shaper(d, random.Random(0))
    last = max(s.release_at(0.0, 1000) for _ in range(1000))  # 1 MB at once
    assert last == pytest.approx(1_000_000 / 100_000 - 10_000 / 100_000)  # 9.9 s
    assert s.release_at(100.0, 1000) == 100.0  # an idle bucket refilled: no wait


def test_shaper_holds_chunks_in_the_stall() -> None:
    s = Shaper(Direction(), random.Random(0), stall=(1.0, 3.0))
    assert s.release_at(0.5, 1) == 0.5
    assert s.release_at(1.5, 1) == 3.0
    assert s.release_at(3.5, 1) == 3.5


def test_profiles_are_declared_one_way() -> None:
    assert not PROFILES["loopback"].relay
    assert PROFILES["wan"].rtt_ms == 20.0
    assert PROFILES["mobile"].down.rate_bytes_per_s > 0
    with pytest.raises(ValueError, match="jitter"):
        Direction(delay_ms=1.0, jitter_ms=2.0)


# --- the relay on a loopback echo path ------------------------------------------------


async def _through(shape: Profile, probes: int) -> tuple[list[tuple[float, float]], Relay]:
    server, port = await echo_server()
    relay = Relay(shape, ("127.0.0.1", port), seed=3)
    try:
        relay_port = await relay.start()
        return await measure(relay_port, probes), relay
    finally:
        await relay.close()
        server.close()


@pytest.mark.timeout(20)
def test_relay_adds_the_one_way_delay_each_way() -> None:
    shape = Profile("t", "test", up=Direction(30.0), down=Direction(60.0))
    samples, relay = asyncio.run(_through(shape, 5))
    early_ms = MAX_SLACK_S * 1e3  # the most the learning writer may aim early
    for up, down in samples:
        assert 30.0 - early_ms <= up < 1000.0
        assert 60.0 - early_ms <= down < 1000.0
    assert relay.counters.accepted == 1
    assert relay.aim.observed == 10  # every delayed chunk taught the aim (5 up, 5 down)


def test_aim_learns_the_timers_mean_lateness() -> None:
    """A timer that always wakes 1.6 ms after the requested time: the slack converges to
    1.6 ms, so the chunk leaves at its due time on average (a fixed 1 ms slack, the old
    relay, would stay 0.6 ms late every time)."""
    aim, due, bias = Aim(), 10.0, 0.0016
    for _ in range(400):
        asked = due - aim.slack_s  # where the writer asks to wake (it sleeps wait_s)
        assert aim.wait_s(due, 0.0) == pytest.approx(asked)
        aim.observe(due, asked + bias)
    assert aim.slack_s == pytest.approx(bias, abs=1e-6)
    assert aim.observed == 400


def test_aim_stays_within_its_bounds() -> None:
    aim = Aim()
    assert aim.slack_s == INITIAL_SLACK_S
    for _ in range(1000):
        aim.observe(1.0, 2.0)  # a whole second late every time
    assert aim.slack_s == MAX_SLACK_S
    for _ in range(1000):
        aim.observe(1.0, 0.5)  # half a second early every time
    assert aim.slack_s == 0.0


async def _echo_stream(shape: Profile, chunks: list[bytes]) -> bytes:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    relay = Relay(shape, ("127.0.0.1", server.sockets[0].getsockname()[1]), seed=5)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", await relay.start())
        for chunk in chunks:
            writer.write(chunk)
            await asyncio.sleep(0)  # separate reads at the relay, each with its own jitter
        writer.write_eof()
        got = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return got
    finally:
        await relay.close()
        server.close()


@pytest.mark.timeout(20)
def test_relay_keeps_byte_order_under_jitter() -> None:
    shape = Profile("t", "test", up=Direction(5.0, 5.0), down=Direction(5.0, 5.0))
    chunks = [f"{i:06d};".encode() for i in range(3000)]
    assert asyncio.run(_echo_stream(shape, chunks)) == b"".join(chunks)


@pytest.mark.timeout(20)
def test_relay_bandwidth_cap_limits_throughput() -> None:
    cap = Direction(rate_bytes_per_s=200_000.0, burst_bytes=8192)
    shape = Profile("t", "test", up=cap)
    data = [bytes(8192)] * 25  # 200 kB: ≥ 0.96 s at 200 kB/s, milliseconds without a cap
    started = time.monotonic()
    got = asyncio.run(_echo_stream(shape, data))
    assert len(got) == 25 * 8192
    assert time.monotonic() - started >= 0.9


async def _cut() -> tuple[bytes, bytes]:
    server_side: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server_side.set_result(await reader.read())  # until EOF or reset
        except ConnectionError:
            server_side.set_result(b"reset")

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    relay = Relay(
        Profile("t", "test", cut_at_s=0.2), ("127.0.0.1", server.sockets[0].getsockname()[1])
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", await relay.start())
        writer.write(b"hello")
        try:
            client_got = await asyncio.wait_for(reader.read(), 5)
        except ConnectionError:
            client_got = b"reset"
        return client_got, await asyncio.wait_for(server_side, 5)
    finally:
        await relay.close()
        server.close()


@pytest.mark.timeout(20)
def test_relay_cut_closes_both_sides() -> None:
    client_got, server_got = asyncio.run(_cut())
    assert client_got in (b"", b"reset")  # EOF or reset, not a hang (wait_for: 5 s)
    assert server_got in (b"hello", b"reset")


def test_calibration_subtracts_the_direct_path() -> None:
    c = summarize("wan", (10.0, 10.0), [(10.5, 10.7)] * 10, [(0.1, 0.1)] * 10)
    assert c.up.mean_ms == pytest.approx(10.4) and c.down.mean_ms == pytest.approx(10.6)
    assert c.rtt_added_mean_ms == pytest.approx(21.0) and c.within_tolerance
    assert Calibration.from_dict(json.loads(json.dumps(c.as_dict()))) == c


# --- the net dimension in scenarios -------------------------------------------------------


def _load(text: str, tmp_path: Path) -> scenario.Scenario:
    path = tmp_path / "n.toml"
    path.write_text(text)
    return scenario.load(path)


def test_net_is_a_dimension_left_out_of_default_ids(tmp_path: Path) -> None:
    sc = _load('transports = "ws"\nnet = ["loopback", "wan"]', tmp_path)
    ids = [c.cell_id for c in sc.cells()]
    assert ids == ["aiohttp-ws-sub10-rate100-p100", "aiohttp-ws-sub10-rate100-p100-netwan"]
    assert [c.net for c in sc.cells()] == ["loopback", "wan"]
    plain = _load('transports = "ws"', tmp_path).cells()[0]
    assert plain.net == "loopback" and plain.cell_id == ids[0]
    assert plain.param_columns()["net"] == "loopback"


def test_a_bad_net_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        _load('transports = "ws"\nnet = "satellite"', tmp_path)
    assert info.value.path == "net"
    assert "satellite" in str(info.value) and "wan" in str(info.value)


# --- end to end: one short cell through the wan relay -------------------------------------

WAN = """
name = "wan"
stacks = "aiohttp"
transports = "ws"
net = "wan"
subscribers = 2
rate = 50
payload_size = 32
duration_s = 1.5
warmup_s = 0.5
repeats = 1
client_processes = 1
"""


@pytest.mark.timeout(60)
def test_a_wan_cell_runs_through_the_relay(tmp_path: Path) -> None:
    path = tmp_path / "wan.toml"
    path.write_text(WAN)
    out = tmp_path / "results"
    code = cli.main(["run", str(path), "--out", str(out), "--no-progress", "--no-report"])
    assert code == 0
    run_dir = next(p for p in out.iterdir() if p.is_dir() and not p.is_symlink())
    row = pd.read_csv(run_dir / "cells.csv").iloc[0]
    assert row["status"] == "ok" and row["net"] == "wan" and row["msgs_lost"] == 0
    assert row["lat_p50_us"] >= PROFILES["wan"].down.delay_ms * 1000 - 1000  # −jitter
    assert row["relay_cpu_us_per_msg"] > 0
    netem = json.loads((run_dir / "netem.json").read_text())
    assert netem["profiles"]["wan"]["down"]["delay_ms"] == 10.0
    (cal,) = netem["calibration"]
    assert cal["net"] == "wan" and cal["down"]["mean_ms"] >= 8.0
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["netem"]["relay_cpus"] == meta["pinning"]["client_cpus"]
    # the report's section, from the stored files only
    (section,) = report_netem.section(load_run(run_dir))
    profiles, latency = (b for b in section.blocks if isinstance(b, doc.Table))
    assert profiles.rows[0][0] == "wan" and profiles.rows[0][3] == "20"
    assert latency.rows[0][:2] == ("ws · aiohttp", "wan")

"""No observer effect from the server's history: short polling never loses to a too-small buffer.

A short poller fetches, every ``poll_interval_s``, what was published since its last
answer, from the server's per-topic history of N messages. At rate × interval above N the
oldest of them are gone before it asks: the runner sizes ``--history`` from the cell
(:func:`pushbench.runner.server.history_size`), the hub counts every request whose
``since`` was older than the history (``/stats``: ``history_gaps``,
``history_gap_messages``), and the cell's row records it (``history_gap_msgs``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest
from conftest import StartServer

from pushbench import cli, registry, scenario
from pushbench.clients.common import ConnStats
from pushbench.clients.recorder import Recorder
from pushbench.clients.worker import client_run
from pushbench.faults import Faults
from pushbench.hub import Hub
from pushbench.runner.server import (
    DEFAULT_HISTORY,
    HISTORY_MARGIN,
    history_size,
    serve_argv,
    unsupported_by_stack,
)
from pushbench.scenario import Cell
from pushbench.schema.cells import ALL_COLUMNS
from pushbench.schema.worker import WorkerSpec
from pushbench.servers import serve

pytestmark = pytest.mark.timeout(60)

TOPIC = "t"


def cell(transport: str, rate: float, **params: Any) -> Cell:
    """The one cell of a scenario on the aiohttp stack with these parameters."""
    lines = ['stacks = "aiohttp"', f'transports = "{transport}"', f"rate = {rate}"]
    lines += [f"{k} = {v!r}" for k, v in params.items()]
    (only,) = scenario.loads("\n".join(lines)).cells()
    return only


def argv_history(c: Cell) -> int:
    argv = serve_argv(c)
    return int(argv[argv.index("--history") + 1])


# --- the sizing rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "rate", "params", "expected"),
    [
        # short poll: rate × interval × margin, never below the default
        ("shortpoll", 4000, {"poll_interval_s": 0.5}, 4000 * 0.5 * HISTORY_MARGIN),
        ("shortpoll", 50000, {"poll_interval_s": 0.1}, 50000 * 0.1 * HISTORY_MARGIN),
        ("shortpoll", 333, {"poll_interval_s": 0.7}, 933),  # ⌈333 × 0.7 × 4⌉ = 933 < default
        ("shortpoll", 1001, {"poll_interval_s": 0.25}, 1001),
        # long poll: the re-poll gap (1 s) × margin
        ("longpoll", 5000, {}, 5000 * HISTORY_MARGIN),
        # streaming: history only serves resumes, the default
        ("ws", 100000, {}, DEFAULT_HISTORY),
        ("sse", 100000, {}, DEFAULT_HISTORY),
    ],
)
def test_history_is_sized_from_the_rate_and_the_poll_interval(
    transport: str, rate: float, params: dict[str, Any], expected: float
) -> None:
    c = cell(transport, rate, **params)
    want = max(DEFAULT_HISTORY, int(expected))
    assert history_size(c) == want
    assert argv_history(c) == want  # what the runner starts the server with
    assert unsupported_by_stack(c) == ""


def test_the_runner_floor_is_the_servers_default() -> None:
    assert DEFAULT_HISTORY == serve.DEFAULT_HISTORY == Hub().history


def test_a_history_too_big_to_keep_skips_the_cell_with_the_reason() -> None:
    c = cell("shortpoll", 200000, poll_interval_s=10.0, payload_size=4096, subscribers=1)
    assert history_size(c) == 200000 * 10 * HISTORY_MARGIN
    reason = unsupported_by_stack(c)
    assert "a history of 8,000,000 messages" in reason and "MiB cap" in reason


def test_an_external_stack_cannot_be_given_a_sized_history() -> None:
    """An external server gets only host and port: a cell needing more history than the
    default is skipped with why; one that does not is run."""
    ext = registry.Stack(
        name="ext",
        label="an external server",
        serves=registry.stack("aiohttp").serves,
        argv=("true", "{host}", "{port}"),
    )
    with registry.extended(stacks=(ext,)):
        big = scenario.loads('stacks = "ext"\ntransports = "shortpoll"\nrate = 8000').cells()[0]
        small = scenario.loads('stacks = "ext"\ntransports = "shortpoll"\nrate = 100').cells()[0]
        assert "a history of 3,200 messages (not 1,000)" in unsupported_by_stack(big)
        assert unsupported_by_stack(small) == ""


# --- the hub's gap counters --------------------------------------------------------------------


def test_hub_counts_requests_older_than_its_history() -> None:
    async def main() -> None:
        hub = Hub(history=3)
        for i in range(10):
            await hub.publish(TOPIC, str(i))  # history holds 8, 9, 10; 7 was the last evicted
        assert [i.seq for i in hub.since(TOPIC, 2)] == [8, 9, 10]
        assert (hub.stats.history_gaps, hub.stats.history_gap_messages) == (1, 5)  # 3…7
        assert [i.seq for i in hub.since(TOPIC, 7)] == [8, 9, 10]  # just in time: no gap
        hub.since(TOPIC, 10)
        sub = hub.subscribe(TOPIC, since=6)  # a resume (SSE Last-Event-ID) counts too
        assert [i.seq for i in await sub.next_batch(0)] == [8, 9, 10]
        assert (hub.stats.history_gaps, hub.stats.history_gap_messages) == (2, 6)

    asyncio.run(main())


def test_a_drop_fault_is_no_history_gap() -> None:
    """Holes a drop fault leaves are the self-check's deliberate loss, not evictions."""

    async def main() -> None:
        hub = Hub(history=100, faults=Faults(drop_every=2))
        for i in range(10):
            await hub.publish(TOPIC, str(i))
        assert [i.seq for i in hub.since(TOPIC, 0)] == [1, 3, 5, 7, 9]
        assert hub.stats.history_gaps == 0

    asyncio.run(main())


# --- a short poller against a real server ------------------------------------------------------

RATE = 4000
INTERVAL_S = 0.5  # 2,000 messages between polls: twice the default history
COUNT = 4000


async def _short_poll(base_url: str) -> tuple[list[int], dict[str, Any]]:
    """One short-poll client of the project's own through a ticker burst of COUNT
    messages → (the seqs it recorded, the server's /stats afterwards)."""
    spec = WorkerSpec.from_dict(
        {
            "transport": "shortpoll",
            "base_url": base_url,
            "topic": TOPIC,
            "connections": 1,
            "poll_interval_s": INTERVAL_S,
            "capacity": 2 * COUNT,
        }
    )
    recorder, stats, stop = Recorder(spec.capacity), ConnStats(0), asyncio.Event()
    task = asyncio.ensure_future(client_run("shortpoll")(0, spec, recorder, stats, stop))
    async with aiohttp.ClientSession() as http:
        await asyncio.wait_for(stats.settled.wait(), 10)
        query = f"topic={TOPIC}&rate={RATE}&count={COUNT}&size=100"
        async with http.post(f"{base_url}/control/ticker?{query}") as resp:
            assert resp.status == 200, await resp.text()
        async with asyncio.timeout(20):
            while stats.last_seq < COUNT:
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        async with http.get(f"{base_url}/stats") as resp:
            server_stats: dict[str, Any] = await resp.json()
    return recorder.arrays()["seq"].tolist(), server_stats


def test_a_sized_history_loses_nothing_and_the_default_counts_the_gaps(
    server_factory: StartServer,
) -> None:
    c = cell("shortpoll", RATE, poll_interval_s=INTERVAL_S)
    assert RATE * INTERVAL_S > DEFAULT_HISTORY  # the default is too small for this cell
    sized = server_factory("--history", str(argv_history(c)), stack="aiohttp")
    seqs, stats = asyncio.run(_short_poll(sized.url("").rstrip("/")))
    assert sorted(seqs) == list(range(1, COUNT + 1))  # every message, once
    assert stats["history"] == history_size(c) == RATE * INTERVAL_S * HISTORY_MARGIN
    assert stats["history_gaps"] == stats["history_gap_messages"] == 0

    default = server_factory(stack="aiohttp")
    seqs, stats = asyncio.run(_short_poll(default.url("").rstrip("/")))
    assert stats["history"] == DEFAULT_HISTORY
    assert len(set(seqs)) == len(seqs) < COUNT  # messages lost to the buffer…
    assert stats["history_gaps"] >= 1  # …counted by the server, every one of them
    assert stats["history_gap_messages"] == COUNT - len(seqs)


# --- the cell's row -----------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_the_row_records_the_servers_history_gaps(tmp_path: Path) -> None:
    path = tmp_path / "poll.toml"
    path.write_text(
        "\n".join(
            [
                'name = "poll"',
                'stacks = "aiohttp"',
                'transports = "shortpoll"',
                "subscribers = 2",
                "rate = 50",
                "payload_size = 32",
                "duration_s = 1",
                "warmup_s = 0.5",
                "repeats = 1",
                "client_processes = 1",
            ]
        )
    )
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    # appended after the columns older runs have, so their header stays a prefix
    assert ALL_COLUMNS.index("history_gap_msgs") > ALL_COLUMNS.index("bytes_per_conn_per_s")
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    df = pd.read_csv(run_dir / "cells.csv")
    assert list(df["status"]) == ["ok"] and list(df["history_gap_msgs"]) == [0]
    assert (df["msgs_delivered"] == df["msgs_expected"]).all()

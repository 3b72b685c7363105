"""The machine's speed around each repeat (pushbench.runner.speed) and what the run does
with a repeat measured while the machine was slow: re-measured once, left out, recorded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pushbench import runner, scenario
from pushbench.report.load import load_run
from pushbench.runner import orchestrate, speed
from pushbench.runner.rows import bare_row

TINY = """
name = "tiny"
stacks = "aiohttp"
transports = ["ws", "sse"]
subscribers = 2
rate = 50
payload_size = 32
duration_s = 2
warmup_s = 0.5
repeats = 3
client_processes = 1
"""


def test_probe_is_cpu_time_of_the_fixed_work(monkeypatch: pytest.MonkeyPatch) -> None:
    assert speed.probe([0]) > 0
    assert speed.probe([]) == 0
    assert speed.probe([10_000]) > 0  # a core the machine lacks: measured where it runs
    usual = speed.probe([0], tries=5)
    work = speed.work
    monkeypatch.setattr(speed, "work", lambda: work(speed.WORK_LOOPS * 10))
    assert speed.probe([0], tries=5) > 3 * usual  # ten times the work reads as slower


def test_slow_repeats_are_those_far_above_the_median() -> None:
    probes: list[float | None] = [100, 102, None, 98, 130, 101, 160]
    assert speed.median_probe(probes) == 101.5
    slow = speed.slow_repeats(probes, limit=5)
    assert [(s.index, round(s.slowdown, 2)) for s in slow] == [(6, 1.58), (4, 1.28)]
    assert [s.index for s in speed.slow_repeats(probes, limit=1)] == [6]  # slowest first
    assert speed.slow_repeats([100, 200], limit=5) == []  # too few to know the usual
    assert speed.slow_repeats([100, 101, 99, 124], limit=5) == []  # under 1.25×
    assert speed.rerun_limit(20) == 2 and speed.rerun_limit(1) == 1


def _fake_run_one(p50: dict[int, float]) -> Any:
    """A run_one that starts nothing: every run ok, p50 by its place in the run."""
    count = [0]

    def run_one(cell: scenario.Cell, repeat: int, *args: Any) -> dict[str, Any]:
        row = bare_row(cell, repeat, "ok", "")
        latency = p50.get(count[0], 200.0)
        count[0] += 1
        row.update(
            delivered_fraction=1.0,
            lat_p50_us=latency,
            lat_p99_us=2 * latency,
            lat_all_p99_us=2 * latency,
            server_cpu_fraction=0.1,
            harness_bound=False,
        )
        return row

    return run_one


def _fake_probe(slow_measures: Iterable[int]) -> Any:
    """speed.probe: 1,000 ns, but 2,000 ns after the measures (0-based) in ``slow_measures``
    (two probes per measure: before, after)."""
    slow = set(slow_measures)
    calls = [0]

    def probe(cores: Iterable[int], tries: int = speed.TRIES) -> int:
        measure, after = divmod(calls[0], 2)
        calls[0] += 1
        return 2000 if after and measure in slow else 1000

    return probe


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: Iterable[int]) -> Any:
    monkeypatch.setattr(orchestrate, "run_one", _fake_run_one({2: 900.0}))
    monkeypatch.setattr(speed, "probe", _fake_probe(slow))
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    options = runner.RunOptions(out=tmp_path / "r", progress=False, remeasure_slow=True)
    return runner.run_scenario(scenario.load(path), options, seed=3)


def test_a_repeat_on_a_slow_machine_is_remeasured_and_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch, slow=[2])  # the third run: p50 900 µs, probe 2×
    assert result.status == "complete"
    cells = pd.read_csv(result.run_dir / "cells.csv")
    (left,) = cells[cells["status"] == "left-out"].itertuples()
    assert left.lat_p50_us == 900.0 and left.machine_slowdown == 2.0
    assert left.run_index == 2 and left.reason == (
        "machine 2.00× slower than the run's median (speed probe); re-measured as repeat 3"
    )
    again = cells[(cells["cell_id"] == left.cell_id) & (cells["repeat"] == 3)]
    assert list(again["status"]) == ["ok"] and list(again["round"]) == [3]
    assert (cells[cells["status"] == "ok"]["machine_slowdown"] == 1.0).all()
    assert len(cells) == 7  # 2 cells × 3 repeats + the re-measure; nothing overwritten
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["speed"]["remeasured"] == 1 and meta["speed"]["median_probe_ns"] == 1000
    assert meta["speed"]["left_out"] == [f"{left.cell_id}-r{left.repeat}"]
    assert meta["runs_by_status"]["left-out"] == 1
    # The summary's median and spread use the three ok repeats: the slow one is out.
    summary = load_run(result.run_dir).summary().set_index("cell_id")
    assert summary.at[left.cell_id, "lat_p50_us"] == 200.0
    assert summary.at[left.cell_id, "lat_p50_us_spread"] == 0.0


def test_a_remeasure_no_faster_is_the_one_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch, slow=[2, 6])  # the re-measure (7th run) slow too
    cells = pd.read_csv(result.run_dir / "cells.csv")
    (left,) = cells[cells["status"] == "left-out"].itertuples()
    (slow,) = cells[cells["run_index"] == 2].itertuples()  # the first slow one stays
    assert (slow.cell_id, slow.status, slow.lat_p50_us) == (left.cell_id, "ok", 900.0)
    assert left.repeat == 3 and left.reason.endswith(f"no faster than repeat {slow.repeat}")


def test_a_usual_machine_remeasures_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch, slow=[])
    cells = pd.read_csv(result.run_dir / "cells.csv")
    assert len(cells) == 6 and (cells["status"] == "ok").all()
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["speed"]["slow"] == meta["speed"]["remeasured"] == 0

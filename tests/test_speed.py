"""The machine's speed around each repeat (pushbench.runner.speed) and what the run does
with a repeat measured while the machine was slow: re-measured once, left out, recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from pushbench import runner, scenario
from pushbench.report import build, doc
from pushbench.report.load import load_run
from pushbench.runner import orchestrate, speed, steal
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


def _row(cell: str, server: float | None, client_rate: float | None = 100_000.0) -> Any:
    return {
        "cell_id": cell,
        "status": "ok",
        "server_cpu_us_per_msg": server,
        "delivered_msgs_per_client_cpu_s": client_rate,
    }


def test_cost_slowdown_is_the_costlier_figure_over_its_cells_median() -> None:
    rows = [
        _row("a", 10.0),
        _row("a", 10.0),
        _row("a", 14.0),  # server 1.4× a's median
        _row("b", 5.0, 100_000.0),
        _row("b", 5.5, 50_000.0),  # client CPU per message 2× b's median (msgs/CPU s halved)
        _row("b", 5.0, 100_000.0),
        _row("c", 3.0),  # a cell measured once: no median
        {**_row("a", 30.0), "status": "failed"},  # takes no part in the median
        _row("a", None, None),  # no figure
    ]
    costs = speed.cost_slowdowns(rows)
    shown = [None if c is None else (round(c.slowdown, 2), c.what) for c in costs]
    assert shown == [
        (1.0, "server CPU per message"),
        (1.0, "server CPU per message"),
        (1.4, "server CPU per message"),
        (1.0, "server CPU per message"),
        (2.0, "client CPU per message"),
        (1.0, "server CPU per message"),
        None,
        (3.0, "server CPU per message"),
        None,
    ]
    assert speed.cost_of({"x": float("nan")}, "x", False) is None
    assert speed.cost_of({"x": 0}, "x", True) is None
    # judged against other rows' medians: a re-measure against the repeats it replaces
    (again,) = speed.cost_slowdowns([_row("a", 11.0)], speed.cost_medians(rows))
    assert again is not None and round(again.slowdown, 2) == 1.1


def test_slow_repeats_are_the_costliest_first_within_the_limit() -> None:
    a = [_row("a", 10.0), _row("a", 10.0), _row("a", 13.0)]
    costs = speed.cost_slowdowns(
        [*a, _row("b", 4.0), _row("b", 4.0), _row("b", 7.0), _row("b", 4.7)]
    )
    slow = speed.slow_repeats(costs, limit=5)  # b's median: 4.35
    assert [(s.index, round(s.cost.slowdown, 2)) for s in slow] == [(5, 1.61), (2, 1.3)]
    assert [s.index for s in speed.slow_repeats(costs, limit=1)] == [5]  # costliest first
    assert speed.slow_repeats(costs, limit=0) == []
    assert speed.slow_repeats(speed.cost_slowdowns([_row("a", 10.0), _row("a", 11.9)]), 5) == []
    assert speed.median_probe([100, None, 102, 98]) == 100
    assert speed.rerun_limit(20) == 3 and speed.rerun_limit(1) == 1


def _fake_run_one(
    p50: dict[int, float], server: dict[int, float], stolen: dict[int, float] | None = None
) -> Any:
    """A run_one that starts nothing: every run ok, p50, server CPU per message and steal
    time by its place in the run (default 200 µs, 5 µs, 1 %)."""
    count = [0]

    def run_one(cell: scenario.Cell, repeat: int, *args: Any) -> dict[str, Any]:
        row = bare_row(cell, repeat, "ok", "")
        latency = p50.get(count[0], 200.0)
        row.update(
            delivered_fraction=1.0,
            lat_p50_us=latency,
            lat_p99_us=2 * latency,
            lat_all_p99_us=2 * latency,
            server_cpu_fraction=0.1,
            server_cpu_us_per_msg=server.get(count[0], 5.0),
            delivered_msgs_per_client_cpu_s=200_000.0,
            harness_bound=False,
            steal_fraction_max=(stolen or {}).get(count[0], 0.01),
        )
        count[0] += 1
        return row

    return run_one


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, costly: dict[int, float]) -> Any:
    monkeypatch.setattr(orchestrate, "run_one", _fake_run_one({2: 900.0}, costly))
    monkeypatch.setattr(speed, "probe", lambda cores, tries=speed.TRIES: 1000)
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    options = runner.RunOptions(out=tmp_path / "r", progress=False, remeasure_slow=True)
    return runner.run_scenario(scenario.load(path), options, seed=3)


def test_a_repeat_that_cost_more_is_remeasured_and_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch, {2: 10.0})  # the third run: p50 900 µs, CPU 2×
    assert result.status == "complete"
    cells = pd.read_csv(result.run_dir / "cells.csv")
    (left,) = cells[cells["status"] == "left-out"].itertuples()
    assert left.lat_p50_us == 900.0 and left.cost_slowdown == 2.0
    assert left.run_index == 2 and left.reason == (
        "server CPU per message 2.00× the cell's median (the machine was slower during it); "
        "re-measured as repeat 3"
    )
    again = cells[(cells["cell_id"] == left.cell_id) & (cells["repeat"] == 3)]
    assert list(again["status"]) == ["ok"] and list(again["round"]) == [3]
    assert (cells[cells["status"] == "ok"]["cost_slowdown"] == 1.0).all()
    assert (cells["machine_slowdown"] == 1.0).all()  # the probe: context only
    assert len(cells) == 7  # 2 cells × 3 repeats + the re-measure; nothing overwritten
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["speed"]["remeasured"] == 1 and meta["speed"]["slow"] == 1
    assert meta["speed"]["left_out"] == [f"{left.cell_id}-r{left.repeat}"]
    assert meta["runs_by_status"]["left-out"] == 1
    # The summary's median and spread use the three ok repeats: the costly one is out.
    summary = load_run(result.run_dir).summary().set_index("cell_id")
    assert summary.at[left.cell_id, "lat_p50_us"] == 200.0
    assert summary.at[left.cell_id, "lat_p50_us_spread"] == 0.0


@pytest.mark.parametrize(("within", "remeasured"), [(65.0, 0), (75.0, 1), (None, 1)])
def test_a_remeasure_starts_only_if_it_ends_within_the_runs_time_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, within: float | None, remeasured: int
) -> None:
    """Every run takes 10 s of a virtual clock: after the 6 listed ones the run is 60 s in,
    and the costly repeat's re-measure would end at 70 s. Under a 65 s cap it is skipped
    and counted (the costly repeat stays, ok); under 75 s, or no cap, it runs."""
    now = [0.0]
    fake = _fake_run_one({2: 900.0}, {2: 10.0})

    def run_one(*args: Any) -> dict[str, Any]:
        now[0] += 10.0
        return fake(*args)  # type: ignore[no-any-return]

    monkeypatch.setattr(orchestrate, "run_one", run_one)
    monkeypatch.setattr(orchestrate, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(speed, "probe", lambda cores, tries=speed.TRIES: 1000)
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    options = runner.RunOptions(
        out=tmp_path / "r", progress=False, remeasure_slow=True, remeasure_within_s=within
    )
    result = runner.run_scenario(scenario.load(path), options, seed=3)
    cells = pd.read_csv(result.run_dir / "cells.csv")
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["speed"]["slow"] == 1
    assert meta["speed"]["remeasured"] == remeasured
    assert meta["speed"]["skipped_for_time"] == 1 - remeasured
    assert len(cells) == 6 + remeasured
    assert (cells["status"] == "left-out").sum() == remeasured


def test_a_remeasure_no_cheaper_is_the_one_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch, {2: 10.0, 6: 11.0})  # the re-measure costlier yet
    cells = pd.read_csv(result.run_dir / "cells.csv")
    (left,) = cells[cells["status"] == "left-out"].itertuples()
    (slow,) = cells[cells["run_index"] == 2].itertuples()  # the first costly one stays
    assert (slow.cell_id, slow.status, slow.lat_p50_us) == (left.cell_id, "ok", 900.0)
    assert left.repeat == 3 and left.cost_slowdown == 2.2
    assert left.reason.endswith(f"no better than repeat {slow.repeat}")


def test_a_usual_machine_remeasures_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch, {2: 5.9})  # 1.18×: within the usual
    cells = pd.read_csv(result.run_dir / "cells.csv")
    assert len(cells) == 6 and (cells["status"] == "ok").all()
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["speed"]["slow"] == meta["speed"]["remeasured"] == 0


def test_every_remeasure_is_judged_against_the_medians_that_flagged_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One cell, 14 repeats: 7 at 5 µs and 7 at 10 µs of server CPU per message (median
    7.5, so the 10s are 1.33×; the run may re-measure 2). Both re-measures cost 8 µs
    (1.07× of 7.5): each replaces a costly repeat. Judged instead against medians taken
    after the first one was left out (5 µs: 1.6×), the second would be left out itself."""
    monkeypatch.setattr(
        orchestrate,
        "run_one",
        _fake_run_one({}, {i: 5.0 if i % 2 else 10.0 for i in range(14)} | {14: 8.0, 15: 8.0}),
    )
    monkeypatch.setattr(speed, "probe", lambda cores, tries=speed.TRIES: 1000)
    path = tmp_path / "one.toml"
    path.write_text(TINY.replace('["ws", "sse"]', '["ws"]').replace("repeats = 3", "repeats = 14"))
    options = runner.RunOptions(out=tmp_path / "r", progress=False, remeasure_slow=True)
    result = runner.run_scenario(scenario.load(path), options, seed=3)
    cells = pd.read_csv(result.run_dir / "cells.csv")
    left = cells[cells["status"] == "left-out"]
    assert sorted(left["server_cpu_us_per_msg"]) == [10.0, 10.0]  # the costly ones, both
    again = cells[cells["repeat"] >= 14]
    assert list(again["status"]) == ["ok", "ok"]
    assert list(again["cost_slowdown"].round(3)) == [1.067, 1.067]


def test_a_repeat_the_hypervisor_took_time_from_is_remeasured_and_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steal time costs the guest no CPU, so the CPU rule cannot see it: a repeat at 12 %
    steal (its CPU as usual) is re-measured, and the re-measure at 1 % replaces it."""
    monkeypatch.setattr(orchestrate, "run_one", _fake_run_one({2: 900.0}, {}, {2: 0.12}))
    monkeypatch.setattr(speed, "probe", lambda cores, tries=speed.TRIES: 1000)
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    options = runner.RunOptions(out=tmp_path / "r", progress=False, remeasure_slow=True)
    result = runner.run_scenario(scenario.load(path), options, seed=3)
    cells = pd.read_csv(result.run_dir / "cells.csv")
    (left,) = cells[cells["status"] == "left-out"].itertuples()
    assert (left.run_index, left.lat_p50_us, left.cost_slowdown) == (2, 900.0, 1.0)
    assert left.reason == (
        "the hypervisor took 12.0% of a core during it (steal time: the machine was slower); "
        "re-measured as repeat 3"
    )
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["speed"]["steal_at"] == speed.STEAL_AT and meta["speed"]["slow"] == 1
    # the report's harness table shows the worst ok repeat's steal: 1 %, the 12 % is out
    (table,) = build._harness(load_run(result.run_dir))
    assert isinstance(table, doc.Table)
    column = table.header.index("stolen by the hypervisor (max)")
    assert {row[column] for row in table.rows} == {"1.0 %"}


def test_the_more_severe_of_cost_and_steal_decides_and_ranks() -> None:
    rows = [_row("a", 5.0), _row("a", 5.0), _row("a", 6.5), _row("a", 5.0)]
    rows[1]["steal_fraction_max"] = 0.2  # 4× its limit
    rows[2]["steal_fraction_max"] = 0.01  # its cost, 1.3× (1.08× the limit), decides
    rows[3]["steal_fraction_max"] = 0.049  # under the limit: not re-measured
    worst = speed.judged(rows)
    assert worst[1] is not None and worst[1].what == speed.STEAL
    assert worst[2] is not None and worst[2].what == "server CPU per message"
    assert [s.index for s in speed.slow_repeats(worst, 5)] == [1, 2]  # most severe first
    assert [s.index for s in speed.slow_repeats(worst, 1)] == [1]
    assert speed.steal_of({"steal_fraction_max": None}) is None


def test_steal_is_read_per_cpu_and_its_largest_share_kept(tmp_path: Path) -> None:
    tick = 1 / os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  1 2 3 4 5 6 7 300 0 0\ncpu0 1 2 3 4 5 6 7 100 0 0\ncpu1 1 2 3 4 5 6 7 200 0 0\n"
    )
    before = steal.read([0, 1, 7], stat)  # a CPU the file does not list: left out
    assert before == {0: 100, 1: 200}
    stat.write_text("cpu0 1 2 3 4 5 6 7 110 0 0\ncpu1 1 2 3 4 5 6 7 230 0 0\n")
    after = steal.read([0, 1], stat)
    assert steal.fraction_max(before, after, 2.0) == pytest.approx(30 * tick / 2.0)
    assert steal.fraction_max(before, None, 2.0) is None
    assert steal.read([0], tmp_path / "missing") is None
    assert steal.read([0]) is not None  # this machine's own /proc/stat

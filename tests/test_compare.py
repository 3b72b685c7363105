"""``pushbench compare``: per-cell verdicts from the repeats, on the stored fixture run.

A deliberately worsened copy of the fixture (one cell's latency tripled,
another's server CPU doubled, in every repeat) must read as worse on exactly
those figures, the run against itself as "no change" everywhere, and the
rule's edges (overlapping ranges, single repeats, direction) as documented.
The fixture has 2 repeats per cell: enough for the t test (2 degrees of
freedom) to call these changes, because the worsened cells' repeats agree
within ±2 %; the same ×3 in a cell whose repeats differ 100-fold is no change.
The statistics themselves are checked in ``tests/test_stats.py``.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from pushbench.cli import main as cli_main
from pushbench.metrics import repeat_stats
from pushbench.report import compare
from pushbench.report.load import load_run
from pushbench.report.render import render

RUN = Path(__file__).resolve().parent / "fixtures" / "report-run"
SLOW_CELL = "aiohttp-shortpoll-sub4-rate200-p64-pi50ms"  # repeats within ±2 %
COSTLY_CELL = "raw-ws-sub4-rate50-p64-hb1s"  # CPU per message: equal repeats
NOISY_CELL = "aiohttp-sse-sub4-rate200-p64-hb1s"  # p50 repeats: 62.6 ms and 0.45 ms


def _edit(src: Path, dst: Path, changes: dict[tuple[str, str], float]) -> Path:
    """Copy ``src`` to ``dst`` multiplying column values of a cell: {(cell, column): factor}."""
    shutil.copytree(src, dst)
    with (dst / "cells.csv").open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for (cell, column), factor in changes.items():
            if row["cell_id"] == cell and row[column]:
                row[column] = repr(float(row[column]) * factor)
    with (dst / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return dst


def _first_repeat(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` keeping only the first repeat of every cell."""
    shutil.copytree(src, dst)
    with (dst / "cells.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["repeat"] == "0"]
    with (dst / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return dst


@pytest.fixture(scope="module")
def worse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _edit(
        RUN,
        tmp_path_factory.mktemp("worse") / "run",
        {
            (SLOW_CELL, "lat_p50_us"): 3.0,
            (SLOW_CELL, "lat_p99_us"): 3.0,
            (COSTLY_CELL, "server_cpu_us_per_msg"): 2.0,
        },
    )


def test_worsened_fixture_is_flagged_worse_on_exactly_what_changed(worse: Path) -> None:
    cmp = compare.compare_runs(load_run(RUN), load_run(worse))
    flagged = {(c.cell_id, c.metric) for c in cmp.changes if c.verdict == compare.WORSE}
    assert flagged == {
        (SLOW_CELL, "lat_p50_us"),
        (SLOW_CELL, "lat_p99_us"),
        (COSTLY_CELL, "server_cpu_us_per_msg"),
    }
    assert cmp.count(compare.BETTER) == 0
    # the other way round the same figures read as better
    back = compare.compare_runs(load_run(worse), load_run(RUN))
    assert {(c.cell_id, c.metric) for c in back.changes if c.verdict == compare.BETTER} == flagged


def test_a_run_against_itself_is_within_noise() -> None:
    run = load_run(RUN)
    cmp = compare.compare_runs(run, run)
    assert cmp.changes and {c.verdict for c in cmp.changes} == {compare.NOISE}
    assert cmp.only_a == cmp.only_b == ()


def test_compare_command_text_exit_code_and_html(
    worse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["compare", str(RUN), str(worse)]) == 0  # information, not a failure
    text = capsys.readouterr().out
    assert re.search(rf"{SLOW_CELL} +p99 latency \(µs\) .* WORSE", text)
    assert text.count("WORSE") == 3 and "3 worse, 0 better" in text
    html_out = tmp_path / "cmp.html"
    assert (
        cli_main(["compare", str(RUN), str(worse), "--html", str(html_out), "--fail-on-worse"]) == 1
    )
    page = html_out.read_text()
    assert page.count('class="failed"') == 3 and "<script" not in page
    assert cli_main(["compare", str(RUN), str(RUN), "--fail-on-worse"]) == 0
    assert cli_main(["compare", str(RUN), str(tmp_path / "missing")]) == 2
    capsys.readouterr()


def test_each_figure_states_ratio_interval_adjusted_p_and_detectable_change(
    worse: Path,
) -> None:
    cmp = compare.compare_runs(load_run(RUN), load_run(worse))
    assert cmp.figures == len(cmp.changes) == 75  # 15 cells × 5 figures, all tested
    slow = next(c for c in cmp.changes if (c.cell_id, c.metric) == (SLOW_CELL, "lat_p50_us"))
    assert slow.rel_change == pytest.approx(2.0)
    assert slow.interval is not None and 1 + compare.MIN_CHANGE < slow.interval[0] < 3.0
    assert slow.interval[1] > 3.0
    assert slow.p_adjusted is not None and slow.p_adjusted <= compare.ALPHA
    unchanged = [c.p_adjusted for c in cmp.changes if c.verdict == compare.NOISE]
    assert len(unchanged) == 72 and min(p for p in unchanged if p is not None) > compare.ALPHA
    assert all(c.detectable is not None and c.detectable > compare.MIN_CHANGE for c in cmp.changes)
    text = compare.format_text(cmp)
    row = next(ln for ln in text.splitlines() if ln.startswith(SLOW_CELL) and "p50" in ln)
    assert "×3.00 [" in row and row.rstrip().endswith("WORSE")
    assert "75 figures, 75 tested" in text and "3 changed beyond noise" in text
    assert "smallest change detectable (80 % power" in text


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        (
            {(NOISY_CELL, "lat_p50_us"): 3.0, (NOISY_CELL, "lat_p99_us"): 3.0},
            "×3 inside a cell whose repeats differ 100-fold",
        ),
        (
            {
                (cell, "bytes_in_per_msg"): 1.01
                for cell in dict.fromkeys(load_run(RUN).cells["cell_id"])
            },
            "exact counters moved 1 %, inside the ±2 % margin",
        ),
    ],
)
def test_changes_within_the_noise_or_margin_are_no_change(
    changes: dict[tuple[str, str], float], why: str, tmp_path: Path
) -> None:
    cmp = compare.compare_runs(load_run(RUN), load_run(_edit(RUN, tmp_path / "run", changes)))
    assert {c.verdict for c in cmp.changes} == {compare.NOISE}, why
    for c in cmp.changes:
        if (c.cell_id, c.metric) in changes and c.metric.startswith("lat"):
            assert c.detectable is not None and c.detectable > 2.0  # ×3 was not detectable


def test_one_repeat_a_side_is_undecidable_and_fails_no_ci(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    single = _first_repeat(RUN, tmp_path / "a")
    tripled = _edit(single, tmp_path / "b", {(SLOW_CELL, "lat_p50_us"): 3.0})
    cmp = compare.compare_runs(load_run(single), load_run(tripled))
    assert {c.verdict for c in cmp.changes} == {compare.UNDECIDABLE} and cmp.figures == 0
    assert cli_main(["compare", str(single), str(tripled), "--fail-on-worse"]) == 0
    text = capsys.readouterr().out
    assert "undecidable: too few repeats" in text and "75 undecidable (too few repeats)" in text


def test_report_carries_a_comparison_section(worse: Path, tmp_path: Path) -> None:
    render(worse, out=tmp_path, compare_to=RUN)
    md = (tmp_path / "report.md").read_text()
    section = md.split("## Comparison with", 1)[1].split("\n## ", 1)[0]
    assert "3 figures worse" in section and SLOW_CELL in section


def _stats(*xs: float) -> tuple[float, ...]:
    """The per-repeat values ``judge`` tests (it needs them all, not a summary)."""
    assert repeat_stats(xs) is not None
    return xs


@pytest.mark.parametrize(
    ("metric", "a", "b", "verdict"),
    [
        # ranges overlap → noise, however far the medians
        ("lat_p99_us", (100, 110, 200), (150, 160, 170), compare.NOISE),
        # ranges apart, change beyond the spread → worse
        ("lat_p99_us", (100, 102, 104), (150, 152, 154), compare.WORSE),
        # ranges apart but the change is inside the larger spread → noise
        ("lat_p99_us", (50, 101, 102), (110, 110, 110), compare.NOISE),
        # exact counters: apart, but under MIN_CHANGE → noise
        ("bytes_in_per_msg", (174.38, 174.38), (174.40, 174.40), compare.NOISE),
        # higher is better for throughput
        ("delivered_msgs_per_s", (1000, 1001), (800, 801), compare.WORSE),
        ("delivered_msgs_per_s", (1000, 1001), (1500, 1501), compare.BETTER),
        # one repeat a side: no within-run spread, so no test — however large the change
        ("lat_p50_us", (100,), (109,), compare.UNDECIDABLE),
        ("lat_p50_us", (100,), (111,), compare.UNDECIDABLE),
        ("lat_p50_us", (100,), (1000,), compare.UNDECIDABLE),
        # two repeats on one side give the spread (here none: the noise floor stands in)
        ("lat_p50_us", (100, 100), (80,), compare.BETTER),
    ],
)
def test_verdict_rule(
    metric: str, a: tuple[float, ...], b: tuple[float, ...], verdict: str
) -> None:
    assert compare.judge(metric, _stats(*a), _stats(*b))[0] == verdict


def test_missing_figures_are_not_comparable() -> None:
    assert compare.judge("lat_p99_us", None, _stats(1.0))[0] == compare.NA
    assert compare.judge("lat_p99_us", _stats(0.0, 0.0), _stats(0.0, 0.0))[0] == compare.NOISE

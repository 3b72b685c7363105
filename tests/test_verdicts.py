"""Row flags and the decision guide's verdicts, on synthetic runs written as a run would be.

A flag is raised per condition from the figures of a cell's rows, shown in the
report's rows and the runner's table, and a flagged cell is left out of the
guide's verdicts with its reason. The guide compares protocols (never two
clients of one protocol) and declares a winner only beyond the repeats' noise:
two runs whose repeats differ only by ±8 % jitter give the same verdict lines,
and a real 3× difference is declared. A cell's max and p99.9 come from its
repeats' merged histogram, not the median of the repeats' maxima.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pushbench import metrics
from pushbench.metrics.flags import FlagFigures, cell_flags, flags
from pushbench.report import answer, build, doc, guide
from pushbench.report.load import Run, load_run
from pushbench.results import atomic_write_json
from pushbench.runner.summary import summarize as runner_summary
from pushbench.runner.tables import write_cells

#: (stack, transport) of the synthetic run: WebSocket with two clients and two stacks.
VARIANTS: tuple[tuple[str, str], ...] = (
    ("aiohttp", "ws"),
    ("aiohttp", "ws-aiohttp"),
    ("starlette", "ws"),
    ("aiohttp", "sse"),
    ("starlette", "sse"),
    ("aiohttp", "longpoll"),
    ("aiohttp", "shortpoll"),
)


def _rows(
    stack: str,
    transport: str,
    p99: float,
    cpu: float,
    rng: random.Random,
    repeats: int = 5,
    jitter: float = 0.08,
    **extra: Any,
) -> list[dict[str, Any]]:
    """``repeats`` ok rows of one cell: p99 and CPU per message each off by up to ±jitter."""
    cell_id = f"{stack}-{transport}-sub50-rate200-p100"
    out = []
    for k in range(repeats):
        j = 1.0 + rng.uniform(-jitter, jitter)
        row: dict[str, Any] = {
            "scenario": "synthetic",
            "cell_id": cell_id,
            "repeat": k,
            "stack": stack,
            "transport": transport,
            "client": "python",
            "subscribers": 50,
            "publishers": 0,
            "rate_msgs_per_s": 200.0,
            "payload_bytes": 100,
            "hub": "memory",
            "loop": "asyncio",
            "duration_s": 10.0,
            "check_delay_ms": 0.0,
            "check_pause_ms": 0.0,
            "check_drop_every": 0,
            "lat_count": 100_000,
            "lat_p50_us": p99 * j / 3,
            "lat_p99_us": p99 * j,
            "lat_p999_us": p99 * j * 1.5,
            "lat_max_us": p99 * j * 2,
            "delivered_fraction": 1.0,
            "offered_msgs_per_s": 200.0,
            "delivered_msgs_per_s": 10_000.0,
            "server_cpu_us_per_msg": cpu * (1.0 + rng.uniform(-jitter, jitter)),
            "server_cpu_fraction": 0.2,
            "client_max_loop_lag_us": 300.0,
            "publish_lag_p99_us": 50.0,
            "status": "ok",
            "reason": "",
            "harness_bound": False,
            "probe": False,
        }
        row.update(extra)
        out.append(row)
    return out


def _write(path: Path, rows: Sequence[dict[str, Any]]) -> Run:
    path.mkdir(parents=True)
    write_cells(path / "cells.csv", rows)
    atomic_write_json(path / "metadata.json", {"status": "complete", "scenario": "synthetic"})
    return load_run(path)


def _run(
    path: Path,
    seed: int,
    p99: dict[str, float] | None = None,
    extra: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> Run:
    """Every variant at 2,000 µs p99 and 40 µs/msg (``p99`` overrides per transport)."""
    rng = random.Random(seed)
    rows = []
    for stack, transport in VARIANTS:
        base = (p99 or {}).get(transport, 2000.0)
        rows += _rows(
            stack, transport, base, 40.0, rng, **(extra or {}).get((stack, transport), {})
        )
    return _write(path, rows)


# --- flags ---------------------------------------------------------------------------------


CLEAN = FlagFigures(
    harness_bound=False,
    client_core_busy=0.5,
    loop_lag_us=1_000.0,
    lat_max_us=4_755.0,
    lat_p99_us=2_000.0,
    server_cpu_fraction=0.5,
    publish_lag_p99_us=100.0,
    rate_msgs_per_s=200.0,
    offered_msgs_per_s=200.0,
)


@pytest.mark.parametrize(
    ("change", "name", "detail"),
    [
        ({"harness_bound": True, "client_core_busy": 0.97}, "harness-bound", "client core 97%"),
        (
            {"loop_lag_us": 4_752.0},
            "client-loop-stall",
            "lag 4,752 µs > ½ max 4,755 µs; tail only",
        ),
        ({"server_cpu_fraction": 0.93}, "server-busy", "93% of a core"),
        ({"server_cpu_fraction": 0.90}, "server-busy", "90% of a core"),
        (
            {"publish_lag_p99_us": 1_200.0},
            "publisher-late",
            "p99 1,200 µs late > 25% of p99 2,000 µs and > 1,000 µs",
        ),
        (
            {"offered_msgs_per_s": 190.0},
            "under-rate",
            "published 190 of 200 msgs/s, 95% < 98%",
        ),
    ],
)
def test_each_condition_raises_its_flag_naming_its_figures(
    change: dict[str, Any], name: str, detail: str
) -> None:
    from dataclasses import replace

    assert flags(CLEAN) == ()
    (flag,) = flags(replace(CLEAN, **change))
    assert (flag.name, flag.detail) == (name, detail)
    assert str(flag) == f"{name}({detail})"


@pytest.mark.parametrize(
    "change",
    [
        {"loop_lag_us": 2_377.0},  # ½ max is 2,377.5: not more
        {"server_cpu_fraction": 0.89},
        {"publish_lag_p99_us": 500.0},  # 25 % of 2,000 exactly: not more
        {"publish_lag_p99_us": 900.0},  # > 25 % of the p99 but under the 1 ms floor
        {"offered_msgs_per_s": 196.0},  # 98 % exactly: reached
        {"rate_msgs_per_s": 0.0, "offered_msgs_per_s": 0.0},  # idle: nothing offered
        {"loop_lag_us": None, "server_cpu_fraction": None, "publish_lag_p99_us": None},
    ],
)
def test_below_each_threshold_no_flag(change: dict[str, Any]) -> None:
    from dataclasses import replace

    assert flags(replace(CLEAN, **change)) == ()


def test_cell_flags_from_rows_and_the_runner_table_shows_them() -> None:
    """From a cell's ok rows: medians for p99, server CPU, lateness and rate, the worst stall
    against the highest max; the runner's summary table carries the same flag text."""
    rng = random.Random(0)
    rows = _rows(
        "raw",
        "longpoll",
        2000.0,
        40.0,
        rng,
        repeats=3,
        jitter=0.0,
        server_cpu_fraction=0.95,
        offered_msgs_per_s=150.0,
        publish_lag_p99_us=1_500.0,
    )
    rows[1]["client_max_loop_lag_us"] = 3_000.0  # > ½ of the highest max (4,000)
    names = [f.name for f in cell_flags(rows)]
    assert names == ["client-loop-stall", "server-busy", "publisher-late", "under-rate"]
    (cell,) = runner_summary(rows)
    assert [f.split("(")[0] for f in cell.flags] == names
    assert "server-busy(95% of a core)" in cell.flags


# --- the guide: flagged rows left out -----------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        ({"server_cpu_fraction": 0.95}, "server-busy(95% of a core)"),
        ({"publish_lag_p99_us": 1_200.0}, "publisher-late(p99 1,200 µs late"),
        ({"offered_msgs_per_s": 150.0}, "under-rate(published 150 of 200 msgs/s"),
        ({"harness_bound": True, "client_core_busy_max": 0.99}, "harness-bound(client core 99%)"),
    ],
)
def test_the_guide_leaves_flagged_cells_out_and_says_why(
    tmp_path: Path, extra: dict[str, Any], flag: str
) -> None:
    """sse · aiohttp has by far the lowest p99 but is flagged: no verdict names it, the
    guide lists it as left out with its flag, and the report's summary row shows the flag."""
    run = _run(tmp_path / "run", 1, p99={"sse": 600.0}, extra={("aiohttp", "sse"): extra})
    sec = guide.section(run)
    low = next(s for s in sec.subsections if s.anchor == "guide-low-rate")
    bullets = " ".join(" ".join(b.items) for b in low.blocks if isinstance(b, doc.Bullets))
    notes = " ".join(b.text for b in low.blocks if isinstance(b, doc.Note))
    assert "sse · aiohttp" not in bullets
    assert f"**sse · aiohttp**: flagged {flag}" in notes
    (verdict,) = [v for v in answer.verdicts(run) if v.key == "low-rate"]
    assert verdict.variant != "sse · aiohttp"
    (table,) = build._summary_tables(run)
    assert isinstance(table, doc.Table)
    (row,) = [r for r in table.rows if r[0] == "sse · aiohttp"]
    assert flag in row[-1]


def test_a_client_stall_flags_the_tail_but_keeps_the_row_in_the_verdicts(tmp_path: Path) -> None:
    """A client loop stall longer than ½ the max puts the row's max and p99.9 in doubt,
    not its p50/p99: the summary row carries the flag, the guide still ranks the row."""
    run = _run(
        tmp_path / "run",
        1,
        p99={"sse": 600.0},
        extra={("aiohttp", "sse"): {"client_max_loop_lag_us": 5_000.0}},
    )
    (flag,) = [f for f in run.summary().itertuples() if f.transport == "sse" and f.flags]
    assert "client-loop-stall(lag 5,000 µs" in flag.flags and flag.excluding_flags == ""
    sec = guide.section(run)
    low = next(s for s in sec.subsections if s.anchor == "guide-low-rate")
    notes = " ".join(b.text for b in low.blocks if isinstance(b, doc.Note))
    assert "sse · aiohttp**: flagged" not in notes
    (table,) = build._summary_tables(run)
    assert isinstance(table, doc.Table)
    (row,) = [r for r in table.rows if r[0] == "sse · aiohttp"]
    assert "client-loop-stall" in row[-1]


def test_only_tail_flags_do_not_exclude() -> None:
    from dataclasses import replace

    from pushbench.metrics.flags import excluding

    both = flags(replace(CLEAN, loop_lag_us=4_752.0, server_cpu_fraction=0.95))
    assert [f.name for f in both] == ["client-loop-stall", "server-busy"]
    assert [f.name for f in excluding(both)] == ["server-busy"]


# --- the guide: protocols, and the noise rule ------------------------------------------------


def test_the_guide_compares_protocols_never_two_clients_of_one(tmp_path: Path) -> None:
    """ws · aiohttp and ws-aiohttp · aiohttp lead, 1 % apart: the guide states WebSocket
    against SSE and the polls, never ws against ws-aiohttp."""
    run = _run(tmp_path / "run", 3, p99={"ws": 1000.0, "ws-aiohttp": 1010.0})
    text = guide.text(run, width=10_000)
    assert "Next transport" not in text
    low = text.split("Server-only push at a low rate", 1)[1].split("High-rate ticker", 1)[0]
    (line,) = [ln for ln in low.splitlines() if "Latency (p99):" in ln]
    compared = line.split("Each protocol at its best:", 1)[1]
    assert compared.count("WebSocket") == 1 and "SSE" in compared
    assert "ws-aiohttp" not in compared or "ws · " not in compared
    rows = guide._deciding(guide.SITUATIONS[0], guide._summary(run))
    judged = guide.judge_situation(guide.SITUATIONS[0], run, rows)
    assert judged.latency is not None
    protocols = [c.protocol for c in judged.latency.contenders]
    assert sorted(protocols) == ["longpoll", "shortpoll", "sse", "ws"]


def _leader(run: Run) -> str:
    """The transport · stack with the lowest median p99: what the old guide named."""
    s = run.summary()
    return str(s.loc[s["lat_p99_us"].idxmin(), "cell_id"])


def test_noise_alone_gives_the_same_verdicts_in_two_runs(tmp_path: Path) -> None:
    """Every variant has the same true p99 and cost; two runs with ±8 % jitter pick
    different lowest medians, yet their verdict lines are identical: a tie, broken by the
    stated simplicity order."""
    a, b = _run(tmp_path / "a", 11), _run(tmp_path / "b", 12)
    assert _leader(a) != _leader(b)  # the noise moves the lowest median
    lines_a, lines_b = guide.verdict_lines(a), guide.verdict_lines(b)
    assert lines_a == lines_b
    latency = next(ln for ln in lines_a if ln.startswith("low-rate latency:"))
    assert latency.startswith("low-rate latency: tie between SSE, short polling, long polling")
    assert latency.endswith("SSE by simplicity")
    assert next(ln for ln in lines_a if ln.startswith("low-rate simplicity:")).startswith(
        "low-rate simplicity: SSE"
    )
    assert [v.protocol for v in answer.verdicts(a)] == [v.protocol for v in answer.verdicts(b)]


def test_a_real_threefold_difference_is_declared_in_both_runs(tmp_path: Path) -> None:
    """WebSocket's p99 a third of the others': it wins in both runs, whatever the noise,
    and the simplicity verdict names it too (nothing else is within the noise)."""
    slow = {"sse": 3000.0, "longpoll": 3000.0, "shortpoll": 3000.0}
    a = _run(tmp_path / "a", 21, p99={"ws": 1000.0, "ws-aiohttp": 1000.0, **slow})
    b = _run(tmp_path / "b", 22, p99={"ws": 1000.0, "ws-aiohttp": 1000.0, **slow})
    lines = guide.verdict_lines(a)
    assert lines == guide.verdict_lines(b)
    assert "low-rate latency: WebSocket wins: ahead of SSE, long polling, short polling " in (
        "\n".join(lines)
    )
    assert any(ln.startswith("low-rate simplicity: WebSocket") for ln in lines)
    (verdict,) = [v for v in answer.verdicts(a) if v.key == "low-rate"]
    assert verdict.sure == "beyond noise" and verdict.protocol == "WebSocket"


def test_a_tie_within_the_rerun_margin_says_so(tmp_path: Path) -> None:
    """A 6 % difference is inside the ±75 % rerun margin of latency: a tie that no number of
    repeats would separate, and the evidence says so."""
    run = _run(tmp_path / "run", 5, p99={"sse": 2120.0})
    text = guide.text(run, width=10_000)
    assert "within the ±75% rerun margin: no number of repeats separates them" in text


def test_the_rerun_margin_of_each_figure() -> None:
    """The margins the module documents: latency ×1.75, server CPU ×2, memory ×1.25, and the
    compare test's 2 % for anything else."""
    from pushbench.report.verdict import rerun_margin

    assert rerun_margin("lat_p99_us") == 0.75
    assert rerun_margin("server_cpu_us_per_msg") == 1.0
    assert rerun_margin("mem_marginal_bytes_per_conn") == 0.25
    assert rerun_margin("bytes_in_per_msg") == 0.02


# --- the tail from the merged histogram ----------------------------------------------------------


def test_max_and_p999_come_from_the_merged_histogram(tmp_path: Path) -> None:
    """Three repeats whose maxima are 1,900, 1,955 and 9,183 µs: the cell's max is 9,183
    (the merged histogram's), not the median 1,955, and the repeats' range is beside it."""
    rng = random.Random(0)
    rows = _rows("aiohttp", "ws", 2000.0, 40.0, rng, repeats=3, jitter=0.0)
    run_dir = tmp_path / "run"
    (run_dir / "hist").mkdir(parents=True)
    hists = []
    for row, top in zip(rows, (1_900, 1_955, 9_183), strict=True):
        values = np.array([*range(100, 1_800, 7), top], dtype=np.int64)
        hist = metrics.histogram_of(values)
        hists.append(hist)
        summary = metrics.summarize(hist)
        row.update(lat_max_us=summary.max_us, lat_p999_us=summary.p999_us)
        metrics.save_histograms(
            run_dir / "hist" / f"{row['cell_id']}-r{row['repeat']}.hlog",
            {"corrected": hist, "uncorrected": hist},
        )
    write_cells(run_dir / "cells.csv", rows)
    atomic_write_json(run_dir / "metadata.json", {"status": "complete", "scenario": "s"})
    run = load_run(run_dir)
    merged = metrics.merge_histograms(hists)
    (rec,) = run.summary().to_dict("records")
    maxima = [float(r["lat_max_us"]) for r in rows]
    assert rec["lat_max_us"] == float(merged.get_max_value()) == max(maxima)
    assert rec["lat_max_us"] != statistics.median(maxima)
    assert rec["lat_p999_us"] == float(merged.get_value_at_percentile(99.9))
    (table,) = build._summary_tables(run)
    assert isinstance(table, doc.Table)
    header = list(table.header)
    cell = table.rows[0][header.index("max latency (µs)")]
    assert cell.startswith("9,183") and "repeats 1,900–9,183" in cell


# --- three outcomes for a distance: tie, not told apart, behind ----------------------------------


def _decide_p99(repeats: dict[str, tuple[float, ...]]) -> Any:
    """The latency verdict on these repeats, one cell per protocol."""
    from pushbench.report.verdict import decide

    records = [
        {"transport": t, "stack": "raw", "cell_id": t, "lat_p99_us": sorted(v)[len(v) // 2]}
        for t, v in repeats.items()
    ]
    return decide("lat_p99_us", records, lambda rec, column: repeats[rec["cell_id"]])


def test_a_distance_near_the_margin_names_the_same_protocol_behind_or_not_told_apart() -> None:
    """The p99 repeats of SSE and long polling in two `make bench` runs of the same code
    (2026-12-06, raw stack): +171 % then +108 % under the ×1.75 margin. The first is behind
    beyond the noise; the second is not, but it is further than the margin: not told apart,
    a tie (more repeats would tell, the evidence says), broken by simplicity: both runs
    name SSE."""
    from pushbench.report.verdict import TIE, WINNER

    first = _decide_p99({"sse": (766, 704, 713), "longpoll": (1875, 1909, 2135)})
    second = _decide_p99({"sse": (954, 920, 709), "longpoll": (1740, 1735, 1430)})
    assert first.outcome == WINNER and first.versus[0].beyond
    assert second.outcome == TIE and second.versus[0].undecided
    assert second.tied == ("sse", "longpoll") and second.undecided == ("longpoll",)
    assert first.chosen.protocol == second.chosen.protocol == "sse"
    assert second.line().startswith("tie between SSE, long polling (none of them behind")
    assert "not told apart" in second.evidence(lambda column, value: f"{value}")


def test_the_lowest_median_alone_names_nobody() -> None:
    """Chat's p99 in two back-to-back `make bench` runs of the same code (2026-12-07) read
    "WebSocket leads; SSE: not told apart" and "tie; SSE by simplicity". Here one protocol
    is ×2.4 ahead with tight repeats, the other's repeats spread wide, not beyond the noise
    past the ×1.75 margin; the two runs swap which is which. The rule before named the
    lower median each time (WebSocket, then SSE); both now read the same line and name
    SSE, by simplicity."""
    tight, wide = (1000, 1100, 1200), (2500, 1500, 5000)
    first = _decide_p99({"ws": tight, "sse": wide})
    second = _decide_p99({"sse": tight, "ws": wide})
    assert first.leader.protocol == "ws" and second.leader.protocol == "sse"
    assert first.versus[0].undecided and second.versus[0].undecided  # past the margin
    assert not any(v.beyond for v in (*first.versus, *second.versus))
    assert first.chosen.protocol == second.chosen.protocol == "sse"
    assert first.line() == second.line()
    assert first.line().endswith("**SSE** by simplicity")


def test_within_the_margin_is_a_tie_and_a_far_noisy_one_joins_it() -> None:
    """WebSocket 10 % from SSE ties; long polling about 3× away with a wide spread is not
    behind beyond the noise: in the tie too (its evidence says not told apart)."""
    from pushbench.report.verdict import TIE

    d = _decide_p99({"sse": (700, 760, 820), "ws": (780, 830, 900), "longpoll": (900, 2600, 5200)})
    assert d.outcome == TIE and set(d.tied) == {"sse", "ws", "longpoll"}
    assert d.undecided == ("longpoll",)
    assert d.line().endswith("beyond the repeats' noise); **SSE** by simplicity")
    evidence = d.evidence(lambda column, value: f"{value}")
    assert "WebSocket 830" in evidence and "within the ±75% rerun margin" in evidence
    assert "long polling 2600" in evidence and "not told apart" in evidence


def test_a_protocol_behind_beyond_the_noise_stays_out_of_the_tie() -> None:
    """SSE and WebSocket close together, long polling far behind with tight repeats: the
    tie is of the first two, and the line says long polling is behind."""
    d = _decide_p99({"sse": (700, 705, 710), "ws": (720, 730, 725), "longpoll": (4000, 4100, 4050)})
    assert set(d.tied) == {"sse", "ws"} and d.versus[-1].beyond
    assert d.line().endswith(
        "; ahead of long polling by more than the rerun margin, beyond the repeats' noise"
    )

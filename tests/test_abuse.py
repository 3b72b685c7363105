"""Robustness as a measured dimension (issue 17 item 5): the ``[abuse]`` table of a
scenario, the abuse records, the report's "Robustness" tables, and one end-to-end run of
every probe, at tiny sizes, against one stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushbench import scenario
from pushbench.report import doc, md, robustness
from pushbench.runner import RunOptions, run_scenario
from pushbench.scenario import ScenarioError
from pushbench.scenario.abuse import AbuseSpec
from pushbench.schema.abuse import (
    ABUSE_CSV,
    Health,
    Outcome,
    ProbeRecord,
    read_records,
    write_records,
)

TINY = """
name = "abuse-tiny"
description = "every abuse probe at tiny sizes"
[abuse]
stacks = "aiohttp"
slowloris_conns = 3
slowloris_s = 2
head_timeout_s = 1
oversized_header_bytes = 20000
upgrade_flood = 5
slow_consumer_s = 8
idle_conns = 20
timeout_s = 3
"""


def test_an_abuse_only_scenario_has_no_cells_and_its_sizes() -> None:
    sc = scenario.loads(TINY)
    assert sc.cells() == ()
    assert sc.abuse == AbuseSpec(
        stacks=("aiohttp",),
        slowloris_conns=3,
        slowloris_s=2.0,
        head_timeout_s=1.0,
        oversized_header_bytes=20000,
        upgrade_flood=5,
        slow_consumer_s=8.0,
        idle_conns=20,
        timeout_s=3.0,
    )
    assert scenario.load("abuse").abuse is not None  # the shipped file
    assert scenario.load("abuse").abuse.idle_conns >= 2000  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("table", "path", "says"),
    [
        ("idle_con = 5", "abuse.idle_con", "unknown key"),
        ("idle_conns = 0", "abuse.idle_conns", "integer ≥ 1"),
        ("idle_conns = 2.5", "abuse.idle_conns", "integer ≥ 1"),
        ("slowloris_s = -1", "abuse.slowloris_s", "number > 0"),
        ('stacks = ["nginx"]', "abuse.stacks", "raw"),
    ],
)
def test_bad_abuse_keys_are_refused_by_path(table: str, path: str, says: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario.loads(f"[abuse]\n{table}\n")
    assert info.value.path == path and says in info.value.problem


def _record(stack: str, probe: str, **outcome: object) -> ProbeRecord:
    return ProbeRecord(
        stack,
        probe,
        10,
        "ok",
        rss_before_bytes=50 << 20,
        rss_under_bytes=60 << 20,
        rss_after_bytes=51 << 20,
        log_bytes=123,
        health=Health.of([0.001, 0.002, 0.010], 1),
        outcome=Outcome(**outcome),  # type: ignore[arg-type]
    )


RECORDS = [
    _record("raw", "slowloris", drop_s=30.5, held=0),
    _record("raw", "slow-consumer", close_code=1013, tcp_close_s=2.0),
    _record("raw", "idle", bytes_per_conn=6758.0),
    _record("starlette", "idle", bytes_per_conn=29900.0),
    ProbeRecord("starlette", "slowloris", 10, "failed", "the server exited"),
]


def test_records_round_trip_and_flatten_to_csv(tmp_path: Path) -> None:
    write_records(tmp_path, RECORDS)
    assert read_records(tmp_path) == RECORDS
    header = (tmp_path / ABUSE_CSV).read_text().splitlines()[0].split(",")
    assert header[:4] == ["stack", "probe", "size", "status"]
    assert {"health_p99_ms", "close_code", "bytes_per_conn", "log_bytes"} <= set(header)
    assert read_records(tmp_path / "nothing-here") == []


def test_health_percentiles_are_nearest_rank() -> None:
    h = Health.of([i / 1000 for i in range(1, 101)], errors=2)
    assert (h.n, h.errors, h.p50_ms, h.p99_ms, h.max_ms) == (100, 2, 50.0, 99.0, 100.0)
    assert Health.of([], 3) == Health(0, 3)


def test_robustness_tables_side_by_side_and_per_stack(tmp_path: Path) -> None:
    write_records(tmp_path, RECORDS)
    section = robustness.section(tmp_path)
    assert section is not None
    summary = section.blocks[1]
    assert isinstance(summary, doc.Table)
    rows = {r[0]: dict(zip(summary.header, r, strict=True)) for r in summary.rows}
    assert rows["raw"]["stalled head dropped after"] == "30.5 s"
    assert rows["raw"]["slow consumer close code"] == "1013"
    assert rows["raw"]["memory per idle connection"] == "6,758 B"
    assert rows["starlette"]["stalled head dropped after"] == "—"  # its probe failed
    starlette = section.subsections[1].blocks[0]
    assert isinstance(starlette, doc.Table) and starlette.flags == ("", "failed")
    assert "failed: the server exited" in starlette.rows[1][2]
    assert "Robustness" in md.render(doc.Document("t", (), (section,)))
    line = robustness.idle_memory_line(tmp_path)
    assert line is not None and "raw 6.6 KiB" in line and "starlette 29.2 KiB" in line
    assert robustness.section(tmp_path / "none") is None


def test_abuse_probes_end_to_end_on_one_stack(tmp_path: Path) -> None:
    """Every probe at tiny sizes against aiohttp through `pushbench run`'s runner: the
    records are written, the table renders, a slow consumer gets 1013, a forged token
    401 and a subscriber's token 403 on /control and /echo."""
    path = tmp_path / "abuse-tiny.toml"
    path.write_text(TINY)
    result = run_scenario(scenario.load(path), RunOptions(out=tmp_path / "results", progress="off"))
    assert result.status == "complete", result.reason
    records = {r.probe: r for r in read_records(result.run_dir)}
    assert set(records) == {
        "slowloris",
        "oversized-header",
        "upgrade-flood",
        "slow-consumer",
        "token-forgery",
        "idle",
    }
    assert all(r.status == "ok" and r.stack == "aiohttp" for r in records.values())
    assert records["slow-consumer"].outcome.close_code == 1013
    forged = records["token-forgery"].outcome.answer.split()
    for want in ("control/forged=401", "echo/forged=401", "control/none=401"):
        assert want in forged
    assert "control/subscriber=403" in forged
    assert records["slowloris"].outcome.drop_s is not None  # a 1 s head timeout, 2 s window
    assert records["idle"].outcome.held == 20
    assert all(r.rss_before_bytes and r.health.n > 0 for r in records.values())
    section = robustness.section(result.run_dir)
    assert section is not None and section.subsections[0].anchor == "robustness-aiohttp"
    assert (result.run_dir / "logs" / "abuse-aiohttp" / "server.log").exists()

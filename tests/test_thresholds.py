"""``[thresholds]``: parsed when the scenario loads (errors name the field), judged on each
cell's median over its ok repeats, printed, stored in ``thresholds.json``, shown by the
report from that file, written as JUnit XML, and gating ``pushbench run``'s exit code."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pushbench import cli, scenario, thresholds
from pushbench.exitcodes import ExitCode
from pushbench.report import build, md
from pushbench.report import thresholds as report_thresholds
from pushbench.report.load import load_run
from pushbench.results import atomic_write_json
from pushbench.thresholds import CellSummary, Threshold

BASE = 'name = "t"\nstacks = "aiohttp"\ntransports = ["ws", "sse"]\n'
FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "report-run"


def _load(extra: str) -> scenario.Scenario:
    return scenario.loads(BASE + extra)


# --- parsing ----------------------------------------------------------------------------------


def test_thresholds_parse_k6_style() -> None:
    s = _load(
        "[thresholds]\n"
        'lat_p99_us = "< 5000"\n'
        'delivered_fraction = [">= 0.999", "<=1"]\n'
        '"lat_p99_us{transport:sse, cell:aiohttp-*}" = "<20000"\n'
    )
    assert [t.name for t in s.thresholds] == [
        "lat_p99_us < 5000",
        "delivered_fraction >= 0.999",
        "delivered_fraction <= 1",
        "lat_p99_us{transport:sse,cell:aiohttp-*} < 20000",
    ]
    assert [t.field for t in s.thresholds][1:3] == [
        "thresholds.delivered_fraction[0]",
        "thresholds.delivered_fraction[1]",
    ]
    sse_only = s.thresholds[3]
    assert [sse_only.applies(c) for c in s.cells()] == [c.transport == "sse" for c in s.cells()]
    assert _load("").thresholds == ()


@pytest.mark.parametrize(
    ("toml", "path", "says"),
    [
        ('lat_p99 = "< 5"', "thresholds.lat_p99", "did you mean 'lat_p99_us'?"),
        ('lat_p99 = "< 5"', "thresholds.lat_p99", "delivered_fraction"),  # allowed ones named
        ('stack = "< 5"', "thresholds.stack", "unknown column 'stack'"),  # a parameter
        ('status = "== 1"', "thresholds.status", "unknown column 'status'"),  # not a number
        ('lat_p99_us = "<< 5"', "thresholds.lat_p99_us", "operators: <, >, <=, >=, ==, !="),
        ('lat_p99_us = "~ 5"', "thresholds.lat_p99_us", "a condition string such as '< 5000'"),
        ('lat_p99_us = "< 5ms"', "thresholds.lat_p99_us", "'5ms' in '< 5ms' is not a finite"),
        ('lat_p99_us = "< nan"', "thresholds.lat_p99_us", "is not a finite number"),
        ("lat_p99_us = 5", "thresholds.lat_p99_us", "5 is not allowed"),
        ('lat_p99_us = ["< 5", 7]', "thresholds.lat_p99_us[1]", "7 is not allowed"),
        ("lat_p99_us = []", "thresholds.lat_p99_us", "an empty list"),
        ('lat_p99_us = ["<5", "< 5"]', "thresholds.lat_p99_us[1]", "already declared at"),
        ('"lat_p99_us{proto:ws}" = "< 5"', "thresholds.lat_p99_us{proto:ws}", "unknown filter"),
        ('"lat_p99_us{transport}" = "< 5"', "thresholds.lat_p99_us{transport}", "tag:value"),
        (
            '"lat_p99_us{transport:ws,transport:sse}" = "< 5"',
            "thresholds.lat_p99_us{transport:ws,transport:sse}",
            "given twice",
        ),
        (
            '"lat_p99_us{transport:sce}" = "< 5"',
            "thresholds.lat_p99_us{transport:sce}",
            "did you mean 'sse'?",
        ),
        (
            '"lat_p99_us{stack:raw}" = "< 5"',
            "thresholds.lat_p99_us{stack:raw}",
            "matches no cell of the scenario",
        ),
        (
            '"lat_p99_us{cell:raw-*}" = "< 5"',
            "thresholds.lat_p99_us{cell:raw-*}",
            "matches no cell of the scenario",
        ),
        ('"lat p99" = "< 5"', "thresholds.lat p99", "is not a column with optional filters"),
    ],
)
def test_a_bad_threshold_is_a_scenario_error_naming_the_field(
    toml: str, path: str, says: str
) -> None:
    with pytest.raises(scenario.ScenarioError) as err:
        _load(f"[thresholds]\n{toml}\n")
    assert err.value.path == path
    assert says in err.value.problem


def test_thresholds_is_a_table_at_the_top_level_only() -> None:
    with pytest.raises(scenario.ScenarioError) as err:
        _load("thresholds = 3\n")
    assert err.value.path == "thresholds" and "expected a table" in err.value.problem
    with pytest.raises(scenario.ScenarioError) as err:
        _load('[[cells]]\n[cells.thresholds]\nlat_p99_us = "< 5"\n')
    assert err.value.path == "cells[0].thresholds"


# --- evaluation -------------------------------------------------------------------------------


def _cell(cell_id: str = "aiohttp-ws-x", transport: str = "ws", **values: Any) -> CellSummary:
    failure = values.pop("failure", "")
    return CellSummary(
        cell_id, transport, "aiohttp", "python", "memory", "asyncio", values, failure
    )


def _t(column: str, op: str, bound: float, **where: str) -> Threshold:
    return Threshold(column, op, bound, tuple(where.items()), f"thresholds.{column}")


@pytest.mark.parametrize(
    ("threshold", "cell", "passed", "note"),
    [
        (_t("lat_p99_us", "<", 5000), _cell(lat_p99_us=4999.0), True, ""),
        (_t("lat_p99_us", "<", 5000), _cell(lat_p99_us=5000.0), False, ""),
        (_t("lat_p99_us", "<=", 5000), _cell(lat_p99_us=5000.0), True, ""),
        (_t("delivered_fraction", ">=", 0.999), _cell(delivered_fraction=0.9989), False, ""),
        (_t("delivered_fraction", ">", 0.5), _cell(delivered_fraction=1.0), True, ""),
        (_t("msgs_lost", "==", 0), _cell(msgs_lost=0.0), True, ""),
        (_t("errors", "!=", 0), _cell(errors=0.0), False, ""),
        (_t("lat_p99_us", "<", 5000), _cell(lat_p99_us=None), False, "no lat_p99_us measured"),
        (
            _t("lat_p99_us", "<", 5000),
            _cell(lat_p99_us=10.0, failure="1 of 3 repeat(s) failed: crash"),
            False,
            "cell did not measure: 1 of 3 repeat(s) failed: crash",
        ),
        (_t("lat_p99_us", "<", 1, transport="sse"), _cell(lat_p99_us=9.0), None, "applies to no"),
        (_t("lat_p99_us", "<", 1, cell="*-sse-*"), _cell(lat_p99_us=9.0), None, "applies to no"),
        (_t("lat_p99_us", ">", 1, cell="aiohttp-*"), _cell(lat_p99_us=9.0), True, ""),
    ],
)
def test_evaluate(threshold: Threshold, cell: CellSummary, passed: bool | None, note: str) -> None:
    verdict = thresholds.evaluate("s", [threshold], [cell])
    (outcome,) = verdict.outcomes
    assert outcome.passed is passed
    assert outcome.note.startswith(note)
    assert verdict.passed is (passed is not False)
    assert outcome.cell_id == ("" if passed is None else cell.cell_id)


def _row(cell_id: str, repeat: int, status: str = "ok", **values: Any) -> dict[str, Any]:
    return {
        "cell_id": cell_id,
        "repeat": repeat,
        "transport": "ws",
        "stack": "aiohttp",
        "client": "python",
        "hub": "memory",
        "loop": "asyncio",
        "status": status,
        "reason": "" if status == "ok" else "server crashed",
        "probe": False,
        **values,
    }


def test_summary_is_the_median_over_ok_repeats_without_probes() -> None:
    rows = [
        _row("a", 0, lat_p99_us=100.0, delivered_fraction=1.0),
        _row("a", 1, lat_p99_us=300.0, delivered_fraction=""),  # an empty CSV field
        _row("a", 2, lat_p99_us=200.0, delivered_fraction=0.5),
        _row("b", 0, lat_p99_us=50.0),
        _row("b", 1, "failed", lat_p99_us=None),
        {**_row("c", 0, lat_p99_us=1e9), "probe": True},  # a saturation probe: not judged
    ]
    a, b = thresholds.summarize_rows(rows)
    assert (a.cell_id, a.values["lat_p99_us"], a.values["delivered_fraction"]) == ("a", 200, 0.75)
    assert a.failure == "" and a.values["errors"] is None
    assert b.values["lat_p99_us"] == 50.0
    assert b.failure == "1 of 2 repeat(s) failed: server crashed"
    verdict = thresholds.evaluate("s", [_t("lat_p99_us", "<", 1000)], [a, b])
    assert [o.passed for o in verdict.outcomes] == [True, False]  # b failed a repeat


def test_a_left_out_repeat_is_no_failure_when_its_remeasure_stands() -> None:
    rows = [
        _row("a", 0, lat_p99_us=100.0),
        {**_row("a", 1, "left-out", lat_p99_us=900.0), "reason": "machine 2× slower"},
        _row("a", 2, lat_p99_us=120.0),  # the re-measure
        {**_row("b", 0, "left-out", lat_p99_us=900.0), "reason": "machine 2× slower"},
    ]
    a, b = thresholds.summarize_rows(rows)
    assert a.failure == "" and a.values["lat_p99_us"] == 110.0  # the ok repeats only
    assert b.failure == "1 of 1 repeat(s) left-out: machine 2× slower"  # nothing stands in


def _verdict() -> thresholds.Verdict:
    cells = [
        _cell("aiohttp-ws-x", lat_p99_us=4000.0),
        _cell("aiohttp-sse-x", "sse", lat_p99_us=9e3),
    ]
    gates = [_t("lat_p99_us", "<", 5000), _t("lat_p99_us", "<", 1, stack="raw")]
    return thresholds.evaluate("tiny", gates, cells)


def test_verdict_round_trips_through_json() -> None:
    verdict = _verdict()
    stored = json.loads(json.dumps(verdict.as_dict(), allow_nan=False))
    assert stored["passed"] is False and stored["schema"] == 2
    assert thresholds.Verdict.from_dict(stored) == verdict


def test_text_table_names_each_threshold_cell_and_value() -> None:
    text = thresholds.render_text(_verdict())
    lines = text.splitlines()
    assert lines[0].split() == ["result", "threshold", "cell", "value"]
    assert lines[1].split()[:5] == ["pass", "lat_p99_us", "<", "5000", "aiohttp-ws-x"]
    assert lines[2].split()[:6] == ["FAIL", "lat_p99_us", "<", "5000", "aiohttp-sse-x", "9000"]
    assert lines[3].startswith("n/a") and "applies to no measured cell" in lines[3]
    assert lines[-1] == (
        "thresholds: 1 passed, 1 FAILED, 1 not applied (of 3 threshold × cell checks)"
    )


def test_junit_has_one_testcase_per_threshold_and_cell() -> None:
    root = ET.fromstring(thresholds.junit_xml(_verdict()))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("aiohttp-ws-x", "lat_p99_us < 5000"),
        ("aiohttp-sse-x", "lat_p99_us < 5000"),
        ("tiny", "lat_p99_us{stack:raw} < 1"),
    ]
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "lat_p99_us = 9000, needs < 5000"
    assert cases[0].find("failure") is None and cases[2].find("skipped") is not None


# --- the report reads the stored verdict ----------------------------------------------------


def test_report_shows_the_stored_verdict_and_nothing_without_it(tmp_path: Path) -> None:
    run_dir = shutil.copytree(FIXTURE_RUN, tmp_path / "run")
    run = load_run(run_dir)
    assert report_thresholds.section(run) == []
    document = build.document(run, [], codec_run=None)
    assert "Thresholds" not in [s.title for s in document.sections]

    atomic_write_json(run_dir / thresholds.THRESHOLDS_FILE, _verdict().as_dict())
    document = build.document(load_run(run_dir), [], codec_run=None)
    titles = [s.title for s in document.sections]
    assert titles[:4] == ["The answer", "Overview", "Thresholds", "Summary"]
    text = md.render(document, tmp_path)
    assert "**Thresholds FAILED**: 1 passed, 1 FAILED, 1 not applied" in text
    assert "| pass | lat_p99_us < 5000 | aiohttp-ws-x | 4000 |" in text
    assert "FAIL | lat_p99_us < 5000 | aiohttp-sse-x | 9000 |" in text


# --- pushbench run: exit code, stdout, thresholds.json, --junit ------------------------------

TINY = """
name = "tiny"
stacks = "aiohttp"
transports = "ws"
subscribers = 2
rate = 50
payload_size = 32
duration_s = {duration}
warmup_s = 0.3
repeats = 1
client_processes = 1

[thresholds]
{gates}
"""


def _run(tmp_path: Path, gates: str, duration: float = 1) -> tuple[int, Path, Path]:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(gates=gates, duration=duration))
    out, junit = tmp_path / "results", tmp_path / "reports" / "junit.xml"
    argv = ["run", str(path), "--out", str(out), "--no-progress", "--junit", str(junit)]
    code = cli.main(argv)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    return code, run_dir, junit


@pytest.mark.timeout(60)
def test_a_failing_threshold_exits_3_with_junit_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, run_dir, junit = _run(tmp_path, 'lat_p99_us = "< 1"\ndelivered_fraction = ">= 0.5"\n')
    assert code == ExitCode.THRESHOLD == 3  # k6 uses 99 for the same thing
    stdout = capsys.readouterr().out
    lines = [line.split() for line in stdout.splitlines()]
    assert ["FAIL", "lat_p99_us", "<", "1", "aiohttp-ws-sub2-rate50-p32"] in [x[:5] for x in lines]
    assert "thresholds: 1 passed, 1 FAILED" in stdout
    stored = json.loads((run_dir / "thresholds.json").read_text())
    assert stored["passed"] is False
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failure = cases["lat_p99_us < 1"].find("failure")
    assert failure is not None
    assert (failure.get("message") or "").startswith("lat_p99_us = ")
    assert cases["delivered_fraction >= 0.5"].find("failure") is None


@pytest.mark.timeout(60)
def test_passing_thresholds_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, run_dir, junit = _run(
        tmp_path, '"lat_p99_us{transport:ws}" = "< 60000000"\nmsgs_lost = "== 0"\n'
    )
    assert code == 0
    assert "thresholds: 2 passed (of 2" in capsys.readouterr().out
    assert json.loads((run_dir / "thresholds.json").read_text())["passed"] is True
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "0")


def test_run_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "3 a [thresholds] condition failed" in help_text
    assert "--junit FILE" in help_text

"""The clock offset estimate (issue 18 item 1): the pure estimator, ``GET /clock`` on every
stack, the probe every worker kind runs at start, and the row's clock columns.

The end-to-end proof — workers in a network namespace of their own, with a clock of their
own, recovering its offset — is ``tests/test_distributed.py``.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess, start_external, start_server

from pushbench import registry
from pushbench.clients.clockprobe import measure
from pushbench.clocksync import ClockSample, estimate, same_clock
from pushbench.contract import clock_identity
from pushbench.report import doc
from pushbench.report.build import CLOCK_NOTE
from pushbench.report.build import _summary_tables as summary_tables
from pushbench.report.load import load_run
from pushbench.runner.clock import clock_columns
from pushbench.schema.worker import REQUIRED_TOTALS, WorkerResult
from pushbench.settings import Settings

pytestmark = pytest.mark.timeout(60)

MS = 1_000_000


# --- the estimator -------------------------------------------------------------------------


def test_the_minimum_round_trip_sample_is_kept_and_its_bound_is_half_of_it() -> None:
    # The true offset is 5 s (server = worker + 5 s). Three exchanges whose two directions
    # took different times: each midpoint is off by half the asymmetry, the tightest one
    # least; the best round trip (4 ms) is kept, its bound 2 ms covers its error (1 ms).
    true = 5_000 * MS
    samples = [
        # t0, way out, way back: the server reads at t0 + out
        ClockSample(100 * MS, 100 * MS + 9 * MS + true, 100 * MS + 10 * MS),  # 9 out, 1 back
        ClockSample(200 * MS, 200 * MS + 3 * MS + true, 200 * MS + 4 * MS),  # 3 out, 1 back
        ClockSample(300 * MS, 300 * MS + 1 * MS + true, 300 * MS + 7 * MS),  # 1 out, 6 back
    ]
    est = estimate(samples)
    assert est.rtt_ns == 4 * MS
    assert est.bound_ns == 2 * MS
    assert est.offset_ns == true + 1 * MS  # the kept sample's midpoint error: (3 − 1) / 2
    assert abs(est.offset_ns - true) <= est.bound_ns
    assert (est.method, est.samples) == ("ntp", 3)
    assert est.to_server(10 * MS) == 10 * MS + est.offset_ns
    for s in samples:  # every sample's own bound covers the truth (any asymmetry)
        assert abs(s.offset_ns - true) <= -(-s.rtt_ns // 2)


def test_a_negative_offset_and_an_odd_round_trip() -> None:
    # Worker 250 ms ahead of the server; a 3 ns round trip: the bound rounds up.
    est = estimate([ClockSample(1_000 * MS, 750 * MS + 1, 1_000 * MS + 3)])
    assert est.bound_ns == 2
    assert abs(est.offset_ns - (-250 * MS)) <= est.bound_ns


def test_no_sample_and_a_reversed_sample_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        estimate([])
    with pytest.raises(ValueError, match="t1_ns >= t0_ns"):
        ClockSample(10, 5, 9)


def test_the_same_clock_is_exact() -> None:
    est = same_clock()
    assert (est.offset_ns, est.bound_ns, est.method) == (0, 0, "same-clock")


def test_the_skew_setting_is_read_and_handed_on() -> None:
    settings = Settings.from_environ({"PUSHBENCH_CLOCK_SKEW_NS": "250000000"})
    assert settings.clock_skew_ns == 250 * MS
    assert settings.environ()["PUSHBENCH_CLOCK_SKEW_NS"] == "250000000"
    assert Settings.from_environ({}).clock_skew_ns == 0
    with pytest.raises(ValueError, match="PUSHBENCH_CLOCK_SKEW_NS"):
        Settings.from_environ({"PUSHBENCH_CLOCK_SKEW_NS": "soon"})


# --- the row -------------------------------------------------------------------------------


def _result(offset: int | None, bound: int | None) -> WorkerResult:
    values: dict[str, Any] = dict.fromkeys(WorkerResult.required(), 0)
    values.update(
        complete=True,
        reason="completed",
        transport="ws",
        bytes_source="tcp_info",
        totals=dict.fromkeys(REQUIRED_TOTALS, 0),
        per_connection=(),
        clock_offset_ns=offset,
        clock_bound_ns=bound,
    )
    return WorkerResult(**values)


def test_the_row_keeps_the_widest_bound_and_says_nothing_when_a_worker_did_not_measure() -> None:
    workers = [_result(-250 * MS, 40_000), _result(-249_990_000, 90_000), _result(0, 0)]
    assert clock_columns(workers) == {"clock_offset_us": -249_990.0, "clock_bound_us": 90.0}
    assert clock_columns([_result(0, 0)]) == {"clock_offset_us": 0.0, "clock_bound_us": 0.0}
    unmeasured = {"clock_offset_us": None, "clock_bound_us": None}
    assert clock_columns([_result(0, 0), _result(None, None)]) == unmeasured


def test_the_worker_record_carries_offset_and_bound() -> None:
    record = _result(-5, 7)
    raw = record.to_dict()
    assert (raw["clock_offset_ns"], raw["clock_bound_ns"]) == (-5, 7)
    back = WorkerResult.from_dict(raw)
    assert (back.clock_offset_ns, back.clock_bound_ns) == (-5, 7)
    del raw["clock_offset_ns"], raw["clock_bound_ns"]
    assert WorkerResult.from_dict(raw).clock_offset_ns is None  # not measured, never 0


# --- GET /clock on every stack -------------------------------------------------------------


@pytest.fixture(scope="module", params=registry.stack_names())
def stack_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    stack: str = request.param
    log = tmp_path_factory.mktemp("clock") / f"{stack}.stderr"
    row = registry.stack(stack)
    server = start_external(log, stack) if row.argv else start_server(log, stack=stack)
    try:
        yield server
    finally:
        server.stop()
    server.check()


def test_every_stack_answers_its_clock_and_whose_it_is(stack_server: ServerProcess) -> None:
    before = time.monotonic_ns()
    with urllib.request.urlopen(stack_server.url("/clock"), timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        body = json.loads(response.read())
    after = time.monotonic_ns()
    assert isinstance(body["mono_ns"], str)  # digits: exact beyond 2**53 in JavaScript
    assert before <= int(body["mono_ns"]) <= after  # CLOCK_MONOTONIC, the envelope's clock
    assert (body["boot_id"], body["timens_ns"]) == clock_identity()


def test_the_probe_finds_the_same_clock_and_recovers_an_injected_skew(
    stack_server: ServerProcess,
) -> None:
    base = stack_server.url("")
    same = measure(base)
    assert same.estimate == same_clock() and same.shift_ns == 0
    skewed = measure(base, skew_ns=250 * MS)  # a worker clock 250 ms ahead of the server's
    est = skewed.estimate
    assert est is not None and est.method == "ntp" and est.samples > 1
    assert est.bound_ns > 0 and abs(est.offset_ns + 250 * MS) <= est.bound_ns
    assert abs(skewed.shift_ns) <= est.bound_ns  # its times, mapped back onto the server's


def test_the_probe_says_why_when_there_is_no_clock(tmp_path: Path) -> None:
    fix = measure("http://127.0.0.1:9/")  # discard port: nothing listens
    assert fix.estimate is None and fix.shift_ns == 0 and fix.error
    assert fix.record()["error"] == fix.error


# --- the report ----------------------------------------------------------------------------


def test_the_summary_states_the_clock_bound_beside_the_percentiles(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "fixtures" / "report-run", run)
    rows = list(csv.DictReader((run / "cells.csv").open()))
    bounded = rows[0]["cell_id"]
    for r in rows:  # one cell's workers on another host (85 µs), the rest on the server's
        r["clock_offset_us"] = "-250000" if r["cell_id"] == bounded else "0"
        r["clock_bound_us"] = "85" if r["cell_id"] == bounded else "0"
    with (run / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tables = [b for b in summary_tables(load_run(run)) if isinstance(b, doc.Table)]
    cells = [(t, row) for t in tables for row in t.rows]
    marked = [row for _, row in cells if any("clock\u00a0±85" in str(v) for v in row)]
    assert len(marked) == 1  # the one cell, and in its latency columns only
    assert sum("clock\u00a0±" in str(v) for v in marked[0]) == sum(
        "latency" in h for h in tables[0].header
    )
    assert sum(CLOCK_NOTE in (t.caption or "") for t in tables) == 1

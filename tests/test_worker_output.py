"""The worker output record (OUT.json): written by every worker kind, read by the runner.

A field missing is an error with its name, never a zero; a worker kind that passes a
dictionary gets it checked on writing, and one that is not a whole record turns into a
failure the runner reports instead of figures made of defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pushbench.clients.recorder import FIELDS
from pushbench.clients.worker import output_paths, write_outputs
from pushbench.procs import Started
from pushbench.runner.options import CellFailed
from pushbench.runner.rows import WorkerRun, read_results
from pushbench.schema.worker import (
    REQUIRED_TOTALS,
    OutputError,
    WindowMark,
    WorkerFailure,
    WorkerResult,
    read_output,
)


def _raw(**changes: Any) -> dict[str, Any]:
    """An OUT.json object as the Locust worker builds it (no GC figures of its own)."""
    raw: dict[str, Any] = {
        "complete": True,
        "reason": "completed",
        "transport": "sse",
        "connections": 2,
        "connected": 2,
        "connect_failures": 0,
        "ready_ns": 1_000,
        "warmup_end_ns": 2_000,
        "end_ns": 3_000_001_000,
        "bytes_source": "socket",
        "messages": 10,
        "capacity": 100,
        "overflow": 0,
        "parse_errors": 0,
        "slow_parses": 0,
        "cpu_user_s": 0.5,
        "cpu_sys_s": 0.25,
        "cpu_user_s_run": 0.2,
        "cpu_sys_s_run": 0.1,
        "max_rss_kb": 40_000,
        "max_loop_lag_ns": 5_000,
        "totals": {k: 1 for k in REQUIRED_TOTALS},
        "per_connection": [{"conn": 0, "connect_ns": 300}, {"conn": 1, "connect_ns": -1}],
        "pid": 123,
        "locust": {"requests": 4},
    }
    raw.update(changes)
    return raw


def test_a_result_reads_back_what_was_written() -> None:
    result = WorkerResult.from_dict(_raw())
    assert result.cpu_run_s == pytest.approx(0.3) and result.run_s == pytest.approx(3.0)
    assert result.connect_times_ns() == [300] and result.total("bytes_in") == 1
    assert result.gc_collections is None  # not measured by this kind: None, not 0
    assert result.extra == {"pid": 123, "locust": {"requests": 4}}
    again = json.loads(json.dumps(result.to_dict()))
    assert again == _raw() and WorkerResult.from_dict(again) == result


def test_window_marks_read_back_as_records() -> None:
    """The CPU and counters a worker read at the runner's window signals: typed records,
    a counter the kind could not read stays None, a mark without its time is an error."""
    start = {"t_ns": 2_000, "cpu_user_s": 0.1, "cpu_sys_s": 0.0, "messages": 4, "requests": 2}
    end = {"t_ns": 1_002_000, "cpu_user_s": 0.9, "cpu_sys_s": 0.05}
    result = WorkerResult.from_dict(_raw(window_start=start, window_end=end))
    assert result.window_start == WindowMark(2_000, 0.1, 0.0, 4, 2)
    assert result.window_end is not None and result.window_end.messages is None
    assert result.window_end.cpu_s - result.window_start.cpu_s == pytest.approx(0.85)
    assert "window_start" not in result.extra
    again = json.loads(json.dumps(result.to_dict()))
    assert WorkerResult.from_dict(again) == result
    assert WorkerResult.from_dict(_raw()).window_start is None  # not marked: None
    with pytest.raises(OutputError, match="t_ns"):
        WorkerResult.from_dict(_raw(window_start={"cpu_user_s": 0.1, "cpu_sys_s": 0.0}))


@pytest.mark.parametrize("missing", ["ready_ns", "totals", "cpu_sys_s_run", "per_connection"])
def test_a_missing_field_is_an_error_naming_it(missing: str) -> None:
    raw = _raw()
    del raw[missing]
    with pytest.raises(OutputError, match=missing):
        WorkerResult.from_dict(raw)


def test_a_missing_total_is_an_error_naming_it() -> None:
    totals = {k: 1 for k in REQUIRED_TOTALS if k != "requests"}
    with pytest.raises(OutputError, match="requests"):
        WorkerResult.from_dict(_raw(totals=totals))
    result = WorkerResult.from_dict(_raw())
    with pytest.raises(OutputError, match="publish_lag_max_ns"):
        result.total("publish_lag_max_ns")  # not counted: no 0
    assert result.total_or_none("publish_lag_max_ns") is None  # an optional reading: None
    assert result.total_or_none("requests") == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"overflow": None}, "overflow"),
        ({"parse_errors": "3"}, "parse_errors"),
        ({"complete": 1}, "complete"),
        ({"max_rss_kb": "big"}, "max_rss_kb"),  # optional, but not of another kind
        ({"totals": {k: None for k in REQUIRED_TOTALS}}, "bytes_in"),
        ({"per_connection": [{"conn": 0}]}, r"per_connection\[0\] without connect_ns"),
        ({"per_connection": {"0": {}}}, "per_connection"),
    ],
)
def test_a_field_of_the_wrong_kind_is_an_error_naming_it(
    change: dict[str, Any], named: str
) -> None:
    """A counter written as null or text would read as 0 or crash far from its cause."""
    with pytest.raises(OutputError, match=named):
        WorkerResult.from_dict(_raw(**change))
    assert WorkerResult.from_dict(_raw(max_rss_kb=None)).max_rss_kb is None  # not measured


def test_connections_never_up_are_told_from_late_ones() -> None:
    late = [{"conn": 0, "connect_ns": 300}, {"conn": 1, "connect_ns": 900}]
    assert (
        WorkerResult.from_dict(_raw(connect_failures=1, per_connection=late)).never_connected() == 0
    )
    assert WorkerResult.from_dict(_raw()).never_connected() == 1  # conn 1: connect_ns -1


def test_failures_are_told_apart() -> None:
    failure = read_output({"complete": False, "reason": "failed: boom", "messages": 3})
    assert failure == WorkerFailure("failed: boom", 3)
    assert read_output({"failed": True, "reason": "x"}) == WorkerFailure("x", None)  # not 0
    assert read_output(failure.to_dict()) == failure
    assert isinstance(read_output(_raw(complete=False, reason="SIGTERM")), WorkerResult)


def _arrays() -> dict[str, np.ndarray[Any, Any]]:
    return {k: np.zeros(0, dtype=np.uint32 if k == "conn" else np.int64) for k in FIELDS}


def test_write_outputs_takes_a_record_or_a_whole_dictionary(tmp_path: Path) -> None:
    write_outputs(tmp_path / "a", _arrays(), WorkerResult.from_dict(_raw()))
    write_outputs(tmp_path / "b", _arrays(), _raw())  # as the browser and Locust workers do
    for name in ("a", "b"):
        body = json.loads(output_paths(tmp_path / name)[1].read_text())
        assert body["npz"] == f"{name}.npz"
        assert WorkerResult.from_dict(body) == WorkerResult.from_dict(_raw(npz=f"{name}.npz"))


def _worker_run(tmp_path: Path, name: str) -> WorkerRun:
    started = Started(name, None, ())  # type: ignore[arg-type]  # only the name is read
    return WorkerRun(started, tmp_path / name, 2)


def test_an_incomplete_dictionary_fails_the_cell_with_what_it_lacks(tmp_path: Path) -> None:
    raw = _raw()
    del raw["max_loop_lag_ns"]
    write_outputs(tmp_path / "worker0", _arrays(), raw)
    body = json.loads(output_paths(tmp_path / "worker0")[1].read_text())
    assert body["failed"] is True and body["complete"] is False
    with pytest.raises(CellFailed, match=r"worker0 failed: failed: bad worker output: .*max_loop"):
        read_results([_worker_run(tmp_path, "worker0")])


def test_the_runner_reads_results_and_refuses_a_failure(tmp_path: Path) -> None:
    write_outputs(tmp_path / "worker0", _arrays(), _raw())
    [(result, receipts)] = read_results([_worker_run(tmp_path, "worker0")])
    assert result.messages == 10 and len(receipts) == 0
    write_outputs(tmp_path / "worker1", _arrays(), WorkerFailure("failed: RuntimeError: x"))
    with pytest.raises(CellFailed, match="worker1 failed: failed: RuntimeError: x"):
        read_results([_worker_run(tmp_path, "worker1")])
    with pytest.raises(CellFailed, match="wrote no output"):
        read_results([_worker_run(tmp_path, "worker2")])
    raw = _raw()
    del raw["overflow"]
    output_paths(tmp_path / "worker3")[1].write_text(json.dumps(raw))
    with pytest.raises(CellFailed, match=r"worker3 wrote no worker record: .*overflow"):
        read_results([_worker_run(tmp_path, "worker3")])

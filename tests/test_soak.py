"""The soak (issue 17 item 6): connection churn with resume, and its accounting.

Unit tests of the loss/duplicate accounting across resumes, of the slope fit and the
log's error count, of the ``churn`` parameter; one short churn run end to end (raw
stack, WebSocket, SSE and long polling) with zero loss, zero duplicates and reconnects.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pushbench import cli, metrics, scenario
from pushbench.churn import Churn
from pushbench.scenario import ScenarioError

# --- accounting across resumes --------------------------------------------------------------


def _resumes(skip: int | None = None, repeat: int | None = None) -> tuple[list[int], list[int]]:
    """Two subscribers receiving seqs 1..20; subscriber 1 leaves after 7 and resumes with
    since=7 (8 first), except that its resume may skip or repeat a message."""
    conn, seq = [0] * 20, list(range(1, 21))
    first = list(range(1, 8))
    resumed = list(range(8, 21))
    if skip is not None:
        resumed.remove(skip)
    if repeat is not None:
        resumed.insert(0, repeat)  # since= one too low: the last message again
    conn += [1] * (len(first) + len(resumed))
    seq += first + resumed
    return conn, seq


def test_a_clean_resume_loses_and_repeats_nothing() -> None:
    conn, seq = _resumes()
    check = metrics.resume_check(conn, seq, first_seq=1, last_seq=20, subscribers=2)
    assert (check.expected, check.lost, check.duplicated, check.outside) == (40, 0, 0, 0)


def test_a_resume_that_skips_is_a_loss() -> None:
    conn, seq = _resumes(skip=8)
    check = metrics.resume_check(conn, seq, first_seq=1, last_seq=20, subscribers=2)
    assert (check.lost, check.duplicated) == (1, 0)


def test_a_resume_that_repeats_is_a_duplicate() -> None:
    conn, seq = _resumes(repeat=7)
    check = metrics.resume_check(conn, seq, first_seq=1, last_seq=20, subscribers=2)
    assert (check.lost, check.duplicated) == (0, 1)


def test_a_subscriber_that_missed_the_start_is_counted_lost() -> None:
    """Every subscriber is expected over the hub's whole range, not from its first receipt."""
    check = metrics.resume_check([0, 0], [3, 4], first_seq=1, last_seq=4, subscribers=1)
    assert check.lost == 2


# --- drift and the log --------------------------------------------------------------------


def test_slope_per_min_fits_a_line() -> None:
    t_ns = [int(s * 1e9) for s in (0, 30, 60, 90, 120)]
    assert metrics.slope_per_min(t_ns, [100, 110, 120, 130, 140]) == pytest.approx(20.0)
    noisy = [100, 101, 99, 100, 100]
    assert metrics.slope_per_min(t_ns, noisy) == pytest.approx(-0.2)
    assert metrics.slope_per_min(t_ns[:1], [5]) is None


def test_count_error_lines() -> None:
    log = "\n".join(
        [
            "serving on 127.0.0.1:8000",
            "Traceback (most recent call last):",
            '  File "x.py", line 1',
            "ERROR:uvicorn.error:Exception in ASGI application",
            "Error handling request from 127.0.0.1",
            "INFO: errors: 0",
        ]
    )
    assert metrics.count_error_lines(log) == 3


def test_reconnect_quantiles() -> None:
    assert metrics.quantiles_ms([]) is None
    p50, _, top = metrics.quantiles_ms([1_000_000, 2_000_000, 3_000_000]) or (0, 0, 0)
    assert (p50, top) == (2.0, 3.0)


# --- the parameter --------------------------------------------------------------------------

BASE = 'name = "c"\nstacks = "raw"\ntransports = "ws"\nrate = 50\n'


def test_churn_is_off_by_default_and_named_in_the_id_when_on() -> None:
    plain = scenario.loads(BASE).cells()[0]
    assert plain.churn is None and "churn" not in plain.cell_id
    on = scenario.loads(BASE + "churn = { hold_s = [1, 5], gap_s = 0.5, seed = 2 }").cells()[0]
    assert on.churn == Churn(1.0, 5.0, 0.5, 2)
    assert on.cell_id == plain.cell_id + "-churn1-5s-gap500ms-seed2"


@pytest.mark.parametrize(
    "bad",
    [
        "churn = { hold_s = [5, 1] }",
        "churn = { hold_s = 3 }",
        "churn = { hold_s = [1, 2], away = 1 }",
        'churn = { hold_s = [1, 2] }\nclient = "locust"',
        "churn = { hold_s = [1, 2] }\npublishers = 1\nsubscribers = 2",
    ],
)
def test_bad_churn_is_refused(bad: str) -> None:
    with pytest.raises(ScenarioError, match=r"churn|client"):
        scenario.loads(BASE + bad)


def test_churn_draws_are_seeded_per_connection() -> None:
    churn = Churn(1.0, 5.0, 0.5, 7)
    a = [churn.hold(churn.rng(3)) for _ in range(2)]
    assert a[0] == a[1]  # a fresh generator per connection: the same first draw
    assert churn.hold(churn.rng(3)) != churn.hold(churn.rng(4))


# --- end to end -----------------------------------------------------------------------------

SHORT = """
name = "churn-short"
stacks = "raw"
transports = ["ws", "sse", "longpoll"]
subscribers = 2
rate = 50
payload_size = 32
duration_s = 1.5
warmup_s = 0.3
repeats = 1
client_processes = 1
churn = { hold_s = [0.2, 0.4], gap_s = 0.1, seed = 1 }
"""


@pytest.mark.timeout(90)
def test_a_short_churn_run_loses_and_repeats_nothing(tmp_path: Path) -> None:
    path = tmp_path / "churn.toml"
    path.write_text(SHORT)
    out = tmp_path / "results"
    code = cli.main(["run", str(path), "--out", str(out), "--no-progress", "--no-report"])
    assert code == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    df = pd.read_csv(run_dir / "cells.csv")
    assert list(df["transport"]) == ["ws", "sse", "longpoll"]
    assert (df["status"] == "ok").all()
    assert (df["soak_reconnects"] > 0).all()
    # every subscriber over the ticker's whole range: 50/s × 1.8 s × 2 subscribers
    assert (df["soak_expected_msgs"] == 2 * 90).all()
    assert (df["soak_lost"] == 0).all() and (df["soak_duplicates"] == 0).all()
    assert (df["soak_reconnect_p50_ms"] > 0).all()
    assert (df["soak_samples"] >= 2).all() and df["rss_slope_kib_per_min"].notna().all()
    assert df["fd_slope_per_min"].notna().all() and (df["soak_fds_end"] > 0).all()
    assert (df["log_errors"] == 0).all()


# --- the report -----------------------------------------------------------------------------


def test_the_report_section_reads_the_soak_columns() -> None:
    from pushbench.report import soak as report_soak
    from pushbench.report.load import Run

    base = {"status": "ok", "stack": "raw", "soak_churn": "hold 1-5 s, away <= 0.5 s, seed 1"}
    good = {**base, "transport": "ws", "soak_lost": 0, "soak_duplicates": 0, "log_errors": 0}
    bad = {**good, "transport": "sse", "soak_lost": 3}
    run = Run(Path("r"), {}, pd.DataFrame([good, bad]))
    (section,) = report_soak.section(run)
    (table,) = [b for b in section.blocks if hasattr(b, "rows")]
    assert [row[0] for row in table.rows] == ["ws · raw", "sse · raw"]
    assert table.flags == ("", "failed")
    plain = Run(Path("r"), {}, pd.DataFrame([{**good, "soak_churn": ""}]))
    assert report_soak.section(plain) == []

"""``pushbench run``: end to end on loopback, a bad scenario, a server crash mid-run; what a
run prints (progress lines with an ETA, the summary table, the report, the guide's verdicts),
where ``latest`` points, what ``client_processes`` counts, and the order of a run (shuffled
rounds by a recorded seed, saturation probes in rounds after them)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pushbench import browser, cli, metrics, registry, results, runner, scenario
from pushbench.procs import Started
from pushbench.report import doc, guide
from pushbench.report.load import load_run
from pushbench.runner import orchestrate, rounds, saturation
from pushbench.runner import progress as progress_module
from pushbench.runner.progress import Progress, format_duration
from pushbench.runner.rows import bare_row, processes_ran
from pushbench.runner.server import EXTERNAL_HEARTBEAT_S, distributions
from pushbench.runner.summary import format_table, summarize
from pushbench.runner.tables import write_cells
from pushbench.schema.cells import ALL_COLUMNS, CELLS_SCHEMA_VERSION
from pushbench.schema.worker import REQUIRED_TOTALS, WorkerResult

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "report-run"

TINY = """
name = "tiny"
stacks = "aiohttp"
transports = {transports}
subscribers = 2
rate = 50
payload_size = 32
duration_s = 2
warmup_s = 0.5
repeats = 1
client_processes = 1
"""


def _write(tmp_path: Path, transports: str = '["ws", "sse"]') -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(transports=transports))
    return path


def _run_dir(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    assert len(dirs) == 1
    return dirs[0]


@pytest.mark.timeout(60)
def test_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "results"
    code = cli.main(["run", str(_write(tmp_path)), "--out", str(out), "--no-progress"])
    assert code == 0
    run_dir = _run_dir(out)
    assert (out / "latest").resolve() == run_dir.resolve()
    df = pd.read_csv(run_dir / "cells.csv")
    assert list(df["transport"]) == ["ws", "sse"]
    assert (df["status"] == "ok").all()
    assert (df["msgs_lost"] == 0).all()
    assert (df["msgs_expected"] == 2 * 100).all()  # 50 msgs/s × 2 s × 2 subscribers
    assert (df["msgs_delivered"] == df["msgs_expected"]).all()
    assert (df["lat_p50_us"] > 0).all() and (df["lat_p99_us"] >= df["lat_p50_us"]).all()
    assert (df["ulat_p50_us"] > 0).all()
    assert (df["bytes_in_per_msg"] > 32).all()
    # TCP payload, and beside it the wire estimate: payload + 52 B per segment. At 50 msg/s
    # a message is a segment of its own, unless a late ticker's catch-up sent two or more
    # in one write (publish_many), so there are fewer segments than messages, but not
    # half as many, and never none.
    segments = (df["wire_bytes_in_per_msg"] - df["bytes_in_per_msg"]) / 52
    assert ((segments > 0.5) & (segments < 1.5)).all(), segments
    # the in-server ticker's own CPU, a part of the server's (same denominator)
    assert (df["ticker_cpu_us_per_msg"] > 0).all()
    assert (df["ticker_cpu_us_per_msg"] < df["server_cpu_us_per_msg"]).all()
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "complete"
    assert "its own cost reported separately" in meta["cpu_accounting"]["ticker"]
    assert meta["scenario_text"] == (tmp_path / "tiny.toml").read_text()
    assert "server_cpus" in meta["pinning"]
    assert meta["cpu_idle"]["held_latency_us"] is None  # nothing held without the option
    assert set(meta["cpu_idle"]) >= {"driver", "governor", "states", "guest_halt_poll_ns"}
    hists = sorted(p.name for p in (run_dir / "hist").iterdir())
    assert len(hists) == 2 and all(h.endswith(".hlog") for h in hists)


def test_bad_scenario_exits_2_without_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TINY.format(transports='["ws"]').replace("rate = 50", "rate = -5"))
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress"]) == 2
    assert "rate" in capsys.readouterr().err
    assert not out.exists()  # no run directory, hence nothing started


@pytest.mark.timeout(60)
def test_server_crash_marks_cell_failed(tmp_path: Path) -> None:
    killers: list[threading.Timer] = []

    def kill_later(server: Started) -> None:
        t = threading.Timer(1.0, os.kill, (server.pid, signal.SIGKILL))
        t.start()
        killers.append(t)

    scen = scenario.load(_write(tmp_path, '["ws"]'))
    out = tmp_path / "results"
    result = runner.run_scenario(
        scen, runner.RunOptions(out=out, progress=False, on_server_started=kill_later)
    )
    for t in killers:
        t.join()
    assert result.status == "incomplete"
    df = pd.read_csv(result.run_dir / "cells.csv")
    assert len(df) == 1
    assert df["status"][0] == "failed"
    assert "server" in df["reason"][0] and "-9" in df["reason"][0]
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["status"] == "incomplete" and "failed" in meta["reason"]
    assert meta["runs_by_status"] == {"ok": 0, "failed": 1, "skipped": 0, "left-out": 0}


def test_a_request_refused_by_a_dead_server_names_the_server(tmp_path: Path) -> None:
    """The runner's request can meet a server killed under it before any check does (seen
    in CI once servers started faster: "URLError: Connection refused" as the reason):
    alive.died names the exit behind the error; with nothing dead it says nothing."""
    from pushbench.procs import ProcessGroup
    from pushbench.runner import alive

    code = "import sys, time; print('up', flush=True); time.sleep(0.2); sys.exit(3)"
    group = ProcessGroup(tmp_path / "logs")
    try:
        quick = group.start("server", [sys.executable, "-c", code], ready_prefix="up")
        assert alive.died(group, wait_s=10.0) == f"server (pid {quick.pid}) exited with 3"
        group.stop_all()
        calm = ProcessGroup(tmp_path / "logs2")
        sleeper = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"]
        calm.start("server", sleeper, ready_prefix="up")
        started = time.monotonic()
        assert alive.died(calm, wait_s=0.3) == ""
        assert time.monotonic() - started >= 0.3
        calm.stop_all()
    finally:
        group.stop_all()


def _workers_of(run_dir: Path) -> list[int]:
    """Pids of live processes whose command line names ``run_dir`` (the client workers)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(run_dir).encode() in cmdline:
                pids.append(int(proc.name))
    return pids


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(
    tmp_path: Path, sig: signal.Signals, wait_for: str, after_s: float, count: int = 1
) -> int:
    """Run the tiny scenario in a subprocess, send ``sig`` ``after_s`` after ``count``
    files matching ``wait_for`` (a glob under the results folder) appear → the exit code."""
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "pushbench.cli", "run", str(_write(tmp_path))]
    proc = subprocess.Popen(
        [*argv, "--out", str(out), "--no-progress"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # An xdist worker ignores SIGINT, and a child inherits that (Python then installs
        # no KeyboardInterrupt handler): the run must get Ctrl-C as a terminal gives it.
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (
            out.exists() and len(list(out.glob(wait_for))) >= count
        ):
            time.sleep(0.05)
        assert len(list(out.glob(wait_for))) >= count, f"{count} × {wait_for} never appeared"
        time.sleep(after_s)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode is not None, err.decode()
    print(err.decode(errors="replace"))  # shown when the caller's assertion fails
    return proc.returncode


@pytest.mark.timeout(60)
def test_ctrl_c_keeps_measured_cells_and_exits_130(tmp_path: Path) -> None:
    # once the second cell's worker has started (the first cell's row is written by then):
    # a fixed delay after the first row could land after the run's end on a busy machine
    assert _interrupt(tmp_path, signal.SIGINT, "*/logs/*-r0/worker0.log", 0.3, count=2) == 130
    run_dir = _run_dir(tmp_path / "results")
    df = pd.read_csv(run_dir / "cells.csv")
    assert list(df["status"]) == ["ok"]
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "incomplete" and meta["reason"] == "interrupted"
    assert _workers_of(run_dir) == []


SELFCHECK = """
name = "selfcheck-short"
stacks = "aiohttp"
transports = "ws"
subscribers = 2
rate = 200
payload_size = 100
duration_s = 3
warmup_s = 0.5
repeats = 1
client_processes = 1

[[cells]]
checks = {}

[[cells]]
checks = { delay_ms = 5 }

[[cells]]
checks = { pause_ms = 200, pause_at_s = 1.5 }

[[cells]]
checks = { drop_every = 100 }

# Chat cells: the clients publish (WebSocket frames; POST /publish for SSE), each message
# with its scheduled time. The pause counts from the first client publish, which comes the
# start-up of the other workers (Δ, up to 2 s on a loaded machine) before the warm-up:
# pause_at_s = 3 lands 3.7 - Δ s into the 4 s window, inside it for any Δ up to 3.2 s.
[[cells]]
transports = ["ws", "sse"]
subscribers = 4
publishers = 2
duration_s = 4
checks = {}

[[cells]]
transports = ["ws", "sse"]
subscribers = 4
publishers = 2
duration_s = 4
checks = { delay_ms = 5 }

[[cells]]
transports = ["ws", "sse"]
subscribers = 4
publishers = 2
duration_s = 4
checks = { pause_ms = 200, pause_at_s = 3 }
"""


@pytest.mark.timeout(300)
def test_instrument_self_checks(tmp_path: Path) -> None:
    """The issue's three self-checks of the instrument, through the real runner and server:
    a known 5 ms delay shifts latency by about 5 ms (± 0.5 ms in `pushbench run selfcheck`);
    a 200 ms pause shows in latency from the schedule and not in latency from the actual
    publish; dropping every 100th message
    is reported as exactly 1 % loss. The delay and the pause also with the clients
    publishing (chat cells, WebSocket and SSE), each against its own baseline."""
    path = tmp_path / "selfcheck.toml"
    path.write_text(SELFCHECK)
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    cells = pd.read_csv(_run_dir(out) / "cells.csv").set_index("cell_id")
    assert (cells["status"] == "ok").all(), cells["reason"].tolist()
    ticker = cells[cells.publishers == 0]
    chat = {t: cells[(cells.publishers == 2) & (cells.transport == t)] for t in ("ws", "sse")}
    assert len(ticker) == 4 and all(len(c) == 3 for c in chat.values())
    for df in (ticker, *chat.values()):
        base = df[(df.check_delay_ms == 0) & (df.check_pause_ms == 0) & (df.check_drop_every == 0)]
        delay, pause = df[df.check_delay_ms == 5], df[df.check_pause_ms == 200]
        shift_us = float(delay["lat_p50_us"].iloc[0] - base["lat_p50_us"].iloc[0])
        # The delay is applied and seen. Its accuracy (5 ± 0.5 ms) is a measurement on a
        # quiet machine, asserted by `pushbench run selfcheck` (scenarios/selfcheck.toml),
        # not here, where the suite shares the cores (CI once read 5,506 µs; on a slower
        # host with steal time, 3,366 µs for the chat SSE cell, its baseline p50 inflated).
        # Code that does not apply the delay reads ~0.
        assert 2500 <= shift_us <= 7500, (df.index.tolist(), shift_us)
        # corrected: the pause is there; uncorrected: it vanishes. The 200 ms pause holds
        # ~40 of each subscriber's 600 messages (6.7 %), so it shows in the corrected p99.
        assert float(pause["lat_max_us"].iloc[0]) >= 150_000, pause.index.tolist()
        assert float(pause["lat_p99_us"].iloc[0]) >= 100_000, pause.index.tolist()
        # The messages the pause held back (published ≥ 100 ms after their schedule) are
        # there, and from their publish they arrived at once. Not the uncorrected p99 of the
        # cell (`pushbench run selfcheck` asserts its max on a quiet machine): here the suite
        # shares the cores, and in CI a client stall just before the pause left messages
        # published but not yet written when the loop blocked — delivered 185 ms after their
        # publish, which is what happened to them, and 7 % of the cell's receipts.
        held = _held_back(_run_dir(out), str(pause.index[0]))
        assert len(held) >= 20, (pause.index.tolist(), len(held))
        assert float(np.median(held)) < 50_000, (pause.index.tolist(), np.median(held))
    drop = ticker[ticker.check_drop_every == 100]
    assert int(drop["msgs_expected"].iloc[0]) == 2 * 200 * 3
    assert int(drop["msgs_lost"].iloc[0]) == int(drop["msgs_expected"].iloc[0]) // 100
    assert float(drop["delivered_fraction"].iloc[0]) == pytest.approx(0.99)
    for df in chat.values():  # nothing lost to the faults or to the publishers
        assert (df["delivered_fraction"] == 1.0).all(), df["delivered_fraction"].tolist()
    assert ticker["publish_overruns"].isna().all()  # a ticker cell has no publishing clients
    # POST /publish waits for answers: the 200 ms stall filled the publishers' bound
    sse_pause = chat["sse"][chat["sse"].check_pause_ms == 200]
    assert int(sse_pause["publish_overruns"].iloc[0]) > 0


def _held_back(run_dir: Path, cell_id: str) -> Any:
    """Uncorrected latency (µs) of the receipts of ``cell_id``'s first repeat whose publish
    came ≥ 100 ms after their schedule (the messages a server pause held back)."""
    out = []
    for path in sorted((run_dir / "work" / f"{cell_id}-r0").glob("worker*.npz")):
        with np.load(path) as z:
            late = (z["pub_ns"] - z["sched_ns"]) >= 100_000_000
            out.append((z["recv_ns"][late] - z["pub_ns"][late]) / 1e3)
    return np.concatenate(out) if out else np.array([])


CHAT = """
name = "chat-short"
stacks = "aiohttp"
transports = ["ws", "sse"]
subscribers = 4
publishers = 2
rate = 100
payload_size = 50
duration_s = 2
warmup_s = 0.5
repeats = 1
"""


@pytest.mark.timeout(90)
def test_chat_cells_publish_from_the_clients(tmp_path: Path) -> None:
    """Publishing clients (no ticker): every subscriber gets every message, once, in order;
    also memory per connection, the latency series and the live status files are written."""
    path = tmp_path / "chat.toml"
    path.write_text(CHAT)
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    run_dir = _run_dir(out)
    df = pd.read_csv(run_dir / "cells.csv")
    assert list(df["status"]) == ["ok", "ok"], df["reason"].tolist()
    # 100 msgs/s in total × 2 s, each to 4 subscribers (± the edges of the window)
    assert df["msgs_expected"].between(4 * 190, 4 * 210).all()
    assert (df["msgs_delivered"] == df["msgs_expected"]).all()
    assert (df[["msgs_lost", "msgs_duplicated", "msgs_out_of_order"]] == 0).all().all()
    assert (df["lat_p50_us"] > 0).all()
    assert (df["client_processes"] == 2).all()  # publishers in a worker of their own
    assert df["publish_lag_max_us"].notna().all()
    assert (df["server_rss_growth_bytes_per_conn"].notna()).all()
    assert (df["delivered_msgs_per_client_cpu_s"] > 0).all()
    for cell_id in df["cell_id"]:
        series = pd.read_csv(run_dir / "series" / f"{cell_id}-r0.csv")
        assert series["count"].sum() > 0 and (series["max_us"] >= series["p50_us"]).all()
        status = json.loads(
            (run_dir / "work" / f"{cell_id}-r0" / "worker0.status.json").read_text()
        )
        assert status["messages"] > 0


SATURATION = """
name = "sat-short"
stacks = "aiohttp"
transports = ["ws", "shortpoll"]
subscribers = 2
rate = [20, 40]
poll_interval_s = 0.2
payload_size = 50
duration_s = 1.5
warmup_s = 0.3
repeats = 1

[slo]
p99_ms = 60
probes = 1
"""


@pytest.mark.timeout(120)
def test_saturation_search_probes_and_writes_saturation_csv(tmp_path: Path) -> None:
    """WebSocket at 20/40 msg/s meets a 60 ms p99 SLO, so the search probes 80 msg/s;
    short polling every 200 ms cannot (its p99 is about the interval), so it probes
    below the lowest rate and reports no passing rate and no saturated side."""
    path = tmp_path / "sat.toml"
    path.write_text(SATURATION)
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    run_dir = _run_dir(out)
    df = pd.read_csv(run_dir / "cells.csv")
    assert len(df) == 6 and (df["status"] == "ok").all()
    probes = df[df["probe"]]
    assert sorted(zip(probes["transport"], probes["rate_msgs_per_s"], strict=True)) == [
        ("shortpoll", 10.0),
        ("ws", 80.0),
    ]
    sat = pd.read_csv(run_dir / "saturation.csv").set_index("transport")
    assert sat.loc["ws", "rates_tried"] == "20;40;80"
    assert sat.loc["ws", "max_rate"] == 80.0 and pd.isna(sat.loc["ws", "lowest_failing"])
    assert sat.loc["shortpoll", "rates_tried"] == "10;20;40"
    assert pd.isna(sat.loc["shortpoll", "max_rate"])
    assert sat.loc["shortpoll", "lowest_failing"] == 10.0
    assert sat.loc["shortpoll", "saturated_side"] == "neither"


@pytest.mark.timeout(60)
def test_sigterm_ends_the_run_incomplete_and_exits_143(tmp_path: Path) -> None:
    # inside the first cell, once its client worker has started
    assert _interrupt(tmp_path, signal.SIGTERM, "*/logs/*/worker0.log", 0.5) == 143
    run_dir = _run_dir(tmp_path / "results")
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["status"] == "incomplete" and meta["reason"] == "terminated (SIGTERM)"
    assert _workers_of(run_dir) == []


def test_a_run_that_measured_nothing_is_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Browser cells without Chromium are skipped with the install hint, and a run of
    skipped cells only is not called complete."""
    monkeypatch.setattr(browser, "_OVERRIDE", str(tmp_path / "no-such-chromium"))
    path = tmp_path / "browser.toml"
    path.write_text(TINY.format(transports='["sse"]') + 'client = "browser"\n')
    out = tmp_path / "results"
    result = runner.run_scenario(scenario.load(path), runner.RunOptions(out=out, progress=False))
    assert result.status == "incomplete"
    assert result.rows[0]["status"] == "skipped" and "chromium" in result.rows[0]["reason"]
    assert result.reason.startswith("nothing measured")


IDLE = """
name = "idle-short"
stacks = "aiohttp"
transports = ["ws", "sse"]
subscribers = 50
rate = 0
heartbeat_s = 0.5
duration_s = 1.5
warmup_s = 0.2
repeats = 1
"""


@pytest.mark.timeout(60)
def test_idle_cells_measure_memory_and_keepalive_bytes(tmp_path: Path) -> None:
    path = tmp_path / "idle.toml"
    path.write_text(IDLE)
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    df = pd.read_csv(_run_dir(out) / "cells.csv")
    assert (df["status"] == "ok").all(), df["reason"].tolist()
    assert (df["msgs_expected"] == 0).all() and (df["lat_count"] == 0).all()
    assert (df["server_rss_growth_bytes_per_conn"] > 0).all()  # 50 connections cost memory
    # Memory as a slope: a reading with 25 up (the worker waited for the runner), one
    # with 50; every divisor the connections open; the server's sockets read by ss.
    assert (df["mem_conns_open"] == 50).all()
    assert df["mem_marginal_bytes_per_conn"].notna().all()
    # The line through the two readings: what it leaves over the slope at 50 is the
    # first connections' set-up; a line that runs below idle (RSS grew faster from 25
    # to 50 than from 0 to 25, as an SSE cell's can by a page) gives none, not a
    # negative figure.
    over = (df["server_rss_growth_bytes_per_conn"] - df["mem_marginal_bytes_per_conn"]) * 50
    first = df["mem_first_conn_bytes"]
    assert (first.isna() == (over < 0)).all(), (first.tolist(), over.tolist())
    assert first.dropna().tolist() == pytest.approx(over[first.notna()].tolist(), abs=1.0)
    assert (df["kernel_sock_source"] == "ss").all()
    assert (df["kernel_sock_bytes_per_conn"] >= 0).all()
    assert (df["bytes_per_conn_per_s"] > 0).all()  # heartbeats every 0.5 s
    assert (df["connect_p50_us"] > 0).all()


def test_progress_line_reads_the_workers_status_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Delivered msgs/s and the last second's p99 come from the workers, not the server."""
    files = [tmp_path / "w0.status.json", tmp_path / "w1.status.json"]
    progress = Progress(True, 3, time.monotonic())
    progress.cell(0, "aiohttp-ws-sub2-rate50-p32")
    progress.watch(files)
    for t_ns, counts, p99s in (
        (1_000_000_000, (100, 50), (800.0, None)),
        (2_000_000_000, (1100, 550), (900.0, 1200.0)),
    ):
        for path, n, p99 in zip(files, counts, p99s, strict=True):
            path.write_text(json.dumps({"t_ns": t_ns, "messages": n, "p99_us": p99}))
        progress._next_poll = 0.0
        progress.poll()
    assert progress.rate == 1500.0 and progress.p99_us == 1200.0
    assert "1,500 msgs/s delivered" in capsys.readouterr().err


def _external_aiohttp() -> registry.Stack:
    """A stack row of the external kind whose command line is really our aiohttp server."""
    return registry.Stack(
        name="aiohttp-ext",
        label="aiohttp, started as an external command",
        serves=registry.stack("aiohttp").serves,
        argv=(
            sys.executable,
            "-m",
            "pushbench.cli",
            "serve",
            "--stack",
            "aiohttp",
            "--host",
            "{host}",
            "--port",
            "{port}",
        ),
        ready_line="pushbench serve:",
    )


def _on_external(path: Path) -> Path:
    """The scenario file at ``path`` with its cells on the test's external stack row."""
    path.write_text(path.read_text().replace('stacks = "aiohttp"', 'stacks = "aiohttp-ext"'))
    return path


@pytest.mark.timeout(60)
def test_an_external_stack_row_is_started_from_its_argv(tmp_path: Path) -> None:
    """A stack row with ``argv`` (the way a Node server would be added) is started with a
    free loopback port filled in, found ready by its ready line, and measured like any."""
    servers: list[Started] = []
    out = tmp_path / "results"
    with registry.extended(stacks=(_external_aiohttp(),)):
        scen = scenario.load(_on_external(_write(tmp_path, '["ws"]')))
        result = runner.run_scenario(
            scen, runner.RunOptions(out=out, progress=False, on_server_started=servers.append)
        )
    assert result.status == "complete", result.reason
    argv = [str(a) for a in servers[0].proc.args]  # type: ignore[union-attr]
    port = argv[argv.index("--port") + 1]
    assert port.isdigit() and int(port) > 0 and "{port}" not in argv
    assert f"127.0.0.1:{port}" in servers[0].ready_line
    df = pd.read_csv(result.run_dir / "cells.csv")
    assert list(df["stack"]) == ["aiohttp-ext"] and list(df["status"]) == ["ok"]
    assert (df["msgs_delivered"] == df["msgs_expected"]).all() and df["msgs_expected"][0] == 200
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["cells_schema"] == CELLS_SCHEMA_VERSION


def test_an_external_stack_skips_cells_needing_serve_options(tmp_path: Path) -> None:
    """An external server gets only host and port: a heartbeat cell is skipped, with why,
    before anything is started."""
    path = tmp_path / "hb.toml"
    path.write_text(TINY.format(transports='["sse"]') + "heartbeat_s = 1\n")
    with registry.extended(stacks=(_external_aiohttp(),)):
        scen = scenario.load(_on_external(path))
        result = runner.run_scenario(scen, runner.RunOptions(out=tmp_path / "r", progress=False))
    row = result.rows[0]
    assert row["status"] == "skipped" and "heartbeat_s" in row["reason"]
    assert not (result.run_dir / "logs").exists()
    # the heartbeat an external server is expected to use is the scenario default
    default = scenario.load(_write(tmp_path, '["ws"]')).cells()[0].heartbeat_s
    assert default == EXTERNAL_HEARTBEAT_S


def test_recorded_distributions_come_from_the_stack_rows() -> None:
    extra = dataclasses.replace(_external_aiohttp(), distributions=("some-node-bridge",))
    with registry.extended(stacks=(extra,)):
        names = distributions()
    for row in registry.stacks():
        assert set(row.distributions) <= set(names)
    assert "some-node-bridge" in names and {"locust", "playwright"} <= set(names)
    assert len(names) == len(set(names))


def test_cells_csv_header_is_the_schema(tmp_path: Path) -> None:
    write_cells(tmp_path / "cells.csv", [])
    header = (tmp_path / "cells.csv").read_text().splitlines()[0].split(",")
    assert header == ALL_COLUMNS == [*metrics.COLUMNS, *runner.EXTRA_COLUMNS]


# --- what a run prints: progress, the summary, the report, the guide; where latest points ---


@pytest.mark.timeout(90)
def test_a_run_ends_with_its_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stderr is not a terminal here (captured, as in CI or ``| tee``): a plain progress line
    per run with the ETA; stdout ends with the summary table, the guide's verdicts and the
    report's path, and the report is in the run directory."""
    out = tmp_path / "results"
    assert cli.main(["run", str(_write(tmp_path)), "--out", str(out)]) == 0
    run_dir = _run_dir(out)
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.startswith("pushbench run: run ")]
    assert "\r" not in captured.err and "\x1b" not in captured.err
    # a line as each run starts (in the round's shuffled order): each cell once, as 1/2 or 2/2
    runs = {ln.split()[3]: ln.split()[4].split("-")[1] for ln in lines}
    assert set(runs) == {"1/2", "2/2"} and set(runs.values()) == {"ws", "sse"}, lines
    assert all(" elapsed " in ln and " ETA " in ln for ln in lines), lines
    text = captured.out
    assert "p50 µs" in text and "CPU µs/msg" in text and "flags" in text
    for cell_id in pd.read_csv(run_dir / "cells.csv")["cell_id"]:
        assert any(ln.startswith(cell_id) and "100.00%" in ln for ln in text.splitlines())
    # a verdict, or (a loaded machine: flagged cells) the cells left out and why
    assert "Decision guide" in text and "**" not in text
    assert "Latency (p99):" in text or ("no cell qualified" in text and "flagged" in text)
    assert text.rstrip().splitlines()[-1].startswith(f"report: {run_dir / 'report.html'}")
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
    assert (out / "latest").resolve() == run_dir.resolve()


@pytest.mark.timeout(60)
def test_no_report_prints_the_summary_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    argv = ["run", str(_write(tmp_path, '["ws"]')), "--out", str(out), "--no-progress"]
    assert cli.main([*argv, "--no-report"]) == 0
    run_dir = _run_dir(out)
    captured = capsys.readouterr()
    assert not (run_dir / "report.html").exists() and not (run_dir / "report.md").exists()
    assert "p99 µs" in captured.out and "Decision guide" not in captured.out
    assert "report:" not in captured.out
    assert captured.err.strip() == f"pushbench run: complete: {run_dir}"  # no progress


def test_latest_is_not_moved_by_an_incomplete_run(tmp_path: Path) -> None:
    """An interrupted run (Ctrl-C in its first cell) leaves ``latest`` on the last complete
    run, and ``update_latest`` refuses a run that is not stamped complete."""
    out = tmp_path / "results"
    previous = results.new_run_dir(out)
    results.atomic_write_json(previous / "metadata.json", {"status": "complete"})
    results.update_latest(previous)

    def interrupt(server: Started) -> None:
        raise KeyboardInterrupt

    scen = scenario.load(_write(tmp_path, '["ws"]'))
    result = runner.run_scenario(
        scen, runner.RunOptions(out=out, progress=False, on_server_started=interrupt)
    )
    assert result.status == "incomplete" and result.reason == "interrupted"
    assert results.resolve_run(out / "latest") == previous.resolve()
    with pytest.raises(ValueError, match="not complete"):
        results.update_latest(result.run_dir)
    assert results.resolve_run(out / "latest") == previous.resolve()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_for_logs_with_an_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a terminal: a line when each run starts and one every ~10 s inside it, each
    with run i/n, elapsed, the ETA (the estimate left, at the pace measured so far) and the
    delivered rate once the workers report one."""
    clock = _Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    buf = io.StringIO()
    progress = Progress("lines", 2, clock.now, estimates=[10.0, 10.0], extra_s=5.0, stream=buf)
    progress.cell(0, "cell-a")
    assert buf.getvalue() == "pushbench run: run 1/2 cell-a  elapsed 0s  ETA 25s\n"
    clock.now += 4
    assert progress.eta_s() == pytest.approx(21.0)  # 25 s estimated, 4 s into it
    progress.rate = 1500.0
    progress.poll()  # within 10 s of the last line: nothing
    assert buf.getvalue().count("\n") == 1
    clock.now += 7
    progress.poll()
    assert buf.getvalue().splitlines()[-1] == (
        "pushbench run: run 1/2 cell-a  elapsed 11s  ETA 15s  1,500 msgs/s delivered"
    )
    clock.now += 9  # the first run took 20 s for its 10 estimated: the pace doubles the ETA
    progress.cell(1, "cell-b")
    assert progress.eta_s() == pytest.approx(30.0)  # (10 + 5) estimated × 2
    assert buf.getvalue().splitlines()[-1] == (
        "pushbench run: run 2/2 cell-b  elapsed 20s  ETA 30s"
    )
    progress.done()  # a log gets no trailing control characters
    assert "\r" not in buf.getvalue() and "\x1b" not in buf.getvalue()


def test_the_live_line_has_an_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    buf = io.StringIO()
    progress = Progress(True, 3, clock.now, estimates=[60.0] * 3, stream=buf)
    progress.cell(0, "cell-a")
    clock.now += 30
    progress.poll()
    assert buf.getvalue().endswith("\r\x1b[Krun 1/3 cell-a  elapsed 30s  ETA 2m30s")
    assert format_duration(3725) == "1h02m"


def _row(cell_id: str, status: str = "ok", **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cell_id": cell_id,
        "status": status,
        "reason": "",
        "lat_count": 100,
        "lat_p50_us": 500.0,
        "lat_p99_us": 900.0,
        "lat_max_us": 1200.0,
        "delivered_fraction": 1.0,
        "delivered_msgs_per_s": 100.0,
        "server_cpu_us_per_msg": 12.5,
        "msgs_lost": 0,
        "harness_bound": False,
        "probe": False,
    }
    if status != "ok":
        row.update(dict.fromkeys(list(row)[3:-1]), harness_bound=None)
    return row | values


def test_the_summary_table_has_medians_maxima_and_flags() -> None:
    rows = [
        _row("a", lat_p50_us=400.0, lat_p99_us=800.0, lat_max_us=5000.0),
        _row("a", lat_p50_us=600.0, lat_p99_us=1000.0, harness_bound=True),
        _row("a", "failed", reason="worker0 exited with 1: boom\ntraceback"),
        _row("b", "skipped", reason="client = 'browser' needs Chromium"),
        _row("c", msgs_lost=3, delivered_fraction=0.97, probe=True),
    ]
    a, b, c = summarize(rows)
    assert (a.ok, a.runs, a.p50_us, a.p99_us, a.max_us) == (2, 3, 500.0, 900.0, 5000.0)
    assert a.flags == ("failed 1/3", "harness-bound(client core ≥ 90%)") and a.reasons == (
        "worker0 exited with 1: boom",
    )
    assert (b.ok, b.p99_us, b.flags) == (0, None, ("skipped",))
    assert c.flags == ("lost", "probe")
    table = format_table([a, b, c]).splitlines()
    assert table[0].split() == [
        "cell", "ok", "p50", "µs", "p99", "µs", "max", "µs", "delivered", "msgs/s", "CPU",
        "µs/msg", "flags",
    ]  # fmt: skip
    assert table[1].split()[:9] == [
        "a", "2/3", "500", "900", "5,000", "100.00%", "100", "12.5", "failed",
    ]  # fmt: skip
    assert table[1].endswith("failed 1/3, harness-bound(client core ≥ 90%)")
    assert table[2].split() == ["b", "0/1", "—", "—", "—", "—", "—", "—", "skipped"]
    assert "97.00%" in table[3]
    assert "  a: worker0 exited with 1: boom" in table
    assert "  b: client = 'browser' needs Chromium" in table


def test_the_guide_prints_its_verdicts_as_plain_text() -> None:
    """What ``pushbench run`` (and so ``make bench``) ends with: each situation's verdicts
    or the scenario that measures it, without the report's inline marks."""
    text = guide.text(load_run(FIXTURE))
    lines = text.splitlines()
    assert lines[0].startswith("Decision guide")
    assert "  Server-only push at a low rate, decided at 4 subscribers · 50 msg/s · 64 B:" in lines
    assert any(ln.startswith("    Latency (p99): ") for ln in lines)
    assert any(ln.startswith("    Cost (server CPU): ") for ln in lines)
    assert any(ln.startswith("    Simplicity: ") for ln in lines)
    assert "  Chat (both ways): not measured in this run (make bench SCENARIO=chat)" in lines
    assert "**" not in text and "`" not in text
    assert max(len(ln) for ln in lines) <= 100
    # the verdicts are the report's own, word for word
    report = " ".join(
        " ".join(b.items)
        for s in guide.section(load_run(FIXTURE)).subsections
        for b in s.blocks
        if isinstance(b, doc.Bullets)
    )
    assert " ".join(text.split()).count("Latency (p99): ") == report.count("Latency (p99): ")


def _result(**extra: Any) -> WorkerResult:
    raw: dict[str, Any] = {k: 0 for k in WorkerResult.required()}
    raw.update(
        complete=True,  # a bool, as every worker kind writes it (0 is not a record)
        transport="ws",
        reason="completed",
        bytes_source="socket",
        totals={k: 0 for k in REQUIRED_TOTALS},
        per_connection=[],
    )
    return WorkerResult.from_dict(raw | extra)


def test_client_processes_counts_what_ran() -> None:
    """One process per asyncio worker; Locust's master and the workers that ran users;
    the browser's own processes when its worker read them."""
    assert processes_ran(_result()) == 1
    assert processes_ran(_result(locust={"workers": 0, "processes": [{"role": "local"}]})) == 1
    workers = [{"role": "worker"}, {"role": "worker"}]
    assert processes_ran(_result(locust={"workers": 2, "processes": workers})) == 3
    assert processes_ran(_result(client="browser", cpu_processes=5)) == 5
    assert processes_ran(_result(client="browser", cpu_processes=0)) == 1


# --- interleaved rounds -------------------------------------------------------------------


def _ran(df: pd.DataFrame) -> list[tuple[str, int, int]]:
    """(cell id, repeat, round) of each row, in the order the runs ran."""
    ran = df.sort_values("run_index")
    assert list(ran["run_index"]) == list(range(len(df)))
    return list(zip(ran["cell_id"], ran["repeat"], ran["round"], strict=True))


@pytest.mark.timeout(120)
def test_repeats_run_in_rounds_shuffled_by_the_recorded_seed(tmp_path: Path) -> None:
    """3 cells × 2 repeats: round k runs every cell's repeat k once, in an order drawn
    from the seed given with --seed (recorded), never back to back per cell; cells.csv
    still lists the rows in scenario order, each with its round and place in the run."""
    path = tmp_path / "rounds.toml"
    text = TINY.format(transports='["ws", "sse", "longpoll"]')
    path.write_text(
        text.replace("repeats = 1", "repeats = 2").replace("duration_s = 2", "duration_s = 1")
    )
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress", "--seed", "1"]) == 0
    run_dir = _run_dir(out)
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["order_seed"] == 1 and meta["rounds"] == 2
    df = pd.read_csv(run_dir / "cells.csv")
    assert (df["status"] == "ok").all()
    listed = [c.cell_id for c in scenario.load(path).cells()]
    assert list(zip(df["cell_id"], df["repeat"], strict=True)) == [
        (c, r) for c in listed for r in (0, 1)
    ]
    ran = _ran(df)
    assert [rnd for _, _, rnd in ran] == [0, 0, 0, 1, 1, 1]
    assert all(rep == rnd for _, rep, rnd in ran)  # repeats are rounds
    first, second = [c for c, _, _ in ran[:3]], [c for c, _, _ in ran[3:]]
    assert sorted(first) == sorted(second) == sorted(listed)  # every cell once per round
    assert first != listed and second != listed and first != second  # shuffled per round
    plan = rounds.interleave(
        [(c, r) for c in scenario.load(path).cells() for r in (0, 1)], random.Random(1)
    )
    assert ran == [(p.cell.cell_id, p.repeat, p.round) for p in plan]  # the seed's order
    report = (run_dir / "report.md").read_text()
    assert "2 rounds, every cell once per round, shuffled with seed 1" in report


def _fake_cells(factor: dict[str, float]) -> Any:
    """A run_one that starts nothing: every run ok, p99 = rate × factor[transport] ms."""

    def run_one(cell: scenario.Cell, repeat: int, *args: Any) -> dict[str, Any]:
        row = bare_row(cell, repeat, "ok", "")
        p99_us = cell.rate * factor.get(cell.transport, 1.0) * 1000
        row.update(
            delivered_fraction=1.0,
            lat_p99_us=p99_us,
            lat_all_p99_us=p99_us,
            server_cpu_fraction=0.5,
            harness_bound=False,
        )
        return row

    return run_one


def _order(result: runner.RunResult) -> list[tuple[str, int]]:
    return [(r["cell_id"], r["repeat"]) for r in sorted(result.rows, key=lambda r: r["run_index"])]


def test_the_same_seed_runs_the_same_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--seed N repeats an order; without it a fresh seed is drawn and recorded, and
    giving that one back repeats that run's order; other seeds give other orders."""
    monkeypatch.setattr(orchestrate, "run_one", _fake_cells({}))
    path = _write(tmp_path, '["ws", "sse", "longpoll", "shortpoll"]')
    path.write_text(path.read_text().replace("repeats = 1", "repeats = 3"))
    sc, options = scenario.load(path), runner.RunOptions(out=tmp_path / "r", progress=False)
    assert _order(runner.run_scenario(sc, options, seed=5)) == _order(
        runner.run_scenario(sc, options, seed=5)
    )
    fresh = runner.run_scenario(sc, options)
    seed = json.loads((fresh.run_dir / "metadata.json").read_text())["order_seed"]
    assert isinstance(seed, int)
    assert _order(fresh) == _order(runner.run_scenario(sc, options, seed=seed))
    orders = {tuple(_order(runner.run_scenario(sc, options, seed=s))) for s in range(4)}
    assert len(orders) > 1


SATURATION_2 = SATURATION.replace('transports = ["ws", "shortpoll"]', 'transports = ["ws", "sse"]')
SATURATION_2 = SATURATION_2.replace("repeats = 1", "repeats = 2").replace(
    "probes = 1", "probes = 2"
)


def test_saturation_probes_run_in_rounds_across_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the listed rounds, each probe round runs the next wanted repeat of every
    group still searching, shuffled; a probe's repeats come in consecutive rounds; the
    answer is the one a search group after group gives; run i/n counts every run."""
    factor = {"ws": 1.0, "sse": 2.0}  # p99 (ms) = rate × factor: sse fails sooner
    monkeypatch.setattr(orchestrate, "run_one", _fake_cells(factor))
    path = tmp_path / "sat.toml"
    path.write_text(SATURATION_2)
    sc = scenario.load(path)
    options = runner.RunOptions(out=tmp_path / "r", progress="lines")
    result = runner.run_scenario(sc, options, seed=3)
    assert result.status == "complete"
    df = pd.read_csv(result.run_dir / "cells.csv")
    ran = _ran(df)
    assert [rnd for _, _, rnd in ran[:8]] == [0] * 4 + [1] * 4  # 2 groups × 2 rates
    probes = df[df["probe"]].sort_values("run_index")
    assert len(probes) == 2 * 2 * 2  # 2 groups × 2 probes × 2 repeats
    for rnd, batch in probes.groupby("round"):
        assert sorted(batch["transport"]) == ["sse", "ws"], rnd  # one of each group per round
    for _, runs in probes.groupby("cell_id"):
        assert list(runs["repeat"]) == [0, 1] and list(runs["round"].diff().dropna()) == [1]
    assert list(probes["round"].unique()) == [2, 3, 4, 5]
    # the same answer as searching one group after the other
    expected = []
    rows: list[dict[str, Any]] = [r for r in result.rows if not r["probe"]]
    fake = _fake_cells(factor)
    for group, cells in saturation.slo_groups(orchestrate.selected(sc, options)).items():

        def measure(cell: scenario.Cell, repeat: int, probe: bool) -> dict[str, Any]:
            rows.append(fake(cell, repeat) | {"probe": probe})
            return rows[-1]

        quiet = Progress("off", 0, 0.0)
        expected.append(saturation.search(group, cells, rows, measure, options, quiet))
    sat = pd.read_csv(result.run_dir / "saturation.csv")
    assert list(sat["rates_tried"]) == [e["rates_tried"] for e in expected]
    assert list(sat["max_rate"]) == [e["max_rate"] for e in expected]
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("pushbench run:")]
    assert lines[-1].startswith(f"pushbench run: run {len(df)}/{len(df)} ")
    assert "probe round 6" in lines[-1] and "round 1/2" in lines[0]

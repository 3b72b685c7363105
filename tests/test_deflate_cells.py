"""permessage-deflate end to end: a short raw-stack ``compression = "deflate"`` cell
delivers every message with fewer bytes on the wire than the same cell ``off``, on
realistic JSON payloads; the scenario dimension leaves the default cells alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pushbench import cli, scenario
from pushbench.payloads import make_payload, make_payloads
from pushbench.report.load import load_run, point_label
from pushbench.runner.server import serve_argv

DEFLATE = """
name = "deflate-short"
stacks = "raw"
transports = ["ws"]
compression = ["off", "deflate"]
payload_kind = "json"
subscribers = 2
rate = 50
payload_size = 1000
duration_s = 1
warmup_s = 0.2
repeats = 1
client_processes = 1
"""


@pytest.mark.timeout(60)
def test_raw_deflate_cell_delivers_all_with_fewer_wire_bytes(tmp_path: Path) -> None:
    path = tmp_path / "deflate.toml"
    path.write_text(DEFLATE)
    out = tmp_path / "results"
    assert cli.main(["run", str(path), "--out", str(out), "--no-progress", "--no-report"]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()]
    df = pd.read_csv(run_dir / "cells.csv").set_index("cell_id")
    assert sorted(df.index) == [
        "raw-ws-sub2-rate50-p1000-deflate-pljson",
        "raw-ws-sub2-rate50-p1000-pljson",
    ]
    assert (df["status"] == "ok").all()
    assert (df["msgs_delivered"] == df["msgs_expected"]).all()
    off = df.loc["raw-ws-sub2-rate50-p1000-pljson"]
    deflate = df.loc["raw-ws-sub2-rate50-p1000-deflate-pljson"]
    assert off["compression"] == "off" and deflate["compression"] == "deflate"
    assert deflate["wire_bytes_in_per_msg"] < off["wire_bytes_in_per_msg"]
    assert deflate["bytes_in_per_msg"] < off["bytes_in_per_msg"]
    # the report keeps them apart: two points, labelled by what differs
    points = load_run(run_dir).points()
    assert len(points) == 2
    assert sorted(point_label(p) for p in points) == [
        "2 subscribers · 50 msg/s · 1000 B · deflate · json payload",
        "2 subscribers · 50 msg/s · 1000 B · json payload",
    ]


def test_defaults_change_no_id_or_argv() -> None:
    plain = scenario.loads('name = "x"\nstacks = "raw"\ntransports = ["ws", "sse"]\n')
    ws, _sse = plain.cells()
    assert ws.cell_id == "raw-ws-sub10-rate100-p100"
    assert ws.compression == "off" and ws.payload_kind == "filler"
    assert "--compression" not in serve_argv(ws)
    both = scenario.loads(
        'name = "x"\nstacks = "raw"\ntransports = ["ws", "sse"]\ncompression = ["off", "deflate"]\n'
    )  # sse has no compression: one cell, its column empty
    assert [c.cell_id for c in both.cells()] == [
        "raw-ws-sub10-rate100-p100",
        "raw-ws-sub10-rate100-p100-deflate",
        "raw-sse-sub10-rate100-p100",
    ]
    assert both.cells()[2].compression is None
    argv = serve_argv(both.cells()[1])
    assert argv[argv.index("--compression") + 1] == "deflate"


def test_json_payload_is_realistic_and_sized() -> None:
    text = make_payload("json", 1000)
    assert len(text) == 1000 and text.startswith('[{"sym":')
    assert make_payload("json", 1000) == text  # the same in every run
    assert make_payload("filler", 5) == "xxxxx"
    pool = make_payloads("json", 1000)
    assert len(set(pool)) == len(pool) >= 4 and all(len(p) == 1000 for p in pool)

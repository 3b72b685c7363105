"""The hand-written twins (``servers/minimal``): driven like any stack, same bytes as ours.

A twin is only worth comparing with if the project's clients measure it unchanged:
its envelopes, SSE events and poll answers must be byte for byte what pushbench's
service writes for the same message, and the runner must start, load and read it
from its registry row. The report's tax table pairs each stack with its twin.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest
from conftest import ServerProcess, start_twin

from pushbench import contract, registry, runner, scenario, sse
from pushbench.clients.recorder import Recorder
from pushbench.hub import Item
from pushbench.report import doc, tax
from pushbench.report.load import load_run
from pushbench.report.render import render
from pushbench.runner.server import unsupported_by_stack
from pushbench.service import batch

TWINS = tuple(s.name for s in registry.stacks() if s.twin_of is not None)
FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "report-run"


def test_every_framework_stack_has_a_twin_serving_the_four_push_protocols() -> None:
    assert {registry.stack(t).twin_of for t in TWINS} == {"aiohttp", "starlette"}
    for name in TWINS:
        row = registry.stack(name)
        assert row.external and row.takes("history") and row.takes("loop")
        assert set(row.serves) == {"ws", "sse", "longpoll", "shortpoll"}
        argv = row.command("127.0.0.1", 8080, history=4000, loop="uvloop")
        assert argv[argv.index("--history") + 1] == "4000" and "uvloop" in argv


def _cell(stack: str, transport: str, **params: object) -> scenario.Cell:
    text = f'stacks = "{stack}"\ntransports = "{transport}"\nrate = 1000\n'
    text += "".join(f"{k} = {json.dumps(v)}\n" for k, v in params.items())
    return scenario.loads(text, source="t.toml").cells()[0]


def test_an_external_row_told_history_and_loop_runs_the_cells_that_need_them() -> None:
    """A long poll at 1,000 msg/s needs 4,000 messages of history and a uvloop cell its
    loop: a twin is told both; an external row whose argv lacks them skips the cell."""
    for name in TWINS:
        assert unsupported_by_stack(_cell(name, "longpoll")) == ""
        assert unsupported_by_stack(_cell(name, "ws", loop="uvloop")) == ""
    bare = dataclasses.replace(
        registry.stack("aiohttp-twin"), name="bare-ext", argv=("srv", "{host}", "{port}")
    )
    with registry.extended(stacks=(bare,)):
        assert "history of 4,000" in unsupported_by_stack(_cell("bare-ext", "longpoll"))
        assert "loop = 'uvloop'" in unsupported_by_stack(_cell("bare-ext", "ws", loop="uvloop"))


# --- the bytes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    logs = tmp_path_factory.mktemp("twin-bytes")
    started: dict[str, ServerProcess] = {}
    try:
        for name in TWINS:
            started[name] = start_twin(logs / f"{name}.stderr", name)
        yield started
    finally:
        for server in started.values():
            server.stop()
    for server in started.values():
        server.check()


def _canonical(envelope: bytes, recorder: Recorder) -> contract.Envelope:
    """The envelope as the service would encode it, read on the clients' fast path."""
    env = contract.decode(envelope)
    assert envelope == contract.encode(env)
    assert recorder.record(0, envelope, 0) == env.seq
    return env


async def _received(server: ServerProcess, transport: str, count: int) -> list[bytes]:
    """What the twin wrote for ``count`` ticker messages on ``transport``, raw: WebSocket
    text frames, the SSE body, or the poll answers' bodies."""
    out: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url("/stats")) as resp:
            base = (await resp.json())["published"]
        query = {
            "topic": "bytes",
            "rate": "500",
            "size": "100",
            "count": str(count),
            "delay": "0.3",
        }
        async with session.post(server.url("/control/ticker"), params=query) as resp:
            assert resp.status == 200
        since = {"topic": "bytes", "since": str(base)}
        if transport == "ws":
            async with session.ws_connect(server.ws_url("/ws"), params=since) as ws:
                while len(out) < count:
                    out.append((await ws.receive_str(timeout=10)).encode())
        elif transport == "sse":
            async with session.get(server.url("/sse"), params=since) as resp:
                body = b""
                while body.count(b"\n\n") < count:
                    body += await asyncio.wait_for(resp.content.readany(), 10)
                out.append(body)
        else:
            timeout = "5" if transport == "longpoll" else "0"
            for _ in range(500):
                params = since | {"timeout": timeout}
                async with session.get(server.url("/poll"), params=params) as resp:
                    body = await resp.read()
                out.append(body)
                last = json.loads(body)["last"]
                if last >= base + count:
                    break
                since = since | {"since": str(last)}
                await asyncio.sleep(0.01)
    return out


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("transport", ["ws", "sse", "longpoll", "shortpoll"])
def test_twins_write_the_services_bytes(
    twins: dict[str, ServerProcess], name: str, transport: str
) -> None:
    """Every envelope is contract.encode's, every SSE event sse.event's, every poll answer
    service.batch's, and the clients' recorder reads them all on its fast path."""
    recorder = Recorder(1000)
    raw = asyncio.run(_received(twins[name], transport, 12))
    seqs: list[int] = []
    if transport == "ws":
        seqs = [_canonical(frame, recorder).seq for frame in raw]
    elif transport == "sse":
        events = sse.EventParser().feed(raw[0])
        assert raw[0] == b"".join(sse.event(e.data, int(e.id)) for e in events)
        seqs = [_canonical(e.data, recorder).seq for e in events]
    else:
        for body in raw:
            answer = json.loads(body)
            items = [
                Item("bytes", m["s"], contract.encode(_envelope(m))) for m in answer["messages"]
            ]
            since = items[0].seq - 1 if items else answer["last"]
            assert body == batch(items, since)
            assert recorder.record_batch(0, body, 0) == (answer["last"], len(items))
            seqs += [i.seq for i in items]
    assert recorder.slow_parses == 0 and recorder.parse_errors == 0
    assert len(seqs) == 12 and seqs == list(range(seqs[0], seqs[0] + 12))


def _envelope(m: dict[str, Any]) -> contract.Envelope:
    """A poll answer's message (parsed JSON) as the contract's record."""
    return contract.Envelope(m["t"], m["s"], m["sch"], m["pub"], m["p"])


# --- the runner and the report --------------------------------------------------------------

TINY = """
name = "twins"
stacks = {stacks}
transports = ["ws", "sse", "longpoll", "shortpoll"]
subscribers = 3
rate = 200
payload_size = 64
duration_s = 1
warmup_s = 0.5
repeats = 1
"""


@pytest.mark.timeout(240)
def test_the_runner_drives_every_twin_over_every_transport(tmp_path: Path) -> None:
    """Started from the registry row, loaded with POST /control/ticker, read from /stats:
    every message expected in the window reaches every subscriber, with no client error."""
    path = tmp_path / "twins.toml"
    path.write_text(TINY.format(stacks=json.dumps(list(TWINS))))
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    assert result.status == "complete", result.reason
    df = pd.read_csv(result.run_dir / "cells.csv")
    assert len(df) == 4 * len(TWINS) and set(df["status"]) == {"ok"}, df["reason"].tolist()
    assert (df["msgs_delivered"] == df["msgs_expected"]).all() and (df["errors"] == 0).all()
    assert (df["msgs_expected"] == 3 * 200).all()
    assert df["server_cpu_us_per_msg"].notna().all()


def _with_twin_rows(tmp_path: Path, cpu_factor: float) -> Path:
    """The report fixture run with a copy of its aiohttp rows on the aiohttp twin, whose
    server CPU per message is ``cpu_factor`` × aiohttp's."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURE_RUN, run)
    with (run / "cells.csv").open() as f:
        rows = list(csv.DictReader(f))
    twin_rows = []
    for r in rows:
        if r["stack"] == "aiohttp":
            t = dict(
                r, stack="aiohttp-twin", cell_id=r["cell_id"].replace("aiohttp", "aiohttp-twin")
            )
            t["server_cpu_us_per_msg"] = str(float(r["server_cpu_us_per_msg"]) * cpu_factor)
            twin_rows.append(t)
    with (run / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows + twin_rows)
    return run


def test_the_tax_table_divides_each_stack_by_its_twin(tmp_path: Path) -> None:
    run = load_run(_with_twin_rows(tmp_path, 0.5))
    rows = tax.tax_rows(run)
    assert rows and {(r.ours["stack"], r.twin["stack"]) for r in rows} == {
        ("aiohttp", "aiohttp-twin")
    }
    grid = run.summary().query("stack == 'aiohttp' and not probe")  # probes are no pairs
    assert len(rows) == len(grid) > 0
    for r in rows:
        assert r.ours["transport"] == r.twin["transport"]
        assert r.ratio("server_cpu_us_per_msg") == pytest.approx(2.0)
        assert r.ratio("lat_p50_us") == pytest.approx(1.0)
        lo, hi = r.interval("lat_p50_us") or (0.0, 0.0)  # the same repeats on both sides
        assert lo < 1.0 < hi and lo * hi == pytest.approx(1.0)  # geometric, centred on 1
        lo, hi = r.interval("server_cpu_us_per_msg") or (0.0, 0.0)
        assert lo < 2.0 < hi and lo * hi == pytest.approx(4.0)
        assert r.verdict() != "within" and "server CPU/msg" in r.verdict()
    render(run.path, out=tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Framework and harness tax" in md and "2.00× [" in md and "within 1.2×?" in md


def _pair(ours: dict[str, tuple[float, ...]], twin: dict[str, tuple[float, ...]]) -> tax.TaxRow:
    rec = {"transport": "ws", "stack": "aiohttp"}
    return tax.TaxRow(rec, {**rec, "stack": "aiohttp-twin"}, ours, twin)


def test_the_tax_verdict_is_within_beyond_or_undecided_by_the_intervals() -> None:
    """Issue 16's 1.2× bound judged on each ratio's 95 % interval, not its point value."""
    base = (100.0, 102.0, 98.0, 101.0)
    same = {c: base for c, _ in tax.RATIOS}
    assert _pair(same, same).verdict() == "within"
    # p99 1.21× its twin in the median but the repeats spread widely: cannot tell
    wide = {**same, "lat_p99_us": (80.0, 121.0, 170.0, 95.0)}
    assert _pair(wide, same).verdict() == "undecided: p99"
    # p99 1.5× with a tight spread: beyond, whatever the other two say
    far = {**wide, "lat_p99_us": tuple(1.5 * v for v in base)}
    assert _pair(far, same).verdict() == "beyond: p99"
    # one repeat on a side: no interval, no verdict
    assert _pair({**same, "lat_p50_us": (100.0,)}, same).verdict() == "—"


def test_no_tax_section_without_twins() -> None:
    assert tax.section(load_run(FIXTURE_RUN)) == []


def test_a_pair_whose_server_saturated_says_so(tmp_path: Path) -> None:
    """At ≥ 90 % of its core a server's CPU per message is 1 ÷ its rate and its latency
    queueing: the row is marked, not read as a tax (seen: twins at 100 × 1,000 msg/s)."""
    path = _with_twin_rows(tmp_path, 1.0)
    run = load_run(path)
    assert all(r.saturated() == () for r in tax.tax_rows(run))  # the fixture: far below
    with (path / "cells.csv").open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["stack"] == "aiohttp-twin":
            r["server_cpu_fraction"] = "0.97"
    with (path / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    run = load_run(path)
    assert {r.saturated() for r in tax.tax_rows(run)} == {("twin",)}
    (section,) = tax.section(run)
    table = next(b for b in section.blocks if isinstance(b, doc.Table))
    assert table.header[-1] == "saturated"
    assert {row[-1] for row in table.rows} == {"twin"}
    assert set(table.flags) == {"flagged"}

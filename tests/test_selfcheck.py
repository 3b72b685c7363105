"""The self-check's own machinery: client faults (a deliberately broken instrument), the
``- baseline`` thresholds that read faults back, and the short self-check run end to end
against a real client and a biased one.

Client faults are applied once, in the worker's recorder and loop, for every asyncio
client: the per-transport test runs the real :class:`~pushbench.clients.worker.Worker`
against an in-process server with a bias of a whole second, so "biased" is a bound no
scheduling noise can reach, not a timing threshold.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from pushbench import metrics, thresholds
from pushbench.clients.faults import FaultyRecorder, Stalls, make_recorder
from pushbench.clients.recorder import Recorder
from pushbench.clients.worker import Worker
from pushbench.contract import Envelope, encode
from pushbench.faults import ClientFaults
from pushbench.hub import Hub
from pushbench.runner.cell import worker_spec
from pushbench.scenario import ScenarioError, loads
from pushbench.schema.worker import WorkerResult, WorkerSpec
from pushbench.servers.aiohttp_stack import run as run_aiohttp
from pushbench.servers.base import StackOptions
from pushbench.service import PushService, ServerConfig
from pushbench.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "t"
COUNT = 100
EVERY = [
    "ws",
    "ws-aiohttp",
    "sse",
    "sse-aiohttp",
    "longpoll",
    "longpoll-aiohttp",
    "shortpoll",
    "shortpoll-aiohttp",
]


# --- the faults as values ------------------------------------------------------------------


def test_client_faults_parse_combine_and_refuse_nonsense() -> None:
    faults = ClientFaults.parse("recv_bias_ms=10, drop_receipt_every=100")
    assert faults == ClientFaults(recv_bias_ms=10.0, drop_receipt_every=100)
    assert faults.any and faults.recorder and ClientFaults.parse(faults.as_text()) == faults
    assert not ClientFaults.parse("").any
    stall = ClientFaults(stall_ms=25, stall_every_ms=1000)
    assert stall.any and not stall.recorder
    both = faults.combined(ClientFaults(recv_bias_ms=5, stall_ms=25, stall_every_ms=1000))
    assert both == ClientFaults(10 + 5, 25, 1000, 100)  # biases add up
    for bad in (
        "recv_bias=5",
        "recv_bias_ms=x",
        "drop_receipt_every=1.5",
        "drop_receipt_every=1",
        "stall_ms=25",
        "stall_ms=50,stall_every_ms=20",
        "recv_bias_ms=-1",
    ):
        with pytest.raises(ValueError):
            ClientFaults.parse(bad)


def test_worker_spec_and_settings_carry_client_faults() -> None:
    faults = ClientFaults(recv_bias_ms=10, stall_ms=25, stall_every_ms=1000)
    spec = WorkerSpec(transport="ws", base_url="http://127.0.0.1:1", faults=faults)
    raw = json.loads(json.dumps(spec.to_dict()))
    assert raw["faults"]["recv_bias_ms"] == 10 and WorkerSpec.from_dict(raw) == spec
    with pytest.raises(TypeError):
        WorkerSpec.from_dict({**raw, "faults": {"bias": 1}})
    env = {"PUSHBENCH_CLIENT_FAULTS": "recv_bias_ms=10"}
    settings = Settings.from_environ(env)
    assert settings.client_faults == ClientFaults(recv_bias_ms=10)
    assert settings.environ() == env  # a child started with a clean environment gets it too
    assert Settings.from_environ({}).client_faults is None
    with pytest.raises(ValueError, match="PUSHBENCH_CLIENT_FAULTS"):
        Settings.from_environ({"PUSHBENCH_CLIENT_FAULTS": "bias=10"})


def test_scenario_checks_reach_the_worker_spec_and_not_the_server() -> None:
    sc = loads(
        """
        name = "t"
        stacks = "aiohttp"
        transports = "ws"
        hub = "redis"
        subscribers = 2
        rate = 100
        [[cells]]
        checks = { recv_bias_ms = 10, client_stall_ms = 25, client_stall_every_ms = 1000 }
        """
    )
    (cell,) = sc.cells()
    assert cell.cell_id == "aiohttp-ws-sub2-rate100-p100-redis-rbias10ms-cstall25ms-every1000ms"
    assert cell.baseline_id == "aiohttp-ws-sub2-rate100-p100-redis"
    assert cell.checks.client_active and not cell.checks.server_active  # fine on Redis
    spec = worker_spec(cell, "http://127.0.0.1:1", 2, 0, False, Path("status.json"))
    assert spec.faults == ClientFaults(recv_bias_ms=10, stall_ms=25, stall_every_ms=1000)
    with pytest.raises(ScenarioError, match="client_stall_every_ms"):
        loads('name = "t"\nrate = 100\nchecks = { client_stall_ms = 25 }\n')


# --- the recorder: the one receive path ----------------------------------------------------


def _envelope(seq: int, pub_ns: int) -> bytes:
    return encode(Envelope(TOPIC, seq, pub_ns, pub_ns, "x"))


def test_faulty_recorder_biases_and_forgets_every_nth_receipt() -> None:
    rec = make_recorder(100, ClientFaults(recv_bias_ms=2, drop_receipt_every=3))
    assert isinstance(rec, FaultyRecorder)
    assert type(make_recorder(100, ClientFaults(stall_ms=1, stall_every_ms=2))) is Recorder
    seqs = [rec.record(0, _envelope(s, 1000 * s), 1000 * s + 7) for s in range(1, 6)]
    assert seqs == [1, 2, 3, 4, 5]  # the client still sees every message
    body = b'{"last":9,"messages":[' + b",".join(_envelope(s, 1000 * s) for s in range(6, 10))
    assert rec.record_batch(1, body + b"]}", 9999) == (9, 4)
    arrays = rec.arrays()
    assert arrays["seq"].tolist() == [1, 2, 4, 5, 7, 8]  # receipts 3, 6 and 9 forgotten
    assert arrays["conn"].tolist() == [0, 0, 0, 0, 1, 1]
    assert (
        arrays["recv_ns"].tolist() == [2_001_007, 2_002_007, 2_004_007, 2_005_007] + [2_009_999] * 2
    )
    assert rec.dropped == 3 and rec.counters()["fault_receipts_dropped"] == 3


def test_stalls_block_the_loop_periodically() -> None:
    async def main() -> int:
        stalls = Stalls(ClientFaults(stall_ms=20, stall_every_ms=50))
        loop = asyncio.get_running_loop()
        stalls.start()
        t0 = loop.time()
        await asyncio.sleep(0.3)
        stalls.stop()
        assert loop.time() - t0 >= 0.3
        return stalls.count

    assert asyncio.run(main()) >= 2


# --- every asyncio client, through the real worker -----------------------------------------


@asynccontextmanager
async def _serving() -> AsyncIterator[tuple[Hub, str]]:
    """The aiohttp stack on a free loopback port until the block ends (always stopped)."""
    hub = Hub()
    service = PushService(hub, ServerConfig(sse_retry_ms=100))
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_aiohttp(service, "127.0.0.1", 0, ready.set_result, stop, StackOptions())
    )
    try:
        await asyncio.wait({ready, task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        yield hub, f"http://127.0.0.1:{ready.result()}"
    finally:
        if service.ticker is not None:
            await service.ticker.stop()
        stop.set()
        await asyncio.wait_for(task, 10.0)


Arrays = dict[str, np.ndarray[Any, Any]]


async def _run_worker(
    spec: WorkerSpec, faults: ClientFaults | None = None, rate: int = 1000, stalls: int = 0
) -> tuple[WorkerResult, Arrays]:
    """A worker in this process: ready, the server's ticker sends :data:`COUNT` messages,
    every connection receives them all (and ``stalls`` stalls happened), then the worker
    is stopped → its record and its receipts."""
    async with _serving() as (_, base_url), aiohttp.ClientSession() as http:
        spec = WorkerSpec.from_dict({**spec.to_dict(), "base_url": base_url})
        worker = Worker(spec, faults)
        ready = asyncio.Event()
        task = asyncio.ensure_future(worker.run(ready.set))
        await asyncio.wait_for(ready.wait(), 10)
        query = f"topic={TOPIC}&rate={rate}&count={COUNT}&size=10"
        async with http.post(f"{base_url}/control/ticker?{query}") as resp:
            assert resp.status == 200
        async with asyncio.timeout(10):
            while (
                sum(s.messages for s in worker.stats) < COUNT * spec.connections
                or worker.stalls.count < stalls
            ):
                await asyncio.sleep(0.01)
        worker.request_stop("test")
        result = await task
    assert isinstance(result, WorkerResult)
    return result, {k: v.copy() for k, v in worker.recorder.arrays().items()}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", EVERY)
def test_every_client_records_through_the_faulty_recorder(transport: str) -> None:
    """The spec's faults and the environment's (``Worker(spec, faults)``) combined, in the
    receive path of every client: each receipt 1.5 s late (1 s + 0.5 s: more than any
    real latency here), every 7th not recorded, while the clients saw every message."""
    spec = WorkerSpec(
        transport=transport,
        base_url="http://127.0.0.1:1",
        topic=TOPIC,
        connections=2,
        duration_s=60,
        poll_interval_s=0.01,
        capacity=1000,
        faults=ClientFaults(recv_bias_ms=1000, drop_receipt_every=7),
    )
    result, arrays = asyncio.run(_run_worker(spec, ClientFaults(recv_bias_ms=500)))
    received = result.total("messages")
    assert received == 2 * COUNT  # the clients saw everything
    assert result.messages == len(arrays["seq"]) == received - received // 7
    assert result.extra["client_faults"] == {
        "faults": "recv_bias_ms=1500,drop_receipt_every=7",
        "stalls": 0,
        "receipts_dropped": received // 7,
    }
    assert (arrays["recv_ns"] - arrays["pub_ns"] >= 1_500_000_000).all()
    assert (arrays["recv_ns"] - 1_500_000_000 <= result.end_ns).all()


@pytest.mark.timeout(30)
def test_client_stalls_show_as_the_workers_loop_lag() -> None:
    spec = WorkerSpec(
        transport="ws",
        base_url="http://127.0.0.1:1",
        topic=TOPIC,
        connections=2,
        duration_s=60,
        capacity=1000,
        faults=ClientFaults(stall_ms=30, stall_every_ms=100),
    )
    result, arrays = asyncio.run(_run_worker(spec, rate=200, stalls=2))
    assert len(arrays["seq"]) == 2 * COUNT  # a stall loses nothing
    assert result.max_loop_lag_ns >= 25_000_000  # a 30 ms time.sleep on the loop, seen
    stalls = result.extra["client_faults"]["stalls"]
    assert stalls >= 2
    # and counted, one stall ≥ 10 ms each (the row's client_loop_stalls_10ms)
    assert metrics.loop_stalls([result.extra["loop_lag_hist"]]) == stalls


def test_loop_stalls_counts_the_lags_from_the_edge_up() -> None:
    edges = [100, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]
    # counts[j]: lags in [edges[j-1], edges[j]); a lag of exactly 10 ms is in bucket 7
    one = {"edges_us": edges, "counts": [5, 0, 0, 0, 0, 0, 9, 1, 0, 0, 2]}
    two = {"edges_us": edges, "counts": [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]}
    assert metrics.loop_stalls([one, two]) == 4
    assert metrics.loop_stalls([one], at_us=20000) == 2
    assert metrics.loop_stalls([None, two]) == 1  # a process without one adds nothing
    assert metrics.loop_stalls([None, {}]) is None  # nobody kept one: not measured, not 0
    assert metrics.loop_stalls([]) is None
    with pytest.raises(ValueError, match="without an edge at 15000"):
        metrics.loop_stalls([one], at_us=15000)


# --- "- baseline" thresholds ---------------------------------------------------------------


def _summary(cell_id: str, p50: float | None, baseline: str = "", failure: str = "") -> Any:
    values = {c: None for c in thresholds.COLUMNS} | {"lat_p50_us": p50}
    return thresholds.CellSummary(
        cell_id, "ws", "aiohttp", "python", "memory", "asyncio", values, failure, baseline
    )


def test_a_threshold_relative_to_the_baseline_judges_the_difference() -> None:
    (low, high) = thresholds.parse(
        {"lat_p50_us{cell:*-delay5ms} - baseline": [">= 4500", "<= 5500"]}
    )
    assert low.relative and low.name == "lat_p50_us{cell:*-delay5ms} - baseline >= 4500"
    assert thresholds.Threshold.from_dict(low.as_dict()) == low
    base = _summary("a", 400.0)
    shifted = _summary("a-delay5ms", 5300.0, baseline="a")
    verdict = thresholds.evaluate("s", (low, high), [base, shifted])
    assert [(o.cell_id, o.value, o.passed) for o in verdict.outcomes] == [
        ("a-delay5ms", 4900.0, True),
        ("a-delay5ms", 4900.0, True),
    ]
    assert "baseline a" in verdict.outcomes[0].note
    # a biased client biases the baseline too: the difference still passes (hence the
    # absolute bounds); a difference outside the tolerance fails, named
    far = _summary("a-delay5ms", 9000.0, baseline="a")
    failed = thresholds.evaluate("s", (low, high), [base, far]).failed
    assert [o.threshold.name for o in failed] == ["lat_p50_us{cell:*-delay5ms} - baseline <= 5500"]
    broken = _summary("a", None, failure="1 of 1 repeat(s) failed")
    (o, _) = thresholds.evaluate("s", (low, high), [broken, shifted]).outcomes
    assert o.passed is False and "baseline a" in o.note
    (o, _) = thresholds.evaluate("s", (low, high), [shifted]).outcomes  # --only left it out
    assert o.passed is None and "not in this run" in o.note
    with pytest.raises(thresholds.ThresholdInvalid, match="only '- baseline'"):
        thresholds.parse({"lat_p50_us - other": "< 1"})


def test_the_scenario_refuses_a_relative_threshold_without_a_baseline() -> None:
    head = 'name = "t"\nstacks = "aiohttp"\ntransports = "ws"\nrate = 100\n'
    cells = "[[cells]]\nchecks = { delay_ms = 5 }\n"
    gate = '[thresholds]\n"lat_p50_us{cell:*-delay5ms} - baseline" = "< 6000"\n'
    with pytest.raises(ScenarioError, match=r"baseline of .* is not in the scenario"):
        loads(head + gate + cells)
    with pytest.raises(ScenarioError, match="no self-check faults"):
        loads(head + '[thresholds]\n"lat_p50_us - baseline" = "< 6000"\n' + cells + "[[cells]]\n")
    sc = loads(head + gate + cells + "[[cells]]\nchecks = {}\n")
    assert [t.relative for t in sc.thresholds] == [True]


# --- the short self-check, end to end ------------------------------------------------------


def _selfcheck(tmp_path: Path, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "PUSHBENCH_CLIENT_FAULTS"} | env
    argv = [sys.executable, "-m", "pushbench.cli", "run", "selfcheck-short"]
    argv += ["--out", str(tmp_path / name), "--no-progress"]
    return subprocess.run(
        argv, env=environ, capture_output=True, text=True, timeout=50, cwd=tmp_path
    )


@pytest.mark.timeout(110)
def test_short_selfcheck_fails_on_a_biased_client_and_passes_on_the_real_one(
    tmp_path: Path,
) -> None:
    """``pushbench run selfcheck-short`` with every client's receive times 10 ms late
    (``PUSHBENCH_CLIENT_FAULTS``, which the workers read): exit 3 and the baseline's
    absolute p50 bound named as failed (a comparison with the equally biased baseline
    would not see it). Without the fault: exit 0."""
    biased = _selfcheck(tmp_path, "biased", PUSHBENCH_CLIENT_FAULTS="recv_bias_ms=10")
    assert biased.returncode == 3, biased.stderr[-2000:]
    failed = [line for line in biased.stdout.splitlines() if line.startswith("FAIL")]
    assert any("lat_p50_us{cell:aiohttp-ws-sub4-rate200-p100} < 5000" in f for f in failed)
    run_dir = next((tmp_path / "biased").glob("2*"))
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["settings"]["client_faults"]["recv_bias_ms"] == 10  # the run says so
    real = _selfcheck(tmp_path, "real")
    assert real.returncode == 0, real.stdout[-3000:] + real.stderr[-2000:]
    assert "FAILED" not in real.stdout

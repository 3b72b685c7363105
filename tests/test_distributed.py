"""Workers on "another host" with a clock of their own recover its offset (issue 18 item 1).

The other host is a network namespace joined by a veth pair (:mod:`netns`): the server
listens on this side's address (a non-loopback bind, so with an auth secret and a
subscriber token, as on a real network), each worker runs inside with ``ip netns exec``.
Its clock is made different on purpose, two ways:

- every worker runs in a *time* namespace too (``unshare --time --monotonic 1``): its
  CLOCK_MONOTONIC really is one second ahead of the server's, every read of it (our
  asyncio worker; a Locust master with one Locust worker);
- the Locust run also gets ``PUSHBENCH_CLOCK_SKEW_NS`` (+250 ms), the injected skew every
  worker kind takes: 1.25 s ahead in all.

Each must record an offset within its stated bound of the truth, and latencies with the
offset taken out: no message received before it was published (beyond the bound), the
median far below the injected offset, the record's times on the server's clock.
Skipped, saying why, when not root or when ``ip netns`` / ``unshare --time`` fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, ServerProcess, start_server
from netns import NetNs, namespace

from pushbench.auth import make_token
from pushbench.schema.worker import WorkerResult, read_output

pytestmark = pytest.mark.timeout(90)

TOPIC = "far"
SECRET_ENV, SECRET = "PB_H18_SECRET", "issue-18-namespace-test-secret"
MS = 1_000_000
DURATION_S = 1.0


@pytest.fixture(scope="module")
def ns() -> Iterator[NetNs]:
    with namespace() as made:
        yield made


@pytest.fixture(scope="module")
def ahead() -> tuple[str, ...]:
    """The command prefix that runs a process with CLOCK_MONOTONIC 1 s ahead."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    prefix = ("unshare", "--time", "--monotonic", "1")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no time namespace (unshare --time): {probe.stderr.strip()}")
    return prefix


@pytest.fixture(scope="module")
def server(ns: NetNs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("far") / "server.stderr"
    server = start_server(
        log,
        "--auth-secret-env", SECRET_ENV,
        "--ticker", f"topic={TOPIC},rate=200,size=100",
        host=ns.host_ip,
        env={SECRET_ENV: SECRET},
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()
    server.check()


def run_in(
    ns: NetNs, server: ServerProcess, tmp: Path, module: str, *, prefix: tuple[str, ...] = (),
    env: dict[str, str] | None = None, **spec: object,
) -> tuple[WorkerResult, dict[str, np.ndarray], int, int]:  # fmt: skip
    """Run worker ``module`` inside ``ns`` (after ``prefix``) on a spec against ``server``
    → its record, its receipts, and this host's clock before and after."""
    body = {
        "transport": "ws",
        "base_url": server.url(""),
        "topic": TOPIC,
        "token": make_token(SECRET.encode(), TOPIC, ttl_s=300),
        "connections": 2,
        "duration_s": DURATION_S,
        "capacity": 20_000,
        **spec,
    }
    (tmp / "spec.json").write_text(json.dumps(body))
    argv = [*ns.prefix, *prefix, sys.executable, "-m", module, "spec.json", "out"]
    before = time.monotonic_ns()
    done = subprocess.run(
        argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    after = time.monotonic_ns()
    assert done.returncode == 0, done.stderr[-3000:]
    record = read_output(json.loads((tmp / "out.json").read_text()))
    assert isinstance(record, WorkerResult), record
    with np.load(tmp / "out.npz") as npz:
        receipts = {k: npz[k] for k in npz.files}
    return record, receipts, before, after


def assert_recovered(
    record: WorkerResult, receipts: dict[str, np.ndarray], ahead_ns: int, before: int, after: int
) -> None:
    """The worker's clock ran ``ahead_ns`` ahead of the server's: its record says so within
    its bound, and every time it wrote is on the server's clock."""
    offset, bound = record.clock_offset_ns, record.clock_bound_ns
    assert offset is not None and bound is not None, record.extra.get("clock")
    assert record.extra["clock"]["method"] == "ntp"
    assert bound > 0 and abs(offset + ahead_ns) <= bound, (offset, bound)
    assert record.complete and record.messages > 0
    # No message was received before the server published it (within the bound); with the
    # offset left in, every latency would be off by it: negative, or ahead_ns too high.
    since_pub = receipts["recv_ns"] - receipts["pub_ns"]
    assert int(since_pub.min()) >= -bound
    latency = receipts["recv_ns"] - receipts["sched_ns"]
    assert float(np.median(latency)) < ahead_ns / 2
    # The record's times are on the server's (this host's) clock too, all of them (the
    # window, ready to end, lasted its whole duration: no time is left uncorrected).
    assert before - bound <= record.ready_ns <= record.end_ns <= after + bound
    assert record.end_ns - record.ready_ns >= DURATION_S * 1e9


def test_our_worker_with_its_own_clock_one_second_ahead(
    ns: NetNs, ahead: tuple[str, ...], server: ServerProcess, tmp_path: Path
) -> None:
    record, receipts, before, after = run_in(
        ns, server, tmp_path, "pushbench.clients.worker", prefix=ahead
    )
    assert record.extra["clock"]["skew_ns"] == 0  # a real clock difference, no injection
    assert_recovered(record, receipts, 1_000 * MS, before, after)


def test_a_locust_worker_with_its_own_clock_and_an_injected_skew(
    ns: NetNs, ahead: tuple[str, ...], server: ServerProcess, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PUSHBENCH_CLOCK_SKEW_NS": str(250 * MS),
    }
    record, receipts, before, after = run_in(
        ns, server, tmp_path, "pushbench.clients.locust_worker",
        prefix=ahead, env=env, locust_workers=1,
    )  # fmt: skip
    processes = record.extra["locust"]["processes"]
    assert [p["role"] for p in processes] == ["worker"]  # the users ran in the Locust worker
    assert processes[0]["clock"]["skew_ns"] == 250 * MS
    assert_recovered(record, receipts, 1_250 * MS, before, after)

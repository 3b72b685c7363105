"""The ``net`` dimension in a run: the relay per cell, its calibration per run.

A cell whose ``net`` is not ``loopback`` gets a relay (``pushbench relay``,
:mod:`pushbench.netem`) started in the cell's :class:`~pushbench.procs.ProcessGroup`
after the server and before the workers, every worker pointed at it, stopped with the
group on every exit path. It is pinned to the **client CPUs**: it stands for the network
on the clients' side of the path, and on a 2-core machine the server's core is kept to
the server alone; its CPU is sampled at the window's edges like the server's
(``relay_cpu_us_per_msg``), and it competes with the client workers for their core, which
``metadata.json``'s ``netem.relay_cpus`` states.

Before the first cell, a run with any such cell calibrates each profile it uses
(:func:`calibrate`): the relay started alone in front of an echo server of the runner's
(:mod:`pushbench.netem.probe`), probes straight and through it, and the added one-way
delay per direction stored in ``netem.json`` (:func:`write_netem`) with the profiles as
declared — what the report shows beside the cells' latency (it reads only that file).
"""

from __future__ import annotations

import asyncio
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pushbench.netem import PROFILES, profile
from pushbench.netem.command import READY_PREFIX
from pushbench.netem.probe import Calibration, echo_server, measure, summarize
from pushbench.procs import Pinning, ProcessGroup, ProcSample, Started
from pushbench.results import atomic_write_json

from .options import READY_TIMEOUT_S

__all__ = [
    "CALIBRATION_PROBES",
    "NETEM_FILE",
    "calibrate",
    "prepare",
    "relay_argv",
    "relayed_url",
    "start_relay",
    "with_relay_cpu",
    "write_netem",
]

NETEM_FILE = "netem.json"
CALIBRATION_PROBES = 60
HOST = "127.0.0.1"


def relay_argv(net: str, target: str, seed: int = 0) -> list[str]:
    """``pushbench relay`` in front of ``target`` (HOST:PORT) under profile ``net``."""
    return [sys.executable, "-m", "pushbench.cli", "relay", "--target", target,
            "--net", net, "--host", HOST, "--port", "0", "--seed", str(seed)]  # fmt: skip


def relayed_url(base_url: str, ready_line: str) -> str:
    """``base_url`` with its host and port replaced by the relay's (from its ready line)."""
    where = ready_line.rsplit(" ", 1)[-1]
    return urllib.parse.urlsplit(base_url)._replace(netloc=where).geturl()


#: Probes sent through a fresh relay before the measured ones and not counted: its writer
#: learns how late this machine's timer wakes (``pushbench.netem.aim``), as it does in a
#: cell's warm-up.
WARMUP_PROBES = 50


def start_relay(
    group: ProcessGroup, net: str, base_url: str, pinning: Pinning, seed: int = 0
) -> tuple[Started, str]:
    """Start a relay for ``net`` in front of the server at ``base_url``, pinned to the
    client CPUs → (its process, the URL the clients use)."""
    target = urllib.parse.urlsplit(base_url).netloc
    started = group.start(
        "relay",
        relay_argv(net, target, seed),
        cpus=pinning.clients,
        ready_prefix=READY_PREFIX,
        timeout_s=READY_TIMEOUT_S,
    )
    return started, relayed_url(base_url, started.ready_line)


async def _calibrate_one(
    net: str, group: ProcessGroup, pinning: Pinning, probes: int
) -> Calibration:
    server, port = await echo_server(HOST)
    try:
        direct = await measure(port, probes)
        started = await asyncio.to_thread(
            group.start,
            f"relay-{net}",
            relay_argv(net, f"{HOST}:{port}"),
            cpus=pinning.clients,
            ready_prefix=READY_PREFIX,
            timeout_s=READY_TIMEOUT_S,
        )
        relay_port = int(started.ready_line.rsplit(":", 1)[-1])
        await measure(relay_port, WARMUP_PROBES)  # the relay learns its timer's lateness
        relayed = await measure(relay_port, probes)
        p = profile(net)
        return summarize(net, (p.up.delay_ms, p.down.delay_ms), relayed, direct)
    finally:
        group.stop_all()
        server.close()


def calibrate(
    nets: Iterable[str], log_dir: Path, pinning: Pinning, probes: int = CALIBRATION_PROBES
) -> list[Calibration]:
    """Calibrate each relayed profile of ``nets`` (``loopback`` skipped), one relay
    process at a time, each stopped before the next starts."""
    out = []
    for net in dict.fromkeys(nets):
        if not profile(net).relay:
            continue
        group = ProcessGroup(log_dir)
        try:
            out.append(asyncio.run(_calibrate_one(net, group, pinning, probes)))
        finally:
            group.stop_all()
    return out


def write_netem(
    path: Path, nets: Iterable[str], pinning: Pinning, calibrations: Iterable[Calibration]
) -> dict[str, Any]:
    """Write ``netem.json`` (profiles as declared, where the relay ran, calibrations) →
    the summary recorded in ``metadata.json``."""
    names = list(dict.fromkeys(nets))
    data = {
        "profiles": {n: PROFILES[n].as_dict() for n in names},
        "relay_cpus": list(pinning.clients),
        "relay_pinning": "client CPUs (the relay stands for the clients' side of the path)",
        "calibration": [c.as_dict() for c in calibrations],
    }
    atomic_write_json(path, data)
    return {"file": path.name, "nets": names, "relay_cpus": list(pinning.clients)}


def with_relay_cpu(
    row: dict[str, Any], start: ProcSample | None, end: ProcSample | None
) -> dict[str, Any]:
    """``row`` with ``relay_cpu_us_per_msg``: the relay's CPU between its samples at the
    window's edges (None: no relay) per message delivered, the denominator of
    ``server_cpu_us_per_msg``; empty without a relay or when nothing was delivered."""
    delivered = row.get("msgs_delivered")
    value = None
    if start is not None and end is not None and delivered:
        value = (end.cpu_s - start.cpu_s) * 1e6 / delivered
    return {**row, "relay_cpu_us_per_msg": value}


def prepare(run_dir: Path, nets: Iterable[str], pinning: Pinning) -> dict[str, Any] | None:
    """Before a run's first cell: calibrate every relayed profile among ``nets`` and
    write ``netem.json`` → its summary for ``metadata.json`` (None: no cell is relayed)."""
    relayed = [n for n in dict.fromkeys(nets) if profile(n).relay]
    if not relayed:
        return None
    calibrations = calibrate(relayed, run_dir / "logs" / "netem-calibration", pinning)
    return write_netem(run_dir / NETEM_FILE, relayed, pinning, calibrations)

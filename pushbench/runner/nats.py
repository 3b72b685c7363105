"""The NATS server a ``hub = "nats"`` cell starts (issue 12 item 4, scale-out).

Like the Redis server of a ``hub = "redis"`` cell (:mod:`.server`): Debian's
``nats-server`` (``make system-deps``; without it the cell is skipped, naming that
command), one per cell × repeat, on a free loopback port, with JetStream on (the hub's
streams live in memory; its store directory is in the run's logs and stays empty),
pinned to the server CPUs and sampled as the broker (``broker_cpu_us_per_msg``). It is
ready once its port accepts a connection; the group stops it with the rest.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from pushbench.procs import Pinning, ProcessGroup, Started

from .options import READY_TIMEOUT_S

__all__ = ["NATS_MISSING", "NATS_SERVER", "nats_argv", "nats_prefix", "nats_server", "start_nats"]

NATS_SERVER = "nats-server"
NATS_MISSING = "hub = 'nats' needs nats-server, which is not installed: run `make system-deps`"


def nats_server() -> str | None:
    """The ``nats-server`` executable on PATH (or Debian's ``/usr/sbin``), else None."""
    return shutil.which(NATS_SERVER) or shutil.which(NATS_SERVER, path="/usr/sbin:/usr/bin")


def nats_argv(binary: str, host: str, port: int, workdir: Path) -> list[str]:
    """A throwaway nats-server: loopback only, JetStream on with its store in
    ``workdir``, no monitoring port, no config file."""
    return [binary, "-a", host, "-p", str(port), "-js", "-sd", str(workdir)]


def nats_prefix() -> str:
    """Subject and stream prefix of one cell × repeat: fresh, so no two starts share a
    topic's sequence or history."""
    return f"pb_{uuid.uuid4().hex[:12]}"


def start_nats(
    group: ProcessGroup, pinning: Pinning, host: str, port: int, workdir: Path
) -> tuple[Started, str]:
    """Start the cell's nats-server in ``group`` on ``host:port``, pinned to the server
    CPUs → (its process, its URL). A missing binary: ValueError with NATS_MISSING (the
    caller skipped such cells first)."""
    binary = nats_server()
    if binary is None:
        raise ValueError(NATS_MISSING)
    workdir.mkdir(parents=True, exist_ok=True)
    started = group.start(
        "nats",
        nats_argv(binary, host, port, workdir),
        cpus=pinning.server,
        ready_prefix=f"nats-server listening on {host}:{port}",
        timeout_s=READY_TIMEOUT_S,
        ready_port=(host, port),
    )
    return started, f"nats://{host}:{port}"

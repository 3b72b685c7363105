"""Starting a cell's server from its stack's registry row, through :mod:`pushbench.procs`.

A *module* stack (``Stack.module``) is started as ``pushbench serve --stack
NAME --port 0`` with the cell's hub, loop, heartbeats and self-check faults,
and its ready line carries the URL it bound. An *external* stack
(``Stack.argv``, e.g. a Node server) gets a free loopback port chosen here,
``{host}`` and ``{port}`` filled into its argv, and is ready once it prints a
line starting with its ``ready_line``; it is told nothing else, so cells that
need server options it cannot receive (faults, a heartbeat other than the
scenario default of :data:`EXTERNAL_HEARTBEAT_S`, another hub) are skipped
with the reason. Either way the server runs pinned to the server
CPUs in the cell's :class:`~pushbench.procs.ProcessGroup`.
"""

from __future__ import annotations

import re
import socket
import sys
from dataclasses import dataclass

from pushbench import registry
from pushbench.procs import Pinning, ProcessGroup, Started
from pushbench.scenario import Cell

from .options import READY_TIMEOUT_S, TICKER_DELAY_S, CellFailed

__all__ = [
    "CLIENT_DISTRIBUTIONS",
    "EXTERNAL_HEARTBEAT_S",
    "HOST",
    "Server",
    "distributions",
    "serve_argv",
    "start_server",
    "unsupported_by_stack",
]

HOST = "127.0.0.1"
#: The heartbeat interval an external server is expected to use: the scenario default.
EXTERNAL_HEARTBEAT_S = 15.0
_SERVE_READY = re.compile(r"listening on (http://\S+)")
#: Distributions of the client side whose versions a run records (the stacks' own come
#: from their registry rows).
CLIENT_DISTRIBUTIONS: tuple[str, ...] = ("aiohttp", "uvloop", "numpy", "locust", "playwright")


@dataclass(frozen=True)
class Server:
    """A started server and the base URL its clients use."""

    started: Started
    base_url: str


def distributions() -> tuple[str, ...]:
    """Every registered stack's distributions, then the client side's, each once."""
    names = [d for s in registry.stacks() for d in s.distributions]
    return tuple(dict.fromkeys([*names, *CLIENT_DISTRIBUTIONS]))


def unsupported_by_stack(cell: Cell) -> str:
    """Why the cell's stack cannot run it ("" when it can)."""
    stack = registry.stack(cell.stack)
    if not stack.external:
        return ""
    needs = []
    if cell.checks.active:
        needs.append("self-check faults")
    if cell.heartbeat_s not in (None, EXTERNAL_HEARTBEAT_S):
        needs.append(f"heartbeat_s = {cell.heartbeat_s} (not {EXTERNAL_HEARTBEAT_S})")
    if cell.hub != "memory":
        needs.append(f"hub = {cell.hub!r}")
    if needs:
        return f"external stack {stack.name!r} gets only host and port: {', '.join(needs)}"
    return ""


def serve_argv(cell: Cell) -> list[str]:
    """``pushbench serve`` for a module stack, with the cell's server options."""
    argv = [sys.executable, "-m", "pushbench.cli", "serve", "--stack", cell.stack]
    argv += ["--host", HOST, "--port", "0", "--hub", cell.hub, "--loop", cell.loop]
    argv += ["--max-connections", str(max(cell.subscribers + 100, 1000))]
    if cell.heartbeat_s is not None:
        hb = str(cell.heartbeat_s)
        argv += ["--heartbeat-interval", hb, "--ping-interval", hb]
    checks = cell.checks
    if checks.active:
        # The server counts the pause from ticker start; the scenario from the
        # start of the measured window (default: its middle).
        into_window = checks.pause_at_s if checks.pause_at_s is not None else cell.duration_s / 2
        pause_at = TICKER_DELAY_S + cell.warmup_s + into_window
        argv += [
            "--faults",
            f"delay_ms={checks.delay_ms},pause_ms={checks.pause_ms},"
            f"pause_at_s={pause_at},drop_every={checks.drop_every}",
        ]
    return argv


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now (for a server that cannot bind port 0 and
    report it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def start_server(group: ProcessGroup, cell: Cell, pinning: Pinning) -> Server:
    """Start the cell's stack in ``group`` and wait for its ready line."""
    stack = registry.stack(cell.stack)
    if stack.external:
        port = free_port()
        started = group.start(
            "server",
            stack.command(HOST, port),
            cpus=pinning.server,
            ready_prefix=stack.ready_line,
            timeout_s=READY_TIMEOUT_S,
        )
        return Server(started, f"http://{HOST}:{port}")
    started = group.start(
        "server",
        serve_argv(cell),
        cpus=pinning.server,
        ready_prefix=stack.ready_line,
        timeout_s=READY_TIMEOUT_S,
    )
    match = _SERVE_READY.search(started.ready_line)
    if match is None:
        raise CellFailed(f"server ready line without a URL: {started.ready_line!r}")
    return Server(started, match.group(1))

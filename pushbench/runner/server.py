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

History. The server keeps the last N messages of a topic, and a poller fetches what was
published since its last answer from them: a short poller every ``poll_interval_s``
needs ``rate × poll_interval_s`` of them, a long poller what accumulates while it
re-polls. :func:`history_size` sizes ``--history`` from the cell (with a margin), so a
poller never loses messages to a buffer too small for its rate; a history whose memory
would pass :data:`HISTORY_CAP_BYTES` skips the cell with the reason. The server's
``/stats`` counts requests that came too late for the history anyway
(``history_gap_messages``), which the cell's row records.
"""

from __future__ import annotations

import math
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
    "DEFAULT_HISTORY",
    "EXTERNAL_HEARTBEAT_S",
    "HISTORY_CAP_BYTES",
    "HISTORY_MARGIN",
    "HOST",
    "Server",
    "distributions",
    "history_size",
    "serve_argv",
    "start_server",
    "unsupported_by_stack",
]

HOST = "127.0.0.1"
#: The heartbeat interval an external server is expected to use: the scenario default.
EXTERNAL_HEARTBEAT_S = 15.0
#: ``pushbench serve --history``'s default (messages per topic): the floor of the sizing.
DEFAULT_HISTORY = 1000
#: History holds this many times the messages published between two requests of a poller.
HISTORY_MARGIN = 4
#: A long poller asks again as soon as it is answered; the gap it leaves is bounded by this.
LONG_POLL_GAP_S = 1.0
#: What one message of history costs the server beyond its payload (the encoded envelope,
#: its Item, the deque slot), rounded up; with the cap, what makes a sizing absurd.
HISTORY_ITEM_BYTES = 512
HISTORY_CAP_BYTES = 1 << 30
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


def history_size(cell: Cell) -> int:
    """Messages of history per topic the cell's server keeps: ``max(DEFAULT_HISTORY,
    ⌈rate × gap × HISTORY_MARGIN⌉)`` for polling transports, where ``gap`` is the
    short-poll interval or :data:`LONG_POLL_GAP_S`; the default for streaming ones (their
    history only serves resumes)."""
    if registry.transport(cell.transport).delivery != "polling":
        return DEFAULT_HISTORY
    gap = cell.poll_interval_s if cell.poll_interval_s is not None else LONG_POLL_GAP_S
    return max(DEFAULT_HISTORY, math.ceil(cell.rate * gap * HISTORY_MARGIN))


def _history_too_big(cell: Cell) -> str:
    size = history_size(cell)
    need = size * (cell.payload_size + HISTORY_ITEM_BYTES)
    if need <= HISTORY_CAP_BYTES:
        return ""
    return (
        f"polling at {cell.rate:g} msgs/s needs a history of {size:,} messages "
        f"(~{need / 2**20:,.0f} MiB, over the {HISTORY_CAP_BYTES / 2**20:,.0f} MiB cap): "
        f"lower the rate or the poll interval"
    )


def unsupported_by_stack(cell: Cell) -> str:
    """Why the cell's stack cannot run it ("" when it can), including a history too big
    to keep (:func:`history_size`)."""
    too_big = _history_too_big(cell)
    if too_big:
        return too_big
    stack = registry.stack(cell.stack)
    if not stack.external:
        return ""
    needs = []
    if history_size(cell) != DEFAULT_HISTORY:
        needs.append(f"a history of {history_size(cell):,} messages (not {DEFAULT_HISTORY:,})")
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
    argv += ["--history", str(history_size(cell))]
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

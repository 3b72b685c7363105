"""Starting a cell's server from its stack's registry row, through :mod:`pushbench.procs`.

A *module* stack (``Stack.module``) is started as ``pushbench serve --stack
NAME --port 0`` with the cell's hub, loop, heartbeats and self-check faults,
and its ready line carries the URL it bound. An *external* stack
(``Stack.argv``, e.g. a Node server) gets a free loopback port chosen here,
``{host}`` and ``{port}`` filled into its argv (and ``{history}``, ``{loop}`` where
its argv has them: the hand-written twins'), and is ready once it prints a
line starting with its ``ready_line``; it is told nothing else, so cells that
need server options it cannot receive (faults, a heartbeat other than the
scenario default of :data:`EXTERNAL_HEARTBEAT_S`, another hub, a history or loop
its argv does not take) are skipped with the reason. Either way the server runs pinned to the server
CPUs in the cell's :class:`~pushbench.procs.ProcessGroup`.

History. The server keeps the last N messages of a topic, and a poller fetches what was
published since its last answer from them: a short poller every ``poll_interval_s``
needs ``rate × poll_interval_s`` of them, a long poller what accumulates while it
re-polls. :func:`history_size` sizes ``--history`` from the cell (with a margin), so a
poller never loses messages to a buffer too small for its rate; a history whose memory
would pass :data:`HISTORY_CAP_BYTES` skips the cell with the reason. The server's
``/stats`` counts the messages evicted from the history before a subscriber fetched them
(``history_gap_messages``, over the requests that came too late: ``history_gaps``); the
runner fails a repeat that lost any that way (:mod:`.counters`), and the row records the
count (``history_gap_msgs``).

Redis. A cell with ``hub = "redis"`` gets a Redis server of its own, started first in
the cell's group like the server and pinned to the same CPUs (it is part of the server
side's cost): Debian's ``redis-server`` (``make system-deps``; without it the cell is
skipped, naming that command) on a free loopback port, with no persistence. The server
gets its URL and a key prefix fresh for the cell (:func:`redis_prefix`), so no two cells
ever share a sequence or a history, even on a Redis they did share. The group stops it
with the rest on every exit path; the runner samples its CPU over the window like the
server's, all threads to the ns (:mod:`pushbench.cputime`; ``broker_cpu_us_per_msg``).
"""

from __future__ import annotations

import math
import re
import shutil
import socket
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pushbench import proxies, registry
from pushbench.procs import Pinning, ProcessGroup, Started
from pushbench.scenario import Cell
from pushbench.service import ServerConfig
from pushbench.tls import OPENSSL_MISSING, TlsFiles, openssl

from . import sharedport
from .nats import NATS_MISSING, nats_prefix, nats_server, start_nats
from .options import READY_TIMEOUT_S, TICKER_DELAY_S, CellFailed

__all__ = [
    "CLIENT_DISTRIBUTIONS",
    "DEFAULT_HISTORY",
    "EXTERNAL_HEARTBEAT_S",
    "HISTORY_CAP_BYTES",
    "HISTORY_MARGIN",
    "HOST",
    "REDIS_MISSING",
    "Server",
    "distributions",
    "history_size",
    "redis_argv",
    "redis_prefix",
    "redis_server",
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
_SERVE_READY = re.compile(r"listening on (https?://\S+)")
#: h44: a ``--reuse-port`` node's own URL, after the shared one on its ready line
_NODE_URL = re.compile(r"this node: (https?://[^\s)]+)")
#: The Redis server a ``hub = "redis"`` cell starts: Debian's, installed by make system-deps.
REDIS_SERVER = "redis-server"
REDIS_MISSING = "hub = 'redis' needs redis-server, which is not installed: run `make system-deps`"
#: What redis-server logs (after a pid and a time) once it accepts connections.
_REDIS_READY = "Ready to accept connections"
#: Distributions of the client side whose versions a run records (the stacks' own come
#: from their registry rows).
CLIENT_DISTRIBUTIONS: tuple[str, ...] = ("aiohttp", "uvloop", "numpy", "locust", "playwright")


@dataclass(frozen=True)
class Server:
    """A started server and the base URL its clients use; ``broker``: the Redis server
    started for it (``hub = "redis"``), else None."""

    started: Started
    base_url: str
    broker: Started | None = None
    #: issue 12 item 4 (scale-out): every node and its URL, node 0 (``started``) first;
    #: one entry when ``servers = 1``
    nodes: tuple[tuple[Started, str], ...] = ()
    #: h44: the port the nodes share with SO_REUSEPORT (the clients' URL; ``base_url``
    #: and ``nodes`` then hold each node's own URL, for control and /stats); None: no
    #: shared port
    shared_url: str | None = None


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
    to keep (:func:`history_size`) and a Redis hub without redis-server to start."""
    too_big = _history_too_big(cell)
    if cell.compression == "deflate" and cell.client == "locust":  # h25 (compression)
        return "compression = 'deflate': the Locust WebSocket user does not offer it"
    if too_big:
        return too_big
    stack = registry.stack(cell.stack)
    if cell.tls and openssl() is None:  # issue 12 item 2
        return OPENSSL_MISSING
    if not stack.external:
        if cell.hub == "nats" and nats_server() is None:  # issue 12 item 4 (h31)
            return NATS_MISSING
        return REDIS_MISSING if cell.hub == "redis" and redis_server() is None else ""
    needs = []
    if proxies.server_tls(cell.via, cell.tls, cell.tls_at):  # issue 12 item 2 (h42: and
        # end to end behind a proxy): an external stack has no certificate
        needs.append("tls = true served by the server (direct, or tls_at = 'end-to-end')")
    if history_size(cell) != DEFAULT_HISTORY and not stack.takes("history"):
        needs.append(f"a history of {history_size(cell):,} messages (not {DEFAULT_HISTORY:,})")
    if cell.loop != "asyncio" and not stack.takes("loop"):
        needs.append(f"loop = {cell.loop!r}")
    if cell.checks.server_active:
        needs.append("self-check server faults")
    if cell.heartbeat_s not in (None, EXTERNAL_HEARTBEAT_S):
        needs.append(f"heartbeat_s = {cell.heartbeat_s} (not {EXTERNAL_HEARTBEAT_S})")
    if cell.hub != "memory":
        needs.append(f"hub = {cell.hub!r}")
    if cell.compression not in (None, "off"):  # h25 (compression)
        needs.append(f"compression = {cell.compression!r}")
    if needs:
        return f"external stack {stack.name!r} gets only host and port: {', '.join(needs)}"
    return stack.missing()  # its program (node) or files (node_modules) absent (h28)


def redis_server() -> str | None:
    """The ``redis-server`` executable on PATH (or Debian's ``/usr/sbin``), else None."""
    return shutil.which(REDIS_SERVER) or shutil.which(REDIS_SERVER, path="/usr/sbin:/usr/bin")


def redis_argv(binary: str, port: int, workdir: Path) -> list[str]:
    """A throwaway Redis: loopback only, no RDB snapshots, no AOF, no config file; its
    working directory ``workdir`` (nothing is written there, but never the cwd)."""
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    return [*argv, "--dir", str(workdir), "--daemonize", "no"]


def redis_prefix(cell: Cell) -> str:
    """Key and channel prefix of one cell × repeat on Redis: the cell id and a random part,
    so no two starts share a topic's sequence or history."""
    return f"pushbench:{cell.cell_id}:{uuid.uuid4().hex[:12]}:"


def serve_argv(
    cell: Cell,
    redis_url: str | None = None,
    redis_key_prefix: str | None = None,
    tls: TlsFiles | None = None,
) -> list[str]:
    """``pushbench serve`` for a module stack, with the cell's server options (and, for
    the Redis hub, the Redis server's URL and the cell's key prefix; for a TLS cell, the
    run's certificate and key)."""
    argv = [sys.executable, "-m", "pushbench.cli", "serve", "--stack", cell.stack]
    argv += ["--host", HOST, "--port", "0", "--hub", cell.hub, "--loop", cell.loop]
    if redis_url is not None:
        argv += ["--redis-url", redis_url]
    if redis_key_prefix is not None:
        argv += ["--redis-prefix", redis_key_prefix]
    argv += ["--max-connections", str(sharedport.node_max_connections(cell))]  # h44: per node
    argv += ["--history", str(history_size(cell))]
    if cell.rate > ServerConfig.max_control_rate:  # the server's default cap on the ticker
        argv += ["--max-control-rate", repr(cell.rate)]
    if cell.compression not in (None, "off"):  # h25 (compression): default: argv unchanged
        argv += ["--compression", cell.compression]
    if cell.heartbeat_s is not None:
        hb = str(cell.heartbeat_s)
        argv += ["--heartbeat-interval", hb, "--ping-interval", hb]
    if tls is not None:  # issue 12 item 2
        argv += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    checks = cell.checks
    if checks.server_active:
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


def start_broker(group: ProcessGroup, cell: Cell, pinning: Pinning) -> tuple[Started, str]:
    """Start the cell's Redis server in ``group``, pinned to the server CPUs, and wait
    until it accepts connections → (its process, its URL)."""
    binary = redis_server()
    if binary is None:
        raise CellFailed(REDIS_MISSING)
    port = free_port()
    workdir = group.log_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    started = group.start(
        "redis",
        redis_argv(binary, port, workdir),
        cpus=pinning.server,
        ready_prefix=_REDIS_READY,
        ready_anywhere=True,
        timeout_s=READY_TIMEOUT_S,
    )
    return started, f"redis://{HOST}:{port}/0"


def start_server(
    group: ProcessGroup,
    cell: Cell,
    pinning: Pinning,
    tls: TlsFiles | None = None,
    *,
    # issue 17 item 5 (abuse probes): more server options, and a prefix such as
    # ``env NAME=VALUE`` (a variable for the server alone: the auth secret), module stacks only
    extra_args: Sequence[str] = (),
    argv_prefix: Sequence[str] = (),
) -> Server:
    """Start the cell's stack in ``group`` and wait for its ready line; first its Redis
    server when the cell's hub is Redis (:func:`start_broker`). ``tls``: the run's
    certificate, for a TLS cell (its base URL is then https://)."""
    stack = registry.stack(cell.stack)
    if stack.external:
        port = free_port()
        started = group.start(
            "server",
            stack.command(HOST, port, history=history_size(cell), loop=cell.loop),
            cpus=pinning.server,
            ready_prefix=stack.ready_line,
            timeout_s=READY_TIMEOUT_S,
        )
        return Server(started, f"http://{HOST}:{port}")
    broker, redis_url, prefix = None, None, None
    if cell.hub == "redis":
        broker, redis_url = start_broker(group, cell, pinning)
        prefix = redis_prefix(cell)
    # -- issue 12 item 4 (scale-out, h31): the NATS broker; N nodes on one broker prefix --
    broker_args: list[str] = []
    if cell.hub == "nats":
        if nats_server() is None:
            raise CellFailed(NATS_MISSING)
        broker, nats_url = start_nats(group, pinning, HOST, free_port(), group.log_dir / "nats")
        broker_args = ["--nats-url", nats_url, "--nats-prefix", nats_prefix()]
    argv = [*argv_prefix, *serve_argv(cell, redis_url, prefix, tls), *broker_args, *extra_args]
    shared = sharedport.shares_port(cell)  # h44: N nodes on one port (SO_REUSEPORT)
    if shared:
        argv[argv.index("--port") + 1] = str(free_port())
        argv.append("--reuse-port")
    shared_url: str | None = None
    nodes: list[tuple[Started, str]] = []
    for k in range(cell.servers):
        started = group.start(
            "server" if k == 0 else f"server{k}",
            argv,
            cpus=pinning.server,
            ready_prefix=stack.ready_line,
            timeout_s=READY_TIMEOUT_S,
        )
        match = _SERVE_READY.search(started.ready_line)
        own = _NODE_URL.search(started.ready_line) if shared else match
        if match is None or own is None:
            raise CellFailed(f"server ready line without a URL: {started.ready_line!r}")
        shared_url = match.group(1) if shared else None
        nodes.append((started, own.group(1)))
    # -- end scale-out --
    return Server(nodes[0][0], nodes[0][1], broker, tuple(nodes), shared_url)

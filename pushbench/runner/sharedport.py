"""Several server processes on one port (issue 18 item 2, h44): a cell with
``servers = N > 1`` and ``via = "direct"``.

Why. A process holds one descriptor per connection and may not open more than its hard
open-file limit (20,000 on the sandbox this was built on, without CAP_SYS_RESOURCE to
raise it), so one server process stops near 19,700 connections. Real Python deployments
on one box run several processes of the server sharing one listening port with
``SO_REUSEPORT`` (the kernel hashes each connection to one of them); the runner does the
same: N ``pushbench serve --reuse-port`` processes (nodes) on one port chosen here, each
told ``--max-connections`` of its share (:func:`node_max_connections`) and raising its own
open-file limit within the hard limit. Each node also listens on a port of its own, which
its ready line names: the runner posts the ticker to node 0 there and reads every node's
``/stats`` there (on the shared port a request lands on any node). Published messages
reach the other nodes through the broker hub, as behind nginx (:mod:`.scaleout`); an idle
cell may run on the in-process hub (nothing is published).

The clients. A client worker holds two descriptors per subscriber connection (its socket
and its byte meter's duplicate, :mod:`pushbench.clients.tcpinfo`), three per publishing
one, so a cell's client processes must be enough that each stays under the limit too:
:func:`min_client_processes`; ``client_processes = "auto"`` takes at least that many
(:func:`pushbench.runner.cell.plan_workers`) and an explicit number below it skips the cell
naming ``client_processes`` (:func:`client_refusal`).

The figures over all nodes: CPU and RSS are the nodes' summed (:mod:`.scaleout`), so the
memory slope is the sum of their slopes; the kernel's socket memory is every socket on
the shared port; the row's ``server_open_files`` and ``server_max_connections`` say what
each process had.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Mapping, Sequence
from typing import Any

from pushbench import proxies, registry
from pushbench.fdlimit import FD_SLACK, SERVER_FDS_PER_CONN, may_raise_hard, nr_open
from pushbench.scenario import Cell

__all__ = [
    "BALANCE_MARGIN_PCT",
    "CLIENT_FDS_PER_PUBLISHER",
    "CLIENT_FDS_PER_SUBSCRIBER",
    "MIN_MAX_CONNECTIONS",
    "client_fds",
    "client_refusal",
    "columns",
    "fd_ceiling",
    "min_client_processes",
    "node_max_connections",
    "servers_needed",
    "shares_port",
]

#: The kernel's hash does not split connections exactly evenly: each node may take this
#: much more than its even share, in percent (100,000 over 6: ~16,700 ± 120 each).
BALANCE_MARGIN_PCT = 110
#: ``--max-connections`` is never below this (the runner's floor before h44).
MIN_MAX_CONNECTIONS = 1000
#: Descriptors of one client connection: its socket and its meter's duplicate; a
#: publishing connection's worker keeps a third for its publishing side.
CLIENT_FDS_PER_SUBSCRIBER = 2
CLIENT_FDS_PER_PUBLISHER = 3


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def shares_port(cell: Cell) -> bool:
    """Whether the cell's servers share one port with SO_REUSEPORT (``servers > 1``,
    ``via = "direct"``)."""
    return cell.servers > 1 and cell.via == proxies.DIRECT


def node_max_connections(cell: Cell) -> int:
    """``--max-connections`` of each server process: the subscribers + 100 (at least
    :data:`MIN_MAX_CONNECTIONS`: what every cell got before h44); on a shared port each
    node's share of them with :data:`BALANCE_MARGIN_PCT` + 100."""
    if not shares_port(cell):
        return max(cell.subscribers + 100, MIN_MAX_CONNECTIONS)
    share = _ceil_div(cell.subscribers * BALANCE_MARGIN_PCT, 100 * cell.servers)
    return max(share + 100, MIN_MAX_CONNECTIONS)


def fd_ceiling() -> int | None:
    """The most descriptors a child process can open: the hard limit, or ``fs.nr_open``
    when it may raise that (CAP_SYS_RESOURCE); None: unlimited."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if may_raise_hard():
        return nr_open()
    return None if hard == resource.RLIM_INFINITY else hard


def servers_needed(subscribers: int) -> int:
    """Server processes on one port that ``subscribers`` need under :func:`fd_ceiling`
    (1 when one process can hold them)."""
    ceiling = fd_ceiling()
    if ceiling is None:
        return 1
    room = (ceiling - FD_SLACK) // SERVER_FDS_PER_CONN - 100
    if room <= 0:
        return 1
    return max(1, _ceil_div(subscribers * BALANCE_MARGIN_PCT, 100 * room))


def client_fds(connections: int, publishes: bool) -> int:
    """Descriptors a client worker of ``connections`` connections needs."""
    per = CLIENT_FDS_PER_PUBLISHER if publishes else CLIENT_FDS_PER_SUBSCRIBER
    return per * connections + FD_SLACK


def min_client_processes(connections: int, publishes: bool = False) -> int:
    """The fewest client processes that keep each under :func:`fd_ceiling`."""
    ceiling = fd_ceiling()
    if ceiling is None or client_fds(connections, publishes) <= ceiling:
        return 1
    per = CLIENT_FDS_PER_PUBLISHER if publishes else CLIENT_FDS_PER_SUBSCRIBER
    return math.ceil(connections / max(1, (ceiling - FD_SLACK) // per))


def client_refusal(cell: Cell, plan: Sequence[tuple[int, bool]]) -> str:
    """Why the cell's client workers (``plan``: connections, publishes per worker) cannot
    all open their connections under the open-file ceiling, naming ``client_processes``;
    "" when they can (or the cell's client is not ours: Locust and the browser count
    their own)."""
    ceiling = fd_ceiling()
    if ceiling is None or cell.client != "python":
        return ""
    worst = max(plan, key=lambda w: client_fds(*w))
    need = client_fds(*worst)
    if need <= ceiling:
        return ""
    enough = min_client_processes(cell.subscribers)
    return (
        f"client_processes = {len(plan)}: a client process of {worst[0]:,} connections needs "
        f"{need:,} open files, over the hard limit of {ceiling:,} it may not raise; set "
        f'client_processes to {enough} or more (or "auto")'
    )


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def columns(cell: Cell, per_node: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``server_open_files`` (the lowest open-file limit a server process reached, from
    each node's ``/stats``) and ``server_max_connections`` (each process's cap)."""
    if registry.stack(cell.stack).external:  # told neither: nothing to say
        return {"server_open_files": None, "server_max_connections": None}
    limits = []
    for stats in per_node:
        server = stats.get("server")
        got = _int(server.get("open_files_soft")) if isinstance(server, dict) else None
        if got is not None:
            limits.append(got)
    return {
        "server_open_files": min(limits) if limits else None,
        "server_max_connections": node_max_connections(cell),
    }

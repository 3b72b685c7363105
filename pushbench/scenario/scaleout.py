"""Scale-out cells (issue 12 item 4): what ``servers > 1`` needs, checked at parse time.

A cell with ``servers = N > 1`` runs N processes of its stack behind nginx's upstream
(round robin), the ticker publishing on node 0 and the subscribers spread over all.
That is only meaningful when every node hands its subscribers the same stream, so:

- the hub must be a broker (``redis`` or ``nats``): with ``hub = "memory"`` each process
  numbers its own messages and keeps its own history, so subscribers on other nodes would
  never get what node 0 publishes, and a long-poll or SSE client resuming with ``since=``
  on another node would find another sequence altogether;
- the balancer is nginx (``via = "nginx"`` or ``"nginx-naive"``): its config takes an
  upstream block of N servers;
- the stack is a module stack (``pushbench serve``), which can be told the broker.

h44 (issue 18 item 2): ``via = "direct"`` with ``servers = N > 1`` runs the N processes on
ONE port with ``SO_REUSEPORT`` instead (``pushbench serve --reuse-port``; the kernel spreads
the connections), how one box holds more connections than one process's open-file limit
allows. The stack must take ``reuse_port`` (its registry row's ``options``). An idle cell
(rate 0, no publishers) may keep ``hub = "memory"``: nothing is published, so there is no
stream to share; any other needs a broker as above.
"""

from __future__ import annotations

from typing import Any

from pushbench import registry
from pushbench.proxies import DIRECT

from .model import Cell

__all__ = ["BALANCERS", "refusal", "reuse_port_stacks"]

#: The ``via`` values whose config can hold several upstream servers.
BALANCERS: tuple[str, ...] = ("nginx", "nginx-naive")


def reuse_port_stacks() -> tuple[str, ...]:
    """The stacks whose processes can share one port: ``reuse_port`` in their options."""
    return tuple(s.name for s in registry.stacks() if "reuse_port" in s.options)


def refusal(cell: Cell) -> tuple[str, Any, str] | None:
    """(the key to change, its value, what it must be) when ``cell``'s ``servers`` cannot
    run with its other parameters; None when it can (always for ``servers = 1``)."""
    n = cell.servers
    if n == 1:
        return None
    shared_port = cell.via == DIRECT  # h44: N processes on one port (SO_REUSEPORT)
    idle = not cell.rate and not cell.publishers
    if cell.hub == "memory" and not (shared_port and idle):
        return (
            "servers",
            n,
            "1 with hub = 'memory' (each process would number its own messages and keep its "
            "own history: subscribers on other nodes would miss node 0's messages and a "
            "resume with since= on another node would find another sequence); use "
            "hub = 'redis' or 'nats' for servers > 1 (memory only in an idle cell on one port)",
        )
    if shared_port and "reuse_port" not in registry.stack(cell.stack).options:
        return (
            "stacks",
            cell.stack,
            f"a stack that takes reuse_port with servers = {n} and via = 'direct' (its "
            f"processes share one port with SO_REUSEPORT): {', '.join(reuse_port_stacks())}",
        )
    if cell.via not in BALANCERS and not shared_port:
        return (
            "via",
            cell.via,
            f"one of {', '.join(BALANCERS)} with servers = {n} (nginx balances the nodes), "
            f"or '{DIRECT}' (one port, SO_REUSEPORT)",
        )
    if registry.stack(cell.stack).external:
        return (
            "stacks",
            cell.stack,
            f"a module stack with servers = {n} (an external stack cannot be told the broker)",
        )
    return None

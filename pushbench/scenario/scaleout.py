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
"""

from __future__ import annotations

from typing import Any

from pushbench import registry

from .model import Cell

__all__ = ["BALANCERS", "refusal"]

#: The ``via`` values whose config can hold several upstream servers.
BALANCERS: tuple[str, ...] = ("nginx", "nginx-naive")


def refusal(cell: Cell) -> tuple[str, Any, str] | None:
    """(the key to change, its value, what it must be) when ``cell``'s ``servers`` cannot
    run with its other parameters; None when it can (always for ``servers = 1``)."""
    n = cell.servers
    if n == 1:
        return None
    if cell.hub == "memory":
        return (
            "servers",
            n,
            "1 with hub = 'memory' (each process would number its own messages and keep its "
            "own history: subscribers on other nodes would miss node 0's messages and a "
            "resume with since= on another node would find another sequence); use "
            "hub = 'redis' or 'nats' for servers > 1",
        )
    if cell.via not in BALANCERS:
        return (
            "via",
            cell.via,
            f"one of {', '.join(BALANCERS)} with servers = {n} (nginx balances the nodes)",
        )
    if registry.stack(cell.stack).external:
        return (
            "stacks",
            cell.stack,
            f"a module stack with servers = {n} (an external stack cannot be told the broker)",
        )
    return None

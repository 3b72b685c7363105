"""One look for every plot and table: a colour per transport, a line style per stack, one order.

Kept as data so the report, the comparison and the notebook agree: ``sse`` is
the same orange in every figure, ``starlette`` always dashed, and tables list
transports and stacks in the same order as the legends.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MARKERS",
    "STACKS",
    "STACK_STYLES",
    "TRANSPORTS",
    "TRANSPORT_COLORS",
    "color",
    "linestyle",
    "marker",
    "order_key",
]

#: Transports from the most to the least "push" (the order of tables and legends).
TRANSPORTS: tuple[str, ...] = ("ws", "ws-aiohttp", "sse", "longpoll", "shortpoll")
STACKS: tuple[str, ...] = ("raw", "aiohttp", "starlette")

# Colour-blind-safe (Okabe–Ito); the two WebSocket clients share a hue family.
TRANSPORT_COLORS: dict[str, str] = {
    "ws": "#0072B2",
    "ws-aiohttp": "#56B4E9",
    "sse": "#E69F00",
    "longpoll": "#009E73",
    "shortpoll": "#D55E00",
}
STACK_STYLES: dict[str, str] = {"raw": ":", "aiohttp": "-", "starlette": "--"}
MARKERS: dict[str, str] = {"raw": "^", "aiohttp": "o", "starlette": "s"}
_OTHER_COLOR = "#7f7f7f"


def color(transport: str) -> str:
    return TRANSPORT_COLORS.get(transport, _OTHER_COLOR)


def linestyle(stack: str) -> str:
    return STACK_STYLES.get(stack, "-.")


def marker(stack: str) -> str:
    return MARKERS.get(stack, "D")


def order_key(transport: Any, stack: Any, client: Any = "python") -> tuple[int, int, str]:
    """Sort key: transport order, then stack order, then the client's name."""
    t = TRANSPORTS.index(transport) if transport in TRANSPORTS else len(TRANSPORTS)
    s = STACKS.index(stack) if stack in STACKS else len(STACKS)
    return (t, s, "" if client == "python" else str(client))

"""One look for every plot and table: a colour per transport, a line style per stack, one order.

Read from the rows of :mod:`pushbench.registry` at the time of each call
(never copied at import), so the report, the comparison and the notebook
agree with each other and with the registry: ``sse`` is the same orange in
every figure, ``starlette`` always dashed, tables list transports and stacks
in the same order as the legends, and a row added to the registry (or by
:func:`pushbench.registry.extended` in a test) is drawn with its own colour
and sorted in its place. A name the registry does not know gets a neutral
grey, a dash-dot line and a diamond, and sorts last.
"""

from __future__ import annotations

from typing import Any

from pushbench import registry

__all__ = [
    "color",
    "hatch",
    "linestyle",
    "marker",
    "markers",
    "order_key",
    "stack_styles",
    "stacks",
    "transport_colors",
    "transports",
]

_OTHER_COLOR = "#7f7f7f"
_OTHER_LINESTYLE = "-."
_OTHER_MARKER = "D"
#: A stack's line style → the hatch of its bars (bars have no line style; solid: none).
_HATCHES = {":": "..", "--": "//"}


def transports() -> tuple[str, ...]:
    """Transports from the most to the least "push" (the order of tables and legends)."""
    return tuple(t.name for t in registry.transports())


def stacks() -> tuple[str, ...]:
    """Stacks in the order of tables and legends."""
    return tuple(s.name for s in registry.stacks())


def transport_colors() -> dict[str, str]:
    """Transport → colour (colour-blind-safe Okabe–Ito; a protocol's variants share a hue)."""
    return {t.name: t.color for t in registry.transports()}


def stack_styles() -> dict[str, str]:
    """Stack → matplotlib line style."""
    return {s.name: s.linestyle for s in registry.stacks()}


def markers() -> dict[str, str]:
    """Stack → matplotlib marker."""
    return {s.name: s.marker for s in registry.stacks()}


def color(transport: str) -> str:
    return transport_colors().get(transport, _OTHER_COLOR)


def linestyle(stack: str) -> str:
    return stack_styles().get(stack, _OTHER_LINESTYLE)


def marker(stack: str) -> str:
    return markers().get(stack, _OTHER_MARKER)


def hatch(stack: str) -> str:
    """The hatch of a stack's bars, following its line style (dotted ``..``, dashed ``//``)."""
    style = stack_styles().get(stack)
    return "" if style is None else _HATCHES.get(style, "")


def order_key(transport: Any, stack: Any, client: Any = "python") -> tuple[int, int, str]:
    """Sort key: transport order, then stack order, then the client's name."""
    ts, ss = transports(), stacks()
    t = ts.index(transport) if transport in ts else len(ts)
    s = ss.index(stack) if stack in ss else len(ss)
    return (t, s, "" if client == "python" else str(client))

"""Every transport and every server stack pushbench knows, as rows of data.

This module is the one place a transport or a stack is named. Scenario
validation, the worker dispatch of each client engine (asyncio, gevent for
Locust, the browser page), the runner's server start, the report's colours,
markers, protocol floors and simplicity order all read these tables, so adding
a transport or a stack is one row here plus the modules the row names
(``docs/architecture.md`` has the checklist, and ``tests/test_registry.py``
adds a dummy row and checks that every consumer picks it up).

Two kinds of row:

- :class:`Transport` — what a cell's ``transport`` value means: the wire
  *protocol* it measures (``ws-aiohttp`` is the ``ws`` protocol received by
  aiohttp's client, a *variant*), the URL path, streaming or polling, the
  client entry point per engine (``"module:attribute"``, imported only by the
  engine that needs it, so this module imports nothing of the project), the
  floor rule of :mod:`pushbench.report.floors`, colour, marker and the
  simplicity rank the decision guide states.
- :class:`Stack` — a server: a module exposing ``run`` (started as
  ``pushbench serve --stack NAME``) or an external command line with the line
  it prints once listening (a Node server is a row too), the protocols it
  serves, and the distributions whose versions a run records.

Rows are frozen; the tables are read through functions (:func:`transports`,
:func:`transport`, :func:`stacks`, …) at the time of use, never copied at
import time, so :func:`extended` can add rows for a test.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ENGINES",
    "PROTOCOL_LABELS",
    "Engine",
    "RegistryError",
    "Stack",
    "Transport",
    "extended",
    "protocol_names",
    "stack",
    "stack_names",
    "stacks",
    "transport",
    "transport_names",
    "transports",
]

Engine = Literal["asyncio", "gevent", "browser"]
#: Client engines: our asyncio clients (pushbench.clients.worker), gevent users under
#: Locust (pushbench.clients.locust_worker), and the browser page driven by Chromium.
ENGINES: tuple[Engine, ...] = ("asyncio", "gevent", "browser")
#: Cell parameters that only some transports use (blanked to None elsewhere).
OPTIONAL_PARAMS: tuple[str, ...] = (
    "poll_interval_s",
    "poll_timeout_s",
    "heartbeat_s",
    "compression",  # h25 (compression): WebSocket rows only
)


class RegistryError(KeyError):
    """An unknown transport or stack name, with the known ones in the message."""

    def __str__(self) -> str:  # KeyError quotes its argument; say it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class Transport:
    """One value of a cell's ``transport``.

    ``protocol`` is the wire protocol measured: a transport whose name differs
    from its protocol is a client *variant* of it (``ws-aiohttp``: the WebSocket
    protocol, received with aiohttp's client instead of ours), compared with
    its protocol's other variants but never counted as another protocol.
    ``clients`` maps an engine to the entry point that receives this
    transport (``"module:attribute"``); an engine missing from it cannot run
    the transport. ``ws_client`` names the Python WebSocket client for the
    scenario's ``ws_client`` knob (``None`` for non-WebSocket transports).
    ``params`` are the optional cell parameters that apply to it.
    """

    name: str
    protocol: str
    label: str
    path: str
    delivery: Literal["streaming", "polling"]
    upgrade: bool  # needs a protocol upgrade (not plain HTTP request/response)
    floor: Literal["ws", "sse", "poll"]
    color: str
    marker: str
    simplicity: int  # 1 is simplest; a stated property of the protocol, not measured
    simplicity_why: str
    clients: Mapping[Engine, str]
    params: frozenset[str] = frozenset()
    ws_client: str | None = None
    default: bool = True  # in a scenario's default list of transports
    # h35 (issue 18 item 3): the client speaks HTTP/2 (h2c with prior knowledge, or h2
    # by ALPN over TLS): only a stack with ``http2`` serves it
    http2: bool = False

    @property
    def is_variant(self) -> bool:
        return self.name != self.protocol

    def client(self, engine: Engine) -> str:
        """The entry point of ``engine`` for this transport, or RegistryError."""
        try:
            return self.clients[engine]
        except KeyError:
            can = ", ".join(self.clients) or "none"
            raise RegistryError(
                f"transport {self.name!r} has no {engine} client (engines: {can})"
            ) from None

    def load_client(self, engine: Engine) -> object:
        """Import the ``"module:attribute"`` entry point of ``engine`` and return the
        attribute: only the engine that runs a transport imports its client."""
        module, sep, attribute = self.client(engine).partition(":")
        if not sep:
            raise RegistryError(f"transport {self.name!r}: {engine} client is not module:attribute")
        return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Stack:
    """A server stack the runner can start.

    Either ``module`` (a module exposing ``STACK``, started through
    ``pushbench serve --stack NAME``) or ``argv`` (an external command line;
    ``{host}`` and ``{port}`` are substituted) is set. ``ready_line`` is the
    start of the stdout line the process prints once it listens; for
    ``pushbench serve`` it carries the bound port. ``serves`` lists the
    protocols it serves (``echo`` included where it has ``/echo``).

    An external ``argv`` may also carry ``{history}`` (messages of history the
    cell needs) and ``{loop}`` (asyncio or uvloop): a stack that takes them runs
    the cells that need them (:meth:`takes`). ``twin_of`` names the stack this one
    is the hand-written minimal twin of (``servers/minimal``): the report puts
    the two side by side as the framework and harness tax. ``requires`` lists files an
    external stack needs besides its program (the Node server's ``node_modules``):
    :meth:`missing` says what is absent, with ``install_hint``, so its cells are skipped
    with the reason instead of failing to start.
    """

    name: str
    label: str
    serves: tuple[str, ...]
    module: str | None = None
    argv: tuple[str, ...] | None = None
    ready_line: str = "pushbench serve:"
    distributions: tuple[str, ...] = ()
    linestyle: str = "-"
    marker: str = "o"
    options: tuple[str, ...] = field(default=())  # stack-specific serve options it honours
    twin_of: str | None = None
    #: Files an external stack needs besides its argv's program (e.g. its node_modules),
    #: and the command that installs what is missing (:meth:`missing`).
    requires: tuple[str, ...] = ()
    install_hint: str = ""
    # h35 (issue 18 item 3): also speaks HTTP/2 (h2c prior knowledge; h2 by ALPN on TLS)
    http2: bool = False

    def __post_init__(self) -> None:
        if (self.module is None) == (self.argv is None):
            raise ValueError(f"stack {self.name!r}: exactly one of module and argv")

    @property
    def external(self) -> bool:
        return self.argv is not None

    def missing(self) -> str:
        """Why an external stack cannot start on this machine ("" when it can): its argv's
        program not on PATH, or a file of ``requires`` absent."""
        if self.argv is None:
            return ""
        absent = [] if shutil.which(self.argv[0]) else [self.argv[0]]
        absent += [path for path in self.requires if not Path(path).exists()]
        if not absent:
            return ""
        hint = f": {self.install_hint}" if self.install_hint else ""
        return f"stack {self.name!r} needs {', '.join(absent)}, which is missing{hint}"

    def takes(self, placeholder: str) -> bool:
        """Whether an external stack's argv has ``{placeholder}`` (it is told that value)."""
        return self.argv is not None and any("{" + placeholder + "}" in a for a in self.argv)

    def command(self, host: str, port: int, **values: object) -> list[str]:
        """An external stack's argv with ``{host}``/``{port}`` (and ``values``, e.g.
        ``history``, ``loop``) filled in."""
        if self.argv is None:
            raise ValueError(f"stack {self.name!r} is started by pushbench serve, not argv")
        return [a.format(host=host, port=port, **values) for a in self.argv]


_WS_WHY = "a protocol upgrade: reconnect, resume and heartbeats are yours to write"

#: Protocol → the name a reader sees.
PROTOCOL_LABELS: Mapping[str, str] = MappingProxyType(
    {"ws": "WebSocket", "sse": "SSE", "longpoll": "long polling", "shortpoll": "short polling"}
)

# Colours: colour-blind-safe Okabe–Ito; each protocol's clients share a hue family (the
# default, light client in the full colour, an aiohttp variant in a lighter one).
_TRANSPORTS: dict[str, Transport] = {
    t.name: t
    for t in (
        Transport(
            name="ws",
            protocol="ws",
            label="WebSocket",
            path="/ws",
            delivery="streaming",
            upgrade=True,
            floor="ws",
            color="#0072B2",
            marker="o",
            simplicity=4,
            simplicity_why=_WS_WHY,
            clients={
                "asyncio": "pushbench.clients.ws_light:run",
                "gevent": "pushbench.clients.locust_ws:WsSession",
                "browser": "ws",
            },
            params=frozenset({"heartbeat_s", "compression"}),  # h25: compression
            ws_client="light",
        ),
        Transport(
            name="ws-aiohttp",
            protocol="ws",
            label="WebSocket (aiohttp client)",
            path="/ws",
            delivery="streaming",
            upgrade=True,
            floor="ws",
            color="#56B4E9",
            marker="o",
            simplicity=4,
            simplicity_why=_WS_WHY,
            clients={"asyncio": "pushbench.clients.ws_aiohttp:run"},
            params=frozenset({"heartbeat_s", "compression"}),  # h25: compression
            ws_client="aiohttp",
            default=False,
        ),
        Transport(
            name="sse",
            protocol="sse",
            label="SSE",
            path="/sse",
            delivery="streaming",
            upgrade=False,
            floor="sse",
            color="#E69F00",
            marker="s",
            simplicity=1,
            simplicity_why="one long HTTP response; EventSource reconnects by itself and "
            "resumes with Last-Event-ID",
            clients={
                "asyncio": "pushbench.clients.sse:run",
                "gevent": "pushbench.clients.locust_sse:SseSession",
                "browser": "sse",
            },
            params=frozenset({"heartbeat_s"}),
        ),
        Transport(
            name="longpoll",
            protocol="longpoll",
            label="long polling",
            path="/poll",
            delivery="polling",
            upgrade=False,
            floor="poll",
            color="#009E73",
            marker="^",
            simplicity=3,
            simplicity_why="plain HTTP, but the client loops and the server holds and times "
            "out requests",
            clients={
                "asyncio": "pushbench.clients.poll:run_long",
                "gevent": "pushbench.clients.locust_poll:LongPollSession",
                "browser": "longpoll",
            },
            params=frozenset({"poll_timeout_s"}),
        ),
        Transport(
            name="shortpoll",
            protocol="shortpoll",
            label="short polling",
            path="/poll",
            delivery="polling",
            upgrade=False,
            floor="poll",
            color="#D55E00",
            marker="v",
            simplicity=2,
            simplicity_why="stateless request/response any HTTP client, proxy and cache handles",
            clients={
                "asyncio": "pushbench.clients.poll:run_short",
                "gevent": "pushbench.clients.locust_poll:ShortPollSession",
                "browser": "shortpoll",
            },
            params=frozenset({"poll_interval_s"}),
        ),
    )
}


def _aiohttp_variant(row: Transport, color: str, entry: str) -> Transport:
    """``<name>-aiohttp``: ``row``'s protocol received by aiohttp's client instead of our
    light one (a variant, not in a scenario's default list), in a lighter ``color`` of
    the protocol's hue."""
    return replace(
        row,
        name=f"{row.name}-aiohttp",
        label=f"{row.label} (aiohttp client)",
        color=color,
        clients={"asyncio": entry},
        default=False,
    )


#: The aiohttp variants of the HTTP protocols: transport → (colour, asyncio entry point);
#: each row follows its protocol's row (the report's order).
_HTTP_VARIANTS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "sse": ("#F5C46B", "pushbench.clients.sse_aiohttp:run"),
        "longpoll": ("#6FCDB0", "pushbench.clients.poll_aiohttp:run_long"),
        "shortpoll": ("#EE9A66", "pushbench.clients.poll_aiohttp:run_short"),
    }
)
_TRANSPORTS = {
    t.name: t
    for base in _TRANSPORTS.values()
    for t in (
        (base, _aiohttp_variant(base, *_HTTP_VARIANTS[base.name]))
        if base.name in _HTTP_VARIANTS
        else (base,)
    )
}

_SERVED = ("ws", "sse", "longpoll", "shortpoll", "echo")


# --- h35 (issue 18 item 3): HTTP/2 -------------------------------------------------------
#: The HTTP/2 variants of the HTTP protocols: one TCP connection per worker carries every
#: subscriber as a stream (clients/h2_light.py, on the sans-I/O ``h2`` library), served by
#: the Hypercorn stack (``http2``); transport → (colour, asyncio entry point).
_H2_VARIANTS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "sse": ("#A66F00", "pushbench.clients.h2_light:run_sse"),
        "longpoll": ("#00664A", "pushbench.clients.h2_light:run_long"),
    }
)


def _h2_variant(row: Transport, color: str, entry: str) -> Transport:
    """``<name>-h2``: ``row``'s protocol over HTTP/2, many streams on one connection (a
    variant, not in a scenario's default list), in a darker ``color`` of its hue."""
    return replace(
        row,
        name=f"{row.name}-h2",
        label=f"{row.label} over HTTP/2",
        color=color,
        clients={"asyncio": entry},
        default=False,
        http2=True,
    )


_TRANSPORTS.update(  # after every HTTP/1.1 row (the rows before keep their order)
    (f"{name}-h2", _h2_variant(_TRANSPORTS[name], *row)) for name, row in _H2_VARIANTS.items()
)
#: The Starlette application on Hypercorn: HTTP/1.1 and HTTP/2 on one socket, no
#: WebSocket (its /ws needs uvicorn's hooks; over HTTP/2 it would be RFC 8441's extended
#: CONNECT, which no client here speaks).
_HYPERCORN = Stack(
    name="starlette-hypercorn",
    label="Starlette + sse-starlette on Hypercorn (HTTP/1.1 and h2c)",
    serves=("sse", "longpoll", "shortpoll"),
    module="pushbench.servers.hypercorn_stack",
    distributions=("starlette", "hypercorn", "h2", "sse-starlette", "numpy", "hdrhistogram"),
    linestyle="-",
    marker="h",
    http2=True,
)
# --- end h35 --------------------------------------------------------------------------------
_COMMON_DISTS = ("numpy", "hdrhistogram", "redis", "uvloop")

#: Hand-written minimal twins (``servers/minimal/<stack>_twin.py``): stack → its
#: distributions, line style and marker. Never a scenario's default (no stack is but aiohttp).
_TWINS: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    ("aiohttp", ("aiohttp",), "-.", "P"),
    ("starlette", ("starlette", "uvicorn", "sse-starlette", "httptools"), "-.", "X"),
)


#: A twin's options after its module: what the runner fills in (history and loop included).
_TWIN_ARGS = ("--host", "{host}", "--port", "{port}", "--history", "{history}", "--loop", "{loop}")


def _twin(of: str, distributions: tuple[str, ...], linestyle: str, marker: str) -> Stack:
    """The external stack row of ``of``'s twin: one file on the framework alone, told the
    cell's history and loop (it serves the four push protocols, no ``/echo``)."""
    module = f"pushbench.servers.minimal.{of}_twin"
    return Stack(
        name=f"{of}-twin",
        label=f"{of}, hand-written minimal twin",
        serves=("ws", "sse", "longpoll", "shortpoll"),
        argv=(sys.executable, "-m", module, *_TWIN_ARGS),
        ready_line="pushbench twin:",
        distributions=distributions,
        linestyle=linestyle,
        marker=marker,
        twin_of=of,
    )


# --- h28 (issue 12 item 7): the Node `ws` reference server -------------------------------
#: servers/node (reached through the pushbench/servers link, so a wheel finds it too): the
#: WebSocket part of the contract (docs/contract.md) on the npm package ws, pinned by its
#: package-lock.json; `make system-deps` installs Debian's nodejs and runs `npm ci` there.
_NODE_DIR = Path(__file__).resolve().parent / "servers" / "node"
_NODE_WS = Stack(
    name="node-ws",
    label="Node ws (reference server)",
    serves=("ws",),
    argv=(
        *("node", str(_NODE_DIR / "server.js")),
        *("--host", "{host}", "--port", "{port}", "--history", "{history}"),
    ),
    ready_line="pushbench external:",
    linestyle="--",
    marker="D",
    requires=(str(_NODE_DIR / "node_modules" / "ws" / "package.json"),),
    install_hint="run `make system-deps` (Debian's nodejs and npm, then `npm ci` in servers/node)",
)
# --- end h28 --------------------------------------------------------------------------------

_STACKS: dict[str, Stack] = {
    s.name: s
    for s in (
        Stack(
            name="raw",
            label="raw (asyncio Protocols + pushbench.wire)",
            serves=_SERVED,
            module="pushbench.servers.raw",
            distributions=_COMMON_DISTS,
            linestyle=":",
            marker="^",
            options=("reuse_port",),  # h44: serve --reuse-port (several processes, one port)
        ),
        Stack(
            name="aiohttp",
            label="aiohttp",
            serves=_SERVED,
            module="pushbench.servers.aiohttp_stack",
            distributions=("aiohttp", *_COMMON_DISTS),
            linestyle="-",
            marker="o",
            options=("reuse_port",),  # h44: serve --reuse-port (several processes, one port)
        ),
        Stack(
            name="starlette",
            label="Starlette + sse-starlette on uvicorn",
            serves=_SERVED,
            module="pushbench.servers.starlette_stack",
            distributions=("starlette", "uvicorn", "sse-starlette", "httptools", *_COMMON_DISTS),
            linestyle="--",
            marker="s",
            options=("ws_impl", "reuse_port"),  # h44: reuse_port as aiohttp's
        ),
        *(_twin(*row) for row in _TWINS),
        _NODE_WS,  # h28
        _HYPERCORN,  # h35
    )
}


# --- reading the tables ------------------------------------------------------------------


def transports() -> tuple[Transport, ...]:
    """Every transport, in the report's order (most to least "push")."""
    return tuple(_TRANSPORTS.values())


def transport_names() -> tuple[str, ...]:
    return tuple(_TRANSPORTS)


def protocol_names() -> tuple[str, ...]:
    """The distinct protocols, in transport order (variants folded into theirs)."""
    return tuple(dict.fromkeys(t.protocol for t in _TRANSPORTS.values()))


def transport(name: str) -> Transport:
    """The row of ``name``, or RegistryError naming the known transports."""
    try:
        return _TRANSPORTS[name]
    except KeyError:
        raise RegistryError(
            f"unknown transport {name!r} (known: {', '.join(_TRANSPORTS)})"
        ) from None


def stacks() -> tuple[Stack, ...]:
    return tuple(_STACKS.values())


def stack_names() -> tuple[str, ...]:
    return tuple(_STACKS)


def stack(name: str) -> Stack:
    """The row of ``name``, or RegistryError naming the known stacks."""
    try:
        return _STACKS[name]
    except KeyError:
        raise RegistryError(f"unknown stack {name!r} (known: {', '.join(_STACKS)})") from None


@contextlib.contextmanager
def extended(
    *, transports: tuple[Transport, ...] = (), stacks: tuple[Stack, ...] = ()
) -> Iterator[None]:
    """Add rows for the duration of a ``with`` block (tests: a dummy transport or stack).

    Names already known are refused: a row is added, never replaced.
    """
    clash = [t.name for t in transports if t.name in _TRANSPORTS]
    clash += [s.name for s in stacks if s.name in _STACKS]
    if clash:
        raise ValueError(f"already registered: {', '.join(clash)}")
    _TRANSPORTS.update((t.name, t) for t in transports)
    _STACKS.update((s.name, s) for s in stacks)
    try:
        yield
    finally:
        for t in transports:
            _TRANSPORTS.pop(t.name, None)
        for s in stacks:
            _STACKS.pop(s.name, None)

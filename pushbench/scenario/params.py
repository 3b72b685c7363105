"""The scenario's parameter table: every key a file may set, what it allows, its default,
and which parameters apply to which transport.

The allowed transports and stacks, the default list of transports and the
parameters each transport uses are the rows of :mod:`pushbench.registry`, read
each time a value is checked (never copied at import time), so a row added by
:func:`pushbench.registry.extended` is a valid value at once. The other
choices (hubs, loops, client kinds) are this module's own constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pushbench import registry
from pushbench.churn import TABLE_FORM, Churn
from pushbench.netem.profiles import DEFAULT_NET, net_names
from pushbench.outage import TABLE_FORM as FAULT_FORM  # h32 (issue 12 item 5)
from pushbench.outage import Outage
from pushbench.payloads import PAYLOAD_KINDS
from pushbench.proxies import DIRECT, TLS_AT, TLS_AT_DEFAULT, via_names
from pushbench.registry import Engine, stack_names, transport_names

__all__ = [
    "CLIENTS",
    "CLIENT_ENGINES",
    "CONNECTIONS_PER_SOURCE",
    "HUBS",
    "LOOPS",
    "MAX_DURATION_S",
    "MAX_PAYLOAD",
    "MAX_PUBLISH_PAYLOAD",
    "MAX_RATE",
    "MAX_RECEIPTS",
    "MAX_SUBSCRIBERS",
    "PARAMS",
    "Invalid",
    "Kind",
    "Param",
    "default",
    "default_transports",
    "normalize",
    "num_id",
    "stack_names",
    "transport_names",
    "ws_client_names",
]

HUBS: tuple[str, ...] = ("memory", "redis", "nats")  # nats: issue 12 item 4 (h31)
#: issue 12 item 4 (scale-out, h31): server processes of a cell behind nginx
MAX_SERVERS = 8  # h44: 6 processes hold 100,000 connections under a 20,000-file limit
LOOPS: tuple[str, ...] = ("asyncio", "uvloop")
COMPRESSIONS: tuple[str, ...] = ("off", "deflate")  # h25 (compression)
#: Who receives → the client engine of the registry rows that drives it: our Python
#: clients (pushbench.clients.worker), headless Chromium's own WebSocket/EventSource/fetch
#: (pushbench.clients.browser_worker), or Locust users on gevent
#: (pushbench.clients.locust_worker). Each writes the same worker output.
CLIENT_ENGINES: Mapping[str, Engine] = {"python": "asyncio", "browser": "browser",
                                        "locust": "gevent"}  # fmt: skip
CLIENTS: tuple[str, ...] = tuple(CLIENT_ENGINES)
SCALES: tuple[str, ...] = ("log", "linear")

# issue 18 item 2 (100,000 connections on one box): the runner passes the cell's count to the
# server's --max-connections and spreads the clients over source addresses past 12,000
MAX_SUBSCRIBERS = 100_000
#: Connections per client source address (127.0.0.x). One source/destination pair has
#: ~28,000 ephemeral ports (net.ipv4.ip_local_port_range 32768–60999), but Linux's connect()
#: searches one half of the range first (the other half is bind()'s): measured here, with
#: IP_BIND_ADDRESS_NO_PORT and 11 processes over 5 addresses, blocking connects ran at ~40,000/s
#: until about 14,000 connections on an address and then fell to ~1,500/s on that address
#: (the ramp of the 100,000 cell stalled at ~72,000). 12,000 stays inside that half.
CONNECTIONS_PER_SOURCE = 12_000
MAX_RATE = 1_000_000.0  # messages/s: far beyond what one Python server can publish
MAX_PAYLOAD = 1 << 20
MAX_PUBLISH_PAYLOAD = 65_536  # ServerConfig.max_publish_bytes: the POST /publish limit
MAX_DURATION_S = 3_600.0
# Receipt arrays cost ~36 bytes per received message; past this a cell needs GBs.
MAX_RECEIPTS = 20_000_000


def num_id(x: float) -> str:
    """A number as it appears in ids and messages: ``1000``, ``0.5``, never ``1e+03``."""
    x = round(float(x), 6)  # 0.05 * 1000 is 50.00000000000001
    if x.is_integer():
        return str(int(x))
    return f"{x:.6f}".rstrip("0").rstrip(".")


# --- what the registry decides ------------------------------------------------------------


def ws_client_names() -> tuple[str, ...]:
    """The Python WebSocket clients of the ``ws_client`` knob: the rows' ``ws_client``."""
    return tuple(dict.fromkeys(t.ws_client for t in registry.transports() if t.ws_client))


def default_transports() -> tuple[str, ...]:
    """The transports of a file that does not list any: the rows with ``default=True``."""
    return tuple(t.name for t in registry.transports() if t.default)


def normalize(values: dict[str, Any]) -> dict[str, Any]:
    """Resolve the ``ws_client`` alias and blank out parameters a transport does not use.

    A protocol's own row (``ws``) with another ``ws_client`` becomes the variant row
    that names that client (``ws-aiohttp``); a variant keeps its client whatever the
    knob says. ``ws_client`` stays only where a Python WebSocket client is used (and
    on a variant, so that a refusal can show it), and each optional parameter of
    :data:`pushbench.registry.OPTIONAL_PARAMS` is ``None`` unless the row's ``params``
    has it: equal cells then collapse into one instead of being measured twice.
    """
    row = registry.transport(values["transport"])
    if not row.is_variant and row.ws_client is not None and values["ws_client"] != row.ws_client:
        row = next(
            (
                t
                for t in registry.transports()
                if t.protocol == row.protocol and t.ws_client == values["ws_client"]
            ),
            row,
        )
    values["transport"] = row.name
    python = values["client"] == "python"
    values["ws_client"] = row.ws_client if row.is_variant or python else None
    for name in registry.OPTIONAL_PARAMS:
        if name not in row.params:
            values[name] = None
    # h42: tls_at only means something for a TLS cell behind a proxy (direct TLS always ends
    # at the server); elsewhere it is the default, so such cells collapse into one
    if "tls_at" in values and (not values.get("tls") or values.get("via") == DIRECT):
        values["tls_at"] = TLS_AT_DEFAULT
    return values


# --- value kinds --------------------------------------------------------------------------


class Invalid(Exception):
    """A value a parser refused; the caller adds file, path and expectation."""


@dataclass(frozen=True)
class Kind:
    """How one value is checked: ``parse`` normalizes it or raises :class:`Invalid`.

    ``text`` says what is allowed, for the error message; a choice has none of
    its own and names its ``choices``, read at each use (registry rows).
    """

    text: str
    parse: Callable[[Any], Any]
    choices: Callable[[], Sequence[str]] | None = None

    @property
    def options(self) -> tuple[str, ...]:
        """The allowed words, for "did you mean" (empty for numbers)."""
        return tuple(self.choices()) if self.choices is not None else ()

    @property
    def expected(self) -> str:
        return self.text or f"one of {', '.join(self.options)}"


def choice(options: Callable[[], Sequence[str]] | Sequence[str]) -> Kind:
    """One of ``options`` (a callable: read each time a value is checked)."""
    read: Callable[[], Sequence[str]] = options if callable(options) else lambda: options

    def parse(v: Any) -> str:
        if not isinstance(v, str) or v not in read():
            raise Invalid
        return v

    return Kind("", parse, read)


def integer(lo: int, hi: int, what: str = "", *, also: int | None = None) -> Kind:
    def parse(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Invalid
        if not (lo <= v <= hi or v == also):
            raise Invalid
        return v

    prefix = f"{also} or " if also is not None else ""
    return Kind(f"{prefix}an integer from {lo} to {hi}{what}", parse)


def number(lo: float, hi: float, what: str = "", *, lo_open: bool = False) -> Kind:
    def parse(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise Invalid
        if not lo <= v <= hi or (lo_open and v == lo):
            raise Invalid
        return float(v)

    low = f"greater than {num_id(lo)} and up" if lo_open else f"from {num_id(lo)}"
    return Kind(f"a number {low} to {num_id(hi)}{what}", parse)


def _parse_churn(v: Any) -> Churn | None:
    """The soak's connection churn (issue 17 item 6): a table, or nothing (off)."""
    try:
        return Churn.from_table(v)
    except ValueError:
        raise Invalid from None


# --- h32 (issue 12 item 5): a fault in the measured window ----------------------------
def _parse_fault(v: Any) -> Outage | None:
    """A fault in the window (issue 12 item 5): a table, or nothing (none)."""
    try:
        return Outage.from_table(v)
    except ValueError:
        raise Invalid from None


# --- end h32 ----------------------------------------------------------------------------


def boolean() -> Kind:
    """true or false (a TOML boolean, not a string)."""

    def parse(v: Any) -> bool:
        if not isinstance(v, bool):
            raise Invalid
        return v

    return Kind("true or false", parse)


def _parse_processes(v: Any) -> int | None:
    if v == "auto":
        return None
    return int(integer(1, 64).parse(v))


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One cell parameter: TOML key, Cell field, allowed values, default values."""

    key: str  # TOML key
    field: str  # Cell field
    kind: Kind
    default: tuple[Any, ...] | Callable[[], tuple[Any, ...]]  # callable: read at each use
    listable: bool  # a list is a dimension of the matrix

    def defaults(self) -> tuple[Any, ...]:
        """The values when the file does not set the key."""
        return self.default() if callable(self.default) else self.default


def _p(key: str, kind: Kind, default: Any, *, field: str = "", listable: bool = True) -> Param:
    values = default if isinstance(default, tuple) or callable(default) else (default,)
    return Param(key, field or key, kind, values, listable)


#: Every cell parameter: TOML key, Cell field, allowed values, default.
PARAMS: tuple[Param, ...] = (
    _p("stacks", choice(stack_names), "aiohttp", field="stack"),
    _p("transports", choice(transport_names), default_transports, field="transport"),
    _p("ws_client", choice(ws_client_names), "light"),
    _p("client", choice(CLIENTS), "python"),
    _p("subscribers", integer(1, MAX_SUBSCRIBERS, " (connections)"), 10),
    _p("publishers", integer(0, MAX_SUBSCRIBERS, " (0 = the server's ticker)"), 0),
    _p("rate", number(0, MAX_RATE, " (messages/s published, 0 = idle)"), 100.0),
    _p("payload_size", integer(0, MAX_PAYLOAD, " (bytes)"), 100),
    _p("hub", choice(HUBS), "memory"),
    _p("loop", choice(LOOPS), "asyncio"),
    # h25 (compression): permessage-deflate, and what the ticker's payload holds
    _p("compression", choice(COMPRESSIONS), "off"),
    _p("payload_kind", choice(PAYLOAD_KINDS), "filler"),
    _p("poll_interval_s", number(0, 60, " (s)", lo_open=True), 0.1),
    _p("poll_timeout_s", number(0, 120, " (s)", lo_open=True), 30.0),
    _p("heartbeat_s", number(0, 300, " (s)", lo_open=True), 15.0),
    # -- issue 17 item 6 (soak): connection churn, off by default (not in the cell id then) --
    _p("churn", Kind(TABLE_FORM, _parse_churn), None),
    # -- network conditions (issue 12 item 6): pushbench.netem's profiles; loopback: no relay
    _p("net", choice(net_names), DEFAULT_NET),
    # -- end network conditions --
    # issue 12 item 2 (TLS): https:// and wss:// with a certificate made for the run
    _p("tls", boolean(), False),
    # --- h27 (issue 12 item 1): a reverse proxy in front of the server ----------------
    _p("via", choice(via_names), DIRECT),
    # --- end h27 ------------------------------------------------------------------------
    # --- issue 12 item 4 (scale-out, h31): N server processes behind nginx, one broker ---
    _p("servers", integer(1, MAX_SERVERS, " (server processes: behind nginx, or on one port)"), 1),
    # --- end scale-out --------------------------------------------------------------------
    # --- h32 (issue 12 item 5): a fault in the window, none by default (not in the id) ---
    _p("fault", Kind(FAULT_FORM, _parse_fault), None),
    # --- end h32 ------------------------------------------------------------------------
    # --- h42 (issue 12 item 2): behind a proxy, TLS ends there or goes on to the server ---
    _p("tls_at", choice(TLS_AT), TLS_AT_DEFAULT),
    # --- end h42 ------------------------------------------------------------------------
    _p("duration_s", number(0, MAX_DURATION_S, " (s)", lo_open=True), 10.0, listable=False),
    _p("warmup_s", number(0, 600, " (s)"), 2.0, listable=False),
    _p("repeats", integer(1, 100), 3, listable=False),
    # -- issue 18 item 2 (100,000 connections): the ramp and the client source addresses --
    _p("connect_rate", number(0, 1e6, " (connections/s, 0 = unpaced)"), 0.0, listable=False),
    _p(
        "connections_per_source",
        integer(1, 28_000, " (connections per client source address 127.0.0.x)"),
        CONNECTIONS_PER_SOURCE,
        listable=False,
    ),
    # -- end issue 18 item 2 --
    _p(
        "client_processes",
        Kind('"auto" or an integer from 1 to 64', _parse_processes),
        None,
        listable=False,
    ),
)
BY_KEY: dict[str, Param] = {p.key: p for p in PARAMS}
BY_FIELD: dict[str, Param] = {p.field: p for p in PARAMS}
FIELDS: tuple[str, ...] = tuple(p.field for p in PARAMS)


def default(field: str) -> Any:
    """A Cell field's default value (the first of its defaults)."""
    return BY_FIELD[field].defaults()[0]


SLO_SPEC: dict[str, tuple[Kind, Any]] = {
    "p99_ms": (number(0, 600_000, " (ms)", lo_open=True), None),
    "min_delivered_fraction": (number(0, 1, " (fraction of messages)", lo_open=True), 0.99),
    "probes": (integer(0, 20, " (extra rates tried by bisection)"), 3),
}
CHECKS_SPEC: dict[str, tuple[Kind, Any]] = {
    "delay_ms": (number(0, 10_000, " (ms, 0 = off)"), 0.0),
    "pause_ms": (number(0, 60_000, " (ms, 0 = off)"), 0.0),
    "pause_at_s": (number(0, MAX_DURATION_S, " (s into the measured window)"), None),
    "drop_every": (integer(2, 1_000_000, " (0 = off)", also=0), 0),
    "recv_bias_ms": (number(0, 10_000, " (ms, 0 = off)"), 0.0),
    "client_stall_ms": (number(0, 10_000, " (ms, 0 = off)"), 0.0),
    "client_stall_every_ms": (number(0, 600_000, " (ms, 0 = off)"), 0.0),
    "drop_receipt_every": (integer(2, 1_000_000, " (0 = off)", also=0), 0),
}
SWEEP_KEYS = ("start", "stop", "steps", "scale")
BLOCK_KEYS = (*BY_KEY, "slo", "checks", "exclude")
TOP_KEYS = ("name", "description", "cells", *BLOCK_KEYS)
RULE_KEYS = tuple(p.field for p in PARAMS if p.listable)

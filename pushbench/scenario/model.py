"""What a validated scenario is: :class:`Cell` (one measured point), :class:`Scenario`,
the ``[slo]`` and ``[checks]`` values, and :class:`ScenarioError`.

These are plain frozen values: the runner, the metrics and the report read
them; :mod:`pushbench.scenario.parse` is the only code that builds them from a
file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from pushbench import registry
from pushbench.churn import Churn
from pushbench.faults import ClientFaults
from pushbench.outage import Outage  # h32 (issue 12 item 5)
from pushbench.thresholds import Threshold

from .abuse import AbuseSpec
from .browser_streams import BrowserStreamsSpec  # h43
from .params import default, num_id

__all__ = [
    "CELL_OVERHEAD_S",
    "REMEASURE_AT",
    "REMEASURE_SHARE",
    "Cell",
    "Checks",
    "Scenario",
    "ScenarioError",
    "Slo",
    "remeasure_limit",
]

# Seconds each run spends outside warm-up and measurement: starting the server
# and client processes, connecting, collecting and writing results.
CELL_OVERHEAD_S = 2.0

#: ``pushbench run`` re-measures at most this share of a run's repeats (those that cost
#: more than their cell's usual: ``pushbench.runner.speed``), the costliest first: in
#: ``make bench`` (66 repeats of ~7 s) 9 re-measures, ~63 s, which its 10 minutes hold.
REMEASURE_SHARE = 0.15
#: … a repeat whose server or client CPU per message is this many times its cell's median
#: (four ``make bench`` runs: 11 % of repeats at 1.2, catching 15 of 19 p50 outliers).
REMEASURE_AT = 1.2
#: … or whose window lost this share of one of its cores to the hypervisor (steal time:
#: ``pushbench.runner.steal``; 42 repeats on an AMD host: the p50 outliers had 8–17 %).
STEAL_AT = 0.05


def remeasure_limit(planned: int) -> int:
    """How many repeats a run of ``planned`` may re-measure (:data:`REMEASURE_SHARE`, ≥ 1)."""
    return max(1, int(planned * REMEASURE_SHARE))


class ScenarioError(ValueError):
    """A scenario file that cannot be run, and how to fix it.

    ``file`` and ``path`` (dotted, e.g. ``cells[2].rate``; empty for the whole
    file) locate the mistake; the message also carries the bad value and the
    allowed values or range.
    """

    def __init__(self, file: str, path: str, problem: str) -> None:
        self.file = file
        self.path = path
        self.problem = problem
        super().__init__(f"{file}: {path}: {problem}" if path else f"{file}: {problem}")


@dataclass(frozen=True)
class Slo:
    """Service level for the saturation search: p99 and delivered fraction, both required.

    ``probes`` is how many extra rates the runner may try (bisection) beyond
    the listed ones for each group of cells that differ only in rate.
    """

    p99_ms: float
    min_delivered_fraction: float = 0.99
    probes: int = 3


@dataclass(frozen=True)
class Checks:
    """Faults injected so the instrument can prove it sees them.

    The server's (:class:`pushbench.faults.Faults`): ``delay_ms``: every message is
    delayed by this much (latency must rise by it); ``pause_ms`` at ``pause_at_s``
    (seconds into the measured window): the event loop stalls once (a spike, no lost
    messages); ``drop_every``: every Nth message is dropped (loss must be exactly 1/N).

    The client's, a deliberately broken instrument (:class:`pushbench.faults.ClientFaults`,
    applied in every asyncio client's receive path): ``recv_bias_ms``: every receive
    time is recorded that much late; ``client_stall_ms`` every ``client_stall_every_ms``:
    the client's event loop blocks (its loop lag must show it); ``drop_receipt_every``:
    every Nth receipt is not recorded (loss must be 1/N). Zero means off.
    """

    delay_ms: float = 0.0
    pause_ms: float = 0.0
    pause_at_s: float | None = None
    drop_every: int = 0
    recv_bias_ms: float = 0.0
    client_stall_ms: float = 0.0
    client_stall_every_ms: float = 0.0
    drop_receipt_every: int = 0

    @property
    def active(self) -> bool:
        return self.server_active or self.client_active

    @property
    def server_active(self) -> bool:
        """Faults the server injects (they need a module stack and the memory hub)."""
        return bool(self.delay_ms or self.pause_ms or self.drop_every)

    @property
    def client_active(self) -> bool:
        """Faults the asyncio client worker injects (any stack, any hub)."""
        return bool(self.recv_bias_ms or self.client_stall_ms or self.drop_receipt_every)

    def client_faults(self) -> ClientFaults | None:
        """The client faults for the worker spec (None: none)."""
        if not self.client_active:
            return None
        return ClientFaults(
            recv_bias_ms=self.recv_bias_ms,
            stall_ms=self.client_stall_ms,
            stall_every_ms=self.client_stall_every_ms,
            drop_receipt_every=self.drop_receipt_every,
        )

    def id_parts(self) -> list[str]:
        parts = []
        if self.delay_ms:
            parts.append(f"delay{num_id(self.delay_ms)}ms")
        if self.pause_ms:
            parts.append(f"pause{num_id(self.pause_ms)}ms")
        if self.drop_every:
            parts.append(f"drop{self.drop_every}")
        if self.recv_bias_ms:
            parts.append(f"rbias{num_id(self.recv_bias_ms)}ms")
        if self.client_stall_ms:
            stall, every = num_id(self.client_stall_ms), num_id(self.client_stall_every_ms)
            parts.append(f"cstall{stall}ms-every{every}ms")
        if self.drop_receipt_every:
            parts.append(f"rdrop{self.drop_receipt_every}")
        return parts


@dataclass(frozen=True)
class Cell:
    """One measured point: a stack, a transport and every parameter, fully resolved.

    Parameters that do not apply are ``None``: ``ws_client`` outside
    WebSocket cells, ``poll_interval_s`` outside short polling,
    ``poll_timeout_s`` outside long polling, ``heartbeat_s`` for polling. ``tls``:
    the server serves https:// and wss:// and every client verifies it against the
    run's throwaway CA (:mod:`pushbench.tls`); the same cell without it is its
    plaintext twin (:attr:`plaintext_id`).
    ``rate`` is the total messages per second published into the topic (by
    the server's ticker when ``publishers`` is 0, else shared by the
    publishers); ``client_processes`` ``None`` means "auto".
    """

    scenario: str
    stack: str
    transport: str
    ws_client: str | None
    client: str
    subscribers: int
    publishers: int
    rate: float
    payload_size: int
    hub: str
    loop: str
    poll_interval_s: float | None
    poll_timeout_s: float | None
    heartbeat_s: float | None
    tls: bool  # issue 12 item 2: https:// and wss:// (a certificate made for the run)
    duration_s: float
    warmup_s: float
    repeats: int
    client_processes: int | None
    slo: Slo | None
    checks: Checks
    # issue 17 item 6 (soak): each connection leaves and resumes (None: off, the default)
    churn: Churn | None = None
    # -- network conditions (issue 12 item 6) --
    #: the network profile between clients and server (pushbench.netem.PROFILES);
    #: "loopback": no relay, the cell as it always was
    net: str = "loopback"
    # -- end network conditions --
    # h25 (compression): permessage-deflate on WebSocket cells, the ticker's payload kind
    compression: str | None = "off"  # None outside WebSocket cells
    payload_kind: str = "filler"
    #: h27 (issue 12 item 1): ``direct``, or the reverse proxy and config in front of the
    #: server (:mod:`pushbench.proxies`); in the id only when not direct.
    via: str = "direct"
    #: issue 12 item 4 (scale-out, h31): server processes behind ``via`` (nginx), sharing
    #: the broker hub; in the id only when not 1.
    servers: int = 1
    # -- issue 18 item 2 (100,000 connections): run settings, not in the id --
    #: connections per second the clients open (each worker in turn; 0: unpaced)
    connect_rate: float = 0.0
    #: past this many subscribers, connection k binds source address 127.0.0.(2 + k mod S)
    connections_per_source: int = 20_000
    #: h32 (issue 12 item 5): a fault in the measured window (None: none, the default)
    fault: Outage | None = None
    #: h42 (issue 12 item 2): where a TLS cell behind a proxy ends its TLS: ``proxy`` (the
    #: default; the server runs plaintext) or ``end-to-end`` (the server serves TLS too and
    #: the proxy verifies it against the run's CA); ``proxy`` elsewhere. In the id
    #: (``-e2e`` after ``-tls``) only when end-to-end.
    tls_at: str = "proxy"

    @property
    def cell_id(self) -> str:
        """Stable and filesystem-safe, e.g. ``aiohttp-ws-sub10-rate1000-p100``.

        It depends only on the cell's own parameters (not on its position or
        on the other cells), so the same point has the same id in every
        scenario and run. Parameters at their default are left out; run
        settings (durations, repeats, processes, SLO) are not part of it.
        """
        parts = [
            self.stack,
            self.transport,
            f"sub{self.subscribers}",
            f"rate{num_id(self.rate)}",
            f"p{self.payload_size}",
        ]
        if self.publishers:
            parts.append(f"pub{self.publishers}")
        optional = (  # (field, value shown in the id); left out when at its default
            ("client", self.client),
            ("hub", self.hub),
            ("loop", self.loop),
            ("compression", f"{self.compression}"),  # h25 (compression): "deflate"
            ("payload_kind", f"pl{self.payload_kind}"),  # "pljson"
            ("poll_interval_s", f"pi{num_id((self.poll_interval_s or 0) * 1000)}ms"),
            ("poll_timeout_s", f"pt{num_id(self.poll_timeout_s or 0)}s"),
            ("heartbeat_s", f"hb{num_id(self.heartbeat_s or 0)}s"),
            ("net", f"net{self.net}"),  # network conditions (issue 12 item 6)
            ("via", f"via-{self.via}"),  # h27: a proxy in front
            ("servers", f"srv{self.servers}"),  # issue 12 item 4 (scale-out)
        )
        for name, shown in optional:
            value = getattr(self, name)
            if value is not None and value != default(name):
                parts.append(shown)
        if self.tls:  # issue 12 item 2; plaintext (the default) leaves the id as it was
            parts.append("tls")
        if self.tls_at != default("tls_at"):  # h42: TLS on from the proxy to the server
            parts.append("e2e")
        if self.client == "locust" and self.client_processes:
            parts.append(f"lw{self.client_processes}")  # Locust master + N workers
        if self.churn is not None:  # issue 17 item 6 (soak)
            parts.append(self.churn.id_part())
        if self.fault is not None:  # h32 (issue 12 item 5)
            parts.append(self.fault.id_part())
        parts += self.checks.id_parts()
        return "-".join(parts)

    def param_columns(self) -> dict[str, Any]:
        """The cell's own columns of ``cells.csv``, from ``scenario`` to the self-check
        faults (:data:`pushbench.schema.cells.PARAM_COLUMNS` less ``repeat``), in order."""
        c = self.checks
        return {
            "scenario": self.scenario,
            "cell_id": self.cell_id,
            "stack": self.stack,
            "transport": self.transport,
            "ws_client": self.ws_client,
            "client": self.client,
            "subscribers": self.subscribers,
            "publishers": self.publishers,
            "rate_msgs_per_s": self.rate,
            "payload_bytes": self.payload_size,
            "hub": self.hub,
            "loop": self.loop,
            "compression": self.compression,  # h25 (compression)
            "payload_kind": self.payload_kind,
            "poll_interval_s": self.poll_interval_s,
            "poll_timeout_s": self.poll_timeout_s,
            "heartbeat_s": self.heartbeat_s,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "check_delay_ms": c.delay_ms,
            "check_pause_ms": c.pause_ms,
            "check_drop_every": c.drop_every,
            "check_recv_bias_ms": c.recv_bias_ms,
            "check_client_stall_ms": c.client_stall_ms,
            "check_client_stall_every_ms": c.client_stall_every_ms,
            "check_drop_receipt_every": c.drop_receipt_every,
            "net": self.net,  # network conditions (issue 12 item 6)
            "tls": self.tls,  # issue 12 item 2
            "via": self.via,  # h27: a proxy in front
            "servers": self.servers,  # issue 12 item 4 (scale-out)
        }

    @property
    def baseline_id(self) -> str:
        """The id of this cell without its self-check faults: what a ``- baseline``
        threshold compares it with (``""`` for a cell without faults)."""
        return replace(self, checks=Checks()).cell_id if self.checks.active else ""

    @property
    def plaintext_id(self) -> str:
        """The id of this cell without TLS: its plaintext twin (``""`` when it is plaintext)."""
        return replace(self, tls=False, tls_at=default("tls_at")).cell_id if self.tls else ""

    @property
    def protocol(self) -> str:
        """The wire protocol measured (the registry row's): ``ws`` for both WebSocket
        clients."""
        return registry.transport(self.transport).protocol

    @property
    def publish_rate_per_publisher(self) -> float:
        """Messages per second each publishing client sends (0 for ticker cells)."""
        return self.rate / self.publishers if self.publishers else 0.0

    @property
    def expected_messages(self) -> int:
        """Messages published during the measured window (each goes to every subscriber)."""
        return math.floor(self.rate * self.duration_s)

    def run_seconds(self, overhead_s: float = CELL_OVERHEAD_S) -> float:
        """Wall time of one repeat: warm-up + measurement + process overhead."""
        return self.warmup_s + self.duration_s + overhead_s

    def with_rate(self, rate: float) -> Cell:
        """The same cell at another rate (a saturation-search probe)."""
        return replace(self, rate=float(rate))

    def as_dict(self) -> dict[str, Any]:
        """Every parameter plus ``cell_id``, JSON-ready (``slo``/``checks`` nested)."""
        return {"cell_id": self.cell_id, **asdict(self)}


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: its name, description, source file, expanded cells, the
    ``[thresholds]`` that gate a run of it (:mod:`pushbench.thresholds`) and its
    ``[abuse]`` probes (:mod:`.abuse`; a scenario of only ``[abuse]`` has no cells)."""

    name: str
    description: str
    source: str
    expanded: tuple[Cell, ...]
    thresholds: tuple[Threshold, ...] = ()
    # issue 17 item 5 (abuse probes): the [abuse] table, None when the file has none.
    abuse: AbuseSpec | None = None
    # issue 18 item 3 (h43): the [browser_streams] probe, None when the file has none.
    browser_streams: BrowserStreamsSpec | None = None

    def cells(self) -> tuple[Cell, ...]:
        """Every cell, in file order (blocks, then the cartesian product)."""
        return self.expanded

    def cell(self, cell_id: str) -> Cell:
        for c in self.expanded:
            if c.cell_id == cell_id:
                return c
        raise KeyError(cell_id)

    @property
    def runs(self) -> int:
        """Cell × repeat runs on the grid (saturation probes not included)."""
        return sum(c.repeats for c in self.expanded)

"""Scenario files: what the runner measures, declared in TOML and validated before anything starts.

A scenario is a TOML file in ``scenarios/``. Top-level keys set parameters for
every cell; any parameter given as a list is a *dimension* and expands into
cells (cartesian product). Optional ``[[cells]]`` blocks each expand the same
way, with the top-level keys as their defaults, and the scenario is the union
of the blocks (with blocks, the top level only supplies defaults). ``exclude``
rules (top level: all cells; in a block: that block) drop the cells whose
values match every key of a rule::

    name = "example"
    description = "Which transport keeps p99 lowest as the rate grows?"
    stacks = ["aiohttp", "starlette"]
    transports = ["ws", "sse", "longpoll"]
    subscribers = 100
    rate = { start = 100, stop = 10000, steps = 5, scale = "log" }  # 100, 316, 1000, 3160, 10000
    payload_size = 100
    exclude = [{ stack = "starlette", transport = "longpoll", rate = 10000 }]

    [slo]                 # saturation search: highest rate with p99 ≤ 50 ms and ≥ 99 % delivered
    p99_ms = 50

    [[cells]]             # an empty block: the top level's own matrix
    [[cells]]             # and raw WebSocket at the same points
    stacks = "raw"
    transports = "ws"

Parameters (defaults in :data:`PARAMS`): ``transports`` (the rows of
:mod:`pushbench.registry`: ws, ws-aiohttp, sse, longpoll, shortpoll; by default
the rows marked ``default``), ``stacks`` (the registry's: raw, aiohttp,
starlette), ``subscribers``,
``publishers`` (0: the server's ticker publishes; N: N of the subscribers also
publish, chat-like, sharing ``rate`` between them), ``rate`` (messages
published per second into the topic, total; a list or a sweep table),
``payload_size`` (bytes), ``duration_s``, ``warmup_s``, ``poll_interval_s``
(short poll), ``poll_timeout_s`` (long poll), ``heartbeat_s`` (WebSocket ping
and SSE comment interval), ``hub`` (memory, redis), ``ws_client`` (light,
aiohttp; ``ws-aiohttp`` is the ``ws`` transport driven by the aiohttp client),
``client`` (python, browser: headless Chromium's own APIs, locust: Locust users),
``loop`` (asyncio, uvloop), ``repeats``, ``client_processes`` ("auto" or N),
and the tables ``[slo]`` (``p99_ms``, ``min_delivered_fraction``, ``probes``)
and ``[checks]`` (fault injection that proves the instrument: ``delay_ms``,
``pause_ms`` + ``pause_at_s``, ``drop_every``). A block's ``[slo]`` or
``[checks]`` replaces the top-level table as a whole.
A top-level ``[thresholds]`` table holds k6-style pass/fail conditions on the
measured columns (``lat_p99_us = "< 5000"``, ``"lat_p99_us{transport:sse}" =
"< 20000"``), parsed by :mod:`pushbench.thresholds` and checked against the
expanded cells here (``Scenario.thresholds``); ``pushbench run`` judges them at
the end and exits 3 when one fails.

Why so strict: a typo in a scenario otherwise shows up an hour later as a
missing or wrong curve. Every mistake raises :class:`ScenarioError` naming the
file, the field as a dotted path (``cells[2].rate``), the bad value and what is
allowed, before any process starts: a stack that does not serve a cell's
protocol, or a ``client`` whose engine has no client for the transport, is
refused here, not mid-run. Parameters that do not apply to a transport (the
poll interval of a WebSocket cell, say; the registry row's ``params``) are set
to ``None`` so that equal cells collapse into one instead of being measured
twice.

The package: :mod:`~pushbench.scenario.params` (the parameter table, read from
the registry at each use), :mod:`~pushbench.scenario.model` (Cell, Scenario,
ScenarioError), :mod:`~pushbench.scenario.parse` (file → cells) and
:mod:`~pushbench.scenario.describe` (summary and time estimate).
"""

from __future__ import annotations

from .describe import describe, estimate_seconds
from .model import CELL_OVERHEAD_S, Cell, Checks, Scenario, ScenarioError, Slo
from .params import (
    CLIENT_ENGINES,
    CLIENTS,
    HUBS,
    LOOPS,
    MAX_RECEIPTS,
    PARAMS,
    default_transports,
    stack_names,
    transport_names,
    ws_client_names,
)
from .parse import SCENARIOS_DIR, from_dict, list_scenarios, load, loads, resolve

__all__ = [
    "CELL_OVERHEAD_S",
    "CLIENTS",
    "CLIENT_ENGINES",
    "HUBS",
    "LOOPS",
    "MAX_RECEIPTS",
    "PARAMS",
    "SCENARIOS_DIR",
    "Cell",
    "Checks",
    "Scenario",
    "ScenarioError",
    "Slo",
    "default_transports",
    "describe",
    "estimate_seconds",
    "from_dict",
    "list_scenarios",
    "load",
    "loads",
    "resolve",
    "stack_names",
    "transport_names",
    "ws_client_names",
]

"""The registry is the one list of transports and stacks: a row added to it reaches every
consumer, and nothing else in the project names them.

``test_a_new_transport_and_stack_reach_every_consumer`` is the checklist of
``docs/architecture.md`` ("how to add a transport / a stack") as a test: it registers a
dummy transport (a WebSocket client variant, so the real servers can serve it) and a
dummy stack that serves only WebSocket, and asks each consumer in turn — scenario
validation, the worker spec, the asyncio worker's dispatch, the Locust user table, the
browser page's table and the browser worker, the report's colours, order, floors and
simplicity, ``pushbench serve``'s stack choices and the runner's recorded versions.
"""

from __future__ import annotations

import argparse
import re

import pytest

from pushbench import client_page, registry, scenario
from pushbench.clients import browser_worker, locust_users, worker, ws_light
from pushbench.report import floors, guide, style
from pushbench.runner import server as runner_server
from pushbench.schema.worker import WorkerSpec
from pushbench.servers import serve

DUMMY = registry.Transport(
    name="ws-dummy",
    protocol="ws",
    label="WebSocket (a dummy row)",
    path="/ws",
    delivery="streaming",
    upgrade=True,
    floor="ws",
    color="#123456",
    marker="x",
    simplicity=5,
    simplicity_why="a row made up by a test",
    clients={
        "asyncio": "pushbench.clients.ws_light:run",
        "gevent": "pushbench.clients.locust_ws:WsSession",
        "browser": "ws",
    },
    params=frozenset({"heartbeat_s"}),
    ws_client="light",
    default=False,
)
DUMMY_STACK = registry.Stack(
    name="dummystack",
    label="aiohttp serving WebSocket only",
    serves=("ws",),
    module="pushbench.servers.aiohttp_stack",
    distributions=("dummy-distribution",),
    linestyle="-.",
    marker="P",
)

SCENARIO = """
name = "dummy"
stacks = "dummystack"
transports = "{transport}"
subscribers = 2
rate = 10
duration_s = 1
warmup_s = 0
repeats = 1
"""


def test_a_new_transport_and_stack_reach_every_consumer() -> None:
    with registry.extended(transports=(DUMMY,), stacks=(DUMMY_STACK,)):
        # scenario validation and expansion: a valid value, its own parameters applied
        (cell,) = scenario.loads(SCENARIO.format(transport="ws-dummy")).cells()
        assert (cell.stack, cell.transport, cell.protocol) == ("dummystack", "ws-dummy", "ws")
        assert cell.heartbeat_s is not None and cell.poll_interval_s is None
        # the stack row's `serves` is checked at expansion, before anything runs
        with pytest.raises(scenario.ScenarioError, match="stacks"):
            scenario.loads(SCENARIO.format(transport="sse"))
        # the worker spec, and the asyncio worker's dispatch through the row
        spec = WorkerSpec(transport="ws-dummy", base_url="http://127.0.0.1:1")
        assert worker.client_run("ws-dummy") is ws_light.run
        # Locust: the User class table (the session classes import gevent: see test_locust)
        assert locust_users.user_classes()["ws-dummy"] == "WsUser"
        # the browser: the page's table served by every stack, and the worker's check
        table = client_page.transport_table()
        assert table["ws-dummy"]["path"] == "/ws" and table["ws-dummy"]["starter"] == "ws"
        assert b'"ws-dummy"' in client_page.transport_script()
        browser_worker.check_spec(spec)  # accepted: the row has a browser client
        # the report: colour, marker, order, protocol floor, simplicity
        assert style.color("ws-dummy") == "#123456"
        assert style.linestyle("dummystack") == "-." and style.marker("dummystack") == "P"
        assert "ws-dummy" in style.transports() and "dummystack" in style.stacks()
        assert style.order_key("ws-dummy", "raw") > style.order_key("shortpoll", "raw")
        assert floors.floor("ws-dummy", 100) == floors.floor("ws", 100)
        assert guide.simplicity("ws-dummy") == (5, "a row made up by a test")
        # pushbench serve's choices, and the versions a run records
        assert "dummystack" in serve.stack_names()
        parser = argparse.ArgumentParser()
        serve.add_arguments(parser)
        assert parser.parse_args(["--stack", "dummystack"]).stack == "dummystack"
        assert "dummy-distribution" in runner_server.distributions()
    # and every consumer forgets the rows again
    assert "ws-dummy" not in style.transports() and "ws-dummy" not in client_page.transport_table()
    assert "dummystack" not in serve.stack_names()
    with pytest.raises(scenario.ScenarioError, match="dummystack"):
        scenario.loads(SCENARIO.format(transport="ws"))


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(registry.RegistryError, match=r"unknown transport 'nope' \(known: ws, "):
        registry.transport("nope")
    with pytest.raises(registry.RegistryError, match=r"unknown stack 'nope' \(known: raw, "):
        registry.stack("nope")
    with pytest.raises(registry.RegistryError, match="no browser client"):
        registry.transport("ws-aiohttp").client("browser")


def test_rows_are_added_never_replaced() -> None:
    with (
        pytest.raises(ValueError, match="already registered: ws"),
        registry.extended(transports=(registry.transport("ws"),)),
    ):
        pass
    assert registry.transport_names() == (
        "ws",
        "ws-aiohttp",
        "sse",
        "sse-aiohttp",
        "longpoll",
        "longpoll-aiohttp",
        "shortpoll",
        "shortpoll-aiohttp",
        "sse-h2",  # h35 (issue 18 item 3): the HTTP/2 variants
        "longpoll-h2",
    )


def test_a_stack_is_a_module_or_a_command_line() -> None:
    with pytest.raises(ValueError, match="exactly one of module and argv"):
        registry.Stack(name="x", label="x", serves=("ws",))
    node = registry.Stack(
        name="node-ws", label="Node ws", serves=("ws",), argv=("node", "s.js", "{host}", "{port}")
    )
    assert node.external and node.command("127.0.0.1", 8080) == [
        "node",
        "s.js",
        "127.0.0.1",
        "8080",
    ]
    with pytest.raises(ValueError, match="pushbench serve"):
        registry.stack("raw").command("127.0.0.1", 1)


def test_every_entry_point_names_a_real_object() -> None:
    """Every asyncio client and browser starter a row names exists (the gevent ones are
    imported in a child process by tests/test_locust.py: gevent patches this process)."""
    script = client_page.asset("/client.js").body.decode()
    block = re.search(r"const STARTERS = \{(.*?)\};", script, re.S)
    assert block is not None
    starters = set(re.findall(r"^\s*(\w+):", block[1], re.M))
    assert starters == {"ws", "sse", "longpoll", "shortpoll"}
    for row in registry.transports():
        assert callable(row.load_client("asyncio")), row.name
        if "browser" in row.clients:
            assert row.clients["browser"] in starters, row.name

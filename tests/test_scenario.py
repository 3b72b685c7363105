"""Scenario files: shipped ones validate within their budgets, mistakes are named precisely.

Every error test checks the three things a user needs to fix a file: which file,
which field (dotted path) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

from pushbench import registry, scenario
from pushbench.runner import speed
from pushbench.scenario import Cell, Scenario, ScenarioError, transport_names
from pushbench.scenario.floorplan import floor_loads, floor_seconds

SHIPPED = {
    "smoke",
    "network",
    "tls",  # issue 12 item 2
    "http2",  # issue 18 item 3 (h35)
    "scale",  # issue 18 item 2
    "deflate",
    "browser",
    "locust",
    "quick",
    "latency-vs-rate",
    "fanout",
    "payload",
    "idle",
    "soak",  # issue 17 item 6
    "chat",
    "full",
    "selfcheck",
    "selfcheck-short",
    "redis",
    "anchor",
    "tax",
    "tax-tail",  # issue 16 item 2: the p99 ratios in 16 s windows
    "floor",  # issue 16 item 3: raw beside aiohttp at 100 × 1,000
    "chat-busy",
    "abuse",
    "proxies",  # h27
    "scaleout",  # h31 (issue 12 item 4)
    "node",
    "faults",  # h32 (issue 12 item 5)
    "topology",  # h33: issue 12 "Done when", short (tests/test_topology_scenario.py)
    "production",  # h33: issue 12 "Done when", full
}
SAFE = re.compile(r"[A-Za-z0-9._-]+")


def load_text(text: str, tmp_path: Path, name: str = "test.toml") -> Scenario:
    path = tmp_path / name
    path.write_text(text)
    return scenario.load(path)


def error_of(text: str, tmp_path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_text(text, tmp_path, "broken.toml")
    return info.value


# --- shipped scenarios -----------------------------------------------------


def test_every_shipped_scenario_is_there() -> None:
    assert {p.stem for p in scenario.list_scenarios()} == SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_scenario_validates(name: str) -> None:
    path = scenario.resolve(name)
    sc = scenario.load(path)
    assert sc.name == name
    assert sc.description
    header = path.read_text().splitlines()[0]
    assert header.startswith(f"# {name} — "), "each file opens with the question it answers"
    ids = [c.cell_id for c in sc.cells()]
    assert len(ids) == len(set(ids))
    assert all(SAFE.fullmatch(i) for i in ids)
    text = scenario.describe(sc)
    assert f"{len(ids)} cells" in text and "estimated duration" in text


def test_smoke_is_every_transport_on_aiohttp_within_a_minute() -> None:
    sc = scenario.load("smoke")
    assert {(c.stack, c.transport) for c in sc.cells()} == {
        # h35: the HTTP/2 transports need an HTTP/2 stack (scenarios/http2.toml has them)
        ("aiohttp", t)
        for t in transport_names()
        if not registry.transport(t).http2
    }
    assert scenario.estimate_seconds(sc) <= 60


def test_quick_budget_and_coverage() -> None:
    sc = scenario.load("quick")
    # Every protocol's default client, and the WebSocket reference client; the aiohttp
    # variants of the HTTP protocols are not in the default run (their cost is the
    # harness's, which the default run must not measure).
    every = [t for t in transport_names() if registry.transport(t).default] + ["ws-aiohttp"]
    floor = {("raw", t) for t in ("ws", "sse", "longpoll", "shortpoll")}  # the Python floor
    want = {(s, t) for s in ("aiohttp", "starlette") for t in every} | floor
    everyday = [c for c in sc.cells() if c.rate and c.rate < 1000 and not c.publishers]
    assert {(c.stack, c.transport) for c in everyday} == want
    # and every other situation of the decision guide: high rate, chat, many idle connections
    assert {c.transport for c in sc.cells() if c.rate >= 1000} >= {"ws", "sse", "longpoll"}
    assert {c.transport for c in sc.cells() if c.publishers} >= {"ws", "sse"}
    idle = [c for c in sc.cells() if c.rate == 0]
    assert {c.stack for c in idle} == {
        s.name
        for s in registry.stacks()
        if s.module and "ws" in s.serves  # h35: ws stacks
    }
    assert all(c.subscribers >= 5000 and c.heartbeat_s for c in idle)
    seconds = scenario.estimate_seconds(sc)
    runs = sum(c.repeats for c in sc.cells())
    longest = max(c.run_seconds() for c in sc.cells())
    remeasures = speed.rerun_limit(runs) * longest  # the most the run may add
    kernel = floor_seconds(sc.cells())  # the loopback floor probes before the first cell
    assert 20 + seconds + kernel + remeasures <= 600  # with the codec's quick pass: make bench
    # the budget comment in the file states the same figures
    text = scenario.resolve("quick").read_text()
    assert f"= {seconds:.0f} s" in text
    assert f"at most {speed.rerun_limit(runs)} re-measures" in text
    assert f"of at most {longest:.0f} s each = {remeasures:.0f} s" in text
    assert (
        f"at the {len(floor_loads(sc.cells()))} loads" in text and f"adds ~{kernel:.0f} s" in text
    )


def test_selfcheck_has_one_cell_per_fault() -> None:
    sc = scenario.load("selfcheck")
    cells = sc.cells()
    ticker = [c for c in cells if not c.publishers and c.hub == "memory"]
    ws = [c for c in ticker if c.transport == "ws"]
    faults = {c.cell_id.split("-p100-", 1)[-1] for c in ws if c.checks.active}
    assert faults == {
        "delay5ms",
        "pause200ms",
        "drop100",
        "rbias10ms",
        "cstall25ms-every1000ms",
        "rdrop100",
    }
    pause = next(c for c in cells if c.checks.pause_ms)
    assert pause.checks.pause_at_s == pause.duration_s / 2  # mid-window
    # every default transport: a baseline, a server delay and a client bias
    for transport in ("sse", "longpoll", "shortpoll"):
        own = [c for c in ticker if c.transport == transport]
        assert {c.cell_id.rsplit("-", 1)[-1] for c in own} == {"p100", "delay5ms", "rbias10ms"}
    # chat cells (the clients publish): baseline, delay and pause per transport
    for transport in ("ws", "sse"):
        chat = [c for c in cells if c.publishers and c.transport == transport]
        assert {c.cell_id.rsplit("-", 1)[-1] for c in chat} == {"pub2", "delay5ms", "pause200ms"}
        assert all(c.stack == "aiohttp" and c.publishers < c.subscribers for c in chat)
    redis = [c for c in cells if c.hub == "redis"]
    assert {c.transport for c in redis} == {"ws", "sse"} and any(c.checks.active for c in redis)
    assert not any(c.checks.server_active for c in redis)  # the server's need the memory hub
    # it asserts by itself: every fault cell is judged, and every baseline absolutely
    for cell in cells:
        judged = [t for t in sc.thresholds if t.applies(cell)]
        if cell.checks.active:
            assert any(t.where for t in judged), cell.cell_id  # one aimed at its fault
        else:
            assert {"lat_p50_us", "delivered_fraction"} <= {t.column for t in judged}, cell.cell_id
    seconds = scenario.estimate_seconds(sc)
    assert seconds <= 240
    assert f"= {seconds:.0f} s" in scenario.resolve("selfcheck").read_text()


def test_sweep_and_slo_of_latency_vs_rate() -> None:
    cells = scenario.load("latency-vs-rate").cells()
    assert sorted({c.rate for c in cells}) == [100, 316, 1000, 3160, 10000]
    assert all(c.slo is not None and c.slo.p99_ms == 50 for c in cells)


def test_resolve_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match=r"did you mean 'quick'.*known scenarios: "):
        scenario.resolve("quik")


# --- expansion -------------------------------------------------------------


def test_matrix_expansion_counts_and_order(tmp_path: Path) -> None:
    sc = load_text(
        """
        stacks = ["aiohttp", "starlette"]
        transports = ["ws", "sse", "longpoll"]
        subscribers = [10, 100]
        rate = 1000
        """,
        tmp_path,
    )
    cells = sc.cells()
    assert len(cells) == 2 * 3 * 2
    assert cells[0].cell_id == "aiohttp-ws-sub10-rate1000-p100"
    assert cells[-1].cell_id == "starlette-longpoll-sub100-rate1000-p100"
    assert sc.name == "test"  # defaults to the file name
    assert sc.runs == 12 * 3


def test_blocks_exclude_and_collapse(tmp_path: Path) -> None:
    sc = load_text(
        """
        subscribers = 10
        rate = [100, 1000]
        exclude = [{ transport = "sse", rate = 1000 }]

        [[cells]]
        stacks = ["aiohttp", "starlette"]
        transports = ["ws", "sse"]
        ws_client = ["light", "aiohttp"]   # applies to ws only: sse cells must not double
        exclude = [{ stack = "starlette", ws_client = "aiohttp" }]

        [[cells]]
        stacks = "raw"
        transports = "ws"
        """,
        tmp_path,
    )
    ids = [c.cell_id for c in sc.cells()]
    assert ids == [
        "aiohttp-ws-sub10-rate100-p100",
        "aiohttp-ws-sub10-rate1000-p100",
        "aiohttp-ws-aiohttp-sub10-rate100-p100",
        "aiohttp-ws-aiohttp-sub10-rate1000-p100",
        "aiohttp-sse-sub10-rate100-p100",
        "starlette-ws-sub10-rate100-p100",
        "starlette-ws-sub10-rate1000-p100",
        "starlette-sse-sub10-rate100-p100",
        "raw-ws-sub10-rate100-p100",
        "raw-ws-sub10-rate1000-p100",
    ]
    sse = sc.cell("aiohttp-sse-sub10-rate100-p100")
    assert sse.ws_client is None and sse.poll_interval_s is None and sse.heartbeat_s == 15


def test_cell_ids_are_stable_and_name_non_defaults(tmp_path: Path) -> None:
    a = load_text('transports = "ws"\nsubscribers = [1, 10]\nrate = 1000', tmp_path, "a.toml")
    b = load_text('transports = ["sse", "ws"]\nsubscribers = 10\nrate = 1000', tmp_path, "b.toml")
    assert a.cells()[1].as_dict() | {"scenario": "x"} == b.cells()[1].as_dict() | {"scenario": "x"}
    assert a.cells()[1].cell_id == b.cells()[1].cell_id == "aiohttp-ws-sub10-rate1000-p100"
    c = load_text(
        """
        transports = ["shortpoll", "longpoll", "sse"]
        hub = "redis"
        loop = "uvloop"
        publishers = 2
        rate = 0.5
        duration_s = 4
        poll_interval_s = 0.05
        poll_timeout_s = 5
        heartbeat_s = 1
        """,
        tmp_path,
        "c.toml",
    )
    assert [x.cell_id for x in c.cells()] == [
        "aiohttp-shortpoll-sub10-rate0.5-p100-pub2-redis-uvloop-pi50ms",
        "aiohttp-longpoll-sub10-rate0.5-p100-pub2-redis-uvloop-pt5s",
        "aiohttp-sse-sub10-rate0.5-p100-pub2-redis-uvloop-hb1s",
    ]
    assert c.cells()[0].publish_rate_per_publisher == 0.25


@pytest.mark.parametrize(
    ("sweep", "rates"),
    [
        ('{ start = 100, stop = 10000, steps = 5, scale = "log" }', [100, 316, 1000, 3160, 10000]),
        ("{ start = 100, stop = 10000, steps = 3 }", [100, 1000, 10000]),
        ('{ start = 0, stop = 900, steps = 4, scale = "linear" }', [0, 300, 600, 900]),
    ],
)
def test_rate_sweeps(tmp_path: Path, sweep: str, rates: list[float]) -> None:
    sc = load_text(f'transports = "ws"\nsubscribers = 1\nrate = {sweep}', tmp_path)
    assert [c.rate for c in sc.cells()] == rates


def test_defaults_and_estimate(tmp_path: Path) -> None:
    sc = load_text('description = "x"', tmp_path)
    assert [c.transport for c in sc.cells()] == ["ws", "sse", "longpoll", "shortpoll"]
    cell = sc.cells()[0]
    assert (cell.stack, cell.subscribers, cell.rate, cell.payload_size) == ("aiohttp", 10, 100, 100)
    assert (cell.repeats, cell.client_processes, cell.slo, cell.checks.active) == (
        3,
        None,
        None,
        False,
    )
    assert scenario.estimate_seconds(sc, overhead_s=2) == 4 * 3 * (2 + 10 + 2)


def test_slo_probes_count_in_the_estimate(tmp_path: Path) -> None:
    sc = load_text(
        """
        transports = ["ws", "sse"]
        rate = [100, 1000]
        repeats = 1
        duration_s = 10
        warmup_s = 0
        [slo]
        p99_ms = 20
        probes = 2
        """,
        tmp_path,
    )
    assert sc.cells()[0].slo == scenario.Slo(p99_ms=20, min_delivered_fraction=0.99, probes=2)
    # 4 grid runs + 2 searches (ws, sse) × 2 probes, 12 s each
    assert scenario.estimate_seconds(sc, overhead_s=2) == (4 + 4) * 12


def test_checks_are_carried_and_pause_defaults_mid_window(tmp_path: Path) -> None:
    sc = load_text(
        """
        transports = "ws"
        duration_s = 8
        [[cells]]
        checks = { pause_ms = 200 }
        [[cells]]
        checks = { delay_ms = 5, drop_every = 100 }
        """,
        tmp_path,
    )
    pause, mixed = sc.cells()
    assert pause.checks == scenario.Checks(pause_ms=200, pause_at_s=4.0)
    assert mixed.cell_id.endswith("-delay5ms-drop100")


# --- errors ----------------------------------------------------------------

ALL_TRANSPORTS = "one of ws, ws-aiohttp, sse, sse-aiohttp, longpoll, longpoll-aiohttp, shortpoll"

ERRORS = [
    # (file text, field path, fragments the message must contain)
    ("transport = 'ws'", "transport", ["unknown key", "did you mean 'transports'", "allowed keys"]),
    ("[[cells]]\npayload = 10", "cells[0].payload", ["unknown key", "'payload_size'"]),
    (
        "transports = ['ws', 'wss']",
        "transports[1]",
        ["'wss' is not allowed", ALL_TRANSPORTS, "did you mean 'ws'"],
    ),
    ("stacks = 'flask'", "stacks", ["one of raw, aiohttp, starlette"]),
    ("subscribers = 0", "subscribers", ["0 is not allowed", "integer from 1 to 100000"]),
    ("subscribers = true", "subscribers", ["True is not allowed", "integer"]),
    ("subscribers = 2.5", "subscribers", ["2.5 is not allowed", "integer"]),
    ("rate = 'fast'", "rate", ["'fast'", "number from 0 to 1000000", "sweep table"]),
    ("rate = -1", "rate", ["-1", "number from 0"]),
    ("rate = []", "rate", ["[]", "non-empty list"]),
    ("rate = [10, 10]", "rate[1]", ["each value once"]),
    ("duration_s = [1, 2]", "duration_s", ["a single value"]),
    ("duration_s = 0", "duration_s", ["greater than 0"]),
    ("client_processes = 'many'", "client_processes", ['"auto" or an integer']),
    ("rate = { start = 1, stop = 10 }", "rate.steps", ["missing"]),
    ("rate = { start = 1, stop = 10, steps = 3, scale = 'lin' }", "rate.scale", ["'linear'"]),
    ("rate = { start = 10, stop = 1, steps = 3 }", "rate.stop", ["greater than 10"]),
    ("rate = { start = 1, stop = 10, step = 3 }", "rate.step", ["did you mean 'steps'"]),
    ("hub = 'postgres'", "hub", ["one of memory, redis"]),
    ("name = 'a b'", "name", ["letters, digits"]),
    ("cells = 3", "cells", ["array of tables"]),
    ("[slo]\nmin_delivered_fraction = 0.9", "slo.p99_ms", ["missing"]),
    ("[slo]\np99_ms = 10\nmin_delivered_fraction = 1.5", "slo.min_delivered_fraction", ["to 1"]),
    ("[checks]\npause_at_s = 1", "checks.pause_at_s", ["without pause_ms"]),
    (
        "[checks]\ndrop_every = 1",
        "checks.drop_every",
        ["0 or an integer from 2 to 1000000 (0 = off)"],
    ),
    ("[checks]\ndelay = 5", "checks.delay", ["did you mean 'delay_ms'"]),
    ("exclude = [{ transports = 'sse' }]", "exclude[0].transports", ["did you mean 'transport'"]),
    ("exclude = [{ transport = 'ssse' }]", "exclude[0].transport", [ALL_TRANSPORTS]),
    ("exclude = [{ stack = 'raw' }]", "exclude[0]", ["matches no cell", "'raw'"]),
    ("exclude = [{}]", "exclude[0]", ["empty rule"]),
    (
        "[[cells]]\nsubscribers = 2\npublishers = 3",
        "cells[0].publishers",
        ["3 is not allowed", "at most subscribers (2)", "cell aiohttp-ws-sub2"],
    ),
    ("publishers = 3\n[[cells]]\nsubscribers = 2", "publishers", ["at most subscribers (2)"]),
    ("publishers = 1\nrate = 0", "rate", ["rate > 0 when publishers > 0"]),
    ("publishers = 1\npayload_size = 100000", "payload_size", ["at most 65536 bytes"]),
    ("rate = 0.05\nduration_s = 10", "rate", ["at least 0.1 messages/s"]),
    ("rate = 10000\nsubscribers = 1000", "rate", ["20,000,000 receipts", "exclude the cell"]),
    ("duration_s = 4\n[checks]\npause_ms = 1\npause_at_s = 4", "checks.pause_at_s", ["below"]),
    ("rate = 0\n[checks]\ndrop_every = 10", "rate", ["a rate > 0 with [checks]"]),
    ("rate = 0\n[slo]\np99_ms = 10", "rate", ["a rate > 0 with [slo]"]),
    (
        "transports = 'ws'\n[[cells]]\n[[cells]]\nrepeats = 1",
        "cells[1]",
        ["also defined by cells[0]", "different repeats"],
    ),
    ("repeats = 1\nrate = ?", "", ["not valid TOML", "line 2"]),
]


@pytest.mark.parametrize(
    ("text", "path", "fragments"), ERRORS, ids=[e[1] or "toml" for e in ERRORS]
)
def test_errors_name_file_field_value_and_allowed(
    tmp_path: Path, text: str, path: str, fragments: list[str]
) -> None:
    err = error_of(text, tmp_path)
    message = str(err)
    assert err.file == str(tmp_path / "broken.toml")
    assert message.startswith(f"{err.file}: ")
    assert err.path == path, message
    if path:
        assert f": {path}: " in message
    for fragment in fragments:
        assert fragment in message, message


def test_error_for_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ScenarioError, match=r"bad\.toml: cannot read the file"):
        scenario.load(path)


def test_with_rate_makes_a_probe() -> None:
    cell: Cell = scenario.load("latency-vs-rate").cells()[0]
    probe = cell.with_rate(1780)
    assert probe.rate == 1780.0 and probe.cell_id == cell.cell_id.replace("rate100-", "rate1780-")


def test_documented_examples_are_valid() -> None:
    """The examples in the module docstring and scenarios/README.md parse as shown."""
    doc = scenario.__doc__ or ""
    example = textwrap.dedent(doc.split("::\n\n", 1)[1].split("\n\nParameters", 1)[0])
    assert len(scenario.loads(example).cells()) == 34
    readme = (scenario.SCENARIOS_DIR / "README.md").read_text()
    toml = readme.split("## Format\n\n```toml\n", 1)[1].split("```", 1)[0]
    assert scenario.loads(toml).cells()


def test_client_parameter_in_cells_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('name = "c"\ntransports = ["ws", "sse"]\nclient = ["python", "browser"]\n')
    cells = scenario.load(path).cells()
    assert [(c.transport, c.client, c.ws_client) for c in cells] == [
        ("ws", "python", "light"),
        ("ws", "browser", None),
        ("sse", "python", None),
        ("sse", "browser", None),
    ]
    assert [c.cell_id for c in cells if c.client == "browser"] == [
        "aiohttp-ws-sub10-rate100-p100-browser",
        "aiohttp-sse-sub10-rate100-p100-browser",
    ]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('client = "locust"\nws_client = "aiohttp"\ntransports = "ws"\n', "ws_client"),
        ('client = "browser"\npublishers = 2\n', "client"),
        ('client = "chrome"\n', "client"),
    ],
)
def test_client_mistakes_name_the_field(tmp_path: Path, extra: str, field: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text('name = "c"\n' + extra)
    with pytest.raises(scenario.ScenarioError) as info:
        scenario.load(path)
    assert info.value.path == field or info.value.path.endswith(field), str(info.value)


# --- the registry decides ------------------------------------------------------------------

WS_ONLY = registry.Stack(
    name="wsonly", label="serves WebSocket only", serves=("ws",), module="pushbench.servers.raw"
)
DUMMY = registry.Transport(
    name="dummy",
    protocol="dummy",
    label="dummy",
    path="/dummy",
    delivery="polling",
    upgrade=False,
    floor="poll",
    color="#000000",
    marker="x",
    simplicity=5,
    simplicity_why="a test row",
    clients={"asyncio": "pushbench.clients.poll:run_short"},
    params=frozenset({"poll_interval_s"}),
    default=False,
)
DUMMY_STACK = registry.Stack(
    name="dummystack", label="serves dummy", serves=("dummy",), module="pushbench.servers.raw"
)


def test_a_stack_row_added_to_the_registry_is_a_valid_value() -> None:
    assert "wsonly" not in scenario.stack_names()
    known = ", ".join(registry.stack_names())  # raw, aiohttp, starlette, the twins, …
    with pytest.raises(ScenarioError, match=re.escape(f"expected one of {known}, a list")):
        scenario.loads('stacks = "wsonly"\ntransports = "ws"')
    with registry.extended(stacks=(WS_ONLY,)):
        with pytest.raises(ScenarioError, match=re.escape(f"one of {known}, wsonly, a")):
            scenario.loads('stacks = "wsonl"')
        cells = scenario.loads('stacks = "wsonly"\ntransports = "ws"').cells()
        assert [c.cell_id for c in cells] == ["wsonly-ws-sub10-rate100-p100"]
    with pytest.raises(ScenarioError):  # gone again with the row
        scenario.loads('stacks = "wsonly"\ntransports = "ws"')


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('stacks = "wsonly"\ntransports = ["ws", "sse"]', "stacks"),
        ('transports = ["ws", "sse"]\n[[cells]]\nstacks = "wsonly"', "cells[0].stacks"),
    ],
)
def test_a_stack_that_does_not_serve_the_protocol_is_refused(text: str, path: str) -> None:
    with registry.extended(stacks=(WS_ONLY,)), pytest.raises(ScenarioError) as info:
        scenario.loads(text, source="x.toml")
    err = info.value
    assert err.path == path, str(err)
    for fragment in (
        "'wsonly' is not allowed",
        "a stack that serves the sse protocol of transport 'sse' "
        f"({', '.join(s.name for s in registry.stacks() if 'sse' in s.serves)})",
        "wsonly serves ws",
        "cell wsonly-sse-sub10",
    ):
        assert fragment in str(err), str(err)


def test_a_transport_row_added_to_the_registry_is_expanded_by_its_row() -> None:
    with registry.extended(transports=(DUMMY,), stacks=(DUMMY_STACK,)):
        assert "dummy" in scenario.transport_names()
        assert "dummy" not in scenario.default_transports()  # default=False
        (cell,) = scenario.loads(
            'stacks = "dummystack"\ntransports = "dummy"\nws_client = "aiohttp"\n'
            "poll_interval_s = 0.5\npoll_timeout_s = 5\nheartbeat_s = 1"
        ).cells()
        # only the parameters the row names apply; no WebSocket client on it
        assert (cell.transport, cell.protocol, cell.ws_client) == ("dummy", "dummy", None)
        assert (cell.poll_interval_s, cell.poll_timeout_s, cell.heartbeat_s) == (0.5, None, None)
        with pytest.raises(ScenarioError) as info:  # the default stack does not serve it
            scenario.loads('transports = "dummy"')
        assert info.value.path == "stacks"
        assert "serves the dummy protocol of transport 'dummy' (dummystack)" in str(info.value)


def test_default_transports_are_the_rows_marked_default() -> None:
    default_dummy = dataclasses.replace(DUMMY, default=True)
    with registry.extended(transports=(default_dummy,), stacks=(DUMMY_STACK,)):
        assert scenario.default_transports() == ("ws", "sse", "longpoll", "shortpoll", "dummy")
        sc = scenario.loads('stacks = ["aiohttp", "dummystack"]\nexclude = [{ stack = "aiohttp", '
                            'transport = "dummy" }, { stack = "dummystack", transport = "ws" }, '
                            '{ stack = "dummystack", transport = "sse" }, { stack = "dummystack", '
                            'transport = "longpoll" }, { stack = "dummystack", '
                            'transport = "shortpoll" }]')  # fmt: skip
        assert [(c.stack, c.transport) for c in sc.cells()] == [
            ("aiohttp", "ws"),
            ("aiohttp", "sse"),
            ("aiohttp", "longpoll"),
            ("aiohttp", "shortpoll"),
            ("dummystack", "dummy"),
        ]


@pytest.mark.parametrize(
    ("client", "engine", "able"),
    [
        ("browser", "browser", "ws, sse, longpoll, shortpoll"),
        ("locust", "gevent", "ws, sse, longpoll, shortpoll"),
    ],
)
def test_a_client_whose_engine_the_transport_lacks_is_refused(
    client: str, engine: str, able: str
) -> None:
    text = f'stacks = "dummystack"\ntransports = "dummy"\nclient = "{client}"'
    with registry.extended(transports=(DUMMY,), stacks=(DUMMY_STACK,)):
        with pytest.raises(ScenarioError) as info:
            scenario.loads(text, source="x.toml")
        assert scenario.loads('stacks = "dummystack"\ntransports = "dummy"').cells()
    err = info.value
    assert err.path == "transports", str(err)
    for fragment in (
        "'dummy' is not allowed",
        f"a transport with a {engine} client for client = '{client}' ({able})",
        "transport 'dummy' has none",
    ):
        assert fragment in str(err), str(err)


def test_the_aiohttp_websocket_client_is_refused_by_the_same_rule() -> None:
    """ws-aiohttp has only an asyncio client: the general rule, no special case."""
    with pytest.raises(ScenarioError) as info:
        scenario.loads('transports = "ws-aiohttp"\nclient = "browser"')
    assert info.value.path == "transports"
    assert "a transport with a browser client for client = 'browser'" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        scenario.loads('transports = "ws"\nws_client = "aiohttp"\nclient = "locust"')
    assert info.value.path == "ws_client"
    assert "'aiohttp' is not allowed" in str(info.value)
    assert "transport 'ws-aiohttp' has none" in str(info.value)

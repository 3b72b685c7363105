"""``pushbench serve`` as a command: every stack, both loops, options, exit statuses.

Each test runs the real command in a subprocess (see conftest) and always stops
it. What is checked is the contract a benchmark runner relies on: the one ready
line, SIGTERM → exit 0 with WebSockets closed 1001, exit 1 when the server
cannot start, exit 2 naming a bad option, and that options reach every stack
alike (the ticker, the auth secret taken from the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Coroutine
from typing import Any

import aiohttp
import pytest
from conftest import ROOT, StartServer
from test_hub_redis import redis_url  # noqa: F401  (a fixture: redis-server, or skip)

from pushbench.auth import make_token
from pushbench.cli import build_parser
from pushbench.contract import decode
from pushbench.servers.serve import stack_names, ticker_query
from pushbench.service import ConfigError, ServerConfig, TickerOptions, parse_ticker

pytestmark = pytest.mark.timeout(60)

STACK_NAMES = sorted(stack_names())
SECRET_ENV = "PUSHBENCH_TEST_SECRET"
SECRET = "not-on-the-command-line"


def run(coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def serve_once(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``pushbench serve ARGS`` expecting it to exit by itself (it is killed otherwise)."""
    cmd = [sys.executable, "-m", "pushbench.cli", "serve", "--host", "127.0.0.1", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_help_gives_every_option_with_its_default() -> None:
    parser = build_parser()
    subparsers = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )  # argparse has no public accessor for a subcommand's parser
    serve = subparsers.choices["serve"]
    text = serve.format_help()
    options = [a for a in serve._actions if a.option_strings and a.dest != "help"]
    # 28 + --tls-cert, --tls-key (issue 12 item 2), --compression (item 3),
    # --nats-url, --nats-prefix (item 4), --reuse-port (issue 18 item 2)
    assert len(options) == 34
    for action in options:
        assert action.option_strings[0] in text
        assert action.help is not None and "default" in action.help, action.dest


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ping_interval": -1.0}, "ping_interval"),
        ({"ping_timeout": 0.0}, "ping_timeout"),
        ({"close_timeout": float("nan")}, "close_timeout"),
        ({"write_buffer_limit": 0}, "write_buffer_limit"),
        ({"max_connections": 0}, "max_connections"),
        ({"default_poll_timeout": 200.0}, "default_poll_timeout"),  # over max_poll_timeout
    ],
)
def test_server_config_refuses_nonsense(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConfig(**kwargs)
    assert caught.value.field == field


def test_ticker_spec_is_the_control_endpoints_query() -> None:
    config = ServerConfig()
    query = ticker_query("topic=t, rate=5,size=0", config)
    assert query == {"topic": "t", "rate": "5", "size": "0"}
    assert parse_ticker(query, config) == TickerOptions("t", 5.0, 0, None, None, 0.0)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("stack", STACK_NAMES)
def test_every_stack_serves_on_each_loop(
    server_factory: StartServer, stack: str, loop: str
) -> None:
    server = server_factory("--loop", loop, stack=stack)
    assert server.stack == stack

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url("/health")) as resp:
                assert resp.status == 200
                assert (await resp.text()).strip() == "ok"
            async with session.get(server.url("/stats")) as resp:
                assert resp.status == 200
                assert (await resp.json())["hub_backend"] == "memory"

    run(main())
    assert server.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("stack", STACK_NAMES)
def test_ticker_at_startup_then_sigterm_closes_with_1001(
    server_factory: StartServer, stack: str, loop: str
) -> None:
    """--ticker publishes from startup; SIGTERM closes the subscriber with 1001, exit 0."""
    server = server_factory("--ticker", "topic=tick,rate=50,size=10", "--loop", loop, stack=stack)

    async def main() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.ws_url("/ws?topic=tick")) as ws,
        ):
            seqs = []
            for _ in range(3):
                msg = await ws.receive(timeout=5)
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                env = decode(msg.data)
                assert (env.topic, env.payload) == ("tick", "x" * 10)
                seqs.append(env.seq)
            assert seqs == sorted(seqs)
            server.proc.send_signal(signal.SIGTERM)
            while (msg := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
                pass  # messages still in flight
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001, msg
        return await asyncio.to_thread(server.proc.wait, 10)

    assert run(main()) == 0


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_auth_secret_from_the_environment(server_factory: StartServer, stack: str) -> None:
    server = server_factory("--auth-secret-env", SECRET_ENV, stack=stack, env={SECRET_ENV: SECRET})
    token = make_token(SECRET.encode(), "t")

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url("/poll?topic=t&timeout=0")) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"] == "token missing"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(server.ws_url("/ws?topic=t"))
            assert refused.value.status == 401
            query = {"topic": "t", "timeout": "0", "token": token}
            async with session.get(server.url("/poll"), params=query) as resp:
                assert resp.status == 200
            url = server.ws_url("/ws")
            async with session.ws_connect(url, params={"topic": "t", "token": token}) as ws:
                await ws.close()

    run(main())
    server.stop()
    assert SECRET not in server.stderr()


@pytest.mark.parametrize("stack", STACK_NAMES)
def test_port_taken_exits_1(stack: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_once("--stack", stack, "--port", str(port))
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # never a ready line


def test_unreachable_redis_exits_1() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = serve_once("--hub", "redis", "--redis-url", f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 1, result.stderr
    assert "cannot start the redis hub" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--ping-interval", "-1"], "--ping-interval"),
        (["--ping-timeout", "0"], "--ping-timeout"),
        (["--max-connections", "0"], "--max-connections"),
        (["--ping-interval", "soon"], "--ping-interval"),
        (["--port", "70000"], "--port"),
        (["--queue-limit", "0"], "--queue-limit"),
        (["--loop", "trio"], "--loop"),
        (["--ticker", "topic=t,rate=abc"], "--ticker"),
        (["--ticker", "rate=5"], "--ticker"),  # no topic
        (["--ticker", "topic=t,rte=5"], "--ticker"),  # a typo is not a silent default
        (["--ticker", "topic=t,size=999999"], "--ticker"),  # over --max-publish-bytes
        (["--auth-secret-env", "PUSHBENCH_TEST_UNSET_VARIABLE"], "--auth-secret-env"),
    ],
)
def test_bad_values_exit_2_naming_the_option(args: list[str], option: str) -> None:
    result = serve_once("--port", "0", *args)
    assert result.returncode == 2, result.stderr
    assert f"argument {option}" in result.stderr
    assert result.stdout == ""


def test_redis_hub_spans_two_stacks(
    server_factory: StartServer,
    redis_url: str,  # noqa: F811  (the fixture imported above)
) -> None:
    """Two servers of different stacks on one Redis: a server started after messages
    were published serves them from Redis history, then live ones published elsewhere."""
    topic = f"serve-cli-{os.getpid()}"
    raw = server_factory("--hub", "redis", "--redis-url", redis_url, stack="raw")

    async def publish(session: aiohttp.ClientSession, payload: str) -> int:
        url = raw.url("/publish")
        async with session.post(url, params={"topic": topic}, data=payload) as resp:
            assert resp.status == 200, await resp.text()
            seq: int = (await resp.json())["seq"]
            return seq

    async def before() -> None:
        async with aiohttp.ClientSession() as session:
            assert [await publish(session, p) for p in ("a", "b")] == [1, 2]

    run(before())
    starlette = server_factory("--hub", "redis", "--redis-url", redis_url, stack="starlette")

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            url = starlette.ws_url(f"/ws?topic={topic}&since=0")
            async with session.ws_connect(url) as ws:
                got = [decode((await ws.receive(timeout=5)).data) for _ in range(2)]
                assert [(e.seq, e.payload) for e in got] == [(1, "a"), (2, "b")]
                assert await publish(session, "live") == 3
                env = decode((await ws.receive(timeout=5)).data)
                assert (env.seq, env.payload) == (3, "live")
            async with session.get(starlette.url("/stats")) as resp:
                assert (await resp.json())["hub_backend"] == "redis"

    run(main())


def test_faults_and_server_info_reach_stats(server_factory: StartServer) -> None:
    """--faults drop_every=5 loses exactly every 5th message; /stats says what runs."""
    server = server_factory("--faults", "drop_every=5", stack="aiohttp")

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            for i in range(20):
                async with session.post(
                    server.url("/publish"), params={"topic": "f"}, data=str(i)
                ) as resp:
                    assert resp.status == 200
            async with session.get(
                server.url("/poll"), params={"topic": "f", "since": "0", "timeout": "0"}
            ) as resp:
                seqs = [m["s"] for m in (await resp.json())["messages"]]
            assert seqs == [s for s in range(1, 21) if s % 5]
            async with session.get(server.url("/stats")) as resp:
                stats = await resp.json()
            assert stats["server"]["stack"] == "aiohttp"
            assert stats["server"]["faults"].startswith("Faults(")
            assert stats["cpu_user_s"] + stats["cpu_sys_s"] > 0

    run(main())


def test_faults_refused_with_redis_and_bad_spec() -> None:
    assert serve_once("--faults", "drop_every=5", "--hub", "redis").returncode == 2
    bad = serve_once("--faults", "delay=5")
    assert bad.returncode == 2 and "argument --faults" in bad.stderr

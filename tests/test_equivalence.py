"""Equivalence of the push servers, tested rather than assumed.

For every stack × transport, against real `pushbench serve` processes with
tokens required: the same publish schedule yields exactly the same sequence
(no loss, no duplicates, in order, same payload bytes); a client that is
forcibly disconnected and resumes gets exactly the messages it missed; and
bad input and bad tokens get the same status on every stack.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from conftest import ServerProcess, start_external, start_server

from pushbench import registry, sse
from pushbench.auth import make_control_token, make_token
from pushbench.contract import decode

# Every stack pushbench serve runs × every protocol it serves, from the registry: a new
# stack or protocol is tested here as soon as its row exists.
STACKS = tuple(s.name for s in registry.stacks() if s.module is not None)
PAIRS = [
    (stack, protocol)
    for stack in STACKS
    for protocol in registry.protocol_names()
    if protocol in registry.stack(stack).serves
]
# The hand-written twins (rows with ``twin_of``: servers/minimal, started from their argv) ×
# the protocols they serve. A twin has no /publish, tokens or checks (that is its point: the
# framework alone), so the schedule of payloads above and the bad-input table do not apply to
# it; its own ticker publishes instead, and the same live-then-exact-resume check runs on that
# (test_twin_same_sequence_and_exact_resume). tests/test_twins.py checks its bytes.
# The Node reference server (node-ws, servers/node) is an external row too: it serves the
# WebSocket part of the contract without /publish or tokens, so it takes the twins' check.
TWINS = tuple(s.name for s in registry.stacks() if s.external)
TWIN_PAIRS = [
    (stack, protocol)
    for stack in TWINS
    for protocol in registry.protocol_names()
    if protocol in registry.stack(stack).serves
]
SECRET = "equivalence-secret"
# Payloads chosen to trip framing: empty, non-ASCII, quotes and newlines (SSE data
# lines, JSON escaping), a 16-bit-length WebSocket frame.
PAYLOADS = ["", "plain", "äöü € 😀", 'quote " and \\ back', "line\nbreak\r\n", "x" * 1000]
SCHEDULE = [f"{i}:{p}" for i in range(4) for p in PAYLOADS]  # 24 messages
Received = list[tuple[int, str]]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    logs = tmp_path_factory.mktemp("equivalence")
    env = {"PB_SECRET": SECRET}
    args = ("--auth-secret-env", "PB_SECRET", "--heartbeat-interval", "0.2")
    started: dict[str, ServerProcess] = {}
    try:
        for stack in STACKS:
            started[stack] = start_server(logs / f"{stack}.stderr", *args, stack=stack, env=env)
        yield started
    finally:
        for server in started.values():
            server.stop()
    for server in started.values():
        server.check()


def token(topic: str) -> str:
    return make_token(SECRET.encode(), topic, ttl_s=300)


async def publish(session: aiohttp.ClientSession, server: ServerProcess, topic: str, p: str) -> int:
    params = {"topic": topic, "token": token(topic)}
    async with session.post(server.url("/publish"), params=params, data=p.encode()) as resp:
        assert resp.status == 200, await resp.text()
        seq: int = (await resp.json())["seq"]
        return seq


async def receive(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    transport: str,
    topic: str,
    count: int,
    since: int = 0,
) -> Received:
    """Receive ``count`` messages after ``since`` over ``transport``, then disconnect."""
    q = {"topic": topic, "token": token(topic)}
    got: Received = []

    def add(data: bytes | str) -> None:
        env = decode(data)
        assert env.topic == topic
        got.append((env.seq, env.payload))

    if transport == "ws":
        async with session.ws_connect(server.ws_url("/ws"), params=q | {"since": str(since)}) as ws:
            while len(got) < count:
                msg = await ws.receive(timeout=10)
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                add(msg.data)
    elif transport == "sse":
        headers = {"Last-Event-ID": str(since)}
        async with session.get(server.url("/sse"), params=q, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            parser = sse.EventParser()
            while len(got) < count:
                chunk = await asyncio.wait_for(resp.content.readany(), 10)
                assert chunk, "stream ended early"
                for event in parser.feed(chunk):
                    add(event.data)
                    assert event.id == str(got[-1][0])  # id: is the sequence number
    else:
        timeout = "5" if transport == "longpoll" else "0"
        cursor = since
        for _ in range(2000):  # bounded: ~2000 polls at most
            if len(got) >= count:
                break
            params = q | {"since": str(cursor), "timeout": timeout}
            async with session.get(server.url("/poll"), params=params) as resp:
                assert resp.status == 200
                body = json.loads(await resp.read())
            for m in body["messages"]:
                add(json.dumps(m))
            cursor = body["last"]
            if transport == "shortpoll" and not body["messages"]:
                await asyncio.sleep(0.01)
    return got


@pytest.mark.parametrize(("stack", "transport"), PAIRS)
def test_same_sequence_and_exact_resume(
    servers: dict[str, ServerProcess], stack: str, transport: str
) -> None:
    server = servers[stack]
    topic = f"eq-{stack}-{transport}-{os.getpid()}"
    expected = [(i + 1, p) for i, p in enumerate(SCHEDULE)]

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            # Live delivery: the subscriber is connected while the schedule runs.
            reader = asyncio.create_task(receive(session, server, transport, topic, 10))
            await asyncio.sleep(0.2)
            for p in SCHEDULE[:10]:
                await publish(session, server, topic, p)
                await asyncio.sleep(0.005)
            first = await asyncio.wait_for(reader, 20)
            assert first == expected[:10]
            # Forced disconnect happened above (the client left after 10); the rest
            # of the schedule is published while it is away.
            for p in SCHEDULE[10:]:
                await publish(session, server, topic, p)
            resumed = await receive(session, server, transport, topic, 14, since=first[-1][0])
            assert first + resumed == expected  # exactly the missed ones, nothing else

    asyncio.run(main())


# (method, path, query-without-token, body, token mode) → expected status, same everywhere
BAD_INPUT: list[tuple[str, str, dict[str, str], bytes, str, int]] = [
    ("GET", "/poll", {}, b"", "none", 400),
    ("GET", "/poll", {"topic": ""}, b"", "none", 400),
    ("GET", "/poll", {"topic": "x" * 65}, b"", "none", 400),
    ("GET", "/poll", {"topic": "a b"}, b"", "none", 400),
    ("GET", "/poll", {"topic": "t", "since": "-1"}, b"", "valid", 400),
    ("GET", "/poll", {"topic": "t", "since": "abc"}, b"", "valid", 400),
    ("GET", "/poll", {"topic": "t", "since": "9" * 25}, b"", "valid", 400),
    ("GET", "/poll", {"topic": "t", "timeout": "1e9"}, b"", "valid", 400),
    ("GET", "/poll", {"topic": "t", "timeout": "nan"}, b"", "valid", 400),
    ("GET", "/poll", {"topic": "t", "timeout": "0"}, b"", "none", 401),
    ("GET", "/poll", {"topic": "t", "timeout": "0"}, b"", "forged", 401),
    ("GET", "/poll", {"topic": "t", "timeout": "0"}, b"", "expired", 401),
    ("GET", "/poll", {"topic": "t", "timeout": "0"}, b"", "valid", 200),
    ("GET", "/sse", {"topic": "t"}, b"", "none", 401),
    ("GET", "/sse", {"topic": "t"}, b"", "forged", 401),
    ("GET", "/sse", {"topic": "a b"}, b"", "valid", 400),
    ("POST", "/publish", {"topic": "t"}, b"x", "none", 401),
    ("POST", "/publish", {"topic": "t"}, b"x", "expired", 401),
    ("POST", "/publish", {"topic": "t"}, b"x" * 70000, "valid", 413),
    ("POST", "/publish", {"topic": "t"}, b"\xff\xfe", "valid", 400),
    ("GET", "/no-such-path", {}, b"", "none", 404),
    ("GET", "/clock", {}, b"", "none", 200),  # the browser client's clock: no token needed
    ("GET", "/client", {}, b"", "none", 200),
    ("POST", "/clock", {}, b"", "none", 405),
    ("WS", "/ws", {"topic": "t"}, b"", "none", 401),
    ("WS", "/ws", {"topic": "t"}, b"", "forged", 401),
    ("WS", "/ws", {"topic": "t"}, b"", "expired", 401),
    ("WS", "/ws", {"topic": ""}, b"", "none", 400),
    ("WS", "/ws", {"topic": "t", "since": "x"}, b"", "valid", 400),
    ("WS", "/ws", {"topic": "t"}, b"", "control", 403),  # a control token subscribes to nothing
    # The control plane (issue 17): a control-scope token, not a subscriber's.
    ("POST", "/control/ticker", {"topic": "t", "count": "1"}, b"", "none", 401),
    ("POST", "/control/ticker", {"topic": "t", "count": "1"}, b"", "valid", 403),
    ("POST", "/control/ticker", {"topic": "t", "count": "1"}, b"", "control-forged", 401),
    ("POST", "/control/ticker", {"topic": "t", "count": "1"}, b"", "control-expired", 401),
    ("POST", "/control/ticker", {"topic": "t", "rate": "200000"}, b"", "control", 400),  # cap
    ("DELETE", "/control/ticker", {}, b"", "none", 401),
    ("DELETE", "/control/ticker", {}, b"", "valid", 403),
    ("DELETE", "/control/ticker", {}, b"", "control", 200),
    ("WS", "/echo", {}, b"", "none", 401),
    ("WS", "/echo", {}, b"", "valid", 403),
    ("WS", "/echo", {}, b"", "control-forged", 401),
    ("WS", "/echo", {}, b"", "control", 101),
]


def with_token(query: dict[str, str], mode: str) -> dict[str, str]:
    topic = query.get("topic", "t") or "t"
    if mode == "valid":
        return query | {"token": token(topic)}
    if mode == "forged":
        return query | {"token": make_token(b"not-the-secret", topic)}
    if mode == "expired":
        return query | {"token": make_token(SECRET.encode(), topic, ttl_s=-10)}
    if mode == "control":
        return query | {"token": make_control_token(SECRET.encode(), ttl_s=300)}
    if mode == "control-forged":
        return query | {"token": make_control_token(b"not-the-secret")}
    if mode == "control-expired":
        return query | {"token": make_control_token(SECRET.encode(), ttl_s=-10)}
    return query


async def status_of(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    method: str,
    path: str,
    query: dict[str, str],
    body: bytes,
) -> int:
    if method == "WS":
        try:
            async with session.ws_connect(server.ws_url(path), params=query):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
    async with session.request(method, server.url(path), params=query, data=body) as resp:
        if resp.status >= 400:
            assert "error" in json.loads(await resp.read())  # a short JSON error
        return resp.status


def test_bad_input_gets_the_same_status_on_every_stack(
    servers: dict[str, ServerProcess], tmp_path: Path
) -> None:
    async def main() -> dict[str, list[int]]:
        table: dict[str, list[int]] = {}
        async with aiohttp.ClientSession() as session:
            for stack, server in servers.items():
                table[stack] = [
                    await status_of(session, server, m, p, with_token(q, mode), b)
                    for m, p, q, b, mode, _ in BAD_INPUT
                ]
                # The server kept serving everyone else.
                async with session.get(server.url("/health")) as resp:
                    assert resp.status == 200
        return table

    table = asyncio.run(main())
    expected = [row[-1] for row in BAD_INPUT]
    for stack, statuses in table.items():
        mismatches = [
            (BAD_INPUT[i][:2], BAD_INPUT[i][2], BAD_INPUT[i][4], got, want)
            for i, (got, want) in enumerate(zip(statuses, expected, strict=True))
            if got != want
        ]
        assert not mismatches, f"{stack}: {mismatches}"


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    logs = tmp_path_factory.mktemp("twins")
    started: dict[str, ServerProcess] = {}
    try:
        for stack in TWINS:
            if not registry.stack(stack).missing():  # else its test skips, saying why
                started[stack] = start_external(logs / f"{stack}.stderr", stack)
        yield started
    finally:
        for server in started.values():
            server.stop()
    for server in started.values():
        server.check()


def test_control_token_in_the_authorization_header_on_every_stack(
    servers: dict[str, ServerProcess],
) -> None:
    """The runner's way: ``Authorization: Bearer <control token>`` starts the ticker;
    a subscriber token there is 403; a rate over the cap is a JSON 400 naming the cap."""

    async def main() -> None:
        control = {"Authorization": f"Bearer {make_control_token(SECRET.encode(), ttl_s=300)}"}
        subscriber = {"Authorization": f"Bearer {token('eq-control')}"}
        query = {"topic": "eq-control", "rate": "100", "size": "1", "count": "1"}
        async with aiohttp.ClientSession() as session:
            for stack, server in servers.items():
                url = server.url("/control/ticker")
                async with session.post(url, params=query, headers=subscriber) as resp:
                    assert resp.status == 403, stack
                    assert "scope" in (await resp.json())["error"]
                async with session.post(url, params=query, headers=control) as resp:
                    assert resp.status == 200, (stack, await resp.text())
                    assert (await resp.json())["topic"] == "eq-control"
                over = query | {"rate": "100001"}
                async with session.post(url, params=over, headers=control) as resp:
                    assert resp.status == 400, stack
                    assert "100000" in (await resp.json())["error"]
                ws_url = server.ws_url("/echo")
                async with session.ws_connect(ws_url, headers=control) as ws:
                    await ws.send_str("ping")
                    assert (await ws.receive_str()) == "ping"

    asyncio.run(main())


async def _published(session: aiohttp.ClientSession, server: ServerProcess) -> dict[str, int]:
    async with session.get(server.url("/stats")) as resp:
        stats = await resp.json()
    return {"published": int(stats["published"]), "sent": int(stats["ticker"].get("sent", 0))}


@pytest.mark.parametrize(("stack", "transport"), TWIN_PAIRS)
def test_twin_same_sequence_and_exact_resume(
    twins: dict[str, ServerProcess], stack: str, transport: str
) -> None:
    """A twin's ticker: live delivery in order, then exactly the missed ones on resume."""
    if stack not in twins:
        pytest.skip(registry.stack(stack).missing())
    server = twins[stack]
    topic = "eq-twin"  # a twin serves one stream: its ticker's topic
    count = 40

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            base = (await _published(session, server))["published"]  # earlier tests' seqs
            reader = asyncio.create_task(receive(session, server, transport, topic, 10, base))
            await asyncio.sleep(0.2)
            query = {"topic": topic, "rate": "200", "size": "100", "count": str(count)}
            async with session.post(server.url("/control/ticker"), params=query) as resp:
                assert resp.status == 200
            first = await asyncio.wait_for(reader, 20)
            for _ in range(200):  # the rest is published while the client is away
                if (await _published(session, server))["sent"] == count:
                    break
                await asyncio.sleep(0.02)
            rest = count - len(first)
            resumed = await receive(session, server, transport, topic, rest, first[-1][0])
            assert first + resumed == [(base + i + 1, "x" * 100) for i in range(count)]

    asyncio.run(main())

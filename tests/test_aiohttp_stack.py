"""The aiohttp stack, served in-process and driven over real sockets.

Each test runs the stack inside its own ``asyncio.run`` on 127.0.0.1 port 0
(:func:`serving`), talks to it with aiohttp's client (or a raw socket where a
client must misbehave: never read, vanish mid-request) and always stops it.
Counters are read from the in-process service and hub, which the stack shares.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from yarl import URL

from pushbench import registry
from pushbench.auth import make_token
from pushbench.contract import Envelope, decode
from pushbench.hub import Hub
from pushbench.servers.aiohttp_stack import CLOSE_TIMEOUT, STACK, make_app, run
from pushbench.servers.base import StackOptions
from pushbench.service import PushService, ServerConfig
from pushbench.sse import Event, EventParser
from pushbench.wire.handshake import check_response, client_request, find_head_end, parse_response

pytestmark = pytest.mark.timeout(30)

# Short timers so idle paths (heartbeats, pings) show up within a test.
FAST = ServerConfig(ping_interval=5.0, heartbeat_interval=5.0, max_publish_bytes=1000)
STEP = 5.0  # s: the most any single wait in these tests may take


@dataclass
class Server:
    service: PushService
    hub: Hub
    port: int
    session: aiohttp.ClientSession
    stop: asyncio.Event
    task: asyncio.Task[None]

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def raw_url(self, path: str) -> URL:
        """A URL sent exactly as written (no re-quoting): for malformed queries."""
        return URL(self.url(path), encoded=True)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.service.stats_body())
        return result


@asynccontextmanager
async def serving(config: ServerConfig = FAST, hub: Hub | None = None) -> AsyncIterator[Server]:
    """Run the stack on a free port until the block ends, then stop it (always)."""
    hub = hub if hub is not None else Hub()
    service = PushService(hub, config)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(service, "127.0.0.1", 0, ready.set_result, stop, StackOptions()))
    try:
        first: set[asyncio.Future[Any]] = {ready, task}
        await asyncio.wait(first, timeout=STEP, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what went wrong
        port = ready.result()
        async with aiohttp.ClientSession() as session:
            yield Server(service, hub, port, session, stop, task)
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 10.0)
        finally:
            if service.ticker is not None:
                await service.ticker.stop()


def arun(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


async def within(aw: Awaitable[Any], seconds: float = STEP) -> Any:
    return await asyncio.wait_for(aw, seconds)


async def eventually(check: Any, what: str, seconds: float = STEP) -> None:
    """Poll ``check()`` until true, failing with ``what`` after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def publish(srv: Server, topic: str, payload: str) -> int:
    async with srv.session.post(srv.url("/publish"), params={"topic": topic}, data=payload) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("application/json")
        seq: int = (await r.json())["seq"]
        return seq


async def ws_envelopes(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[Envelope]:
    out = []
    for _ in range(n):
        msg = await within(ws.receive())
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        out.append(decode(msg.data))
    return out


async def sse_events(resp: aiohttp.ClientResponse, parser: EventParser, n: int) -> list[Event]:
    events: list[Event] = []
    while len(events) < n:
        chunk = await within(resp.content.readany())
        assert chunk, f"stream ended after {len(events)} events"
        events += parser.feed(chunk)
    return events


def payloads(envs: list[Envelope]) -> list[tuple[int, str]]:
    return [(e.seq, e.payload) for e in envs]


EXPECTED = [(i, f"m{i}") for i in range(1, 21)]


# --- delivery ---------------------------------------------------------------------------


def test_stack_declares_itself() -> None:
    assert STACK.name == "aiohttp"
    row = registry.stack(STACK.name)  # what it serves is its registry row's, nowhere else
    assert row.module == "pushbench.servers.aiohttp_stack"
    assert set(row.serves) == {"ws", "sse", "longpoll", "shortpoll", "echo"}


def test_every_transport_delivers_the_same_sequence() -> None:
    async def main() -> None:
        async with serving() as srv:
            ws = await srv.session.ws_connect(srv.url("/ws?topic=t"), compress=15)
            # permessage-deflate offered by the client, refused by the server.
            assert ws.compress == 0
            sse_resp = await srv.session.get(srv.url("/sse?topic=t"))
            assert sse_resp.status == 200
            parser = EventParser()
            for i in range(1, 21):
                assert await publish(srv, "t", f"m{i}") == i

            assert payloads(await ws_envelopes(ws, 20)) == EXPECTED
            events = await sse_events(sse_resp, parser, 20)
            assert [e.id for e in events] == [str(i) for i in range(1, 21)]
            assert payloads([decode(e.data) for e in events]) == EXPECTED
            assert parser.retry_ms == FAST.sse_retry_ms
            sse_resp.close()
            await ws.close()

            for timeout in ("5", "0"):  # long poll, short poll
                got: list[Envelope] = []
                since = 0
                for _ in range(40):
                    if len(got) >= 20:
                        break
                    query = {"topic": "t", "since": str(since), "timeout": timeout}
                    async with srv.session.get(srv.url("/poll"), params=query) as r:
                        assert r.status == 200
                        assert r.headers["Cache-Control"] == "no-cache"
                        assert r.headers["Content-Type"].startswith("application/json")
                        body = await r.read()
                    answer = json.loads(body)
                    got += [decode(json.dumps(m)) for m in answer["messages"]]
                    since = answer["last"]
                assert payloads(got) == EXPECTED
            assert srv.stats()["messages_delivered"] >= 80

    arun(main())


def test_long_poll_waits_for_the_next_message_and_short_poll_does_not() -> None:
    async def main() -> None:
        async with serving() as srv:
            async with srv.session.get(srv.url("/poll?topic=lp&timeout=0")) as r:
                assert await r.json() == {"last": 0, "messages": []}
            held = asyncio.ensure_future(
                srv.session.get(srv.url("/poll?topic=lp&since=0&timeout=5"))
            )
            await eventually(lambda: srv.hub.stats.subscribers == 1, "the held poll")
            assert not held.done()
            await publish(srv, "lp", "late")
            async with await within(held) as r:
                answer = await r.json()
            assert answer["last"] == 1
            assert [m["p"] for m in answer["messages"]] == ["late"]

    arun(main())


def test_resume_from_since_and_last_event_id() -> None:
    async def main() -> None:
        async with serving() as srv:
            for i in range(1, 21):
                await publish(srv, "r", f"m{i}")
            ws = await srv.session.ws_connect(srv.url("/ws?topic=r&since=5"))
            assert payloads(await ws_envelopes(ws, 15)) == EXPECTED[5:]
            await ws.close()
            for url, headers in (
                ("/sse?topic=r", {"Last-Event-ID": "5"}),
                ("/sse?topic=r&lastEventId=5", {}),
                ("/sse?topic=r&since=1", {"Last-Event-ID": "5"}),  # the header wins
            ):
                async with srv.session.get(srv.url(url), headers=headers) as resp:
                    events = await sse_events(resp, EventParser(), 15)
                assert payloads([decode(e.data) for e in events]) == EXPECTED[5:], url

    arun(main())


def test_client_publish_over_websocket() -> None:
    async def main() -> None:
        async with serving() as srv:
            a = await srv.session.ws_connect(srv.url("/ws?topic=chat"))
            b = await srv.session.ws_connect(srv.url("/ws?topic=chat"))
            await a.send_str("hello")
            await a.send_str("x" * 1000)  # exactly the limit is fine
            for ws in (a, b):
                assert payloads(await ws_envelopes(ws, 2)) == [(1, "hello"), (2, "x" * 1000)]
            # Over the limit: closed with 1009, nothing published.
            await a.send_str("x" * 1001)
            msg = await within(a.receive())
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert a.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
            # Binary is not a publish.
            await b.send_bytes(b"\x00")
            msg = await within(b.receive())
            assert b.close_code == aiohttp.WSCloseCode.UNSUPPORTED_DATA
            assert srv.hub.last_seq("chat") == 2
            await eventually(lambda: srv.service.stats.connections_open == 0, "sockets closed")

    arun(main())


def test_echo_returns_the_same_opcode() -> None:
    async def main() -> None:
        async with serving() as srv:
            ws = await srv.session.ws_connect(srv.url("/echo"), compress=15)
            assert ws.compress == 0
            await ws.send_str("héllo")
            msg = await within(ws.receive())
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, "héllo")
            await ws.send_bytes(b"\x00\xff")
            msg = await within(ws.receive())
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.BINARY, b"\x00\xff")
            await ws.close()

    arun(main())


def test_ticker_is_stamped_with_its_schedule() -> None:
    async def main() -> None:
        async with serving() as srv:
            ws = await srv.session.ws_connect(srv.url("/ws?topic=tick"))
            query = "topic=tick&rate=200&count=50&size=10"
            async with srv.session.post(srv.url(f"/control/ticker?{query}")) as r:
                assert r.status == 200
                assert (await r.json())["count"] == 50
            envs = await ws_envelopes(ws, 50)
            assert [e.seq for e in envs] == list(range(1, 51))
            assert all(len(e.payload) == 10 for e in envs)
            gaps = {b.scheduled_ns - a.scheduled_ns for a, b in itertools.pairwise(envs)}
            assert gaps == {5_000_000}
            async with srv.session.delete(srv.url("/control/ticker")) as r:
                assert r.status == 200
                assert (await r.json())["sent"] == 50
            async with srv.session.post(srv.url("/control/ticker?topic=a%20b")) as r:
                assert r.status == 400
            await ws.close()

    arun(main())


# --- SSE specifics ----------------------------------------------------------------------


def test_sse_headers_and_idle_heartbeats() -> None:
    async def main() -> None:
        config = ServerConfig(heartbeat_interval=0.1)
        async with serving(config) as srv, srv.session.get(srv.url("/sse?topic=hb")) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            assert resp.headers["Cache-Control"] == "no-cache"
            assert resp.headers["X-Accel-Buffering"] == "no"
            assert "Content-Length" not in resp.headers
            parser = EventParser()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STEP
            while parser.comments < 3 and loop.time() < deadline:
                assert parser.feed(await within(resp.content.readany())) == []
            assert parser.comments >= 3
            assert parser.retry_ms == config.sse_retry_ms
            assert srv.stats()["bytes_written"] > 0

    arun(main())


# --- refusals ---------------------------------------------------------------------------

BAD_QUERIES = [
    "",
    "topic=",
    "topic=" + "a" * 65,
    "topic=a%20b",
    "topic=%C3%A4",
    "topic=ok&since=-1",
    "topic=ok&since=abc",
    "topic=ok&since=99999999999999999999999",
    "topic=ok&timeout=1e9",
    "topic=ok&timeout=nan",
    "topic=ok&timeout=-1",
    # Malformed query strings: refused, never a crash (500).
    "topic=%ZZ",
    "topic=%",
    "=&&&topic",
    "topic=ok&since=%FF",
    "topic=ok&since=%C2%B2",
    "topic=ok&timeout=0x10",
    "topic=a%20b&topic=ok",  # a repeated name: the first one counts
    "topic=ok%00",
]


def test_the_app_runs_no_middleware() -> None:
    """Error shapes come from a wrapper per route: with any middleware aiohttp also runs
    its own around every request (two more coroutines a request; server CPU per long-poll
    message 65.8 against the twin's 54.3 µs with it, 59.9 against 55.1 without)."""
    app = make_app(PushService(Hub()))
    assert not app.middlewares
    app.freeze()
    assert app._run_middlewares is False  # what aiohttp checks per request
    served = {r.canonical for r in app.router.resources()}
    assert {"/ws", "/sse", "/poll", "/publish", "/stats"} <= served


def test_bad_input_is_refused_with_json_errors() -> None:
    async def main() -> None:
        async with serving() as srv:
            s = srv.session
            for query in BAD_QUERIES:
                for path in ("/poll", "/sse"):
                    async with s.get(srv.raw_url(f"{path}?{query}")) as r:
                        assert r.status == 400, (path, query, r.status)
                        assert r.headers["Content-Type"] == "application/json"
                        assert "error" in await r.json()
                # A WebSocket is refused before the upgrade.
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await s.ws_connect(srv.raw_url(f"/ws?{query}"))
                assert err.value.status == 400, query
                async with s.post(srv.raw_url(f"/publish?{query}"), data=b"x") as r:
                    assert r.status == 400, query

            async with s.post(srv.url("/publish?topic=p"), data=b"x" * 1001) as r:
                assert r.status == 413
                assert "error" in await r.json()

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
                for _ in range(10):
                    yield b"y" * 500

            async with s.post(srv.url("/publish?topic=p"), data=chunks()) as r:
                assert r.status == 413
            async with s.post(srv.url("/publish?topic=p"), data=b"\xff\xfe") as r:
                assert r.status == 400
            async with s.get(srv.url("/nope")) as r:
                assert r.status == 404
                assert r.headers["Content-Type"] == "application/json"
                assert (await r.json())["error"]
            async with s.get(srv.url("/publish?topic=p")) as r:
                assert r.status == 405
                assert "POST" in r.headers["Allow"]
                assert (await r.json())["error"]
            async with s.get(srv.url("/ws?topic=p")) as r:  # not an upgrade
                assert r.status == 400
                assert (await r.json())["error"]
            assert srv.hub.last_seq("p") == 0  # nothing refused was published
            async with s.get(srv.url("/health")) as r:
                assert (r.status, await r.text()) == (200, "ok")
            assert srv.stats()["bad_requests"] >= len(BAD_QUERIES) * 4

    arun(main())


def test_auth_tokens() -> None:
    secret = b"k"

    async def main() -> None:
        async with serving(ServerConfig(auth_secret=secret)) as srv:
            s = srv.session
            good = make_token(secret, "sec")
            bad_tokens = {
                "missing": "",
                "forged": good.split(".")[0] + "." + "0" * 64,
                "expired": make_token(secret, "sec", ttl_s=-10),
                "other topic": make_token(secret, "other"),
            }
            for why, token in bad_tokens.items():
                q = f"topic=sec&token={token}"
                with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                    await s.ws_connect(srv.url(f"/ws?{q}"))
                assert err.value.status == 401, why
                for method, path in (("GET", "/sse"), ("GET", "/poll"), ("POST", "/publish")):
                    async with s.request(method, srv.url(f"{path}?{q}&timeout=0")) as r:
                        assert r.status == 401, (why, path)
                        assert "token" in (await r.json())["error"]
            assert srv.stats()["auth_failures"] == 4 * len(bad_tokens)

            q = f"topic=sec&token={good}"
            ws = await s.ws_connect(srv.url(f"/ws?{q}"))
            async with s.get(srv.url(f"/sse?{q}")) as r:
                assert r.status == 200
            async with s.post(srv.url(f"/publish?{q}"), data="secret") as r:
                assert r.status == 200
            assert payloads(await ws_envelopes(ws, 1)) == [(1, "secret")]
            async with s.get(srv.url(f"/poll?{q}&since=0&timeout=0")) as r:
                assert r.status == 200
                assert len((await r.json())["messages"]) == 1
            await ws.close()
            stats = srv.stats()
            assert stats["auth_failures"] == 4 * len(bad_tokens)
            assert stats["messages_delivered"] >= 2

    arun(main())


def test_origin_allow_list_and_connection_limit() -> None:
    async def main() -> None:
        config = ServerConfig(origins=("https://good.example",), max_connections=1)
        async with serving(config) as srv:
            s = srv.session
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(srv.url("/ws?topic=o"), origin="https://evil.example")
            assert err.value.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(srv.url("/echo"), origin="https://evil.example")
            assert err.value.status == 403
            ws = await s.ws_connect(srv.url("/ws?topic=o"), origin="https://good.example")
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(srv.url("/ws?topic=o"))
            assert err.value.status == 429
            async with s.get(srv.url("/sse?topic=o")) as r:
                assert r.status == 429
            assert srv.service.stats.connections_refused == 2
            await ws.close()
            await eventually(lambda: srv.service.stats.connections_open == 0, "the close")

    arun(main())


# --- misbehaving clients ----------------------------------------------------------------


async def raw_connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def read_head(sock: socket.socket) -> bytes:
    buf = b""
    while (end := find_head_end(buf)) < 0:
        chunk = await within(asyncio.get_running_loop().sock_recv(sock, 4096))
        assert chunk, "connection closed before a response head"
        buf += chunk
    return buf[:end]


async def raw_ws(port: int, target: str, rcvbuf: int | None = None) -> socket.socket:
    """A WebSocket opened by hand (so it can then misbehave): 101 checked."""
    sock = await raw_connect(port, rcvbuf)
    request, key = client_request(f"127.0.0.1:{port}", target)
    await asyncio.get_running_loop().sock_sendall(sock, request)
    check_response(parse_response(await read_head(sock)), key)
    return sock


async def raw_get(port: int, target: str, *, wait_head: bool) -> socket.socket:
    sock = await raw_connect(port)
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    await asyncio.get_running_loop().sock_sendall(sock, request)
    if wait_head:
        assert parse_response(await read_head(sock)).status == 200
    return sock


def abort(sock: socket.socket) -> None:
    """Vanish without a goodbye: RST instead of FIN, no WebSocket Close."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def test_slow_consumer_is_dropped_and_the_server_stays_up() -> None:
    async def main() -> None:
        # Keepalive far away: the drop must come from the hub, not from a missed Pong.
        config = ServerConfig(ping_interval=60.0)
        async with serving(config, Hub(queue_limit=50)) as srv:
            stuck = await raw_ws(srv.port, "/ws?topic=flood", rcvbuf=4096)
            reader = await srv.session.ws_connect(srv.url("/ws?topic=flood"))
            assert srv.service.stats.connections_open == 2
            payload = "x" * 1024
            for i in range(5000):
                await srv.hub.publish("flood", payload)
                if i % 10 == 0:
                    await asyncio.sleep(0)  # let the stack write between bursts
            await eventually(lambda: srv.stats()["slow_consumers_dropped"] >= 1, "a drop")
            # The stuck connection is torn down promptly, not at the next keepalive.
            await eventually(
                lambda: srv.service.stats.connections_open <= 1, "the stuck socket to go"
            )
            async with srv.session.get(srv.url("/health")) as r:
                assert r.status == 200
            stuck.close()
            await reader.close()
            await eventually(lambda: srv.hub.stats.subscribers == 0, "no subscribers")

    arun(main())


def test_abrupt_disconnects_leak_nothing() -> None:
    async def main() -> None:
        async with serving() as srv:
            async with srv.session.get(srv.url("/health")) as r:
                assert r.status == 200
            baseline = len(asyncio.all_tasks())
            socks = []
            for i in range(20):
                socks.append(await raw_ws(srv.port, f"/ws?topic=leak{i % 3}"))
                socks.append(await raw_get(srv.port, f"/sse?topic=leak{i % 3}", wait_head=True))
                socks.append(
                    await raw_get(srv.port, f"/poll?topic=leak{i % 3}&timeout=30", wait_head=False)
                )
            await eventually(lambda: srv.hub.stats.subscribers == 60, "60 subscribers")
            assert srv.service.stats.connections_open == 40
            await publish(srv, "leak0", "one for the road")
            for sock in socks:
                abort(sock)
            await eventually(lambda: srv.hub.stats.subscribers == 0, "subscribers gone")
            await eventually(lambda: srv.service.stats.connections_open == 0, "connections gone")
            await eventually(lambda: len(asyncio.all_tasks()) <= baseline + 2, "tasks gone")

    arun(main())


def test_shutdown_is_graceful() -> None:
    async def main() -> None:
        async with serving() as srv:
            s = srv.session
            ws = await s.ws_connect(srv.url("/ws?topic=bye"))
            sse_resp = await s.get(srv.url("/sse?topic=bye"))
            poll = asyncio.ensure_future(s.get(srv.url("/poll?topic=bye&timeout=30")))
            # A client that stopped reading with every buffer full: its Close cannot be sent.
            stuck = await raw_ws(srv.port, "/ws?topic=flood", rcvbuf=4096)
            await eventually(lambda: srv.hub.stats.subscribers == 4, "four subscribers")
            for i in range(3000):
                await srv.hub.publish("flood", "x" * 1024)
                if i % 10 == 0:
                    await asyncio.sleep(0)
            assert srv.stats()["slow_consumers_dropped"] == 0

            started = asyncio.get_running_loop().time()
            srv.stop.set()
            msg = await within(ws.receive())
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
            rest = await within(sse_resp.content.read())  # ends cleanly: no payload error
            assert rest.startswith(b"retry:")
            async with await within(poll) as r:
                assert r.status == 200
                assert (await r.json())["messages"] == []
            await within(srv.task, 2 * STEP)
            # Bounded by the Close timeout, even with the stuck client.
            assert asyncio.get_running_loop().time() - started < CLOSE_TIMEOUT + 1.0
            stuck.close()
            assert srv.hub.stats.subscribers == 0
            assert srv.service.stats.connections_open == 0
            with suppress(aiohttp.ClientError):
                await ws.close()
            sse_resp.close()

    arun(main())

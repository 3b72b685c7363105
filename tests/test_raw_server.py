"""The raw asyncio stack end to end: a real ``pushbench serve`` subprocess, real clients.

Well-behaved traffic comes from third-party clients (the ``websockets`` library
and aiohttp), so the server is checked against implementations other than our
own codec. Misbehaving peers (unmasked frames, silence, never reading) are raw
sockets with frames built by hand here, again independent of the codec.

Tests on the shared module server use a topic of their own (:func:`fresh_topic`),
so they never see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import signal
import socket
import time
from collections.abc import Coroutine, Iterator
from dataclasses import fields
from typing import Any

import aiohttp
import pytest
from conftest import ServerProcess, StartServer, serving
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from pushbench.contract import decode
from pushbench.service import ServiceStats
from pushbench.sse import EventParser
from pushbench.wire import speedups

pytestmark = pytest.mark.timeout(60)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the RFC 6455 §1.3 example, and its answer
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
# ServiceStats' counters, the raw stack's own, and the hub's (see PushService.stats_body).
COUNTERS = {f.name for f in fields(ServiceStats) if f.name != "extra"} | {
    "dead_peers",
    "protocol_errors",
    "fanout_deliveries",
    "slow_consumers_dropped",
    "published",
    "subscribers",
    "history",
    "history_gaps",
    "history_gap_messages",
}
PING_INTERVAL = 0.2
PING_TIMEOUT = 0.4
_topics = itertools.count()


def fresh_topic() -> str:
    return f"t{next(_topics)}"


def run(coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
    """Run one test coroutine on a fresh loop, never longer than ``timeout``."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def keepalive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server pinging every 0.2 s that gives up on a peer silent for 0.4 s after a ping."""
    args = ["--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT)]
    with serving(tmp_path_factory.mktemp("keepalive") / "server.stderr", *args) as server:
        yield server


# --- clients --------------------------------------------------------------


def ws_connect(server: ServerProcess, path: str, **kwargs: Any) -> connect:
    """A websockets client: no compression, no proxy, our own timeouts."""
    options: dict[str, Any] = {
        "compression": None,
        "proxy": None,
        "max_size": None,
        "open_timeout": 5,
        "close_timeout": 5,
        "ping_interval": None,
    }
    options.update(kwargs)
    return connect(server.ws_url(path), **options)


async def get_stats(server: ServerProcess) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url("/stats")) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "application/json"
        stats: dict[str, Any] = await resp.json()
        return stats


async def publish(server: ServerProcess, topic: str, payload: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url("/publish"), params={"topic": topic}, data=payload) as resp,
    ):
        assert resp.status == 200, await resp.text()
        seq: int = (await resp.json())["seq"]
        return seq


async def wait_for_stat(server: ServerProcess, name: str, at_least: int, within: float) -> int:
    """Poll /stats until counter ``name`` reaches ``at_least``; return its value."""
    deadline = time.monotonic() + within
    while True:
        value = (await get_stats(server))[name]
        if value >= at_least or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def upgrade_request(
    path: str = "/echo",
    *,
    key: str | None = KEY,
    version: str | None = "13",
    headers: tuple[str, ...] = (),
) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket"]
    lines.append("Connection: Upgrade")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    lines += headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def http_exchange(server: ServerProcess, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw request bytes, read until the server closes → (status, headers, body)."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


# --- hand-built frames (independent of pushbench.wire) --------------------


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = b"\x37\xfa\x21\x3d"
) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0 if mask is None else 0x80
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """One server frame → (opcode, fin, payload); server frames are never masked."""
    b0, b1 = await reader.readexactly(2)
    assert not b1 & 0x80, "a server must not mask its frames"
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, bool(b0 & 0x80), await reader.readexactly(n)


async def raw_websocket(
    server: ServerProcess, path: str = "/echo"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(upgrade_request(path))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert f"Sec-WebSocket-Accept: {ACCEPT}".encode() in head
    return reader, writer


def silent_peer(server: ServerProcess, path: str, rcvbuf: int | None = None) -> socket.socket:
    """A blocking socket that completes the handshake by hand, then never reads or writes."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect((server.host, server.port))
    sock.sendall(upgrade_request(path))
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # byte by byte: leave any frame unread
        byte = sock.recv(1)
        assert byte, "closed during the handshake"
        head += byte
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the peer sends until it closes → (bytes, seconds until closed)."""
    start = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data, time.monotonic() - start


def payload_of(kind: str, size: int) -> str | bytes:
    """``size`` bytes on the wire: text mixes 1- and 2-byte UTF-8, binary is random."""
    if kind == "text":
        return "é" * (size // 2) + "a" * (size % 2)
    return random.Random(size).randbytes(size)


SIZES = [0, 125, 126, 65535, 65536, 1 << 20]


# --- plain HTTP -----------------------------------------------------------


def test_health_is_200_ok(raw_server: ServerProcess) -> None:
    async def main() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(raw_server.url("/health")) as resp,
        ):
            assert resp.status == 200
            assert (await resp.text()).strip() == "ok"

    run(main())


def test_stats_are_json_counters(raw_server: ServerProcess) -> None:
    stats = run(get_stats(raw_server))
    stats.pop("ticker", None)  # there once a test started one
    process = {"server", "cpu_user_s", "cpu_sys_s", "max_rss_kb"}
    assert set(stats) == COUNTERS | {"hub_backend", "encoding"} | process
    assert stats["server"]["stack"] == "raw" and stats["server"]["compression"] == "off"
    assert all(isinstance(stats[k], int) and stats[k] >= 0 for k in COUNTERS)
    assert (stats["hub_backend"], stats["encoding"]) == ("memory", "json")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, id="unknown-path"),
        pytest.param(upgrade_request(key=None), 400, id="missing-key"),
        pytest.param(upgrade_request(key="c2hvcnQ="), 400, id="short-key"),
        pytest.param(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 400, id="not-an-upgrade"),
        pytest.param(b"HELLO\r\n\r\n", 400, id="malformed-request-line"),
        pytest.param(b"GET / HTTP/1.1\r\nX: " + b"a" * 20000, 400, id="head-too-large"),
        pytest.param(b"POST /health HTTP/1.1\r\nHost: x\r\n\r\n", 405, id="post-health"),
        pytest.param(b"GET /ws?topic=t HTTP/1.1\r\nHost: x\r\n\r\n", 400, id="ws-no-upgrade"),
        pytest.param(upgrade_request("/ws"), 400, id="ws-no-topic"),
        pytest.param(upgrade_request("/ws?topic=a%20b"), 400, id="ws-bad-topic"),
        pytest.param(upgrade_request("/ws?topic=t&since=-1"), 400, id="ws-bad-since"),
        pytest.param(b"GET /sse?topic= HTTP/1.1\r\nHost: x\r\n\r\n", 400, id="sse-no-topic"),
        pytest.param(b"GET /poll?topic=t&timeout=x HTTP/1.1\r\n\r\n", 400, id="poll-timeout"),
        pytest.param(b"POST /publish?topic=t HTTP/1.1\r\n\r\n", 411, id="publish-no-length"),
        pytest.param(
            b"POST /publish?topic=t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            411,
            id="publish-chunked",
        ),
        pytest.param(
            b"POST /publish?topic=t HTTP/1.1\r\nContent-Length: 2\r\n\r\n\xff\xfe",
            400,
            id="publish-not-utf8",
        ),
        pytest.param(
            b"POST /publish?topic=t HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
            413,
            id="publish-too-large",
        ),
        pytest.param(
            b"POST /publish?topic=%20 HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
            400,
            id="publish-too-large-bad-topic",
        ),
        pytest.param(b"POST /control/ticker?rate=1 HTTP/1.1\r\n\r\n", 400, id="ticker-no-topic"),
    ],
)
def test_http_refusals(raw_server: ServerProcess, request_bytes: bytes, status: int) -> None:
    """Every refusal, before any upgrade: the status, a JSON error body, and a close."""
    got, headers, body = run(http_exchange(raw_server, request_bytes))
    assert got == status
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body)["error"]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length → (status, headers, body); the connection stays."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *header_lines = head.rstrip("\r\n").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


def test_keep_alive_serves_pipelined_requests(raw_server: ServerProcess) -> None:
    """Three requests sent at once on one connection, three answers; an error closes it."""
    topic = fresh_topic()

    async def main() -> None:
        reader, writer = await asyncio.open_connection(raw_server.host, raw_server.port)
        try:
            writer.write(
                b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                + f"POST /publish?topic={topic} HTTP/1.1\r\nHost: x\r\n".encode()
                + b"Content-Length: 4\r\n\r\nkept"
                + f"GET /poll?topic={topic}&since=0&timeout=0 HTTP/1.1\r\n\r\n".encode()
            )
            status, headers, body = await read_response(reader)
            assert (status, body) == (200, b"ok")
            assert "connection" not in headers  # HTTP/1.1: persistent by default
            status, _, body = await read_response(reader)
            assert (status, json.loads(body)) == (200, {"seq": 1})
            status, _, body = await read_response(reader)
            assert [m["p"] for m in json.loads(body)["messages"]] == ["kept"]
            writer.write(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert (status, headers["connection"]) == (404, "close")
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the error
        finally:
            writer.close()

    run(main())


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /health HTTP/1.0\r\n\r\n", id="http-1.0"),
        pytest.param(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", id="asked"),
        pytest.param(b"GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", id="unread-body"),
    ],
)
def test_connection_closes_when_it_cannot_be_kept(
    raw_server: ServerProcess, request_bytes: bytes
) -> None:
    status, headers, body = run(http_exchange(raw_server, request_bytes))  # reads until closed
    assert (status, headers["connection"], body) == (200, "close", b"ok")


def test_version_mismatch_is_426_naming_13(raw_server: ServerProcess) -> None:
    for path in ("/echo", "/ws?topic=t"):
        status, headers, _ = run(http_exchange(raw_server, upgrade_request(path, version="12")))
        assert status == 426
        assert headers["sec-websocket-version"] == "13"


def test_method_not_allowed_names_the_allowed_ones(raw_server: ServerProcess) -> None:
    status, headers, _ = run(http_exchange(raw_server, b"GET /control/ticker HTTP/1.1\r\n\r\n"))
    assert status == 405
    assert headers["allow"] == "POST, DELETE"


def test_ws_refusals_before_the_upgrade(server_factory: StartServer) -> None:
    """Origin (403) and the connection limit (429) answer with HTTP statuses, like 400/401."""
    server = server_factory("--origin", "http://good.example", "--max-connections", "1")

    async def main() -> None:
        evil = upgrade_request("/ws?topic=t", headers=("Origin: http://evil.example",))
        status, _, body = await http_exchange(server, evil)
        assert (status, json.loads(body)) == (403, {"error": "origin not allowed"})
        good = ("Origin: http://good.example",)
        async with ws_connect(server, "/ws?topic=t", origin="http://good.example"):
            status, _, body = await http_exchange(server, upgrade_request("/ws?topic=t"))
            assert (status, json.loads(body)) == (429, {"error": "too many connections"})
            status, _, _ = await http_exchange(server, upgrade_request("/echo", headers=good))
            assert status == 429
        stats = await get_stats(server)
        assert stats["auth_failures"] == 1 and stats["connections_refused"] == 2

    run(main())


# --- echo -----------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_echo_websockets_client(raw_server: ServerProcess, size: int) -> None:
    async def main() -> None:
        async with ws_connect(raw_server, "/echo") as ws:
            for kind in ("text", "binary"):
                message = payload_of(kind, size)
                await ws.send(message)
                assert await ws.recv() == message  # str back for text, bytes for binary

    run(main())


@pytest.mark.parametrize("size", SIZES)
def test_echo_aiohttp_client(raw_server: ServerProcess, size: int) -> None:
    async def main() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(raw_server.ws_url("/echo")) as ws,
        ):
            text = payload_of("text", size)
            assert isinstance(text, str)
            await ws.send_str(text)
            msg = await ws.receive(timeout=5)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, text)
            data = payload_of("binary", size)
            assert isinstance(data, bytes)
            await ws.send_bytes(data)
            msg = await ws.receive(timeout=5)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.BINARY, data)

    run(main())


def test_fragmented_message_echoes_as_one(raw_server: ServerProcess) -> None:
    async def main() -> None:
        async with ws_connect(raw_server, "/echo") as ws:
            await ws.send(["frag", "mented ", "téxt"])
            assert await ws.recv() == "fragmented téxt"
            await ws.send([b"\x00\x01", b"", b"\x02" * 70000])
            assert await ws.recv() == b"\x00\x01" + b"\x02" * 70000

    run(main())


def test_fragments_with_interleaved_ping_come_back_as_one_frame(
    raw_server: ServerProcess,
) -> None:
    """Seen on the wire: the pong first, then one FIN frame holding the whole message."""

    async def main() -> None:
        reader, writer = await raw_websocket(raw_server)
        writer.write(client_frame(0x1, b"one ", fin=False))
        writer.write(client_frame(0x9, b"are you there"))
        writer.write(client_frame(0x0, b"two ", fin=False))
        writer.write(client_frame(0x0, b"three", fin=True))
        assert await read_frame(reader) == (0xA, True, b"are you there")
        assert await read_frame(reader) == (0x1, True, b"one two three")
        writer.close()

    run(main())


def test_frame_sent_with_the_handshake_is_not_lost(raw_server: ServerProcess) -> None:
    """Bytes after the request head, in the same segment, are the first frame."""

    async def main() -> None:
        reader, writer = await asyncio.open_connection(raw_server.host, raw_server.port)
        writer.write(upgrade_request() + client_frame(0x2, b"early"))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
        assert await read_frame(reader) == (0x2, True, b"early")
        writer.close()

    run(main())


def test_client_ping_gets_pong(raw_server: ServerProcess) -> None:
    async def main() -> None:
        async with ws_connect(raw_server, "/echo") as ws:
            latency = await asyncio.wait_for(await ws.ping(b"probe"), 5)
            assert latency >= 0

    run(main())


# --- closing and failing --------------------------------------------------


def test_close_from_websockets_client_is_1000_both_ways(raw_server: ServerProcess) -> None:
    async def main() -> None:
        ws: ClientConnection
        async with ws_connect(raw_server, "/echo") as ws:
            await ws.send("bye")
            assert await ws.recv() == "bye"
            start = time.monotonic()
            await ws.close()
            # websockets waits for the server to close TCP; prompt means it did.
            assert time.monotonic() - start < 1.0
        assert ws.protocol.close_sent is not None and ws.protocol.close_sent.code == 1000
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000

    run(main())


def test_close_from_aiohttp_client_is_1000(raw_server: ServerProcess) -> None:
    async def main() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(raw_server.ws_url("/echo")) as ws,
        ):
            await ws.close()
            assert ws.close_code == 1000

    run(main())


def test_unmasked_frame_gets_1002_then_tcp_close(raw_server: ServerProcess) -> None:
    async def main() -> None:
        before = (await get_stats(raw_server))["protocol_errors"]
        reader, writer = await raw_websocket(raw_server)
        writer.write(client_frame(0x1, b"not masked", mask=None))
        opcode, fin, payload = await read_frame(reader)
        assert (opcode, fin) == (0x8, True)
        assert int.from_bytes(payload[:2], "big") == 1002
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then the server's FIN
        writer.close()
        assert (await get_stats(raw_server))["protocol_errors"] == before + 1

    run(main())


def test_invalid_utf8_text_gets_1007(raw_server: ServerProcess) -> None:
    async def main() -> None:
        async with ws_connect(raw_server, "/echo") as ws:
            await ws.send(b"ok \xff\xfe", text=True)  # websockets sends bytes as-is
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1007

    run(main())


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"\x00" * 1025, id="one-frame"),
        pytest.param([b"\x00" * 400] * 3, id="fragments"),
    ],
)
def test_oversize_message_gets_1009(
    server_factory: StartServer, message: bytes | list[bytes]
) -> None:
    # A small limit keeps the client's send short: a client closed while a
    # multi-MiB write is still buffered trips a CPython 3.11 asyncio bug
    # (abort() after connection_lost → AttributeError) inside websockets.
    server = server_factory("--max-message-size", "1024")

    async def main() -> None:
        async with ws_connect(server, "/echo") as ws:
            await ws.send(b"\x00" * 1024)  # the limit itself is fine
            assert len(await ws.recv()) == 1024
            with contextlib.suppress(ConnectionClosedError):  # may land mid-send
                await ws.send(message)
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009

    run(main())


# --- keepalive ------------------------------------------------------------


def test_server_ping_reaches_client(keepalive_server: ServerProcess) -> None:
    async def main() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(keepalive_server.ws_url("/echo"), autoping=False) as ws,
        ):
            msg = await ws.receive(timeout=PING_INTERVAL * 10)
            assert msg.type == aiohttp.WSMsgType.PING
            await ws.pong(msg.data)

    run(main())


def test_pings_keep_their_interval_when_the_timeout_is_longer(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A 0.1 s interval under a 5 s timeout: a Ping every 0.1 s, not one per timeout (the
    next Ping once waited for the liveness check, so a 1 s heartbeat ran every 20 s)."""
    args = ["--ping-interval", "0.1", "--ping-timeout", "5"]
    stderr = tmp_path_factory.mktemp("long-timeout") / "server.stderr"

    async def main(server: ServerProcess) -> int:
        pings = 0
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.ws_url("/echo"), autoping=False) as ws,
        ):
            deadline = asyncio.get_running_loop().time() + 1.0
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.PING:
                    pings += 1
                    await ws.pong(msg.data)
        return pings

    with serving(stderr, *args) as server:
        pings = run(main(server))
    assert pings >= 5  # 10 due in the second; the old schedule sent 1


def test_responsive_peer_outlives_many_pings(keepalive_server: ServerProcess) -> None:
    async def main() -> None:
        before = (await get_stats(keepalive_server))["dead_peers"]
        async with ws_connect(keepalive_server, "/echo") as ws:  # pongs automatically
            await asyncio.sleep(6 * PING_INTERVAL + PING_TIMEOUT)
            await ws.send("still here")
            assert await ws.recv() == "still here"
        assert (await get_stats(keepalive_server))["dead_peers"] == before

    run(main())


def test_silent_peer_is_aborted(keepalive_server: ServerProcess) -> None:
    """Reads the server's ping but never answers: aborted one ping_timeout later."""

    async def main() -> None:
        before = (await get_stats(keepalive_server))["dead_peers"]
        with silent_peer(keepalive_server, "/echo") as sock:
            data, elapsed = read_until_closed(sock, timeout=5)
        assert data.startswith(b"\x89\x00")  # the keepalive ping, empty payload
        assert elapsed >= PING_TIMEOUT  # not before the deadline (ping time + timeout)
        assert elapsed < PING_INTERVAL + PING_TIMEOUT + 1.0  # nor long after it
        assert await wait_for_stat(keepalive_server, "dead_peers", before + 1, 2) == before + 1

    run(main())


# --- topics: push and publish over /ws -------------------------------------


def test_text_frame_published_on_ws_reaches_every_subscriber(raw_server: ServerProcess) -> None:
    """Three subscribers (two libraries); one publishes: all three get the same envelope."""
    topic = fresh_topic()
    path = f"/ws?topic={topic}"

    async def main() -> None:
        before = await get_stats(raw_server)
        async with (
            ws_connect(raw_server, path) as first,
            ws_connect(raw_server, path) as second,
            aiohttp.ClientSession() as session,
            session.ws_connect(raw_server.ws_url(path)) as third,
        ):
            await second.send("to everyone")
            received = [await asyncio.wait_for(ws.recv(), 5) for ws in (first, second)]
            msg = await third.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.TEXT
            received.append(msg.data)
            assert all(isinstance(r, str) for r in received)  # one text frame each
            assert len(set(received)) == 1  # the same bytes for everyone
            env = decode(received[0])
            assert (env.topic, env.seq, env.payload) == (topic, 1, "to everyone")
        after = await get_stats(raw_server)
        assert after["published"] - before["published"] == 1
        assert after["messages_delivered"] - before["messages_delivered"] == 3

    run(main())


def test_ws_resumes_after_since_then_goes_live(raw_server: ServerProcess) -> None:
    topic = fresh_topic()

    async def main() -> None:
        for i in range(3):
            await publish(raw_server, topic, f"m{i}")
        async with ws_connect(raw_server, f"/ws?topic={topic}&since=1") as ws:
            got = [decode(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
            assert [(e.seq, e.payload) for e in got] == [(2, "m1"), (3, "m2")]
            assert await publish(raw_server, topic, "live") == 4
            env = decode(await asyncio.wait_for(ws.recv(), 5))
            assert (env.seq, env.payload) == (4, "live")

    run(main())


@pytest.mark.parametrize(
    ("message", "code"),
    [
        pytest.param(b"\x00binary", 1003, id="binary"),
        pytest.param("x" * 65537, 1009, id="over-max-publish-bytes"),
    ],
)
def test_refused_ws_publish_closes_the_socket(
    raw_server: ServerProcess, message: str | bytes, code: int
) -> None:
    async def main() -> None:
        async with ws_connect(raw_server, f"/ws?topic={fresh_topic()}") as ws:
            with contextlib.suppress(ConnectionClosedError):  # may land mid-send
                await ws.send(message)
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.recv()
        assert caught.value.rcvd is not None and caught.value.rcvd.code == code

    run(main())


def test_stats_count_exact_wire_bytes(server_factory: StartServer) -> None:
    """One message pushed to one subscriber, then a normal close: every counter is exact."""
    server = server_factory()

    async def main() -> None:
        async with ws_connect(server, "/ws?topic=x") as ws:
            assert await publish(server, "x", "hello") == 1
            data = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(data, str) and decode(data).payload == "hello"
            assert (await get_stats(server))["connections_open"] == 1
        deadline = time.monotonic() + 3
        while (stats := await get_stats(server))["connections_open"]:
            assert time.monotonic() < deadline, "server kept the connection after the close"
            await asyncio.sleep(0.02)
        assert len(data.encode()) < 126  # so the frame header is 2 bytes
        for key in ("server", "cpu_user_s", "cpu_sys_s", "max_rss_kb"):
            stats.pop(key)  # what runs and its process usage: not counters
        assert stats == {
            "connections_open": 0,
            "connections_total": 1,
            "connections_refused": 0,
            "messages_delivered": 1,
            "bytes_written": 2 + len(data.encode()),  # the one text frame, header included
            "requests": 2,  # the /ws and the /publish
            "bad_requests": 0,
            "auth_failures": 0,
            "dead_peers": 0,
            "protocol_errors": 0,
            "fanout_deliveries": 1 if speedups.fanout() else 0,  # the compiled fan-out took it
            "hub_backend": "memory",
            "encoding": "json",
            "slow_consumers_dropped": 0,
            "published": 1,
            "subscribers": 0,
            "history": 1000,  # the default: nothing asked for more
            "history_gaps": 0,
            "history_gap_messages": 0,
        }

    run(main())


def test_slow_consumer_is_dropped(server_factory: StartServer) -> None:
    """A subscriber that never reads is dropped (and aborted) once it is queue_limit
    messages behind; a subscriber that reads gets every message."""
    server = server_factory(
        "--queue-limit", "16", "--write-buffer-limit", "65536", "--close-timeout", "1"
    )
    path = "/ws?topic=slow"

    async def main() -> None:
        # Tiny receive window: the kernel absorbs little, the server's buffer fills.
        sock = silent_peer(server, path, rcvbuf=4096)
        payload = "x" * 60000
        received = 0
        async with (
            ws_connect(server, path, max_queue=None) as reader,
            aiohttp.ClientSession() as session,
        ):

            async def drain() -> None:
                nonlocal received
                async for _ in reader:
                    received += 1

            reading = asyncio.create_task(drain())
            dropped = 0
            sent = 0
            for sent in range(1, 1001):  # at most 60 MB, far past any socket buffer
                url = server.url("/publish")
                async with session.post(url, params={"topic": "slow"}, data=payload) as resp:
                    assert resp.status == 200
                if sent % 8 == 0:
                    dropped = (await get_stats(server))["slow_consumers_dropped"]
                    if dropped:
                        break
            assert dropped == 1, "the never-reading client was not dropped"
            # The silent one is gone within close_timeout; the reader is served on.
            deadline = time.monotonic() + 3
            while (await get_stats(server))["connections_open"] > 1:
                assert time.monotonic() < deadline, "dropped client never aborted"
                await asyncio.sleep(0.05)
            while received < sent:
                await asyncio.sleep(0.01)
            reading.cancel()
        sock.close()
        async with ws_connect(server, "/echo") as ws:
            await ws.send("responsive")
            assert await ws.recv() == "responsive"
        stats = await get_stats(server)
        assert stats["slow_consumers_dropped"] == 1 and stats["dead_peers"] == 0

    run(main())


# --- SSE and polling --------------------------------------------------------


async def read_events(resp: aiohttp.ClientResponse, parser: EventParser, n: int) -> list[Any]:
    events: list[Any] = []
    while len(events) < n:
        chunk = await asyncio.wait_for(resp.content.readany(), 5)
        assert chunk, "the stream ended"
        events += parser.feed(chunk)
    return events


def test_sse_resumes_streams_and_sends_heartbeats(server_factory: StartServer) -> None:
    server = server_factory("--heartbeat-interval", "0.2", "--sse-retry-ms", "1234")

    async def main() -> None:
        for i in range(3):
            await publish(server, "s", f"m{i}")
        async with aiohttp.ClientSession() as session:
            url = server.url("/sse?topic=s")
            async with session.get(url, headers={"Last-Event-ID": "1"}) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "text/event-stream"
                assert resp.headers["Cache-Control"] == "no-cache"
                assert resp.headers["X-Accel-Buffering"] == "no"
                assert "Content-Length" not in resp.headers
                parser = EventParser()
                events = await read_events(resp, parser, 2)
                assert parser.retry_ms == 1234
                assert [(e.id, decode(e.data).payload) for e in events] == [
                    ("2", "m1"),
                    ("3", "m2"),
                ]
                await publish(server, "s", "live")
                (event,) = await read_events(resp, parser, 1)
                assert (event.id, decode(event.data).payload) == ("4", "live")
                while parser.comments == 0:  # a heartbeat within 0.2 s of idling
                    parser.feed(await asyncio.wait_for(resp.content.readany(), 5))
            # EventSource's polyfills resume with a query parameter instead.
            async with session.get(server.url("/sse?topic=s&lastEventId=3")) as resp:
                (event,) = await read_events(resp, EventParser(), 1)
                assert event.id == "4"
        stats = await get_stats(server)
        assert stats["messages_delivered"] == 4

    run(main())


def test_short_and_long_polls(raw_server: ServerProcess) -> None:
    topic = fresh_topic()

    async def poll(session: aiohttp.ClientSession, query: str) -> Any:
        async with session.get(raw_server.url(f"/poll?{query}")) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            return await resp.json()

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            assert await poll(session, f"topic={topic}&timeout=0") == {"last": 0, "messages": []}
            start = time.monotonic()
            held = asyncio.create_task(poll(session, f"topic={topic}&since=0&timeout=5"))
            await asyncio.sleep(0.2)
            assert not held.done()
            await publish(raw_server, topic, "wake")
            body = await asyncio.wait_for(held, 5)
            assert time.monotonic() - start < 2
            assert body["last"] == 1
            assert [decode(json.dumps(m)).payload for m in body["messages"]] == ["wake"]
            # A repeated name: the last value wins, as on the Starlette stack.
            body = await poll(session, f"topic=other&topic={topic}&since=0&timeout=0")
            assert body["last"] == 1

    run(main())


def test_ticker_control(raw_server: ServerProcess) -> None:
    topic = fresh_topic()

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            query = {"topic": topic, "rate": "200", "count": "5", "size": "7"}
            async with session.post(raw_server.url("/control/ticker"), params=query) as resp:
                assert resp.status == 200
                assert (await resp.json())["topic"] == topic
            deadline = time.monotonic() + 5
            while True:
                url = raw_server.url(f"/poll?topic={topic}&since=0&timeout=0")
                async with session.get(url) as resp:
                    body = await resp.json()
                if body["last"] == 5:
                    break
                assert time.monotonic() < deadline, "the ticker did not publish"
                await asyncio.sleep(0.02)
            assert [m["p"] for m in body["messages"]] == ["x" * 7] * 5
            async with session.delete(raw_server.url("/control/ticker")) as resp:
                assert resp.status == 200
                status = await resp.json()
                assert (status["sent"], status["running"]) == (5, False)

    run(main())


# --- graceful shutdown ----------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_websockets_with_1001(server_factory: StartServer, sig: int) -> None:
    server = server_factory("--close-timeout", "1")

    async def main() -> None:
        # A peer that never answers Close must not hold the exit past close_timeout.
        sock = silent_peer(server, "/ws?topic=t")
        async with (
            ws_connect(server, "/ws?topic=t") as ws,
            aiohttp.ClientSession() as session,
            session.ws_connect(server.ws_url("/echo")) as aws,
        ):
            start = time.monotonic()
            server.proc.send_signal(sig)
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1001
            msg = await aws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
            rc = await asyncio.to_thread(server.proc.wait, 5)
            elapsed = time.monotonic() - start
        sock.close()
        assert rc == 0
        assert elapsed < 1 + 1.5, f"shutdown took {elapsed:.2f} s with close_timeout 1 s"

    run(main())


def test_signal_ends_sse_streams_and_answers_long_polls(server_factory: StartServer) -> None:
    server = server_factory("--close-timeout", "1")

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            long_poll = session.get(server.url("/poll?topic=s&timeout=30"))
            async with session.get(server.url("/sse?topic=s")) as stream:
                assert await stream.content.readline() == b"retry: 1000\n"
                polling = asyncio.create_task(long_poll.__aenter__())
                deadline = time.monotonic() + 5
                while (await get_stats(server))["subscribers"] < 2:  # both are waiting
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                server.proc.send_signal(signal.SIGTERM)
                rest = await asyncio.wait_for(stream.content.read(), 5)
                assert rest == b"\n"  # the end of the prelude, then the end of the stream
                resp = await asyncio.wait_for(polling, 5)
                assert resp.status == 200
                assert await resp.json() == {"last": 0, "messages": []}
                resp.release()
            rc = await asyncio.to_thread(server.proc.wait, 5)
        assert rc == 0

    run(main())

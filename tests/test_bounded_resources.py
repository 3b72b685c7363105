"""Bounded resources on every stack (issue 17 item 3): what a misbehaving peer
can hold, and what it gets told.

Slow consumer: a subscriber that stops reading is dropped by the hub once it
falls ``queue_limit`` messages behind; when it reads again it must find its
backlog followed by a Close frame with 1013, and the server must then end the
TCP connection (before: raw and aiohttp reset the connection without the
1013, Starlette never closed it).
"""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
from conftest import ServerProcess, StartServer
from test_raw_server import read_until_closed, silent_peer

from pushbench.wire import Opcode

STACKS = ["raw", "aiohttp", "starlette"]
HANG_BOUND_S = 30.0  # a hang guard for the test, not a performance target


def _first_close(data: bytes) -> tuple[int, bytes] | None:
    """The code and reason of the first Close frame in unmasked server frames, or None."""
    pos = 0
    while pos + 2 <= len(data):
        opcode = data[pos] & 0x0F
        n = data[pos + 1] & 0x7F
        pos += 2
        if n == 126:
            n, pos = int.from_bytes(data[pos : pos + 2]), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(data[pos : pos + 8]), pos + 8
        payload = data[pos : pos + n]
        pos += n
        if opcode == Opcode.CLOSE:
            return int.from_bytes(payload[:2]), payload[2:]
    return None


def _dropped(conn: http.client.HTTPConnection) -> int:
    conn.request("GET", "/stats")
    resp = conn.getresponse()
    stats = json.loads(resp.read())
    return int(stats["slow_consumers_dropped"])


def _publish_until_dropped(server: ServerProcess, topic: str) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=HANG_BOUND_S)
    try:
        body = b"x" * 60000
        for sent in range(1, 1001):  # at most 60 MB, far past any socket buffer
            conn.request("POST", f"/publish?topic={topic}", body=body)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            if sent % 8 == 0 and _dropped(conn):
                return
        pytest.fail("the client that stopped reading was never dropped")
    finally:
        conn.close()


@pytest.mark.parametrize("stack", STACKS)
def test_slow_consumer_gets_1013_then_tcp_closed(server_factory: StartServer, stack: str) -> None:
    server = server_factory(
        "--queue-limit",
        "16",
        "--write-buffer-limit",
        "65536",
        "--close-timeout",
        "2",
        stack=stack,
    )
    sock = silent_peer(server, "/ws?topic=slow", rcvbuf=4096)
    try:
        _publish_until_dropped(server, "slow")
        try:
            data, _ = read_until_closed(sock, HANG_BOUND_S)
        except TimeoutError:
            pytest.fail(f"{stack}: the dropped consumer's connection was never closed")
        close = _first_close(data)
        assert close is not None, f"{stack}: TCP ended without a Close frame"
        assert close[0] == 1013, close
    finally:
        sock.close()


def _open_connections(server: ServerProcess) -> int:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=HANG_BOUND_S)
    try:
        conn.request("GET", "/stats")
        return int(json.loads(conn.getresponse().read())["connections_open"])
    finally:
        conn.close()


@pytest.mark.parametrize("stack", STACKS)
def test_slow_consumer_that_never_reads_again_is_closed(
    server_factory: StartServer, stack: str
) -> None:
    """Dropped and never reading again: the server still lets go of the connection
    (Starlette kept it open for good: uvicorn's close waits for a drain)."""
    server = server_factory(
        "--queue-limit", "16", "--write-buffer-limit", "65536", "--close-timeout", "2", stack=stack
    )
    sock = silent_peer(server, "/ws?topic=slow", rcvbuf=4096)
    try:
        _publish_until_dropped(server, "slow")
        deadline = time.monotonic() + HANG_BOUND_S
        while _open_connections(server) > 0:
            assert time.monotonic() < deadline, f"{stack}: dropped consumer never let go"
            time.sleep(0.1)
    finally:
        sock.close()


def _upgrade_head(header_bytes: int) -> bytes:
    return (
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"X-Big: {'a' * header_bytes}\r\n\r\n"
    ).encode()


#: What each of uvicorn's WebSocket implementations answers an upgrade with a 10 KiB
#: header (uvicorn 0.54): websockets-sansio's own 431, which uvicorn never wrote (the
#: connection hung open) until servers/uvicorn_ws.py sent it; wsproto accepts the head.
OVERSIZED_UPGRADE_STATUS = {"websockets-sansio": 431, "websockets": 400, "wsproto": 101}


@pytest.mark.parametrize("ws_impl", sorted(OVERSIZED_UPGRADE_STATUS))
def test_oversized_upgrade_head_is_answered(server_factory: StartServer, ws_impl: str) -> None:
    """Answered, and a refusal also ends the connection (before: websockets-sansio,
    the default, sent nothing and kept the connection open for good)."""
    server = server_factory("--ws-impl", ws_impl, stack="starlette")
    want = OVERSIZED_UPGRADE_STATUS[ws_impl]
    with socket.create_connection((server.host, server.port), timeout=HANG_BOUND_S) as sock:
        sock.sendall(_upgrade_head(10 * 1024))
        try:
            if want == 101:
                data = sock.recv(4096)
            else:
                data, _ = read_until_closed(sock, HANG_BOUND_S)
        except TimeoutError:
            pytest.fail(f"{ws_impl}: an upgrade with a 10 KiB header got no answer or no close")
    assert data.startswith(f"HTTP/1.1 {want} ".encode()), data[:80]

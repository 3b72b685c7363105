"""Request heads on every stack (issue 17 item 3 b, c): a stalled head is dropped after
``--head-timeout-s``, an oversized head is refused, and the 400s a stack answers itself
carry the contract's JSON error, never the input.

Before: aiohttp held an unfinished head for its 3630 s keep-alive, uvicorn forever;
aiohttp's 400 was text quoting the first bytes of the request, uvicorn's plain text.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest
from conftest import ServerProcess, StartServer

STACKS = ["raw", "aiohttp", "starlette"]
HANG_BOUND_S = 10.0  # a hang guard for the test, not a performance target
MARKER = b"ZQXMARKERQXZ"


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or the hang guard times out)."""
    sock.settimeout(HANG_BOUND_S)
    data = b""
    deadline = time.monotonic() + HANG_BOUND_S
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    pytest.fail(f"the server did not close the connection within {HANG_BOUND_S} s")


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=HANG_BOUND_S)


@pytest.mark.parametrize("stack", STACKS)
def test_stalled_head_is_closed(server_factory: StartServer, stack: str) -> None:
    server = server_factory("--head-timeout-s", "2", stack=stack)
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\nX-Slow: ")  # ... and stalls
        assert _read_all(sock) == b""


@pytest.mark.parametrize("stack", STACKS)
def test_stalled_head_after_a_response_is_closed(server_factory: StartServer, stack: str) -> None:
    server = server_factory("--head-timeout-s", "2", stack=stack)
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHo")
        data = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 200")
    assert data.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize("stack", STACKS)
def test_the_head_timeout_counts_from_the_last_response(
    server_factory: StartServer, stack: str
) -> None:
    """A head stalled 1.5 s into a connection's life, after a second request, is given
    its whole 2 s from that request's answer, not cut when the first head's timer
    would have fired (the Starlette stack re-arms one timer lazily)."""
    server = server_factory("--head-timeout-s", "2", stack=stack)

    def health(sock: socket.socket) -> bytes:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\nok"):  # /health's answer is "ok"
            chunk = sock.recv(65536)
            assert chunk, f"closed while answering: {data!r}"
            data += chunk
        return data

    with _connect(server) as sock:
        first = health(sock)
        time.sleep(1.5)
        second = health(sock)
        stalled = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        rest = _read_all(sock)
        held = time.monotonic() - stalled
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
    assert rest == b""
    assert held > 1.2, f"closed {held:.2f} s after the stall: the first head's deadline"


def _response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (the head and its body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-body: {data!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("stack", STACKS)
def test_a_long_poll_held_past_the_head_timeout_is_answered_and_the_connection_kept(
    server_factory: StartServer, stack: str
) -> None:
    """The head timeout runs only while a head is awaited: a long poll held 2.5 s under
    a 1 s head timeout gets its (empty) answer, and the connection serves the next
    request (each stack's one lazily re-armed timer lapses while a request is answered)."""
    server = server_factory("--head-timeout-s", "1", stack=stack)
    with _connect(server) as sock:
        began = time.monotonic()
        sock.sendall(b"GET /poll?topic=quiet&timeout=2.5 HTTP/1.1\r\nHost: a\r\n\r\n")
        answer = _response(sock)
        held = time.monotonic() - began
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        health = _response(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["messages"] == []
    assert held > 2.0, f"answered after {held:.2f} s, before the poll's timeout"
    assert health.startswith(b"HTTP/1.1 200") and health.endswith(b"ok"), health


def _json_error(data: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower()
    return status, json.loads(body)


# One malformed request per way to reach a stack's own parser error.
MALFORMED = {
    "bad-method": b"G\x01T /" + MARKER + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad-header": b"GET /health HTTP/1.1\r\nHost: a\r\n" + MARKER + b"\r\n\r\n",
    "bad-version": b"GET /health HTTP/9." + MARKER + b"\r\nHost: a\r\n\r\n",
    "oversized": b"GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + MARKER * 6000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
@pytest.mark.parametrize("stack", STACKS)
def test_malformed_request_gets_json_without_the_input(
    server_factory: StartServer, stack: str, kind: str
) -> None:
    server = server_factory(stack=stack)
    with _connect(server) as sock:
        # refused before the whole request went out: the answer is still there
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(MALFORMED[kind])
        data = _read_all(sock)
    assert MARKER not in data
    status, body = _json_error(data)
    assert 400 <= status < 500
    assert set(body) == {"error"}

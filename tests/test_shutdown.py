"""A normal stop is clean on every stack: exit 0, nothing but documented lines on stderr.

``pushbench serve`` documents that SIGINT and SIGTERM start a graceful shutdown:
WebSockets get Close 1001, SSE streams end, held long polls are answered, exit
status 0. Each test starts a real server (``--port 0``), opens connections with
plain sockets while it runs (a long poll held in flight, a short poll's
keep-alive connection idle), signals it, behaves as a polite client would (reads
to the end, answers a Close with a Close) and then reads the server's stderr:
a cancelled handler that a framework logs as a traceback, or a response cut by a
shutdown timeout, fails here. Every stack in the registry that
``pushbench serve`` runs and every transport it serves is covered, so a new row
is checked without editing this file (a new protocol needs an opener below).

The hub's part (long polls released at shutdown, a cancellation never lost while
messages flow) is checked directly at the end.
"""

from __future__ import annotations

import asyncio
import json
import select
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import READY, ServerProcess, start_server

from pushbench import registry
from pushbench.hub import Hub

TOPIC = "shutdown"
HOLD_S = 30  # a long poll's timeout: far beyond the test, so it is held at the signal
OPEN_TIMEOUT = 5.0  # s for a connection to be answered / be seen by the server
SHUTDOWN_BOUND = 5.0  # s from the signal until exit and every connection ended
# Every stderr line a normal start and stop may print. None today: the ready line
# goes to stdout, and the stacks log nothing on a graceful stop (documented info
# lines would be added here).
ALLOWED_STDERR = (READY,)
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key: the server never checks it

pytestmark = pytest.mark.timeout(60)


def served_stacks() -> list[registry.Stack]:
    """The stacks ``pushbench serve`` runs: registry rows with a module."""
    return [s for s in registry.stacks() if s.module is not None]


# --- connections ------------------------------------------------------------------------


@dataclass
class Conn:
    """One client connection: what was read at open, and everything after the signal."""

    protocol: str
    sock: socket.socket
    head: bytes = b""  # response head read while opening (empty: a held long poll)
    rest: bytes = b""  # bytes that followed, up to EOF
    closed: bool = False  # the server closed the connection (EOF)
    replied_close: bool = field(default=False, repr=False)


def _request(port: int, target: str, headers: str = "") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=OPEN_TIMEOUT)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    return sock


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the end of a response head → (head, bytes already read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def _header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.decode("latin-1").partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _open_ws(port: int, path: str) -> Conn:
    sock = _request(
        port,
        f"{path}?topic={TOPIC}" if path == "/ws" else path,
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n",
    )
    head, rest = _read_head(sock)
    assert _status(head) == 101, head
    return Conn("ws", sock, head, rest)


def _open_sse(port: int, path: str) -> Conn:
    sock = _request(port, f"{path}?topic={TOPIC}", "Accept: text/event-stream\r\n")
    head, rest = _read_head(sock)
    assert _status(head) == 200, head
    return Conn("sse", sock, head, rest)


def _open_longpoll(port: int, path: str) -> Conn:
    # since=0 on an empty topic: nothing to answer with, so the server holds it
    return Conn("longpoll", _request(port, f"{path}?topic={TOPIC}&since=0&timeout={HOLD_S}"))


def _open_shortpoll(port: int, path: str) -> Conn:
    """A short poll answered in full; its keep-alive connection then sits idle."""
    sock = _request(port, f"{path}?topic={TOPIC}&timeout=0")
    head, rest = _read_head(sock)
    assert _status(head) == 200, head
    length = int(_header(head, "content-length") or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "short poll answer cut"
        rest += chunk
    assert rest == json.dumps({"last": 0, "messages": []}, separators=(",", ":")).encode()
    return Conn("shortpoll", sock)


@dataclass(frozen=True)
class Opener:
    """How to open one connection of a protocol, and whether it holds a hub subscription
    while open (so the test can wait until the server has really taken it in)."""

    open: Callable[[int, str], Conn]
    subscribes: bool


OPENERS: dict[str, Opener] = {
    "ws": Opener(_open_ws, subscribes=True),
    "echo": Opener(_open_ws, subscribes=False),
    "sse": Opener(_open_sse, subscribes=True),
    "longpoll": Opener(_open_longpoll, subscribes=True),  # the hub's wait subscription
    "shortpoll": Opener(_open_shortpoll, subscribes=False),
}


def _opener(protocol: str) -> Opener:
    if protocol not in OPENERS:
        pytest.fail(f"no opener for protocol {protocol!r}: add one to OPENERS", pytrace=False)
    return OPENERS[protocol]


def _stats(server: ServerProcess) -> dict[str, object]:
    with urllib.request.urlopen(server.url("/stats"), timeout=OPEN_TIMEOUT) as resp:
        stats: dict[str, object] = json.loads(resp.read())
    return stats


def _wait_subscribers(server: ServerProcess, count: int) -> None:
    """Until the hub holds ``count`` subscribers: every stream and the long poll are in."""
    deadline = time.monotonic() + OPEN_TIMEOUT
    while (seen := _stats(server)["subscribers"]) != count:
        assert time.monotonic() < deadline, f"{seen} subscribers, expected {count}"
        time.sleep(0.02)


def _ws_frames(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Complete server frames (unmasked) in ``data`` → (opcode, payload)."""
    i = 0
    while i + 2 <= len(data):
        opcode, n = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if n >= 126:
            size = 2 if n == 126 else 8
            if i + size > len(data):
                return
            n, i = int.from_bytes(data[i : i + size], "big"), i + size
        if i + n > len(data):
            return
        yield opcode, data[i : i + n]
        i += n


def _close_frame(payload: bytes) -> bytes:
    """A masked client Close echoing the server's code (the zero mask keeps it plain)."""
    return bytes([0x88, 0x80 | len(payload[:2])]) + b"\0\0\0\0" + payload[:2]


def _drain(server: ServerProcess, conns: list[Conn], bound: float) -> float:
    """Read every connection to EOF as a polite client (a WebSocket answers the server's
    Close), while the server shuts down → seconds until it exited (inf: not in time)."""
    start = time.monotonic()
    exited = float("inf")
    open_ = {c.sock: c for c in conns}
    while time.monotonic() - start < bound:
        if exited == float("inf") and server.proc.poll() is not None:
            exited = time.monotonic() - start
        if not open_ and exited != float("inf"):
            break
        ready = select.select(list(open_), [], [], 0.05)[0] if open_ else []
        if not open_:
            time.sleep(0.05)
        for sock in ready:
            conn = open_[sock]
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:  # the server closed (or half-closed): close our side too
                conn.closed = True
                del open_[sock]
                sock.close()
                continue
            conn.rest += chunk
            if conn.protocol == "ws" and not conn.replied_close:
                for opcode, payload in _ws_frames(conn.rest):
                    if opcode == 0x8:
                        sock.sendall(_close_frame(payload))
                        conn.replied_close = True
    return exited


def _check_ended(conn: Conn) -> None:
    """Each connection ended the documented way, not cut off."""
    assert conn.closed, f"{conn.protocol}: the server never closed the connection"
    if conn.protocol == "ws":
        closes = [payload for opcode, payload in _ws_frames(conn.rest) if opcode == 0x8]
        assert closes, f"ws: no Close frame before EOF: {conn.rest!r}"
        assert int.from_bytes(closes[0][:2], "big") == 1001, closes[0]
    elif conn.protocol == "sse":
        if (_header(conn.head, "transfer-encoding") or "").lower() == "chunked":
            assert conn.rest.endswith(b"0\r\n\r\n"), f"sse: stream cut: {conn.rest[-80:]!r}"
    elif conn.protocol == "longpoll":
        head, _, body = conn.rest.partition(b"\r\n\r\n")
        assert head and _status(head) == 200, f"longpoll: {conn.rest!r}"
        length = int(_header(head, "content-length") or -1)
        assert json.loads(body[:length]) == {"last": 0, "messages": []}, body
    elif conn.protocol == "shortpoll":
        assert conn.rest == b"", f"shortpoll: unexpected bytes {conn.rest!r}"


def _check_stderr(server: ServerProcess) -> None:
    text = server.stderr()
    assert "Traceback" not in text, f"{server.stack}: traceback on stop:\n{text}"
    stray = [
        line
        for line in text.splitlines()
        if line and not any(p.match(line) for p in ALLOWED_STDERR)
    ]
    assert not [line for line in stray if "Error" in line or "ERROR" in line], text
    assert not stray, f"{server.stack}: unexpected stderr on a normal stop:\n{text}"


def _stop_cleanly(
    tmp_path: Path, stack: str, endpoints: list[tuple[str, str]], sig: int, *args: str
) -> list[Conn]:
    """Serve ``stack``, open one connection per (protocol, path), signal, check → them."""
    server = start_server(tmp_path / f"{stack}.stderr", *args, stack=stack)
    conns: list[Conn] = []
    try:
        for protocol, path in endpoints:
            conns.append(_opener(protocol).open(server.port, path))
        _wait_subscribers(server, sum(_opener(p).subscribes for p, _ in endpoints))
        server.proc.send_signal(sig)
        exited = _drain(server, conns, SHUTDOWN_BOUND)
    finally:
        status = server.stop()  # by pid; SIGKILL after its timeout, a no-op once exited
        for conn in conns:
            conn.sock.close()
    assert status == 0, f"{stack} exited {status}:\n{server.stderr()}"
    assert exited <= SHUTDOWN_BOUND, f"{stack} took over {SHUTDOWN_BOUND} s to stop"
    _check_stderr(server)
    for conn in conns:
        _check_ended(conn)
    return conns


# --- the server, stopped by a signal ------------------------------------------------------


@pytest.mark.parametrize(
    ("stack", "transport"),
    [
        pytest.param(s.name, t, id=f"{s.name}-{t.name}")
        for s in served_stacks()
        for t in registry.transports()
        if t.protocol in s.serves
    ],
)
def test_sigterm_with_a_connection_open_is_clean(
    tmp_path: Path, stack: str, transport: registry.Transport
) -> None:
    """One connection of the transport open (a long poll held): SIGTERM → exit 0,
    the connection ended properly, nothing but documented lines on stderr."""
    _stop_cleanly(tmp_path, stack, [(transport.protocol, transport.path)], signal.SIGTERM)


def _every_endpoint(stack: registry.Stack) -> list[tuple[str, str]]:
    served = {t.protocol: t.path for t in registry.transports() if t.protocol in stack.serves}
    if "echo" in stack.serves:
        served["echo"] = "/echo"
    return list(served.items())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("stack", served_stacks(), ids=lambda s: s.name)
def test_signal_with_every_transport_open_is_clean(
    tmp_path: Path, stack: registry.Stack, sig: int
) -> None:
    """A connection of every protocol at once (WebSocket and echo get Close 1001, SSE
    ends, the long poll is answered, the idle keep-alive is closed), both signals."""
    _stop_cleanly(tmp_path, stack.name, _every_endpoint(stack), sig)


@pytest.mark.parametrize("stack", served_stacks(), ids=lambda s: s.name)
def test_sigterm_while_messages_flow_ends_streams(tmp_path: Path, stack: registry.Stack) -> None:
    """With the ticker publishing, SSE streams and WebSockets still end properly and in
    time: a stop's cancellation must not be lost to a message arriving at that moment."""
    endpoints = [("sse", "/sse")] * 6 + [("ws", "/ws")] * 2
    ticker = f"topic={TOPIC},rate=1000,size=64"
    _stop_cleanly(tmp_path, stack.name, endpoints, signal.SIGTERM, "--ticker", ticker)


# --- the hub's part -----------------------------------------------------------------------


def test_end_waits_answers_held_long_polls_and_later_ones_at_once() -> None:
    """Hub.end_waits: a held wait returns now (with what is there), a later one does not
    wait at all; streaming subscriptions are untouched."""

    async def main() -> None:
        hub = Hub()
        stream = hub.subscribe("t")
        held = asyncio.create_task(hub.wait("t", 0, HOLD_S))
        await asyncio.sleep(0.01)
        assert not held.done()
        hub.end_waits()
        assert await asyncio.wait_for(held, 1.0) == []
        start = time.monotonic()
        assert await hub.wait("t", 0, HOLD_S) == []
        assert time.monotonic() - start < 0.5
        await hub.publish("t", "x")
        assert [i.seq for i in await hub.wait("t", 0, HOLD_S)] == [1]  # what is there
        assert [i.seq for i in await stream.next_batch(1.0)] == [1]
        assert hub.stats.subscribers == 1  # the waits' subscriptions are gone

    asyncio.run(main())


@pytest.mark.parametrize("timeout", [None, 10.0], ids=["no-timeout", "timeout"])
def test_next_batch_keeps_a_cancellation_that_meets_a_message(timeout: float | None) -> None:
    """A cancel arriving in the same loop turn as a message still cancels the waiter
    (Python 3.11's wait_for returned the message and dropped the cancel: a stopping
    server's SSE stream or long poll then ran on until the framework cut it)."""

    async def main() -> None:
        hub = Hub()
        sub = hub.subscribe("t")
        task = asyncio.create_task(sub.next_batch(timeout))
        await asyncio.sleep(0.01)
        await hub.publish("t", "x")  # sets the event: the waiter is about to wake
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())

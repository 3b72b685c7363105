"""The abuse probes as data: :data:`PROBES`, one :class:`Probe` row each (name, what it
does, its size from the :class:`~pushbench.scenario.abuse.AbuseSpec`, its coroutine).

Every probe talks to one server (:class:`Target`) over raw loopback sockets and
returns an :class:`~pushbench.schema.abuse.Outcome`; what is measured around it (RSS,
``/health`` latency, log bytes) is :mod:`.run`'s. Nothing here is stack-specific: every
stack gets the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pushbench.auth import make_control_token, make_token
from pushbench.scenario.abuse import AbuseSpec
from pushbench.schema.abuse import Outcome
from pushbench.wire.handshake import client_request, find_head_end

from ..memory import socket_memory

__all__ = ["PROBES", "Probe", "Target", "first_close", "http_status", "upgrade"]

FORGED = "control.4102444800." + "0" * 64  # well-formed, never valid (expiry in 2100)


@dataclass(frozen=True)
class Target:
    """The server under test: address, pid (its RSS), and the auth secret it checks."""

    host: str
    port: int
    pid: int
    secret: bytes

    def control_token(self) -> str:
        return make_control_token(self.secret, ttl_s=3600)

    def topic_token(self, topic: str) -> str:
        return make_token(self.secret, topic, ttl_s=3600)


async def _read_head(reader: asyncio.StreamReader, timeout_s: float) -> tuple[bytes, bytes]:
    """(the response head or b"" when the server closed first, the bytes after it: the
    first frames), bounded by ``timeout_s``."""
    buf = b""
    while (end := find_head_end(buf)) < 0:
        chunk = await asyncio.wait_for(reader.read(65536), timeout_s)
        if not chunk:
            return b"", b""
        buf += chunk
    return buf[:end], buf[end:]


def http_status(head: bytes) -> int | None:
    """The status code of a response head, None for no answer."""
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@dataclass(frozen=True)
class Upgraded:
    """An upgrade's answer (``status`` None: none), its streams and the bytes already read
    past the head (``rest``: the first frames)."""

    status: int | None
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    rest: bytes = b""


async def upgrade(t: Target, path: str, timeout_s: float) -> Upgraded:
    """A WebSocket upgrade to ``path`` on a fresh connection."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(t.host, t.port), timeout_s)
    request, _ = client_request(f"{t.host}:{t.port}", path)
    writer.write(request)
    try:
        head, rest = await _read_head(reader, timeout_s)
    except (TimeoutError, OSError):
        return Upgraded(None, reader, writer)
    return Upgraded(http_status(head), reader, writer, rest)


def _close(*writers: asyncio.StreamWriter) -> None:
    for w in writers:
        w.close()


def first_close(data: bytes) -> int | None:
    """The code of the first Close frame in unmasked server frames (1005: empty), or None."""
    pos = 0
    while pos + 2 <= len(data):
        opcode, n = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if n == 126:
            n, pos = int.from_bytes(data[pos : pos + 2]), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(data[pos : pos + 8]), pos + 8
        if opcode == 0x8:
            return int.from_bytes(data[pos : pos + 2]) if n >= 2 else 1005
        pos += n
    return None


async def _until_eof(reader: asyncio.StreamReader, timeout_s: float) -> tuple[bytes, bool]:
    """Everything until the server ends TCP → (bytes, whether it ended within the bound)."""
    data, deadline = b"", time.monotonic() + timeout_s
    with contextlib.suppress(ConnectionError):
        while (left := deadline - time.monotonic()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                return data, False
            if not chunk:
                return data, True
            data += chunk
    return data, True


# --- the probes ------------------------------------------------------------------


async def slowloris(t: Target, s: AbuseSpec) -> Outcome:
    """``slowloris_conns`` connections each send a request head one byte a second for
    ``slowloris_s``: when does the server drop each one?"""
    start = time.monotonic()

    async def one() -> float | None:
        try:
            reader, writer = await asyncio.open_connection(t.host, t.port)
        except OSError:
            return 0.0
        try:
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while time.monotonic() - start < s.slowloris_s:
                try:
                    if not await asyncio.wait_for(reader.read(4096), 1.0):
                        return time.monotonic() - start
                except TimeoutError:
                    writer.write(b"a")
                except OSError:
                    return time.monotonic() - start
            return None
        finally:
            _close(writer)

    drops = await asyncio.gather(*(one() for _ in range(s.slowloris_conns)))
    dropped = [d for d in drops if d is not None]
    held = len(drops) - len(dropped)
    return Outcome(
        drop_s=statistics.median(dropped) if dropped else None,
        held=held,
        answer=f"{len(dropped)} dropped, {held} held at {s.slowloris_s:g} s",
    )


async def oversized_header(t: Target, s: AbuseSpec) -> Outcome:
    """A GET /health and a WebSocket upgrade with one header of ``oversized_header_bytes``:
    what does the server answer, and does it end the connection?"""
    big = f"X-Big: {'a' * s.oversized_header_bytes}\r\n"
    heads = {
        "get": f"GET /health HTTP/1.1\r\nHost: x\r\n{big}\r\n",
        "upgrade": "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade"
        "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {t.control_token()}\r\n{big}\r\n",
    }
    answers, held = [], 0
    for case, head in heads.items():
        reader, writer = await asyncio.open_connection(t.host, t.port)
        try:
            with contextlib.suppress(OSError):
                writer.write(head.encode())
                await writer.drain()
            data, ended = await _until_eof(reader, s.timeout_s)
            held += not ended
            status = http_status(data[: max(find_head_end(data), 0)] or data[:64])
            answers.append(f"{case}={status or 'none'}{'' if ended else ' (kept open)'}")
        finally:
            _close(writer)
    return Outcome(held=held, answer=" ".join(answers))


async def upgrade_flood(t: Target, s: AbuseSpec) -> Outcome:
    """``upgrade_flood`` WebSocket upgrades to /ws at once, held until all are answered."""
    path = f"/ws?topic=flood&token={t.topic_token('flood')}"
    got = await asyncio.gather(
        *(upgrade(t, path, s.timeout_s) for _ in range(s.upgrade_flood)), return_exceptions=True
    )
    counts: dict[str, int] = {}
    for g in got:
        key = "error" if isinstance(g, BaseException) else str(g.status or "none")
        counts[key] = counts.get(key, 0) + 1
        if not isinstance(g, BaseException):
            _close(g.writer)
    return Outcome(answer=" ".join(f"{k}×{v}" for k, v in sorted(counts.items())))


async def slow_consumer(t: Target, s: AbuseSpec) -> Outcome:
    """A subscriber that never reads while the ticker publishes into its topic: once the
    server drops it (``/stats``), it reads what is left: the Close code, then TCP's end."""
    path = f"/ws?topic=slow&token={t.topic_token('slow')}"
    up = await upgrade(t, path, s.timeout_s)
    writer = up.writer
    if up.status != 101:
        _close(writer)
        return Outcome(answer=f"upgrade answered {up.status}")
    query = f"topic=slow&rate={s.slow_consumer_rate:g}&size={s.slow_consumer_payload}"
    auth = {"Authorization": f"Bearer {t.control_token()}"}
    try:
        await _request(t, "POST", f"/control/ticker?{query}", auth, s.timeout_s)
        deadline = time.monotonic() + s.slow_consumer_s
        while await _stat(t, "slow_consumers_dropped", s.timeout_s) < 1:
            if time.monotonic() > deadline:
                return Outcome(answer=f"not dropped within {s.slow_consumer_s:g} s", held=1)
            await asyncio.sleep(0.05)
        dropped_at = time.monotonic()
        data, ended = await _until_eof(up.reader, s.slow_consumer_s)
        return Outcome(
            close_code=first_close(up.rest + data),
            tcp_close_s=time.monotonic() - dropped_at if ended else None,
            held=0 if ended else 1,
            answer="dropped",
        )
    finally:
        _close(writer)
        with contextlib.suppress(OSError, TimeoutError):
            await _request(t, "DELETE", "/control/ticker", auth, s.timeout_s)


async def token_forgery(t: Target, s: AbuseSpec) -> Outcome:
    """/control/ticker and /echo with no token, a forged one and a subscriber's."""
    tokens = {"none": None, "forged": FORGED, "subscriber": t.topic_token("x")}
    answers = []
    for case, token in tokens.items():
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        control = await _request(t, "POST", "/control/ticker?topic=x&rate=1", auth, s.timeout_s)
        suffix = f"?token={token}" if token else ""
        echo = await upgrade(t, f"/echo{suffix}", s.timeout_s)
        _close(echo.writer)
        answers += [f"control/{case}={control}", f"echo/{case}={echo.status}"]
    return Outcome(answer=" ".join(answers))


async def idle(t: Target, s: AbuseSpec) -> Outcome:
    """``idle_conns`` WebSockets open and silent: RSS growth and kernel socket memory per
    connection (the caller's RSS reading before the probe is the baseline)."""
    from pushbench.procs import sample

    before = sample(t.pid)
    path = f"/ws?topic=idle&token={t.topic_token('idle')}"
    writers: list[asyncio.StreamWriter] = []
    opened = 0
    for _ in range(0, s.idle_conns, 100):  # in batches: the accept queue is finite
        batch = min(100, s.idle_conns - len(writers))
        got = await asyncio.gather(
            *(upgrade(t, path, s.timeout_s) for _ in range(batch)), return_exceptions=True
        )
        for g in got:
            if not isinstance(g, BaseException):
                writers.append(g.writer)
                opened += g.status == 101
    try:
        await asyncio.sleep(0.5)  # the server finishes subscribing them
        after = sample(t.pid)
        kernel = socket_memory(t.port)
        growth = None if before is None or after is None else after.rss_bytes - before.rss_bytes
        return Outcome(
            held=opened,
            answer=f"{opened} of {s.idle_conns} open",
            bytes_per_conn=growth / opened if growth is not None and opened else None,
            kernel_bytes_per_conn=kernel.bytes / opened if kernel and opened else None,
        )
    finally:
        _close(*writers)


async def _request(
    t: Target, method: str, path: str, headers: dict[str, str], timeout_s: float
) -> int | None:
    """One HTTP/1.1 request on a fresh connection → its status (None: no answer)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(t.host, t.port), timeout_s)
    try:
        lines = [f"{method} {path} HTTP/1.1", "Host: x", "Content-Length: 0", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return http_status((await _read_head(reader, timeout_s))[0])
    finally:
        _close(writer)


async def _stat(t: Target, key: str, timeout_s: float) -> int:
    """One counter of ``GET /stats``."""
    import json

    reader, writer = await asyncio.wait_for(asyncio.open_connection(t.host, t.port), timeout_s)
    try:
        writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, _ = await _until_eof(reader, timeout_s)
        body = data[find_head_end(data) :]
        return int(json.loads(body)[key])
    finally:
        _close(writer)


@dataclass(frozen=True)
class Probe:
    """One abuse probe: its name (the record's ``probe``), what it does, its size."""

    name: str
    run: Callable[[Target, AbuseSpec], Awaitable[Outcome]]
    size: Callable[[AbuseSpec], int]


PROBES: tuple[Probe, ...] = (
    Probe("slowloris", slowloris, lambda s: s.slowloris_conns),
    Probe("oversized-header", oversized_header, lambda s: s.oversized_header_bytes),
    Probe("upgrade-flood", upgrade_flood, lambda s: s.upgrade_flood),
    Probe("slow-consumer", slow_consumer, lambda s: 1),
    Probe("token-forgery", token_forgery, lambda s: 6),
    Probe("idle", idle, lambda s: s.idle_conns),
)

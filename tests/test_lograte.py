"""Log rate limits (issue 17 item 3): a client cannot flood the server's log."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from conftest import start_server

from pushbench.lograte import SUMMARY_LOGGER, LogRateLimit

FLOOD = 1000
BURST = 5
HANG_BOUND_S = 30.0  # a hang guard, not a performance target


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, peer: str | None = None) -> logging.LogRecord:
    record = logging.LogRecord("lib", logging.ERROR, __file__, 1, msg, args, None)
    if peer is not None:
        record.peer = peer
    return record


def test_burst_then_suppressed_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    limit = LogRateLimit(3, 10.0, clock=clock)
    passed = [limit.filter(_record("Error from %s", f"10.0.0.{i}")) for i in range(100)]
    assert passed == [True] * 3 + [False] * 97  # same template, different arguments
    with caplog.at_level(logging.WARNING, logger=SUMMARY_LOGGER):
        clock.now = 10.0
        assert limit.filter(_record("Error from %s", "x"))  # a new window
    summaries = [r.getMessage() for r in caplog.records if r.name == SUMMARY_LOGGER]
    assert len(summaries) == 1 and summaries[0].startswith("suppressed 97 similar records")


def test_keys_are_logger_template_and_peer() -> None:
    limit = LogRateLimit(1, 10.0, clock=_Clock())
    assert limit.filter(_record("a"))
    assert not limit.filter(_record("a"))
    assert limit.filter(_record("b"))
    assert limit.filter(_record("a", peer="p1"))
    assert limit.filter(_record("a", peer="p2"))
    assert not limit.filter(_record("a", peer="p2"))


def test_distinct_templates_past_max_keys_share_one_limit() -> None:
    limit = LogRateLimit(2, 10.0, max_keys=4, clock=_Clock())
    passed = sum(limit.filter(_record(f"message {i}")) for i in range(100))
    assert passed == 4 + 2  # 4 keys with 1 record each, then the shared overflow key


def test_flush_writes_what_is_pending(caplog: pytest.LogCaptureFixture) -> None:
    limit = LogRateLimit(1, 600.0, clock=_Clock())
    for _ in range(5):
        limit.filter(_record("x"))
    with caplog.at_level(logging.WARNING, logger=SUMMARY_LOGGER):
        limit.sweep(flush=True)
    assert [r.getMessage()[:30] for r in caplog.records] == ["suppressed 4 similar records i"]


def _malformed_request(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=HANG_BOUND_S) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
        while sock.recv(4096):
            pass


@pytest.mark.parametrize("stack", ["aiohttp", "starlette"])
def test_malformed_requests_do_not_flood_the_log(tmp_path: Path, stack: str) -> None:
    """1,000 malformed requests never flood the log. uvicorn logs a warning line per bad
    request: at most BURST of them, then one summary of the rest. aiohttp logged an 11-line
    traceback quoting the input per bad request; our handler now answers JSON and logs a
    peer's bad request at debug level only, so nothing reaches the log and no summary is
    needed (the bound still holds). (Not server_factory: its teardown is strict about
    tracebacks.)"""
    log = tmp_path / "server.stderr"
    server = start_server(log, "--log-burst", str(BURST), "--log-interval", "600", stack=stack)
    try:
        for _ in range(FLOOD):
            _malformed_request(server.host, server.port)
    finally:
        assert server.stop() == 0
    lines = server.stderr().splitlines()
    assert len(lines) <= BURST * 12 + 1, "\n".join(lines[-20:])
    summaries = [line for line in lines if line.startswith("suppressed ")]
    if stack == "aiohttp":
        assert summaries == [] and not any("Traceback" in line for line in lines), lines[-5:]
        return
    assert len(summaries) == 1, lines[-5:]
    assert int(summaries[0].split()[1]) == FLOOD - BURST


BAD_FRAMES = 200
#: A bound on the log 200 invalid-UTF-8 frames may cause: BURST records of at most a
#: traceback's length each, and one summary line. Without the limit uvicorn's
#: websockets-sansio writes a ~20-line traceback per frame (~4,000 lines here).
BAD_UTF8_MAX_LINES = BURST * 40 + 1


def _invalid_utf8_frame(host: str, port: int) -> None:
    """One connection to /echo: the upgrade, a masked text frame holding 0xFF (never
    valid UTF-8), then read until the server closes (it answers 1007)."""
    from pushbench.wire.handshake import client_request

    with socket.create_connection((host, port), timeout=HANG_BOUND_S) as sock:
        request, _ = client_request(f"{host}:{port}", "/echo")
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        payload = b"\xff\xfe"
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass


def test_invalid_utf8_flood_does_not_write_a_traceback_per_frame(tmp_path: Path) -> None:
    """Starlette's /echo (uvicorn, websockets-sansio) logged a full traceback per
    invalid-UTF-8 text frame (issue 17): 200 such frames now leave at most
    BAD_UTF8_MAX_LINES lines, at most BURST tracebacks, and one summary of the rest."""
    log = tmp_path / "server.stderr"
    server = start_server(
        log, "--log-burst", str(BURST), "--log-interval", "600", stack="starlette"
    )
    try:
        for _ in range(BAD_FRAMES):
            _invalid_utf8_frame(server.host, server.port)
    finally:
        assert server.stop() == 0
    lines = server.stderr().splitlines()
    assert len(lines) <= BAD_UTF8_MAX_LINES, "\n".join(lines[-20:])
    assert sum("Traceback" in line for line in lines) <= BURST

"""Every stack fuzzed from outside with malformed HTTP/1.1 requests and WebSocket handshakes
(generators in ``tests/fuzz_http.py``).

Contract: every answer is a 4xx or a close, a valid handshake gets a clean 101, never a 5xx
and never silence (a hang); the server keeps serving (/health after the batch), logs no
traceback of ours, and its RSS after the fuzz connections close is within
:data:`RSS_BOUND` of before. Where an upstream library answers otherwise, the deviation is
listed in :data:`DEVIATIONS` and :func:`test_documented_deviations_hold` asserts each one
still happens, so the list stays exact (remove an entry when upstream or our layer fixes it).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ServerProcess, start_server
from fuzz_http import HOST, UPGRADE, VALID_KEY, Answer, Case, cases, exchange
from hypothesis import HealthCheck, Phase, given, settings

STACKS = ("raw", "aiohttp", "starlette")
RSS_BOUND = 20 * 1024 * 1024  # bytes above the warmed-up RSS after the fuzz batch
EXAMPLES = 50  # per stack; no shrinking phase, so the whole file stays well under a minute

# (stack, case kind) → the upstream library's outcome instead of 4xx/close.
DEVIATIONS: dict[tuple[str, str], str] = {
    # aiohttp reads the first of two Sec-WebSocket-Key headers and upgrades.
    ("aiohttp", "dup/ws-key"): "101",
    # uvicorn (httptools): a second Host header is accepted (RFC 9112 3.2 says 400).
    ("starlette", "dup/host"): "2xx",
    # uvicorn (httptools) takes "GET /health" without a version as HTTP/0.9 and answers 200.
    ("starlette", "request-line/no-version"): "2xx",
}

# One fixed request per deviation kind, and per bug the fuzzer found in our code.
PINNED: dict[str, Case] = {
    "dup/ws-key": Case(
        "dup/ws-key",
        b"GET /echo HTTP/1.1\r\n"
        + b"\r\n".join([*UPGRADE, b"Sec-WebSocket-Key: " + VALID_KEY.encode()])
        + b"\r\nSec-WebSocket-Key: QUFBQUFBQUFBQUFBQUFBQQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ),
    "dup/host": Case("dup/host", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    "oversized/value": Case(
        "oversized/value",
        b"GET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    ),
    "oversized/count": Case(
        "oversized/count",
        b"GET /health HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(3000))
        + b"\r\n",
    ),
    "request-line/no-version": Case("request-line/no-version", b"GET /health\r\n\r\n"),
    # found in raw (answered 200 before the fix): a version that is not HTTP/1.x
    "request-line/bad-version": Case(
        "request-line/bad-version", b"GET /health HTTP/x\r\n" + HOST + b"\r\n\r\n"
    ),
    # found in raw (answered 200 before the fix): a header name that is not a token
    "non-utf8/name": Case("non-utf8/name", b"GET /health HTTP/1.1\r\nX-\xe9\xff: v\r\n\r\n"),
    # found in aiohttp (500 before our guard): aiohttp b64decodes a non-ASCII key unguarded
    "handshake/key-not-base64/v13": Case(
        "handshake/key-not-base64/v13",
        b"GET /echo HTTP/1.1\r\n"
        + b"\r\n".join([*UPGRADE, b"Sec-WebSocket-Key: !!\xe9\xe9??", b"Sec-WebSocket-Version: 13"])
        + b"\r\n\r\n",
    ),
}


def allowed(stack: str, case: Case) -> set[str]:
    """The outcomes the contract (plus a documented deviation) admits for ``case``."""
    ok = {"101"} if case.valid_upgrade else {"4xx", "close"}
    if case.may_succeed:
        ok.add("2xx")
    deviation = DEVIATIONS.get((stack, case.kind))
    if deviation is not None:
        ok.add(deviation)
    return ok


def rss(server: ServerProcess) -> int:
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match[1]) * 1024


def health(server: ServerProcess) -> int | None:
    case = Case("health", b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    return exchange(server.host, server.port, case, timeout=5.0).status


def our_tracebacks(stack: str, log: str) -> list[str]:
    """Final exception lines of logged tracebacks, minus aiohttp's own per-bad-request
    ``Error handling request`` traceback (an upstream log-flooding property, item 3)."""
    finals = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = [ln for ln in block.splitlines() if ln and not ln.startswith(" ")]
        final = lines[0] if lines else block
        if stack == "aiohttp" and final.startswith("aiohttp.http_exceptions."):
            continue
        finals.append(final)
    return finals


@pytest.fixture(scope="module", params=STACKS)
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    stack: str = request.param
    server = start_server(tmp_path_factory.mktemp(stack) / "server.stderr", stack=stack)
    try:
        yield server
    finally:
        rc = server.stop()
    assert rc == 0, server.stderr()
    assert our_tracebacks(stack, server.stderr()) == [], server.stderr()


def test_fuzzed_requests_get_4xx_close_or_101(fuzz_server: ServerProcess) -> None:
    """The fuzz batch: allowed outcomes only, still serving, RSS back within the bound."""
    stack = fuzz_server.stack
    for _ in range(20):  # warm up allocator and caches before the baseline
        assert health(fuzz_server) == 200
    before = rss(fuzz_server)
    seen: list[tuple[str, str]] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def check(case: Case) -> None:
        answer: Answer = exchange(fuzz_server.host, fuzz_server.port, case)
        seen.append((case.kind, answer.outcome()))
        assert answer.outcome() in allowed(stack, case), (stack, case.kind, case.data[:200])

    check()
    assert health(fuzz_server) == 200  # still serving after the batch
    time.sleep(0.5)  # let the server finish closing the fuzz connections
    assert rss(fuzz_server) - before <= RSS_BOUND
    assert len({kind.split("/")[0] for kind, _ in seen}) >= 5  # the batch covered most kinds


@pytest.mark.parametrize("name", sorted(PINNED))
def test_documented_deviations_hold(fuzz_server: ServerProcess, name: str) -> None:
    """Each pinned case gets exactly its contract outcome, or exactly its documented
    deviation: a deviation that no longer happens must leave :data:`DEVIATIONS`."""
    case = PINNED[name]
    outcome = exchange(fuzz_server.host, fuzz_server.port, case).outcome()
    deviation = DEVIATIONS.get((fuzz_server.stack, case.kind))
    if deviation is not None:
        assert outcome == deviation
    else:
        assert outcome in allowed(fuzz_server.stack, case)
    with socket.create_connection((fuzz_server.host, fuzz_server.port), timeout=5):
        pass
    assert health(fuzz_server) == 200

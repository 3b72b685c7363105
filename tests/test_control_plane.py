"""The closed control plane (issue 17 item 2), below the HTTP layer.

Control-scope tokens against subscriber tokens, the service's checks (shared by every
stack: the per-stack answers are in ``test_equivalence``), the ticker rate cap, and the
refusal to bind a non-loopback address without auth. No test binds an external address:
the CLI test uses a TEST-NET address (RFC 5737) that no host owns, and is refused before
any socket is made.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from conftest import ROOT

from pushbench.auth import (
    WRONG_SCOPE,
    bearer,
    check_control_token,
    check_token,
    make_control_token,
    make_token,
)
from pushbench.hub import Hub
from pushbench.service import (
    ConfigError,
    HttpError,
    PushService,
    ServerConfig,
    bind_refusal,
    is_loopback,
    parse_ticker,
)

SECRET = b"control-plane-secret"
NOW = 1_700_000_000.0


def test_control_and_subscriber_tokens_are_distinct_scopes() -> None:
    control = make_control_token(SECRET, now=NOW)
    sub = make_token(SECRET, "control", now=NOW)  # a topic named like the scope
    assert check_control_token(SECRET, control, now=NOW) == ""
    assert check_control_token(SECRET, sub, now=NOW) == WRONG_SCOPE
    assert check_token(SECRET, "control", control, now=NOW) == WRONG_SCOPE
    assert check_token(SECRET, "control", sub, now=NOW) == ""
    # A subscriber token given the control prefix does not pass as one.
    assert check_control_token(SECRET, "control." + sub, now=NOW) == "forged"


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (None, "missing"),
        ("", "missing"),
        ("control.", "malformed"),
        ("control.12.abc", "malformed"),
        (make_control_token(b"other", now=NOW), "forged"),
        (make_control_token(SECRET, ttl_s=-1, now=NOW), "expired"),
    ],
)
def test_bad_control_tokens_say_why(token: str | None, why: str) -> None:
    assert check_control_token(SECRET, token, now=NOW) == why


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None)],
)
def test_bearer(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def _service(secret: bytes | None = SECRET) -> PushService:
    return PushService(Hub(), ServerConfig(auth_secret=secret))


@pytest.mark.parametrize(
    ("query", "header", "status"),
    [
        ({}, None, 401),
        ({"token": make_token(SECRET, "t", ttl_s=300)}, None, 403),
        ({}, f"Bearer {make_token(SECRET, 't', ttl_s=300)}", 403),
        ({"token": make_control_token(b"other")}, None, 401),
        ({}, f"Bearer {make_control_token(SECRET, ttl_s=-5)}", 401),
    ],
    # fixed ids: the tokens carry their expiry time, and xdist's workers must collect the
    # same test names
    ids=["none", "subscriber-query", "subscriber-bearer", "forged", "expired"],
)
def test_control_ticker_refused_without_a_control_token(
    query: dict[str, str], header: str | None, status: int
) -> None:
    service = _service()
    ticker_query = {"topic": "t", "count": "1"} | query
    with pytest.raises(HttpError) as caught:
        asyncio.run(service.control_ticker("POST", ticker_query, header))
    assert caught.value.status == status
    assert service.ticker is None  # nothing started
    assert service.stats.auth_failures == 1


def test_control_ticker_with_a_control_token_starts() -> None:
    service = _service()

    async def main() -> None:
        header = f"Bearer {make_control_token(SECRET)}"
        await service.control_ticker("POST", {"topic": "t", "count": "1"}, header)
        assert service.ticker is not None
        await service.ticker.stop()

    asyncio.run(main())


def test_without_auth_nothing_is_checked() -> None:
    _service(None).check_control({}, None)  # no secret: open, loopback-only (see below)


def test_ticker_rate_is_capped_by_the_server_option() -> None:
    config = ServerConfig(max_control_rate=500.0)
    assert parse_ticker({"topic": "t", "rate": "500"}, config).rate == 500.0
    with pytest.raises(HttpError) as caught:
        parse_ticker({"topic": "t", "rate": "500.5"}, config)
    assert caught.value.status == 400
    assert "500" in caught.value.error  # names the cap
    with pytest.raises(HttpError):  # the default cap: 10**5 msg/s
        parse_ticker({"topic": "t", "rate": "100001"}, ServerConfig())
    with pytest.raises(ConfigError) as bad:
        ServerConfig(max_control_rate=0.0)
    assert bad.value.field == "max_control_rate"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.0.2.1", False),
        ("example.com", False),
    ],
)
def test_bind_refusal(host: str, loopback: bool) -> None:
    open_config, auth_config = ServerConfig(), ServerConfig(auth_secret=SECRET)
    assert is_loopback(host) is loopback
    assert (bind_refusal(host, open_config, insecure_bind=False) == "") is loopback
    assert bind_refusal(host, open_config, insecure_bind=True) == ""
    assert bind_refusal(host, auth_config, insecure_bind=False) == ""


def test_serve_refuses_a_non_loopback_host_without_auth() -> None:
    # 192.0.2.1 (TEST-NET-1) is no local address: even a regression could not bind it.
    cmd = [sys.executable, "-m", "pushbench.cli", "serve", "--host", "192.0.2.1", "--port", "0"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert "--insecure-bind" in done.stderr and done.stdout == ""

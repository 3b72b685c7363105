"""Short-lived access tokens for the query string, as the seed recommends for browsers.

Browsers cannot set headers on ``new WebSocket()`` or ``new EventSource()``,
so the token rides in the URL. There are two scopes, minted with the same secret:

- ``subscribe`` (:func:`make_token`): ``<expiry>.<hex HMAC-SHA256(secret, topic|expiry)>``,
  one topic and an expiry (Unix seconds): what ``/ws``, ``/sse``, ``/poll`` and
  ``/publish`` take.
- ``control`` (:func:`make_control_token`): ``control.<expiry>.<hex HMAC-SHA256(secret,
  scope=control|expiry)>``, no topic: what ``/control/*`` and ``/echo`` take (in
  ``Authorization: Bearer`` or as ``token=``). ``=`` is no topic character, so no
  subscriber token's MAC input equals a control token's.

A token of one scope is refused where the other is required ("wrong scope": the
server answers 403, the other reasons 401). A server holding the secret checks a
token without any state. Tokens are secrets: they are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "CONTROL",
    "SUBSCRIBE",
    "WRONG_SCOPE",
    "bearer",
    "check_control_token",
    "check_token",
    "make_control_token",
    "make_token",
]

SUBSCRIBE = "subscribe"
CONTROL = "control"
WRONG_SCOPE = "wrong scope"  # the one reason that is a 403, not a 401
_CONTROL_PREFIX = CONTROL + "."


def _mac(secret: bytes, claim: str, expiry: int) -> str:
    return hmac.new(secret, f"{claim}|{expiry}".encode(), hashlib.sha256).hexdigest()


def _expiry(ttl_s: float, now: float | None) -> int:
    return int((time.time() if now is None else now) + ttl_s)


def make_token(secret: bytes, topic: str, ttl_s: float = 60.0, now: float | None = None) -> str:
    """A subscribe-scope token for ``topic``."""
    expiry = _expiry(ttl_s, now)
    return f"{expiry}.{_mac(secret, topic, expiry)}"


def make_control_token(secret: bytes, ttl_s: float = 60.0, now: float | None = None) -> str:
    """A control-scope token (``/control/*``, ``/echo``): no topic."""
    expiry = _expiry(ttl_s, now)
    return f"{_CONTROL_PREFIX}{expiry}.{_mac(secret, 'scope=' + CONTROL, expiry)}"


def _check(secret: bytes, claim: str, body: str, now: float | None) -> str:
    expiry_s, sep, mac = body.partition(".")
    if not sep or not (expiry_s.isascii() and expiry_s.isdigit()) or len(mac) != 64:
        return "malformed"
    expiry = int(expiry_s)
    if not hmac.compare_digest(mac, _mac(secret, claim, expiry)):
        return "forged"
    if expiry < (time.time() if now is None else now):
        return "expired"
    return ""


def check_token(secret: bytes, topic: str, token: str | None, now: float | None = None) -> str:
    """A subscribe-scope token for ``topic``: "" if valid, else why not ("missing",
    "malformed", "forged", "expired", or :data:`WRONG_SCOPE` for a control token)."""
    if not token:
        return "missing"
    if token.startswith(_CONTROL_PREFIX):
        return WRONG_SCOPE
    return _check(secret, topic, token, now)


def check_control_token(secret: bytes, token: str | None, now: float | None = None) -> str:
    """A control-scope token: "" if valid, else why not (as :func:`check_token`;
    :data:`WRONG_SCOPE` for anything without the control scope, a subscriber token)."""
    if not token:
        return "missing"
    if not token.startswith(_CONTROL_PREFIX):
        return WRONG_SCOPE
    return _check(secret, "scope=" + CONTROL, token[len(_CONTROL_PREFIX) :], now)


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None

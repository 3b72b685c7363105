"""Short-lived access tokens for the query string, as the seed recommends for browsers.

Browsers cannot set headers on ``new WebSocket()`` or ``new EventSource()``,
so the token rides in the URL: ``<expiry>.<hex HMAC-SHA256(secret, topic|expiry)>``.
It binds one topic and an expiry (Unix seconds); a server holding the secret
checks it without any state. Tokens are secrets: they are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["check_token", "make_token"]


def _mac(secret: bytes, topic: str, expiry: int) -> str:
    return hmac.new(secret, f"{topic}|{expiry}".encode(), hashlib.sha256).hexdigest()


def make_token(secret: bytes, topic: str, ttl_s: float = 60.0, now: float | None = None) -> str:
    expiry = int((time.time() if now is None else now) + ttl_s)
    return f"{expiry}.{_mac(secret, topic, expiry)}"


def check_token(secret: bytes, topic: str, token: str | None, now: float | None = None) -> str:
    """ "" if valid, else why not ("missing", "malformed", "forged", "expired")."""
    if not token:
        return "missing"
    expiry_s, sep, mac = token.partition(".")
    if not sep or not (expiry_s.isascii() and expiry_s.isdigit()) or len(mac) != 64:
        return "malformed"
    expiry = int(expiry_s)
    if not hmac.compare_digest(mac, _mac(secret, topic, expiry)):
        return "forged"
    if expiry < (time.time() if now is None else now):
        return "expired"
    return ""

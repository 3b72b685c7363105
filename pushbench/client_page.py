"""The browser client's files, served alike by every stack at ``GET /client`` and ``/client.js``.

The page lives in ``clients/browser/`` (plain HTML and JavaScript: no build
step, no external URL; docs/browser.md describes it); a stack only routes the
paths of :data:`PATHS` to :func:`asset` and writes what it returns, as it does
for ``/health``. The files are read once per process, on first request.

Every asset is sent with ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``: that makes the page
*cross-origin isolated*, and only then does Chromium give
``performance.now()`` 5 µs resolution instead of 100 µs, which the page's
receive times need. (The page loads nothing from another origin, so the
policies cost it nothing.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["HEADERS", "PATHS", "Asset", "asset"]

HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-cache"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
)
# URL path → (file in clients/browser/, Content-Type)
_FILES: dict[str, tuple[str, str]] = {
    "/client": ("client.html", "text/html; charset=utf-8"),
    "/client.js": ("client.js", "text/javascript; charset=utf-8"),
}
PATHS: tuple[str, ...] = tuple(_FILES)


@dataclass(frozen=True)
class Asset:
    """One file of the page: its bytes, its Content-Type and the headers to send with it."""

    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = HEADERS


@cache
def asset(path: str) -> Asset:
    """The asset served at ``path`` (one of :data:`PATHS`; KeyError otherwise)."""
    name, content_type = _FILES[path]
    body = resources.files("pushbench.clients").joinpath("browser", name).read_bytes()
    return Asset(body, content_type)

"""The browser client's files, served alike by every stack at ``GET /client`` and ``/client.js``.

The page lives in ``clients/browser/`` (plain HTML and JavaScript: no build
step, no external URL; docs/browser.md describes it); a stack only routes the
paths of :data:`PATHS` to :func:`asset` and writes what it returns, as it does
for ``/health``. The files are read once per process, on first request.

The page learns which transports it can receive from the server, not from a
list of its own: :func:`asset` replaces the :data:`PLACEHOLDER` comment in
``client.html`` with the registry's transports that have a ``"browser"`` client
(:func:`transport_table`: name → protocol, path, the page's starter function,
the optional cell parameters that apply), as inline JSON in a
``<script type="application/json" id="pushbench-transports">`` element that
``client.js`` reads. The table is rendered on each request of the page, from
the registry as it is then (so a row added for a test shows up).

Every asset is sent with ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``: that makes the page
*cross-origin isolated*, and only then does Chromium give
``performance.now()`` 5 µs resolution instead of 100 µs, which the page's
receive times need. (The page loads nothing from another origin, so the
policies cost it nothing.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from pushbench import registry

__all__ = [
    "HEADERS",
    "PATHS",
    "PLACEHOLDER",
    "Asset",
    "asset",
    "transport_script",
    "transport_table",
]

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
_PAGE = "client.html"
#: The comment in client.html that the transport table replaces.
PLACEHOLDER = b"<!-- pushbench:transports -->"


@dataclass(frozen=True)
class Asset:
    """One file of the page: its bytes, its Content-Type and the headers to send with it."""

    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = HEADERS


def transport_table() -> dict[str, dict[str, Any]]:
    """The registry's transports the browser page can receive, name → what the page needs:
    ``protocol``, ``path``, ``starter`` (its function for the transport) and ``params``
    (the optional cell parameters that apply), in the registry's order."""
    return {
        t.name: {
            "protocol": t.protocol,
            "path": t.path,
            "starter": t.clients["browser"],
            "params": sorted(t.params),
        }
        for t in registry.transports()
        if "browser" in t.clients
    }


def transport_script() -> bytes:
    """The element that carries :func:`transport_table` in the page (``</`` escaped, so
    no value can end the script element early)."""
    table = json.dumps(transport_table(), separators=(",", ":")).replace("</", "<\\/")
    return (
        b'<script type="application/json" id="pushbench-transports">'
        + table.encode()
        + b"</script>"
    )


@cache
def _file(name: str) -> bytes:
    return resources.files("pushbench.clients").joinpath("browser", name).read_bytes()


def asset(path: str) -> Asset:
    """The asset served at ``path`` (one of :data:`PATHS`; KeyError otherwise)."""
    name, content_type = _FILES[path]
    body = _file(name)
    if name == _PAGE:  # the page, not the script: client.js may quote the placeholder
        body = body.replace(PLACEHOLDER, transport_script())
    return Asset(body, content_type)

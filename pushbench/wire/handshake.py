"""The opening handshake (RFC 6455 §4), both sides, as pure functions.

Server: :func:`parse_request` turns a request head into a :class:`Request`;
:func:`accept` checks it and returns the 101 :class:`Response` or raises
:class:`HandshakeError` with the status to answer (400, 403 or 426), for which
:func:`reject` builds the response. Client: :func:`client_request` builds a
request with a fresh key, :func:`check_response` verifies the server's answer.
Header names compare case-insensitively, and the Upgrade / Connection tokens
are found inside comma-separated lists, as §4.2.1 requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .errors import HandshakeError

__all__ = [
    "GUID",
    "MAX_HEAD_SIZE",
    "Request",
    "Response",
    "accept",
    "accept_key",
    "check_response",
    "client_request",
    "find_head_end",
    "parse_request",
    "parse_response",
    "reject",
]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD_SIZE = 16384  # a longer request head is refused with 400, never buffered further
_MAX_HEADERS = 100

Headers = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Request:
    """A request head, treated as a value (not frozen only because a frozen dataclass
    takes ~1 µs longer to make, once per request of the raw stack). ``index`` (lower-case
    name → the values joined by ", ") is built once, by :func:`parse_request` or on first
    :meth:`get`, so that a lookup is one dict read, not a pass over the headers."""

    method: str
    target: str
    version: str
    headers: Headers
    index: dict[str, str] | None = field(default=None, compare=False, repr=False)

    def get(self, name: str) -> str | None:
        index = self.index
        if index is None:
            index = self.index = _index(self.headers)
        return index.get(name.lower())

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def get(self, name: str) -> str | None:
        return _get(self.headers, name)

    def serialize(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def _get(headers: Headers, name: str) -> str | None:
    """The values of header ``name`` joined by ", " (RFC 9110 §5.3), or None."""
    name = name.lower()
    values = [v for k, v in headers if k.lower() == name]
    return ", ".join(values) if values else None


def _index(headers: Iterable[tuple[str, str]], *, one_host: bool = False) -> dict[str, str]:
    """Lower-case name → its values joined by ", " in order: what :func:`_get` answers.
    ``one_host``: a repeated Host is refused with 400 (RFC 9112 §3.2: a server MUST)."""
    index: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in index:
            if one_host and key == "host":
                raise HandshakeError(400, "repeated Host")
            index[key] = f"{index[key]}, {value}"
        else:
            index[key] = value
    return index


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in value.split(",")] if value else []


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (§4.2.2 step 5.4)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode()


# --- HTTP/1.1 heads -------------------------------------------------------


def find_head_end(buf: bytes | bytearray) -> int:
    """Index just past the blank line ending a head, -1 if it has not arrived.

    Raises HandshakeError(400) once ``buf`` exceeds MAX_HEAD_SIZE without one.
    """
    i = buf.find(b"\r\n\r\n")
    if i < 0:
        if len(buf) > MAX_HEAD_SIZE:
            raise HandshakeError(400, "request head too large")
        return -1
    if i + 4 > MAX_HEAD_SIZE:
        raise HandshakeError(400, "request head too large")
    return i + 4


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Tokens most heads carry (methods, header names), known good without the regex (a
#: call of it costs ~0.5 µs, a set lookup ~0.03): anything else still goes through it.
_KNOWN_TOKENS = frozenset(
    (
        *("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"),
        *("Host", "host", "Connection", "connection", "User-Agent", "user-agent"),
        *("Accept", "accept", "Accept-Encoding", "accept-encoding", "Content-Length"),
        *("content-length", "Content-Type", "content-type", "Upgrade", "upgrade"),
        *("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions"),
        *("Sec-WebSocket-Protocol", "Origin", "Last-Event-ID", "Authorization"),
        *("Cache-Control", "Last-Event-Id", "Accept-Language", "Cookie", "Referer"),
    )
)


def _is_token(text: str) -> bool:
    """RFC 9110 §5.6.2: ``text`` is a token (one or more tchar)."""
    return text in _KNOWN_TOKENS or _TOKEN.fullmatch(text) is not None


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes everything
        raise HandshakeError(400, "undecodable head") from exc
    lines = text.split("\r\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HandshakeError(400, "empty head")
    if len(lines) - 1 > _MAX_HEADERS:
        raise HandshakeError(400, "too many headers")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _is_token(name):  # RFC 9110 5.1: a name is a token
            raise HandshakeError(400, "malformed header line")
        headers.append((name, value.strip(" \t")))
    return lines[0], headers


def parse_request(head: bytes) -> Request:
    """Parse a request head (through its blank line); HandshakeError(400) if malformed."""
    first, headers = _parse_head(head)
    parts = first.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HandshakeError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0") or not _is_token(method):
        raise HandshakeError(400, "malformed request line")
    return Request(method, target, version, tuple(headers), _index(headers, one_host=True))


def parse_response(head: bytes) -> Response:
    """Parse a response head; HandshakeError(0) if it is not HTTP."""
    try:
        first, headers = _parse_head(head)
    except HandshakeError as exc:
        raise HandshakeError(0, f"malformed response: {exc.reason}") from exc
    parts = first.split(" ", 2)
    # isdigit() alone accepts "²" (latin-1 superscripts), which int() rejects.
    if (
        len(parts) < 2
        or not parts[0].startswith("HTTP/")
        or not (parts[1].isascii() and parts[1].isdigit())
    ):
        raise HandshakeError(0, "malformed status line")
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", tuple(headers))


# --- server side ----------------------------------------------------------


def accept(
    request: Request,
    *,
    origins: Iterable[str] | None = None,
    subprotocols: Sequence[str] = (),
    extensions: str | None = None,
) -> Response:
    """Validate a WebSocket upgrade request and build the 101 response.

    ``extensions``: the ``Sec-WebSocket-Extensions`` value the server agreed to
    (:func:`pushbench.wire.deflate.negotiate`), or None for none.
    ``origins``: when given, the Origin header must be one of them (403
    otherwise): the defence against cross-site WebSocket hijacking, since
    browsers send cookies with the upgrade. ``subprotocols``: the server's in
    order of preference; the first one the client offers is selected.
    """
    if request.method != "GET":
        raise HandshakeError(400, "WebSocket upgrade must be GET")
    if request.version != "HTTP/1.1":
        raise HandshakeError(400, "WebSocket upgrade needs HTTP/1.1")
    if not request.get("Host"):
        raise HandshakeError(400, "missing Host")
    if "websocket" not in _tokens(request.get("Upgrade")):
        raise HandshakeError(400, "missing Upgrade: websocket")
    if "upgrade" not in _tokens(request.get("Connection")):
        raise HandshakeError(400, "missing Connection: Upgrade")
    version = request.get("Sec-WebSocket-Version")
    if version is None or version.strip() != "13":
        raise HandshakeError(
            426, "unsupported Sec-WebSocket-Version", (("Sec-WebSocket-Version", "13"),)
        )
    key = request.get("Sec-WebSocket-Key")
    if key is None or "," in key:
        raise HandshakeError(400, "missing or repeated Sec-WebSocket-Key")
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HandshakeError(400, "Sec-WebSocket-Key is not base64") from exc
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key must decode to 16 bytes")
    if origins is not None:
        origin = request.get("Origin")
        if origin is None or origin not in set(origins):
            raise HandshakeError(403, "Origin not allowed")
    headers: list[tuple[str, str]] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key.strip())),
    ]
    offered = [t.strip() for t in (request.get("Sec-WebSocket-Protocol") or "").split(",")]
    chosen = next((p for p in subprotocols if p in offered), None)
    if chosen is not None:
        headers.append(("Sec-WebSocket-Protocol", chosen))
    if extensions:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    return Response(101, "Switching Protocols", tuple(headers))


_REASONS = {400: "Bad Request", 403: "Forbidden", 426: "Upgrade Required"}


def reject(error: HandshakeError) -> Response:
    """The HTTP response for a failed handshake (the reason as a text body)."""
    body = (error.reason + "\n").encode()
    headers = (
        *error.headers,
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    )
    return Response(error.status, _REASONS.get(error.status, "Error"), headers, body)


# --- client side ----------------------------------------------------------


def client_request(
    host: str,
    target: str = "/",
    *,
    origin: str | None = None,
    subprotocols: Sequence[str] = (),
    extra_headers: Sequence[tuple[str, str]] = (),
    key: str | None = None,
) -> tuple[bytes, str]:
    """Build an upgrade request with a fresh random key → (bytes, key)."""
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    headers = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if origin is not None:
        headers.append(("Origin", origin))
    if subprotocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    headers += extra_headers
    lines = [f"GET {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


def check_response(
    response: Response,
    key: str,
    *,
    subprotocols: Sequence[str] = (),
    extensions_offered: bool = False,
) -> str | None:
    """Verify the server's answer to our upgrade → the selected subprotocol.

    Raises HandshakeError carrying the server's status on any mismatch. With
    ``extensions_offered`` an extension in the answer is the caller's to check
    (:func:`pushbench.wire.deflate.accept_response`); without, it is an error.
    """
    if response.status != 101:
        raise HandshakeError(response.status, f"expected 101, got {response.status}")
    if "websocket" not in _tokens(response.get("Upgrade")):
        raise HandshakeError(101, "missing Upgrade: websocket")
    if "upgrade" not in _tokens(response.get("Connection")):
        raise HandshakeError(101, "missing Connection: Upgrade")
    if response.get("Sec-WebSocket-Accept") != accept_key(key):
        raise HandshakeError(101, "wrong Sec-WebSocket-Accept")
    if response.get("Sec-WebSocket-Extensions") and not extensions_offered:
        raise HandshakeError(101, "server chose an extension we did not offer")
    chosen = response.get("Sec-WebSocket-Protocol")
    if chosen is not None and chosen not in subprotocols:
        raise HandshakeError(101, "server chose a subprotocol we did not offer")
    return chosen

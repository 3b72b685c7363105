"""Hypothesis strategies for malformed HTTP/1.1 requests and WebSocket handshakes, and a
one-shot socket exchange that classifies a server's answer.

Each generated :class:`Case` is raw request bytes plus what the contract allows as an
answer: a 4xx or a close for anything malformed, a clean 101 only for a valid handshake.
``complete`` says whether the bytes form a whole request head (+ body): incomplete ones
(truncated bodies, bad chunking) are followed by a write shutdown so the server sees EOF
instead of waiting for bytes that never come. Used by ``tests/test_fuzz.py``; kept apart
so the abuse scenario can reuse the generators later.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import time
from dataclasses import dataclass

from hypothesis import strategies as st

VALID_KEY = base64.b64encode(b"0123456789abcdef").decode()


@dataclass(frozen=True)
class Case:
    """One fuzzed request: its bytes, its kind, and whether a 101 is the right answer."""

    kind: str
    data: bytes
    valid_upgrade: bool = False  # only a valid handshake may (and must) get 101
    may_succeed: bool = False  # a 2xx is legal too (e.g. obs-fold replaced by SP, RFC 9112 5.2)
    complete: bool = True  # False: shut down the write side after sending


@dataclass(frozen=True)
class Answer:
    """What came back: the status (None when the server closed without a status line),
    or ``hung`` when neither an answer nor a close arrived in time."""

    status: int | None
    hung: bool = False

    def outcome(self) -> str:
        if self.hung:
            return "hang"
        if self.status is None:
            return "close"
        return f"{self.status // 100}xx" if self.status != 101 else "101"


def _head(request_line: bytes, headers: list[bytes]) -> bytes:
    return b"\r\n".join([request_line, *headers]) + b"\r\n\r\n"


HOST = b"Host: 127.0.0.1"
UPGRADE = [HOST, b"Upgrade: websocket", b"Connection: Upgrade"]
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
junk = st.binary(min_size=1, max_size=40).filter(lambda b: b"\r\n\r\n" not in b)
high = st.binary(min_size=1, max_size=20).map(lambda b: bytes(0x80 | x for x in b))


@st.composite
def bad_request_line(draw: st.DrawFn) -> Case:
    """A request line that no HTTP/1.1 parser may accept."""
    form = draw(st.sampled_from(["junk", "no-version", "bad-version", "spaces", "ctl-target"]))
    if form == "junk":
        line = b"\x00" + draw(junk).replace(b"\n", b"").replace(b"\r", b"")
    elif form == "no-version":
        line = b"GET /health"
    elif form == "bad-version":
        line = b"GET /health HTTP/" + draw(st.sampled_from([b"x", b"1", b"1.1.1", b"one"]))
    elif form == "spaces":
        line = b"GET  /health  HTTP/1.1 " + draw(token)
    else:
        line = b"GET /he\x00" + draw(high) + b"alth HTTP/1.1"
    return Case(f"request-line/{form}", _head(line, [HOST]))


@st.composite
def folded_header(draw: st.DrawFn) -> Case:
    """obs-fold: a header continued on a line starting with SP/HTAB — reject or unfold."""
    ws = draw(st.sampled_from([b" ", b"\t"]))
    head = _head(b"GET /health HTTP/1.1", [HOST, b"X-A: " + draw(token), ws + draw(token)])
    return Case("header/folded", head, may_succeed=True)


@st.composite
def duplicate_header(draw: st.DrawFn) -> Case:
    """Conflicting duplicates a server must refuse (RFC 9110 8.6, 9112 3.2)."""
    form = draw(st.sampled_from(["content-length", "host", "ws-key"]))
    if form == "content-length":
        n = draw(st.integers(1, 9))
        hs = [HOST, b"Content-Length: %d" % n, b"Content-Length: %d" % (n + 1)]
        return Case("dup/content-length", _head(b"POST /publish?topic=f HTTP/1.1", hs) + b"x" * n)
    if form == "host":
        hs = [HOST, b"Host: " + draw(token) + b".example"]
        return Case("dup/host", _head(b"GET /health HTTP/1.1", hs))
    other = base64.b64encode(draw(st.binary(min_size=16, max_size=16)))
    hs = [*UPGRADE, b"Sec-WebSocket-Key: " + VALID_KEY.encode(), b"Sec-WebSocket-Key: " + other]
    return Case("dup/ws-key", _head(b"GET /echo HTTP/1.1", [*hs, b"Sec-WebSocket-Version: 13"]))


@st.composite
def oversized_header(draw: st.DrawFn) -> Case:
    """One huge header value or thousands of headers (limits: 4xx or close, not 2xx)."""
    if draw(st.booleans()):
        size = draw(st.integers(64 * 1024, 256 * 1024))
        hs = [HOST, b"X-Big: " + b"a" * size]
        return Case("oversized/value", _head(b"GET /health HTTP/1.1", hs))
    count = draw(st.integers(2000, 6000))
    hs = [HOST, *(b"X-%d: v" % i for i in range(count))]
    return Case("oversized/count", _head(b"GET /health HTTP/1.1", hs))


@st.composite
def bad_chunking(draw: st.DrawFn) -> Case:
    """A chunked body whose framing is broken; the peer then stops sending."""
    size = draw(st.sampled_from([b"zz", b"-1", b"ffffffffffffffffffff", b"3;" + b"x" * 200, b""]))
    body = size + b"\r\nabcdef" + draw(st.sampled_from([b"", b"\r\n", b"\r\n0\r\n"]))
    hs = [HOST, b"Transfer-Encoding: chunked"]
    return Case("chunked/bad", _head(b"POST /publish?topic=f HTTP/1.1", hs) + body, complete=False)


@st.composite
def truncated_body(draw: st.DrawFn) -> Case:
    """Content-Length promises more than is sent before EOF."""
    n = draw(st.integers(2, 4096))
    sent = draw(st.integers(0, n - 1))
    hs = [HOST, b"Content-Length: %d" % n]
    data = _head(b"POST /publish?topic=f HTTP/1.1", hs) + b"y" * sent
    return Case("body/truncated", data, complete=False)


@st.composite
def handshake(draw: st.DrawFn) -> Case:
    """An upgrade to /echo with a key and version that are each valid or broken."""
    key_form = draw(st.sampled_from(["valid", "short", "long", "not-base64", "missing"]))
    version = draw(st.sampled_from([b"13", b"13", b"8", b"14", b"x", b""]))
    keys = {
        "valid": base64.b64encode(draw(st.binary(min_size=16, max_size=16))),
        "short": base64.b64encode(draw(st.binary(min_size=1, max_size=15))),
        "long": base64.b64encode(draw(st.binary(min_size=17, max_size=40))),
        "not-base64": b"!!" + draw(high) + b"??",
        "missing": None,
    }
    key = keys[key_form]
    hs = list(UPGRADE)
    if key is not None:
        hs.append(b"Sec-WebSocket-Key: " + key)
    if version:
        hs.append(b"Sec-WebSocket-Version: " + version)
    valid = key_form == "valid" and version == b"13"
    kind = "handshake/valid" if valid else f"handshake/key-{key_form}/v{version.decode()}"
    return Case(kind, _head(b"GET /echo HTTP/1.1", hs), valid_upgrade=valid)


@st.composite
def non_utf8(draw: st.DrawFn) -> Case:
    """Bytes ≥ 0x80 in a header name (invalid) or in a header value (obs-text: legal)."""
    if draw(st.booleans()):
        hs = [HOST, b"X-" + draw(high) + b": v"]
        return Case("non-utf8/name", _head(b"GET /health HTTP/1.1", hs))
    hs = [HOST, b"X-V: " + draw(high)]
    return Case("non-utf8/value", _head(b"GET /health HTTP/1.1", hs), may_succeed=True)


cases = st.one_of(
    bad_request_line(),
    folded_header(),
    duplicate_header(),
    oversized_header(),
    bad_chunking(),
    truncated_body(),
    handshake(),
    non_utf8(),
)


def exchange(host: str, port: int, case: Case, timeout: float = 3.0) -> Answer:
    """Send ``case`` on a fresh connection and read until a status line, a close, or
    ``timeout`` (an incomplete case half-closes first, so silence means a hang)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may close mid-send: that is an answer
            sock.sendall(case.data)
            if not case.complete:
                sock.shutdown(socket.SHUT_WR)
        data = b""
        while b"\r\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                return Answer(None, hung=True)
            sock.settimeout(left)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                return Answer(None, hung=True)
            except OSError:  # reset: a close
                chunk = b""
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0].split()
    if len(line) >= 2 and line[0].startswith(b"HTTP/1.") and line[1].isdigit():
        return Answer(int(line[1]))
    return Answer(None)

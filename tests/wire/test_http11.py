"""The sans-I/O HTTP/1.1 request reader (:mod:`pushbench.wire.http11`), with bytes alone.

Table-driven: each case is the bytes a client sends and what a server sees of
them, as a list of outcomes (requests, bodies, refusals, whether the connection
was kept). Every case must come out the same however its bytes are chunked (at
once, byte by byte, split at every point), and where h11 — the reference
implementation uvicorn uses — and we should agree, the same requests and bodies
come out of both; where we deliberately differ, the test says how.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

import h11
import pytest

from pushbench.wire.http11 import (
    MAX_HEAD_SIZE,
    TRANSITIONS,
    BodyReceived,
    HttpStateError,
    Phase,
    Refused,
    RequestReader,
    RequestReceived,
    encode_response,
)

LIMIT = 1000  # the body limit the simulated application reads with

Outcome = tuple[Any, ...]


def serve(chunks: Iterable[bytes], limit: int = LIMIT) -> list[Outcome]:
    """Feed ``chunks`` to a reader whose application answers every request at once,
    reading a body for POST only (as the raw stack: only /publish reads one)."""
    reader = RequestReader()
    out: list[Outcome] = []
    for chunk in chunks:
        reader.receive_data(chunk)
        while (event := reader.next_event()) is not None:
            if isinstance(event, RequestReceived):
                r = event.request
                out.append(("request", r.method, r.target, r.version, r.headers))
                if r.method == "POST":
                    refused = reader.read_body(limit)
                    if refused is not None:
                        out.append(("refused", refused.status, refused.reason))
                        out.append(("kept", reader.responded(keep=True)))
                    continue  # the body comes as the next event
                reader.handle()
                out.append(("kept", reader.responded(keep=True)))
            elif isinstance(event, BodyReceived):
                out.append(("body", event.body))
                out.append(("kept", reader.responded(keep=True)))
            else:
                out.append(("refused", event.status, event.reason))
                out.append(("kept", reader.responded(keep=True)))
    return out


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """The same bytes cut in many ways: whole, byte by byte, split in two anywhere (short
    inputs) or at random points (long ones)."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    if len(data) <= 400:
        for i in range(1, len(data)):
            yield [data[:i], data[i:]]
    rng = random.Random(len(data))
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 12))))
        yield [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


GET = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
HOST = (("Host", "x"),)


def post(body: bytes, *headers: str) -> bytes:
    lines = ["POST /publish?topic=t HTTP/1.1", "Host: x", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def request(method: str, target: str, headers: tuple[tuple[str, str], ...] = HOST) -> Outcome:
    return ("request", method, target, "HTTP/1.1", headers)


KEPT = ("kept", True)
CLOSED = ("kept", False)
TOO_LARGE = ("refused", 400, "request head too large")

CASES: list[Any] = [
    pytest.param(GET, [request("GET", "/health"), KEPT], id="get"),
    pytest.param(
        GET + post(b"kept", "Content-Length: 4") + b"GET /poll?topic=t&since=0 HTTP/1.1\r\n\r\n",
        [
            request("GET", "/health"),
            KEPT,
            request("POST", "/publish?topic=t", (*HOST, ("Content-Length", "4"))),
            ("body", b"kept"),
            KEPT,
            ("request", "GET", "/poll?topic=t&since=0", "HTTP/1.1", ()),
            KEPT,
        ],
        id="pipelined",
    ),
    pytest.param(
        b"GET /health HTTP/1.0\r\n\r\n" + GET,
        [("request", "GET", "/health", "HTTP/1.0", ()), CLOSED],
        id="http-1.0-closes-and-drops-the-rest",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n" + GET,
        [("request", "GET", "/", "HTTP/1.1", (("Connection", "keep-alive, Close"),)), CLOSED],
        id="connection-close",
    ),
    pytest.param(
        b"GET /health HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" + GET,
        [("request", "GET", "/health", "HTTP/1.1", (("Content-Length", "3"),)), CLOSED],
        id="unread-body-closes",
    ),
    pytest.param(
        b"GET /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        [("request", "GET", "/health", "HTTP/1.1", (("Transfer-Encoding", "chunked"),)), CLOSED],
        id="unread-chunked-body-closes",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n" + GET,
        [
            ("request", "GET", "/", "HTTP/1.1", (("Content-Length", "0"),)),
            KEPT,
            request("GET", "/health"),
            KEPT,
        ],
        id="empty-body-keeps",
    ),
    pytest.param(
        post(b"", "Content-Length: 0") + GET,
        [
            request("POST", "/publish?topic=t", (*HOST, ("Content-Length", "0"))),
            ("body", b""),
            KEPT,
            request("GET", "/health"),
            KEPT,
        ],
        id="post-empty-body",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", [], id="incomplete-head"),
    pytest.param(
        post(b"ab", "Content-Length: 4"),
        [request("POST", "/publish?topic=t", (*HOST, ("Content-Length", "4")))],
        id="incomplete-body",
    ),
    pytest.param(
        b"HELLO\r\n\r\n", [("refused", 400, "malformed request line"), CLOSED], id="bad-line"
    ),
    pytest.param(
        b"GET /\r\n\r\n", [("refused", 400, "malformed request line"), CLOSED], id="no-version"
    ),
    pytest.param(
        b"GET / FTP/1.1\r\n\r\n",
        [("refused", 400, "malformed request line"), CLOSED],
        id="not-http",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        [("refused", 400, "malformed header line"), CLOSED],
        id="space-in-name",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        [("refused", 400, "malformed header line"), CLOSED],
        id="no-colon",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
        [("refused", 400, "malformed header line"), CLOSED],
        id="obsolete-folding",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n",
        [("refused", 400, "too many headers"), CLOSED],
        id="101-headers",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_SIZE, [TOO_LARGE, CLOSED], id="head-too-large"
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD_SIZE - 22) + b"\r\n\r\n",
        [TOO_LARGE, CLOSED],
        id="head-one-over",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD_SIZE - 23) + b"\r\n\r\n" + GET,
        [
            ("request", "GET", "/", "HTTP/1.1", (("X", "a" * (MAX_HEAD_SIZE - 23)),)),
            KEPT,
            request("GET", "/health"),
            KEPT,
        ],
        id="head-at-the-limit",
    ),
    pytest.param(
        post(b""),
        [request("POST", "/publish?topic=t"), ("refused", 411, "Content-Length required"), CLOSED],
        id="post-no-length",
    ),
    pytest.param(
        post(b"0\r\n\r\n", "Transfer-Encoding: chunked"),
        [
            request("POST", "/publish?topic=t", (*HOST, ("Transfer-Encoding", "chunked"))),
            ("refused", 411, "Content-Length required"),
            CLOSED,
        ],
        id="post-chunked",
    ),
    *(
        pytest.param(
            post(b"abcd", *(f"Content-Length: {v}" for v in values)),
            [
                request(
                    "POST",
                    "/publish?topic=t",
                    (*HOST, *(("Content-Length", v) for v in values)),
                ),
                ("refused", 400, "malformed Content-Length"),
                CLOSED,
            ],
            id=f"content-length-{name}",
        )
        for name, values in [
            ("letters", ("abc",)),
            ("negative", ("-4",)),
            ("plus", ("+4",)),
            ("superscript", ("\xb2",)),
            ("20-digits", ("1" * 20,)),
            ("duplicate", ("4", "4")),
            ("conflicting", ("4", "5")),
        ]
    ),
    pytest.param(
        post(b"", f"Content-Length: {LIMIT + 1}"),
        [
            request("POST", "/publish?topic=t", (*HOST, ("Content-Length", str(LIMIT + 1)))),
            ("refused", 413, f"body over {LIMIT} bytes"),
            CLOSED,
        ],
        id="body-over-the-limit",
    ),
    pytest.param(
        post(b"x" * LIMIT, f"Content-Length: {LIMIT}"),
        [
            request("POST", "/publish?topic=t", (*HOST, ("Content-Length", str(LIMIT)))),
            ("body", b"x" * LIMIT),
            KEPT,
        ],
        id="body-at-the-limit",
    ),
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_requests_however_the_bytes_are_chunked(data: bytes, expected: list[Outcome]) -> None:
    for chunks in chunkings(data):
        assert serve(chunks) == expected, [len(c) for c in chunks]


# --- the machine -----------------------------------------------------------------------------


def test_the_transition_table_is_closed() -> None:
    """Every phase has a row and every move leads to a phase; only DONE and SWITCHED end."""
    assert set(TRANSITIONS) == set(Phase)
    for moves in TRANSITIONS.values():
        assert all(isinstance(target, Phase) for target in moves.values())
    assert [p for p, moves in TRANSITIONS.items() if not moves] == [Phase.SWITCHED, Phase.DONE]


def test_moves_outside_the_table_are_refused() -> None:
    reader = RequestReader()
    for move in (reader.handle, reader.upgrade, reader.switched, lambda: reader.read_body(1)):
        with pytest.raises(HttpStateError):
            move()  # no request yet
    reader.receive_data(GET)
    assert isinstance(reader.next_event(), RequestReceived)
    reader.handle()
    assert reader.phase is Phase.RESPONDING
    with pytest.raises(HttpStateError):
        reader.switched()  # not an upgrade
    with pytest.raises(HttpStateError):
        reader.read_body(1)  # too late for the body


def test_upgrade_keeps_what_follows_the_head_for_the_next_protocol() -> None:
    reader = RequestReader()
    reader.receive_data(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x85early")
    assert isinstance(reader.next_event(), RequestReceived)
    reader.upgrade()
    reader.receive_data(b"-more")
    assert reader.next_event() is None  # never parsed as HTTP
    assert not reader.should_pause  # the shell paused reading itself
    assert reader.switched() == b"\x81\x85early-more"
    assert reader.phase is Phase.SWITCHED and reader.buffered == 0


def test_a_refused_upgrade_is_answered_and_closed() -> None:
    reader = RequestReader()
    reader.receive_data(b"GET /ws HTTP/1.1\r\n\r\nframes")
    assert isinstance(reader.next_event(), RequestReceived)
    reader.upgrade()
    assert reader.responded(keep=False) is False
    assert reader.phase is Phase.DONE and reader.buffered == 0


def test_reading_pauses_while_a_response_is_made_and_a_head_waits() -> None:
    reader = RequestReader()
    reader.receive_data(GET)
    assert isinstance(reader.next_event(), RequestReceived)
    reader.handle()
    reader.receive_data(b"x" * MAX_HEAD_SIZE)
    assert not reader.should_pause  # a head's worth may wait
    reader.receive_data(b"x")
    assert reader.should_pause
    assert reader.next_event() is None  # nothing is parsed until the response is out
    assert reader.responded(keep=True) is True
    assert not reader.should_pause
    assert reader.next_event() == Refused(400, "request head too large")


def test_input_after_the_last_response_is_dropped() -> None:
    reader = RequestReader()
    reader.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(reader.next_event(), RequestReceived)
    reader.handle()
    assert reader.responded(keep=True) is False  # HTTP/1.0: not persistent
    reader.receive_data(GET)
    assert (reader.phase, reader.buffered, reader.next_event()) == (Phase.DONE, 0, None)


def test_encode_response() -> None:
    assert encode_response(200, b"ok", "text/plain", (("X-A", "1"),), close=False) == (
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    )
    assert encode_response(599, b"", "application/json").startswith(b"HTTP/1.1 599 Error\r\n")
    assert encode_response(404, b"{}", "application/json").endswith(
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )


# --- against h11 -----------------------------------------------------------------------------


def h11_serve(data: bytes) -> list[Outcome]:
    """What h11's server side makes of ``data``, in :func:`serve`'s terms (answering every
    request with an empty 200 at once); a protocol error is a refusal without a reason."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_SIZE)
    conn.receive_data(data)
    out: list[Outcome] = []
    body: bytes | None = None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return [*out, ("refused", exc.error_status_hint), CLOSED]
        if event is h11.NEED_DATA:
            return out
        if isinstance(event, h11.Request):
            headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
            version = "HTTP/" + event.http_version.decode()
            out.append(("request", event.method.decode(), event.target.decode(), version, headers))
            body = b"" if event.method == b"POST" else None
        elif isinstance(event, h11.Data):
            assert body is not None
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            if body is not None:
                out.append(("body", body))
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                return [*out, CLOSED]
            conn.start_next_cycle()
            out.append(KEPT)
        else:  # pragma: no cover - PAUSED, ConnectionClosed: not with these inputs
            raise AssertionError(event)


def ours_as_h11_sees_it(data: bytes) -> list[Outcome]:
    """:func:`serve`'s outcomes with what h11 reports differently: header names lower case
    (h11 normalises them) and a refusal's reason dropped (h11's differ in wording)."""
    out: list[Outcome] = []
    for outcome in serve([data]):
        if outcome[0] == "request":
            headers = tuple((k.lower(), v) for k, v in outcome[4])
            outcome = (*outcome[:4], headers)
        elif outcome[0] == "refused":
            outcome = outcome[:2]
        out.append(outcome)
    return out


AGREED = [
    pytest.param(GET, id="get"),
    pytest.param(
        GET + post(b"body", "content-length: 4") + post(b"", "Content-Length: 0") + GET,
        id="pipelined",
    ),
    pytest.param(b"GET /a?b=c%20d HTTP/1.1\r\nHost: x\r\nX-Y:  spaced \t\r\n\r\n", id="ows"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nA: 2\r\n\r\n", id="repeated-header"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + GET, id="close"),
    pytest.param(b"GET / HTTP/1.0\r\n\r\n", id="http-1.0"),
    pytest.param(post(b"x" * 999, "Content-Length: 999"), id="body"),
    pytest.param(post(b"ab", "Content-Length: 4"), id="incomplete-body"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", id="incomplete-head"),
    pytest.param(b"HELLO\r\n\r\n", id="bad-line"),
    pytest.param(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", id="space-in-name"),
    pytest.param(b"GET / HTTP/1.1\r\nno colon\r\n\r\n", id="no-colon"),
    pytest.param(b"GET / HTTP/1.1\r\n: empty name\r\n\r\n", id="empty-name"),
    pytest.param(post(b"abcd", "Content-Length: abc"), id="letters-length"),
    pytest.param(post(b"abcd", "Content-Length: 4", "Content-Length: 5"), id="conflicting"),
    pytest.param(b"GET / HTTP/1.1\r\nX: " + b"a" * (2 * MAX_HEAD_SIZE), id="head-too-large"),
]


@pytest.mark.parametrize("data", AGREED)
def test_agrees_with_h11(data: bytes) -> None:
    ours = ours_as_h11_sees_it(data)
    theirs = h11_serve(data)
    # h11 refuses a request only after its head: our request event, then our refusal
    # of its body framing, is its single refusal.
    if len(theirs) >= 2 and theirs[-2][0] == "refused" and len(ours) == len(theirs) + 1:
        assert ours[-3][0] == "request"
        del ours[-3]
    for got, want in zip(ours, theirs, strict=True):
        if got[0] == "refused":
            assert want[0] == "refused" and 400 <= want[1] < 500, (got, want)
        else:
            assert got == want


@pytest.mark.parametrize(
    ("data", "ours", "h11s"),
    [
        # h11 merges identical repeats (RFC 9112 §6.3 allows either); we refuse any repeat.
        (post(b"abcd", "Content-Length: 4", "Content-Length: 4"), "refused", "body"),
        # h11 decodes chunked bodies; the raw stack takes Content-Length bodies only.
        (post(b"4\r\nabcd\r\n0\r\n\r\n", "Transfer-Encoding: chunked"), "refused", "body"),
    ],
    ids=["duplicate-length", "chunked"],
)
def test_where_we_differ_from_h11_on_purpose(data: bytes, ours: str, h11s: str) -> None:
    assert ours_as_h11_sees_it(data)[1][0] == ours
    assert h11_serve(data)[1][0] == h11s

"""The opening handshake (RFC 6455 §4): server accept/reject, client request/check."""

from __future__ import annotations

import base64
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushbench.wire.errors import HandshakeError
from pushbench.wire.handshake import (
    MAX_HEAD_SIZE,
    Request,
    Response,
    accept,
    accept_key,
    check_response,
    client_request,
    find_head_end,
    parse_request,
    parse_response,
    reject,
)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# The example request of RFC 6455 §1.2 / §4.1.
SEED_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

BASE_HEADERS: list[tuple[str, str]] = [
    ("Host", "example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", RFC_KEY),
    ("Sec-WebSocket-Version", "13"),
]


def make_request(
    headers: list[tuple[str, str]] | None = None,
    *,
    drop: str = "",
    method: str = "GET",
    version: str = "HTTP/1.1",
    replace: dict[str, str] | None = None,
) -> Request:
    """BASE_HEADERS with ``drop`` removed and ``replace`` (name → value) applied."""
    hs = list(BASE_HEADERS if headers is None else headers)
    for name, value in (replace or {}).items():
        hs = [(k, value if k.lower() == name.lower() else v) for k, v in hs]
    hs = [(k, v) for k, v in hs if k.lower() != drop.lower()]
    return Request(method, "/ws?x=1", version, tuple(hs))


def status_of(request: Request, origins: Iterable[str] | None = None) -> int:
    with pytest.raises(HandshakeError) as info:
        accept(request, origins=origins)
    return info.value.status


def test_accept_key_rfc_vector() -> None:
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_seed_request_accepted() -> None:
    end = find_head_end(SEED_REQUEST + b"first frame bytes")
    assert end == len(SEED_REQUEST)
    request = parse_request(SEED_REQUEST[:end])
    assert request.method == "GET"
    assert request.path == "/chat"
    assert request.query == ""
    assert request.get("host") == "server.example.com"
    response = accept(request, origins=["http://example.com"], subprotocols=["chat"])
    assert response.status == 101
    assert response.get("Sec-WebSocket-Accept") == RFC_ACCEPT
    assert response.get("sec-websocket-protocol") == "chat"
    assert "upgrade" in response.get("Connection").lower()  # type: ignore[union-attr]
    assert response.get("Upgrade").lower() == "websocket"  # type: ignore[union-attr]
    wire = response.serialize()
    assert wire.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert wire.endswith(b"\r\n\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in wire
    assert parse_response(wire) == response


def test_request_target_parts() -> None:
    request = make_request()
    assert request.path == "/ws"
    assert request.query == "x=1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Connection", "keep-alive, Upgrade"),
        ("Connection", "Upgrade,keep-alive"),
        ("Connection", "  UPGRADE  "),
        ("Upgrade", "WebSocket"),
        ("Upgrade", "h2c, websocket"),
    ],
)
def test_tokens_case_insensitive_in_lists(name: str, value: str) -> None:
    assert accept(make_request(replace={name: value})).status == 101


def test_header_names_case_insensitive() -> None:
    headers = [(k.lower(), v) for k, v in BASE_HEADERS]
    headers = [("upgrade", "WebSocket") if k == "upgrade" else (k, v) for k, v in headers]
    assert accept(make_request(headers)).status == 101
    head = SEED_REQUEST.replace(b"Upgrade: websocket", b"upgrade: WebSocket")
    assert accept(parse_request(head)).status == 101


def test_repeated_connection_headers_are_joined() -> None:
    headers = [*BASE_HEADERS, ("Connection", "Upgrade")]
    headers[2] = ("Connection", "keep-alive")
    assert accept(make_request(headers)).status == 101


@pytest.mark.parametrize("drop", ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key"])
def test_missing_header_is_400(drop: str) -> None:
    assert status_of(make_request(drop=drop)) == 400


@pytest.mark.parametrize(
    "replace",
    [
        {"Upgrade": "h2c"},
        {"Connection": "keep-alive"},
        {"Connection": "upgraded"},
        {"Host": ""},
        {"Sec-WebSocket-Key": "not base64!"},
        {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ"},  # unpadded
        {"Sec-WebSocket-Key": base64.b64encode(bytes(15)).decode()},
        {"Sec-WebSocket-Key": base64.b64encode(bytes(17)).decode()},
        {"Sec-WebSocket-Key": base64.b64encode(bytes(32)).decode()},
        {"Sec-WebSocket-Key": ""},
        {"Sec-WebSocket-Key": f"{RFC_KEY}, {RFC_KEY}"},
    ],
)
def test_bad_header_is_400(replace: dict[str, str]) -> None:
    assert status_of(make_request(replace=replace)) == 400


@pytest.mark.parametrize("method", ["POST", "HEAD", "get", "CONNECT"])
def test_non_get_is_400(method: str) -> None:
    assert status_of(make_request(method=method)) == 400


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/0.9"])
def test_old_http_is_400(version: str) -> None:
    assert status_of(make_request(version=version)) == 400


@pytest.mark.parametrize("version", ["12", "8", "14", "", "13, 8"])
def test_wrong_version_is_426(version: str) -> None:
    with pytest.raises(HandshakeError) as info:
        accept(make_request(replace={"Sec-WebSocket-Version": version}))
    assert info.value.status == 426
    assert ("Sec-WebSocket-Version", "13") in info.value.headers
    response = reject(info.value)
    assert response.status == 426
    assert response.get("Sec-WebSocket-Version") == "13"
    assert response.serialize().startswith(b"HTTP/1.1 426 Upgrade Required\r\n")


def test_missing_version_is_426() -> None:
    with pytest.raises(HandshakeError) as info:
        accept(make_request(drop="Sec-WebSocket-Version"))
    assert info.value.status == 426
    assert reject(info.value).get("sec-websocket-version") == "13"


def test_origin_allow_list() -> None:
    with_origin = make_request([*BASE_HEADERS, ("Origin", "https://good.example")])
    assert accept(with_origin, origins=["https://good.example"]).status == 101
    assert accept(with_origin, origins={"https://other", "https://good.example"}).status == 101
    assert status_of(with_origin, origins=["https://evil.example"]) == 403
    assert status_of(with_origin, origins=[]) == 403
    assert status_of(make_request(), origins=["https://good.example"]) == 403  # no Origin
    assert accept(with_origin).status == 101  # no allow-list: anything goes
    with pytest.raises(HandshakeError) as info:
        accept(with_origin, origins=["https://evil.example"])
    response = reject(info.value)
    assert response.status == 403
    assert response.serialize().startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert response.body == info.value.reason.encode() + b"\n"
    assert response.get("Content-Length") == str(len(response.body))


@pytest.mark.parametrize(
    ("offered", "server", "chosen"),
    [
        ("chat, superchat", ["superchat", "chat"], "superchat"),  # server's preference wins
        ("chat, superchat", ["chat", "superchat"], "chat"),
        ("superchat,chat", ["chat"], "chat"),
        ("a, b", ["c", "b"], "b"),
        ("a, b", ["c"], None),
        ("a", [], None),
        (None, ["chat"], None),
    ],
)
def test_subprotocol_selection(offered: str | None, server: list[str], chosen: str | None) -> None:
    headers = list(BASE_HEADERS)
    if offered is not None:
        headers.append(("Sec-WebSocket-Protocol", offered))
    response = accept(make_request(headers), subprotocols=server)
    assert response.get("Sec-WebSocket-Protocol") == chosen


# --- heads ---------------------------------------------------------------------------


def test_find_head_end_incomplete_and_oversize() -> None:
    assert find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1
    assert find_head_end(b"x" * MAX_HEAD_SIZE) == -1
    with pytest.raises(HandshakeError) as info:
        find_head_end(b"x" * (MAX_HEAD_SIZE + 1))
    assert info.value.status == 400
    big = b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD_SIZE + b"\r\n\r\n"
    with pytest.raises(HandshakeError) as info:
        find_head_end(big)
    assert info.value.status == 400
    exact = b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD_SIZE - 23) + b"\r\n\r\n"
    assert len(exact) == MAX_HEAD_SIZE
    assert find_head_end(exact) == MAX_HEAD_SIZE
    assert find_head_end(exact + b"body") == MAX_HEAD_SIZE
    for over in range(1, 5):  # the blank line straddles or passes the limit
        head = b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD_SIZE - 23 + over) + b"\r\n\r\n"
        with pytest.raises(HandshakeError) as info:
            find_head_end(head)
        assert info.value.status == 400


@pytest.mark.parametrize(
    "head",
    [
        b"\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / FTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\tcontinued\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n",
    ],
)
def test_malformed_request_heads_are_400(head: bytes) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_request(head)
    assert info.value.status == 400


def test_header_values_are_stripped() -> None:
    request = parse_request(b"GET / HTTP/1.1\r\nHost: \t x.example \t\r\n\r\n")
    assert request.get("Host") == "x.example"


@pytest.mark.parametrize(
    "head",
    [
        b"\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 abc Nope\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        "HTTP/1.1 1²1 Switching\r\n\r\n".encode("latin-1"),
        b"HTTP/1.1 101 OK\r\nbroken header\r\n\r\n",
    ],
)
def test_malformed_response_heads(head: bytes) -> None:
    with pytest.raises(HandshakeError) as info:
        parse_response(head)
    assert info.value.status == 0


head_pieces = st.sampled_from(
    [b"GET", b"HTTP/1.1", b"HTTP/", b" ", b"101", b"1", "²".encode("latin-1"), b"\xb9", b":",
     b"\r\n", b"\r\n\r\n", b"Host", b"Upgrade: websocket", b"\t", b",", b"x", b"\xff"]
)  # fmt: skip
heads = st.one_of(st.binary(max_size=200), st.lists(head_pieces, max_size=30).map(b"".join))


@settings(max_examples=300, deadline=None)
@given(head=heads)
def test_head_parsers_only_raise_handshake_error(head: bytes) -> None:
    try:
        request = parse_request(head)
    except HandshakeError as exc:
        assert exc.status == 400
    else:
        assert request.method and request.target and request.version.startswith("HTTP/")
        assert all(k and ":" not in k and k == k.strip() for k, _ in request.headers)
    try:
        response = parse_response(head)
    except HandshakeError as exc:
        assert exc.status == 0
    else:
        assert response.status >= 0
    try:
        end = find_head_end(head)
    except HandshakeError as exc:
        assert exc.status == 400
    else:
        assert end == -1 or head[end - 4 : end] == b"\r\n\r\n"


# --- client side ----------------------------------------------------------------------


def test_client_request_round_trip() -> None:
    data, key = client_request(
        "example.com:8080",
        "/feed?room=1",
        origin="https://app.example",
        subprotocols=["v2.push", "v1.push"],
        extra_headers=[("Authorization", "Bearer t")],
    )
    assert len(base64.b64decode(key, validate=True)) == 16
    assert find_head_end(data) == len(data)
    request = parse_request(data)
    assert request.target == "/feed?room=1"
    assert request.get("Host") == "example.com:8080"
    assert request.get("Authorization") == "Bearer t"
    response = accept(request, origins=["https://app.example"], subprotocols=["v1.push"])
    parsed = parse_response(response.serialize())
    assert check_response(parsed, key, subprotocols=["v2.push", "v1.push"]) == "v1.push"


def test_client_request_fresh_keys_and_fixed_key() -> None:
    keys = {client_request("h")[1] for _ in range(10)}
    assert len(keys) == 10
    data, key = client_request("h", key=RFC_KEY)
    assert key == RFC_KEY
    assert b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" in data
    assert b"Sec-WebSocket-Version: 13\r\n" in data
    assert data.startswith(b"GET / HTTP/1.1\r\n")


def test_check_response_without_subprotocol() -> None:
    data, key = client_request("h")
    response = accept(parse_request(data))
    assert check_response(response, key) is None


def _good_response(key: str, *extra: tuple[str, str]) -> Response:
    headers = (
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
        *extra,
    )
    return Response(101, "Switching Protocols", headers)


def test_check_response_rejects_wrong_accept() -> None:
    response = accept(parse_request(client_request("h")[0]))
    with pytest.raises(HandshakeError):
        check_response(response, RFC_KEY)  # a different key than the request's


@pytest.mark.parametrize("status", [200, 301, 400, 403, 426, 500])
def test_check_response_non_101(status: int) -> None:
    response = parse_response(f"HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n".encode())
    with pytest.raises(HandshakeError) as info:
        check_response(response, RFC_KEY)
    assert info.value.status == status


@pytest.mark.parametrize("drop", ["Upgrade", "Connection", "Sec-WebSocket-Accept"])
def test_check_response_missing_headers(drop: str) -> None:
    good = _good_response(RFC_KEY)
    assert check_response(good, RFC_KEY) is None
    response = Response(101, "", tuple((k, v) for k, v in good.headers if k != drop))
    with pytest.raises(HandshakeError):
        check_response(response, RFC_KEY)


def test_check_response_tokens_case_insensitive() -> None:
    response = Response(
        101,
        "",
        (
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, UPGRADE"),
            ("sec-websocket-accept", RFC_ACCEPT),
        ),
    )
    assert check_response(response, RFC_KEY) is None


def test_check_response_subprotocols() -> None:
    good = _good_response(RFC_KEY, ("Sec-WebSocket-Protocol", "chat"))
    assert check_response(good, RFC_KEY, subprotocols=["superchat", "chat"]) == "chat"
    with pytest.raises(HandshakeError):
        check_response(good, RFC_KEY, subprotocols=["superchat"])  # not offered
    with pytest.raises(HandshakeError):
        check_response(good, RFC_KEY)  # nothing offered
    both = _good_response(RFC_KEY, ("Sec-WebSocket-Protocol", "chat, superchat"))
    with pytest.raises(HandshakeError):
        check_response(both, RFC_KEY, subprotocols=["superchat", "chat"])


def test_check_response_rejects_unoffered_extension() -> None:
    response = _good_response(RFC_KEY, ("Sec-WebSocket-Extensions", "permessage-deflate"))
    with pytest.raises(HandshakeError):
        check_response(response, RFC_KEY)


def test_reject_other_status() -> None:
    response = reject(HandshakeError(400, "bad"))
    assert response.serialize().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert response.serialize().endswith(b"\r\n\r\nbad\n")
    assert response.get("Connection") == "close"


_NAMES = st.sampled_from(
    ["Host", "host", "HOST", "Connection", "connection", "X-Odd", "x-odd", "Content-Length"]
)
_VALUES = st.text(alphabet="abc, 0123-", max_size=8).map(str.strip)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=6), _NAMES)
@settings(max_examples=300, deadline=None)
def test_header_lookup_is_the_case_blind_join_of_every_value(
    headers: list[tuple[str, str]], name: str
) -> None:
    """``Request.get`` reads an index built once (by parse_request, or on first use):
    the same answer as a pass over the headers, for every case of every name."""
    want_values = [v for k, v in headers if k.lower() == name.lower()]
    want = ", ".join(want_values) if want_values else None
    assert Request("GET", "/", "HTTP/1.1", tuple(headers)).get(name) == want
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    raw = f"GET / HTTP/1.1\r\n{head}\r\n".encode("latin-1")
    if sum(k.lower() == "host" for k, _ in headers) > 1:
        with pytest.raises(HandshakeError) as info:
            parse_request(raw)
        assert (info.value.status, info.value.reason) == (400, "repeated Host")
    else:
        assert parse_request(raw).get(name) == want

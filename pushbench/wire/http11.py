"""HTTP/1.1 requests on the server side, sans I/O: bytes in, request events out.

The raw stack's HTTP layer without its sockets, in the manner of h11:
:class:`RequestReader` buffers what the peer sends (:meth:`~RequestReader.receive_data`)
and hands out one event at a time (:meth:`~RequestReader.next_event`); the
application tells it what it does with each request (read its body, answer it,
upgrade it) and when the answer is out (:meth:`~RequestReader.responded`), and
only then is a pipelined request after it parsed. Nothing here reads a clock or
a socket (``pushbench.servers.raw`` is the I/O shell: timers, flow control,
writes), so every limit and every refusal is testable with bytes alone, and
against h11 (``tests/wire/test_http11.py``). The request head itself is parsed
by :func:`pushbench.wire.handshake.parse_request`, which the WebSocket
handshake shares.

States. One request at a time goes through the phases of :class:`Phase`; the
table :data:`TRANSITIONS` is the whole machine (a move it lacks raises
:class:`HttpStateError`). *peer* moves happen as bytes arrive, *app* moves are
calls of the application::

    HEAD ─peer: a whole head──▶ ROUTING      event RequestReceived
    HEAD ─peer: a bad head────▶ RESPONDING   event Refused (the connection then closes)
    ROUTING ─app: read_body──▶ BODY          Content-Length accepted
            ─app: read_body──▶ RESPONDING    refused: 411, 400 or 413, returned
            ─app: handle─────▶ RESPONDING    a declared body stays unread: no keep-alive
            ─app: upgrade────▶ UPGRADING     input from now on is the next protocol's
    BODY ─peer: the whole body─▶ RESPONDING  event BodyReceived
    ROUTING, RESPONDING, UPGRADING ─app: responded(keep)─▶ HEAD, or DONE
    UPGRADING ─app: switched─▶ SWITCHED      the buffered bytes go to the new protocol

Input is buffered in every phase but DONE, where it is dropped (the last
response is out; the peer's late bytes are read only so that they cannot turn
into a RST). While a request is being answered, bytes of the next one wait in
the buffer; past a head's worth :attr:`RequestReader.should_pause` says so,
for the shell to stop reading.

Limits and refusals (the statuses the raw stack answers with, then closes):

- a head over :data:`MAX_HEAD_SIZE` (16 KiB, with its blank line) → 400, decided
  as soon as that many bytes are buffered without a blank line;
- more than 100 header lines, a malformed request or header line → 400;
- a body only where the application asks for one (:meth:`~RequestReader.read_body`),
  and only with a Content-Length: Transfer-Encoding or none → 411; not 1-19 ASCII
  digits (a repeated header joins to ``"4, 4"``: refused too) → 400; over the
  application's limit → 413 (the application may answer that with its own
  refusal: the raw stack checks the query first, as its publish would);
- a body declared on a request whose application does not read it is left
  unread, and the connection is not kept after the response.

Keep-alive follows HTTP/1.1: a connection serves another request after an
HTTP/1.1 request without ``Connection: close``, if the application's response
allowed it (:meth:`~RequestReader.responded`).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType

from .errors import HandshakeError
from .handshake import MAX_HEAD_SIZE, Request, Response, find_head_end, parse_request

__all__ = [
    "MAX_CONTENT_LENGTH_DIGITS",
    "MAX_HEAD_SIZE",
    "TRANSITIONS",
    "BodyReceived",
    "Event",
    "HttpStateError",
    "Phase",
    "Refused",
    "RequestReader",
    "RequestReceived",
    "body_length",
    "declares_body",
    "encode_response",
    "persistent",
    "phrase",
]

#: Longest Content-Length value accepted (19 digits: below 2**63).
MAX_CONTENT_LENGTH_DIGITS = 19

Headers = tuple[tuple[str, str], ...]


class Phase(enum.Enum):
    """Where the connection is in its current request (see the module docstring)."""

    HEAD = "head"  # waiting for / reading a request head
    ROUTING = "routing"  # the head is out as an event; the application decides
    BODY = "body"  # reading a Content-Length body the application asked for
    RESPONDING = "responding"  # the application answers; the next request waits buffered
    UPGRADING = "upgrading"  # a protocol switch is being decided; input is kept for it
    SWITCHED = "switched"  # upgraded: this reader is done, the bytes went on
    DONE = "done"  # the last response is out; input is dropped

    # A member is its own identity: hashing it by that, in C, instead of by its name in
    # Enum's Python __hash__, makes each move's table lookup ~0.1 µs cheaper.
    __hash__ = object.__hash__


_P = Phase
#: phase → move → next phase: every move the machine makes, and no other.
TRANSITIONS: Mapping[Phase, Mapping[str, Phase]] = MappingProxyType(
    {
        _P.HEAD: {"head": _P.ROUTING, "bad_head": _P.RESPONDING},
        _P.ROUTING: {
            "read_body": _P.BODY,
            "refuse_body": _P.RESPONDING,
            "handle": _P.RESPONDING,
            "upgrade": _P.UPGRADING,
            "keep": _P.HEAD,
            "close": _P.DONE,
        },
        _P.BODY: {"body": _P.RESPONDING},
        _P.RESPONDING: {"keep": _P.HEAD, "close": _P.DONE},
        _P.UPGRADING: {"switch": _P.SWITCHED, "keep": _P.HEAD, "close": _P.DONE},
        _P.SWITCHED: {},
        _P.DONE: {},
    }
)


class HttpStateError(RuntimeError):
    """The application asked for a move its reader's phase does not have (a bug)."""


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request head arrived (phase ROUTING): the application routes it."""

    request: Request


@dataclass(frozen=True, slots=True)
class BodyReceived:
    """The whole body :meth:`RequestReader.read_body` asked for (phase RESPONDING)."""

    body: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    """Input that cannot be served: answer ``status`` (then the connection closes)."""

    status: int
    reason: str
    headers: Headers = ()


Event = RequestReceived | BodyReceived | Refused


# --- pure rules ----------------------------------------------------------------------------


def persistent(request: Request) -> bool:
    """Whether the client lets the connection serve another request (HTTP/1.1 default)."""
    if request.version != "HTTP/1.1":
        return False
    connection = request.get("Connection")
    return connection is None or "close" not in {t.strip().lower() for t in connection.split(",")}


def declares_body(request: Request) -> bool:
    """Whether the request says a body follows its head (left unread unless asked for)."""
    return request.get("Transfer-Encoding") is not None or request.get("Content-Length") not in (
        None,
        "0",
    )


def body_length(request: Request, limit: int) -> int | Refused:
    """The body's length by its Content-Length, or the refusal of its framing."""
    declared = request.get("Content-Length")
    if request.get("Transfer-Encoding") is not None or declared is None:
        return Refused(411, "Content-Length required")
    if not (
        declared.isascii() and declared.isdigit() and len(declared) <= MAX_CONTENT_LENGTH_DIGITS
    ):
        return Refused(400, "malformed Content-Length")
    length = int(declared)
    if length > limit:
        return Refused(413, f"body over {limit} bytes")
    return length


def phrase(status: int) -> str:
    """The reason phrase of ``status`` ("Error" for a status http.HTTPStatus lacks)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def encode_response(
    status: int,
    body: bytes,
    content_type: str,
    headers: Headers = (),
    *,
    close: bool = True,
) -> bytes:
    """A complete response with a Content-Length; ``close``: the connection ends after it.

    The bytes of :meth:`Response.serialize` for the headers ``*headers``,
    Content-Type, Content-Length and (``close``) ``Connection: close``; the head
    around the length is built once per distinct response shape, so a poll's
    answer costs a format and a join, not a head serialised per request.
    """
    before, after = _head_around_length(status, content_type, headers, close)
    return b"%s%d%s%s" % (before, len(body), after, body)


@functools.lru_cache(maxsize=256)
def _head_around_length(
    status: int, content_type: str, headers: Headers, close: bool
) -> tuple[bytes, bytes]:
    """The serialised head of :func:`encode_response` split at the Content-Length value."""
    marker = "\x00"
    head = Response(
        status,
        phrase(status),
        (
            *headers,
            ("Content-Type", content_type),
            ("Content-Length", marker),
            *((("Connection", "close"),) if close else ()),
        ),
    ).serialize()
    before, _, after = head.partition(marker.encode("latin-1"))
    return before, after


# --- the reader ----------------------------------------------------------------------------


class RequestReader:
    """The server side of one connection's HTTP/1.1 requests, one at a time.

    Feed it with :meth:`receive_data`, take events with :meth:`next_event`
    (None: it needs more bytes, or waits for the application), and tell it
    what the application did through the other methods; :attr:`phase` is where
    it is. ``request`` is the current request once its head has arrived.
    """

    __slots__ = ("_body_length", "_buf", "_keep_alive", "phase", "request")

    def __init__(self) -> None:
        self.phase = Phase.HEAD
        self.request: Request | None = None
        self._buf = bytearray()
        self._keep_alive = False
        self._body_length = 0

    def _move(self, move: str) -> None:
        try:
            self.phase = TRANSITIONS[self.phase][move]
        except KeyError:
            raise HttpStateError(f"no move {move!r} from phase {self.phase.value}") from None

    # -- input --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer: buffered, or dropped once the last response is out."""
        if self.phase is not Phase.DONE:
            self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out."""
        return len(self._buf)

    @property
    def should_pause(self) -> bool:
        """A response is being made and the next request has buffered a head's worth:
        stop reading until the response is out (a client cannot queue without bound)."""
        return self.phase is Phase.RESPONDING and len(self._buf) > MAX_HEAD_SIZE

    def next_event(self) -> Event | None:
        """The next event, or None until more bytes arrive or the application moves on."""
        phase = self.phase
        if phase is Phase.HEAD:
            return self._next_head()
        if phase is Phase.BODY:
            return self._next_body()
        return None

    def _next_head(self) -> RequestReceived | Refused | None:
        buf = self._buf
        try:
            end = find_head_end(buf)  # HandshakeError(400) past the head size limit
            if end < 0:
                return None
            request = parse_request(bytes(buf[:end]))
        except HandshakeError as exc:
            self._keep_alive = False
            self._move("bad_head")
            return Refused(exc.status, exc.reason, exc.headers)
        del buf[:end]
        self.request = request
        self._keep_alive = persistent(request) and not declares_body(request)
        self._move("head")
        return RequestReceived(request)

    def _next_body(self) -> BodyReceived | None:
        buf = self._buf
        length = self._body_length
        if len(buf) < length:
            return None
        body = bytes(buf[:length])
        del buf[:length]  # what follows is the next request
        self._move("body")
        return BodyReceived(body)

    # -- what the application does ------------------------------------------------------

    def read_body(self, limit: int) -> Refused | None:
        """Read the current request's body (at most ``limit`` bytes) → None, after which
        :meth:`next_event` gives :class:`BodyReceived`, or the refusal to answer."""
        if self.phase is not Phase.ROUTING or self.request is None:
            raise HttpStateError(f"no body to read in phase {self.phase.value}")
        length = body_length(self.request, limit)
        if isinstance(length, Refused):
            self._keep_alive = False
            self._move("refuse_body")
            return length
        self._body_length = length
        self._keep_alive = persistent(self.request)  # the body will not be mistaken for a head
        self._move("read_body")
        return None

    def handle(self) -> None:
        """Answer the current request without reading a body."""
        self._move("handle")

    def upgrade(self) -> None:
        """A protocol switch is being decided: keep what arrives for the next protocol."""
        self._move("upgrade")

    def switched(self) -> bytes:
        """The switch is done (the 101 is out) → the bytes that followed the head."""
        self._move("switch")
        early = bytes(self._buf)
        self._buf.clear()
        return early

    @property
    def keep_alive(self) -> bool:
        """Whether the current request lets the connection serve another one."""
        return self._keep_alive

    def responded(self, keep: bool) -> bool:
        """The response is out; ``keep``: the application would serve another request →
        whether the connection does (then the phase is HEAD again, else DONE)."""
        kept = keep and self._keep_alive
        self._move("keep" if kept else "close")
        self.request = None
        self._keep_alive = False
        self._body_length = 0
        if not kept:
            self._buf.clear()
        return kept

"""HTTP/1.1 responses on the client side, sans-I/O: request bytes out, response head and body in.

The one response reader of every HTTP client pushbench runs itself: the
asyncio light clients (:mod:`pushbench.clients.sse`, :mod:`pushbench.clients.poll`,
on ``asyncio`` Protocols) and the gevent clients under Locust
(:mod:`pushbench.clients.locust_sse`, :mod:`pushbench.clients.locust_poll`, on
plain sockets). Neither goes through an HTTP library: an SSE stream never ends,
so a client must hand over body bytes as they arrive, and the polls want one
keep-alive connection whose every byte is counted. This module is the part that
needs no socket: :func:`request` builds a GET, and :class:`ResponseReader` turns
received bytes, in any chunking, into one response head and its body bytes —
framed by ``Content-Length``, by ``Transfer-Encoding: chunked`` (aiohttp and
uvicorn stream SSE that way), or by the end of the connection (the raw stack's
SSE) — then the next response of a keep-alive connection. The head is parsed
with :mod:`pushbench.wire.handshake`, the same code that reads a WebSocket
upgrade answer (the server side's request reader, :mod:`pushbench.wire.http11`,
shares it too).

Only what the push servers send is supported: no pipelining of requests, no
``1xx`` interim responses, trailers skipped.
"""

from __future__ import annotations

from enum import Enum

from .errors import HandshakeError
from .handshake import Response, find_head_end, parse_response

__all__ = ["BadResponse", "ResponseReader", "request"]

_HEX_DIGITS = b"0123456789abcdefABCDEF"
_MAX_CHUNK_LINE = 1024  # a chunk-size line (with extensions) longer than this is refused


class BadResponse(ValueError):
    """The server's bytes are not an HTTP/1.1 response this reader understands."""


def request(netloc: str, target: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A keep-alive ``GET target`` for ``netloc`` with ``headers``, as bytes.

    Header values are sent as UTF-8 (what browsers send for ``Last-Event-ID``);
    for the ASCII everything else is, that is the same bytes as latin-1.
    """
    lines = [f"GET {target} HTTP/1.1", f"Host: {netloc}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class _Framing(Enum):
    LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "until close"


class _Chunk(Enum):
    SIZE = "size line"
    DATA = "data"
    DATA_END = "CRLF after data"
    TRAILER = "trailer"


#: What a response head means for reading its body: (head, keep-alive, framing,
#: Content-Length), by the head's bytes.
HeadMeaning = tuple[Response, bool, _Framing, int]
_HEAD_CACHE: dict[bytes, HeadMeaning] = {}
_HEAD_CACHE_SIZE = 256  # distinct heads kept; all are forgotten when it fills


def _head_meaning(head: Response) -> HeadMeaning:
    """How the body after ``head`` is framed (RFC 9112 §6.3); BadResponse if unsupported."""
    connection = encoding = length = None
    for name, value in head.headers:  # one pass; a repeated field joins with ", "
        key = name.lower()
        if key == "connection":
            connection = value if connection is None else f"{connection}, {value}"
        elif key == "transfer-encoding":
            encoding = value if encoding is None else f"{encoding}, {value}"
        elif key == "content-length":
            length = value if length is None else f"{length}, {value}"
    keep_alive = connection is None or "close" not in connection.lower()
    if head.status in (204, 304):
        return head, keep_alive, _Framing.LENGTH, 0
    if encoding:
        if encoding.lower().rsplit(",", 1)[-1].strip() != "chunked":
            raise BadResponse(f"unsupported Transfer-Encoding {encoding!r}")
        return head, keep_alive, _Framing.CHUNKED, 0
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise BadResponse(f"bad Content-Length {length!r}")
        return head, keep_alive, _Framing.LENGTH, int(length)
    return head, False, _Framing.CLOSE, 0


class ResponseReader:
    """One response at a time; :meth:`next_response` readies it for the next one.

    :meth:`feed` returns the body bytes the new data completed (maybe none);
    ``head`` is set once the head has arrived (``head_size`` is its length on
    the wire) and ``done`` once the whole body has. Bytes beyond the end of a
    body stay buffered for the next response.
    """

    __slots__ = ("_buf", "_chunk", "_framing", "_left", "done", "head", "head_size", "keep_alive")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.head: Response | None = None
        self.head_size = 0
        self.done = False
        self.keep_alive = True
        self._framing = _Framing.CLOSE
        self._left = 0  # bytes of the body (LENGTH) or of the current chunk (CHUNKED)
        self._chunk = _Chunk.SIZE

    @property
    def buffered(self) -> int:
        """Bytes received and not handed out yet (the start of a next response, say)."""
        return len(self._buf)

    def body_framing(self) -> tuple[str, int]:
        """How the body after the head is framed: ("close" | "length" | "chunked", for
        "length" the body bytes not handed out yet) — for a reader that takes over the
        raw bytes (h45)."""
        framing = {_Framing.CLOSE: "close", _Framing.LENGTH: "length"}.get(self._framing)
        return framing or "chunked", self._left

    def next_response(self) -> bytes:
        """Forget the finished response → the body bytes a next one already completed
        (its head and body may have arrived with the previous response)."""
        if not self.done:
            raise BadResponse("the previous response is not complete")
        self.head = None
        self.head_size = 0
        self.done = False
        self._chunk = _Chunk.SIZE
        if not self._buf:
            return b""
        data = bytes(self._buf)
        self._buf.clear()
        return self.feed(data)

    def whole(self, data: bytes) -> tuple[Response, bytes, bool] | None:
        """``data`` as exactly one whole response framed by a Content-Length, whose
        head is one already read (:data:`_HEAD_CACHE`), while nothing is buffered
        and no response is under way → (head, body, keep-alive), the reader ready
        for the next response; None otherwise, the reader untouched (then
        :meth:`feed`). A poll answer usually arrives so, in one read: one lookup
        instead of the general path's steps.
        """
        if self.head is not None or self._buf:
            return None
        end = data.find(b"\r\n\r\n") + 4
        if end < 4:
            return None
        meaning = _HEAD_CACHE.get(data[:end])
        if meaning is None:
            return None
        head, keep_alive, framing, left = meaning
        if framing is not _Framing.LENGTH or len(data) - end != left:
            return None
        self.keep_alive = keep_alive
        return head, data[end:], keep_alive

    def feed(self, data: bytes) -> bytes:
        """Take received bytes → the body bytes they completed."""
        if self.done:
            self._buf += data
            return b""
        if self.head is None:
            if self._buf:
                self._buf += data
                data = bytes(self._buf)
                self._buf.clear()
            end = self._read_head(data)
            if end < 0:
                self._buf += data
                return b""
            data = data[end:]
        if self._framing is _Framing.CLOSE:
            return data
        if self._framing is _Framing.LENGTH:
            left = self._left
            if len(data) < left:
                self._left = left - len(data)
                return data
            self._left = 0
            self.done = True
            if len(data) == left:
                return data
            self._buf += data[left:]
            return data[:left]
        self._buf += data
        return self._dechunk()

    def feed_eof(self) -> None:
        """The connection ended: the end of an until-close body, else an error."""
        if self.head is not None and self._framing is _Framing.CLOSE:
            self.done = True
            self.keep_alive = False
        elif not self.done:
            raise BadResponse("connection closed before the response was complete")

    # --- the head ------------------------------------------------------------

    def _read_head(self, data: bytes) -> int:
        """Parse the head at the start of ``data`` → where its body starts (-1: not all in).

        What a head says depends on its bytes alone, and a server repeats the same
        head (a poll answer of the same size, a stream's headers): the parse of
        each distinct head is kept (:data:`_HEAD_CACHE`) and reused.
        """
        try:
            end = find_head_end(data)
            if end < 0:
                return -1
            raw = data[:end]
            meaning = _HEAD_CACHE.get(raw)
            if meaning is None:
                meaning = _head_meaning(parse_response(raw))
                if len(_HEAD_CACHE) >= _HEAD_CACHE_SIZE:
                    _HEAD_CACHE.clear()
                _HEAD_CACHE[raw] = meaning
        except HandshakeError as exc:
            raise BadResponse(f"bad response head: {exc}") from exc
        head, keep_alive, framing, left = meaning
        self.head = head
        self.head_size = end
        self.keep_alive = keep_alive
        self._framing = framing
        if framing is _Framing.LENGTH:
            self._left = left
            if left == 0:
                self.done = True
        elif framing is _Framing.CHUNKED:
            self._chunk = _Chunk.SIZE
        return end

    # --- chunked bodies --------------------------------------------------------

    def _dechunk(self) -> bytes:
        """Decode what the buffer holds of a chunked body (RFC 9112 §7.1)."""
        buf = self._buf
        out = bytearray()
        pos = 0
        while not self.done:
            state = self._chunk
            if state is _Chunk.DATA:
                take = min(self._left, len(buf) - pos)
                if take == 0:
                    break
                out += buf[pos : pos + take]
                pos += take
                self._left -= take
                if self._left == 0:
                    self._chunk = _Chunk.DATA_END
                continue
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                if len(buf) - pos > _MAX_CHUNK_LINE:
                    raise BadResponse("chunk line too long")
                break
            line = bytes(buf[pos:nl])
            pos = nl + 2
            if state is _Chunk.SIZE:
                size = line.split(b";", 1)[0].strip(b" \t")
                if not size or size.strip(_HEX_DIGITS):  # int() would also take "0x", "_", "-"
                    raise BadResponse(f"bad chunk size {size!r}")
                self._left = int(size, 16)
                self._chunk = _Chunk.DATA if self._left else _Chunk.TRAILER
            elif state is _Chunk.DATA_END:
                if line:
                    raise BadResponse("chunk data longer than its size")
                self._chunk = _Chunk.SIZE
            elif not line:  # the empty line ending the trailer section
                self.done = True
        del buf[:pos]
        return bytes(out)

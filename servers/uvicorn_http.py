"""uvicorn's httptools protocol with a request-head timeout, a head size limit, and the
contract's JSON for the 400s it answers itself.

uvicorn 0.54 arms no timer until a first response is complete, and a partial head
after one cancels its keep-alive timer: a slowloris was held forever. httptools has
no head size limit (a 1 MiB header or 5,000 headers got 200). And uvicorn's own 400
is ``text/plain`` ("Invalid HTTP request received."). Here: a connection still
without a whole head ``head_timeout`` after it connected or after its last
response is closed; a head over :data:`~pushbench.wire.handshake.MAX_HEAD_SIZE`
bytes (the raw stack's limit) is refused with 400; every such 400 is JSON.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pushbench.deadline import LazyDeadline
from pushbench.service import HttpError
from pushbench.wire.handshake import MAX_HEAD_SIZE

__all__ = ["BoundedHttpToolsProtocol", "bounded_protocol"]

_BAD_REQUEST = HttpError(400, "bad request").body()


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol bounded per connection; ``head_timeout`` is set by the stack.

    One timer per connection, re-armed lazily (:class:`~pushbench.deadline.LazyDeadline`):
    each head awaited moves a deadline, and the timer, when it fires early (the deadline
    moved on since it was armed), arms itself again for the new one; when no head is
    awaited (a request is being answered, a long poll held) it lapses until the next
    one. A keep-alive connection
    then costs no timer per request — arming and cancelling one per request, as
    uvicorn's own keep-alive timer does, was ~2 % of a short-poll server's CPU.
    """

    head_timeout = 30.0
    _head_clock: LazyDeadline | None = None  # made with the connection
    _head_bytes = -1  # bytes of the current unfinished head, -1 while none is awaited
    _tail = b""  # the last bytes of the unfinished head (a terminator may span chunks)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_clock = LazyDeadline(self.loop)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_bytes = -1
        if self._head_clock is not None:
            self._head_clock.close()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._tail = b""
        assert self._head_clock is not None
        self._head_clock.expire_at(self.loop.time() + self.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        if self._head_bytes < 0 or self.transport.is_closing():
            return  # no head awaited: the next one sets a deadline again
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        # The head ends at the first blank line; a chunk that completes it may carry a
        # body of any size after it, which is no part of the head. ``_tail`` keeps the
        # last 3 bytes of the head so far, for a terminator split across chunks.
        if self._head_bytes >= 0:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            head = self._head_bytes + (len(data) if end < 0 else end + 4 - len(self._tail))
            if head > MAX_HEAD_SIZE:
                self._head_bytes = -1
                self.send_400_response("head too large")
                return
            self._head_bytes = head
            self._tail = seen[-3:] if end < 0 else b""
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_bytes = -1
        if self._head_clock is not None:
            self._head_clock.clear()  # the timer, if armed, lapses when it fires
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_head()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 with the contract's JSON body (``msg`` is uvicorn's, not sent)."""
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_BAD_REQUEST) + _BAD_REQUEST
        )
        self.transport.close()


def bounded_protocol(head_timeout: float) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with this head timeout."""
    return type("BoundedHttpTools", (BoundedHttpToolsProtocol,), {"head_timeout": head_timeout})

"""The polling Locust sessions: the gevent twin of :mod:`pushbench.clients.poll`.

Long and short polling share :class:`PollSession` (one keep-alive connection
per user, answers read with :class:`~pushbench.clients.locust_http.ResponseReader`
and recorded as a batch); they differ only in when the next request goes out.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import gevent

from pushbench.schema.worker import WorkerSpec

from .common import SessionEnded, clock
from .locust_common import PushSession, SessionHost
from .locust_http import ResponseReader, request

__all__ = ["LongPollSession", "PollSession", "ShortPollSession"]

_GOLDEN = 0.6180339887498949
_READ_SLACK_S = 10.0  # beyond the poll timeout, how long a poll answer may take


class PollSession(PushSession):
    """``GET /poll?topic=&since=&timeout=`` on one keep-alive connection per user.

    The first exchange of every connection is a short poll (``timeout=0``):
    it fetches the cursor without waiting, so the connection counts as
    established at once, and its bytes are the connection's handshake bytes.
    """

    LONG: ClassVar[bool]

    def __init__(self, conn: int, spec: WorkerSpec, process: SessionHost) -> None:
        super().__init__(conn, spec, process)
        self.cursor: int | None = None
        self.keep_alive = True
        self.read_timeout_s = (spec.poll_timeout_s if self.LONG else 0.0) + _READ_SLACK_S

    def session(self) -> None:
        with self.process.gate:
            t0 = clock()
            self.connect(self.read_timeout_s)
            self.poll(0.0, handshake=True)
        self.established(t0)
        while self.keep_alive:
            self.next_poll()

    @abstractmethod
    def next_poll(self) -> None: ...

    def poll(self, timeout: float, *, handshake: bool = False) -> None:
        """One request and its answer, recorded; the answer's ``last`` is the next cursor."""
        cursor = self.cursor
        target = (
            self.spec.target("/poll", since=cursor, timeout=timeout)
            if cursor is not None
            else self.spec.target("/poll", timeout=timeout)
        )
        self.send(request(self.netloc, target), handshake=handshake)
        reader = ResponseReader()
        body = bytearray()
        while not reader.done:
            data = self.recv(handshake=handshake)
            if not data:
                reader.feed_eof()
                break
            body += reader.feed(data)
        now = clock()  # the batch's arrival: the last byte of the body is in
        self.stats.requests += 1
        self.keep_alive = reader.keep_alive
        assert reader.head is not None
        if reader.head.status != 200:
            raise SessionEnded(f"/poll answered {reader.head.status}")
        self.cursor = self.sink.deliver_batch(self, bytes(body), now)


class LongPollSession(PollSession):
    """Each request is held until a message arrives or ``poll_timeout_s`` passes."""

    REQUEST_TYPE = "LONGPOLL"
    LONG = True

    def next_poll(self) -> None:
        self.poll(self.spec.poll_timeout_s)


class ShortPollSession(PollSession):
    """One request per ``poll_interval_s`` on a schedule that never drifts: request k at
    ``start + k·interval`` (start offset per user by a golden-ratio fraction of the
    interval); slots a late answer overran are skipped and counted in ``missed_polls``."""

    REQUEST_TYPE = "SHORTPOLL"
    LONG = False

    def __init__(self, conn: int, spec: WorkerSpec, process: SessionHost) -> None:
        super().__init__(conn, spec, process)
        self.interval_ns = max(1, int(spec.poll_interval_s * 1e9))
        self.phase_ns = int((conn * _GOLDEN) % 1.0 * self.interval_ns)
        self._start: int | None = None
        self._k = 0

    def next_poll(self) -> None:
        if self._start is None:
            self._start = clock() + self.phase_ns
        interval = self.interval_ns
        due = self._start + self._k * interval
        now = clock()
        if due > now:
            gevent.sleep((due - now) / 1e9)
        else:
            behind = (now - due) // interval  # whole slots already past: skipped
            self.stats.missed_polls += behind
            self._k += behind
        self._k += 1
        self.poll(0.0)

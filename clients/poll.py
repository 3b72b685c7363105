"""The light polling clients: long polling with a cursor, and short polling on a fixed
schedule, on an asyncio Protocol and the shared response reader
(:mod:`pushbench.wire.http_response`).

Both speak ``GET /poll?topic=&since=&timeout=`` → ``{"last":N,"messages":[…]}``
over one keep-alive connection per client, and hand each answer to
:meth:`Recorder.record_batch`: one receive time, taken when the read that
completed the body returned, for all messages of the batch. ``last`` becomes the
cursor of the next request, so nothing is lost or received twice as long as the
server's history still holds what was missed.

The receive path has no ``await``: the next request is written from the callback
that read the answer (long polling) or from a timer (short polling), as bytes
prepared once — the request with ``since=`` cut out, the cursor's digits put
in per request.

The first exchange on every connection is a short poll (``timeout=0``; without
``since`` the very first time): it fetches the cursor without waiting, so the
connection counts as established at once (a long poll would hold it until the
first message), and its bytes — request and answer — are what this transport
reports as handshake bytes; counting then runs from that answer to the end.
When the server closes the keep-alive connection between answers, the client
reconnects at once (a reconnect, not an error); a connection that ends with a
request unanswered, or an answer that does not come within the poll timeout +
10 s, is an error.

Short polling issues request *k* at ``start + k·interval``
(:class:`ShortPollSchedule`); a poll that returns late never shifts the
schedule: the slots it overran are skipped and counted (``missed_polls``). Each
connection's ``start`` is offset by a different fraction of the interval
(golden-ratio spacing of the connection id), so a thousand clients do not poll
in lockstep the way no real clients would.

:mod:`.poll_aiohttp` is the same pair on aiohttp (``longpoll-aiohttp``,
``shortpoll-aiohttp``).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pushbench.schema.worker import WorkerSpec
from pushbench.wire.http_response import BadResponse, request

from .common import ConnStats, SessionEnded, clock
from .http_light import HttpProtocol, LightHttpClient
from .recorder import Recorder

__all__ = [
    "READ_SLACK_S",
    "LongPollClient",
    "PollClient",
    "ShortPollClient",
    "ShortPollSchedule",
    "run_long",
    "run_short",
]

_GOLDEN = 0.6180339887498949
READ_SLACK_S = 10.0  # beyond the poll timeout, how long an answer may take
_SENTINEL = 918273645546372819  # stands for the cursor while the request is prepared


class ShortPollSchedule:
    """Request *k* at ``start + k·interval``, ``start`` = the first call + the connection's
    phase; late requests skip the slots they overran (counted in ``missed_polls``)."""

    __slots__ = ("_k", "_start", "interval_ns", "phase_ns")

    def __init__(self, conn_id: int, interval_s: float) -> None:
        self.interval_ns = max(1, int(interval_s * 1e9))
        self.phase_ns = int((conn_id * _GOLDEN) % 1.0 * self.interval_ns)
        self._start: int | None = None
        self._k = 0

    def wait_ns(self, now: int, stats: ConnStats) -> int:
        """Nanoseconds until the next request is due (0: send it now)."""
        if self._start is None:
            self._start = now + self.phase_ns
        interval = self.interval_ns
        due = self._start + self._k * interval
        self._k += 1
        if due > now:
            return due - now
        behind = (now - due) // interval  # whole slots already past: skipped
        stats.missed_polls += behind
        self._k += behind
        return 0


class _PollProtocol(HttpProtocol):
    """One keep-alive connection: a request, its answer, the next request."""

    client: PollClient

    def __init__(self, client: PollClient) -> None:
        super().__init__(client)
        self.in_flight = False
        self.sent_ns = 0
        self.timer: asyncio.TimerHandle | None = None  # the next short poll
        self._body = b""
        self.first_request = client.first_request()  # with the cursor at connection time
        self._watchdog: asyncio.TimerHandle | None = None

    def on_connected(self) -> None:
        # Armed only now: a connection that never came up must leave no timer behind.
        self._watchdog = self.loop.call_later(self.client.read_timeout_s, self._watch)
        self.send(self.first_request)

    def send(self, data: bytes) -> None:
        self.timer = None
        self.in_flight = True
        self.sent_ns = clock()
        self.write(data)

    def on_data(self, data: bytes, now: int) -> None:
        if not self.in_flight:
            raise BadResponse("bytes from the server while no request was out")
        reader = self.reader
        if not self._body:  # an answer in one read: one lookup (ResponseReader.whole)
            got = reader.whole(data)
            if got is not None:
                head, body, keep = got
                self._answered(head.status, body, keep, now)
                return
        part = reader.feed(data)
        if part:
            self._body = self._body + part if self._body else part
        if reader.done:
            self._answer(now)

    def on_eof(self) -> None:
        if not self.in_flight:
            return  # the server closed an idle keep-alive connection: a clean end
        self.reader.feed_eof()  # raises unless an until-close body ends here
        self._answer(clock())

    def _answer(self, now: int) -> None:
        reader = self.reader
        head = reader.head
        assert head is not None
        body = self._body
        self._body = b""
        keep = reader.keep_alive
        if reader.next_response() or reader.buffered:
            raise BadResponse("bytes after the answer, before the next request")
        self._answered(head.status, body, keep, now)

    def _answered(self, status: int, body: bytes, keep: bool, now: int) -> None:
        """The whole answer is in, nothing after it: record it, then the next request."""
        self.in_flight = False
        first = not self.opened.done()
        self.client.answered(status, body, now)
        if first:
            self.start_meter()  # the first exchange was this connection's handshake
            self.opened.set_result(now)
        if keep:
            self.client.next_request(self, now)
        else:
            self.end()

    def _watch(self) -> None:
        if self.in_flight and clock() - self.sent_ns > self.client.read_timeout_s * 1e9:
            self.fail(TimeoutError(f"no answer within {self.client.read_timeout_s:g} s"))
            return
        self._watchdog = self.loop.call_later(self.client.read_timeout_s / 2, self._watch)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.in_flight and exc is None and self.failure is None:
            self.failure = SessionEnded("connection closed before the answer")
        super().connection_lost(exc)


class PollClient(LightHttpClient):
    """What both kinds share: requests prepared once, the answer recorded, the cursor."""

    LONG: ClassVar[bool]

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        self.cursor: int | None = None
        self.timeout_s = spec.poll_timeout_s if self.LONG else 0.0
        self.read_timeout_s = self.timeout_s + READ_SLACK_S
        self._head, self._tail = self._split(self.timeout_s)
        self._record_batch = recorder.record_batch

    def _split(self, timeout: float) -> tuple[bytes, bytes]:
        """The request with ``since=<cursor>``, cut where the cursor's digits go."""
        data = request(self.netloc, self.spec.target("/poll", since=_SENTINEL, timeout=timeout))
        mark = b"%d" % _SENTINEL
        if data.count(mark) != 1:
            raise ValueError(f"cannot prepare the poll request {data!r}")
        head, _, tail = data.partition(mark)
        return head, tail

    def poll_request(self, cursor: int) -> bytes:
        """``GET /poll?…&since=<cursor>&timeout=<this kind's>``, as bytes."""
        return b"%s%d%s" % (self._head, cursor, self._tail)

    def first_request(self) -> bytes:
        """A connection's first request: a short poll (with the cursor, once there is one)."""
        cursor = self.cursor
        target = (
            self.spec.target("/poll", since=cursor, timeout=0.0)
            if cursor is not None
            else self.spec.target("/poll", timeout=0.0)
        )
        return request(self.netloc, target)

    def resumable(self) -> bool:
        # The cursor of the first answer is a position to resume from (churn: the soak).
        return self.cursor is not None

    def make_protocol(self) -> HttpProtocol:
        return _PollProtocol(self)

    def retry_delay(self, failures: int) -> float:
        # A keep-alive connection the server closed after serving: reconnect at once.
        return 0.0 if failures == 0 else super().retry_delay(failures)

    def answered(self, status: int, body: bytes, now: int) -> None:
        """One answer arrived at ``now``: count it, record its batch, move the cursor."""
        stats = self.stats
        stats.requests += 1
        if status != 200:
            raise SessionEnded(f"/poll answered {status}")
        last, count = self._record_batch(self.conn_id, body, now)
        if last < 0:
            raise SessionEnded("unreadable /poll answer")
        self.cursor = last
        if count:
            stats.messages += count
            if last > stats.last_seq:
                stats.last_seq = last
        else:
            stats.empty_polls += 1

    def next_request(self, protocol: _PollProtocol, now: int) -> None:
        """After an answer: when and what to ask next."""
        raise NotImplementedError


class LongPollClient(PollClient):
    """Hold each request until a message arrives or ``poll_timeout_s`` passes."""

    LONG = True

    def next_request(self, protocol: _PollProtocol, now: int) -> None:
        assert self.cursor is not None
        protocol.send(self.poll_request(self.cursor))


class ShortPollClient(PollClient):
    """Answer at once; one request per ``poll_interval_s``, on a schedule that never drifts."""

    LONG = False

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        self.schedule = ShortPollSchedule(conn_id, spec.poll_interval_s)

    def next_request(self, protocol: _PollProtocol, now: int) -> None:
        wait = self.schedule.wait_ns(clock(), self.stats)
        if wait <= 0:
            self._send(protocol)
        else:
            protocol.timer = protocol.loop.call_later(wait / 1e9, self._send, protocol)

    def _send(self, protocol: _PollProtocol) -> None:
        assert self.cursor is not None
        protocol.send(self.poll_request(self.cursor))


run_long = LongPollClient.serve
run_short = ShortPollClient.serve

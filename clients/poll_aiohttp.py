"""The reference polling clients on aiohttp: long polling with a cursor, and short
polling on a fixed schedule (the ``longpoll-aiohttp`` and ``shortpoll-aiohttp``
transports; the default ``longpoll`` and ``shortpoll`` are the light clients, :mod:`.poll`).

Both speak ``GET /poll?topic=&since=&timeout=`` → ``{"last":N,"messages":[…]}``
over one keep-alive connection per client (its own pool of one), and hand
each answer to :meth:`Recorder.record_batch`: one receive time, taken when the
whole body has arrived, for all messages of the batch. ``last`` becomes the
cursor of the next request, so nothing is lost or received twice as long as
the server's history still holds what was missed.

The first request of a client is a short poll without ``since``: it opens the
connection and fetches the cursor without waiting, so the connection counts
as established at once (a long poll would hold it until the first message).
Its bytes — request and answer — are what this transport reports as
handshake bytes; counting then runs from that answer to the end. When the
keep-alive connection is replaced (the server closed it), the new socket is
metered the same way and counted as a reconnect; the client learns of new
connections through aiohttp's ``socket_factory`` (:meth:`Client.http`).

Short polling keeps the light client's schedule (:class:`.poll.ShortPollSchedule`).
"""

from __future__ import annotations

import asyncio
import socket
from typing import ClassVar

import aiohttp

from pushbench.schema.worker import WorkerSpec

from .common import Client, ConnStats, SessionEnded, clock
from .poll import READ_SLACK_S, ShortPollSchedule
from .recorder import Recorder
from .tcpinfo import TcpMeter

__all__ = ["LongPollAiohttpClient", "PollAiohttpClient", "ShortPollAiohttpClient"]
__all__ += ["run_long", "run_short"]


class PollAiohttpClient(Client):
    """What both kinds share: one request, its batch, the cursor, the socket meter."""

    LONG: ClassVar[bool]

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        self.cursor: int | None = None
        self._meter = TcpMeter()
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=spec.connect_timeout_s,
            sock_read=(spec.poll_timeout_s if self.LONG else 0.0) + READ_SLACK_S,
        )

    async def session(self) -> None:
        async with self.publishing(self.publish_http):
            if self.cursor is None:
                await self.poll(0.0)
            while True:
                await self.next_poll()

    async def next_poll(self) -> None:
        raise NotImplementedError

    async def poll(self, timeout: float) -> int:
        """One request → the number of messages it brought."""
        stats = self.stats
        cursor = self.cursor
        url = (
            self.spec.url("/poll", since=cursor, timeout=timeout)
            if cursor is not None
            else self.spec.url("/poll", timeout=timeout)
        )
        t0 = clock()
        async with self.http().get(url, timeout=self._timeout) as resp:
            t_head = clock()
            body = await resp.read()
            now = clock()  # the batch's arrival: the last byte of the body is in
        stats.requests += 1
        if resp.status != 200:
            raise SessionEnded(f"/poll answered {resp.status}")
        sock = self.new_socket
        if sock is not None:  # this answer came on a new connection
            self.new_socket = None
            self._new_socket(sock, t_head - t0)
        last, count = self.recorder.record_batch(self.conn_id, body, now)
        if last < 0:
            raise SessionEnded("unreadable /poll answer")
        self.cursor = last
        if count:
            stats.messages += count
            if last > stats.last_seq:
                stats.last_seq = last
        else:
            stats.empty_polls += 1
        return count

    def resumable(self) -> bool:
        # The cursor of the first answer is a position to resume from (churn: the soak).
        return self.cursor is not None

    def _new_socket(self, sock: socket.socket, connect_ns: int) -> None:
        """The answer came on a connection not seen before: account for the old one,
        meter the new one from here (this first exchange counts as its handshake)."""
        stats = self.stats
        stats.add_meter(self._meter)
        self._meter = TcpMeter()
        stats.established(connect_ns)
        stats.start_meter(self._meter, sock)

    async def close(self) -> None:
        self.stats.add_meter(self._meter)


class LongPollAiohttpClient(PollAiohttpClient):
    """Hold each request until a message arrives or ``poll_timeout_s`` passes."""

    LONG = True

    async def next_poll(self) -> None:
        await self.poll(self.spec.poll_timeout_s)


class ShortPollAiohttpClient(PollAiohttpClient):
    """Answer at once; one request per ``poll_interval_s``, on a schedule that never drifts."""

    LONG = False

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        self.schedule = ShortPollSchedule(conn_id, spec.poll_interval_s)

    async def next_poll(self) -> None:
        wait = self.schedule.wait_ns(clock(), self.stats)
        if wait > 0:
            await asyncio.sleep(wait / 1e9)
        await self.poll(0.0)


run_long = LongPollAiohttpClient.serve
run_short = ShortPollAiohttpClient.serve

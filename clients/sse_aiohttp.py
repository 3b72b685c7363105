"""The reference Server-Sent Events client: a streaming aiohttp GET read with
:class:`pushbench.sse.EventParser`, resuming with ``Last-Event-ID`` like EventSource
(the ``sse-aiohttp`` transport; the default ``sse`` is the light client, :mod:`.sse`).

The receive time is read once per chunk as it leaves aiohttp's stream, before
the chunk is parsed; every event's data goes to :meth:`Recorder.record`. When
the server ends the stream, the client waits the ``retry`` the server sent
(EventSource's rule; doubled per consecutive failure) and reconnects with the
last event id, so the server replays what was missed and nothing is lost or
received twice. The id survives across connections (an ``id:`` block without
data moves it too; an empty ``id:`` clears it, and then no header is sent); a
partial event cut off by a disconnect is discarded, as the spec requires.
"""

from __future__ import annotations

import asyncio

import aiohttp

from pushbench.schema.worker import WorkerSpec
from pushbench.sse import EventParser

from .common import Client, ConnStats, SessionEnded, clock
from .recorder import Recorder
from .sse import DEFAULT_RETRY_MS, HEADERS, eventsource_delay
from .tcpinfo import TcpMeter

__all__ = ["SseAiohttpClient", "run"]


class SseAiohttpClient(Client):
    """``GET /sse?topic=`` with aiohttp; ``Last-Event-ID`` on reconnect; honours ``retry:``."""

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        self.last_event_id = ""  # EventSource's last event ID string; "" sends no header
        self.retry_ms = DEFAULT_RETRY_MS

    def retry_delay(self, failures: int) -> float:
        return eventsource_delay(self.retry_ms, failures)

    async def session(self) -> None:
        headers = dict(HEADERS)
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        meter = TcpMeter()
        t0 = clock()
        async with asyncio.timeout(self.spec.connect_timeout_s):
            resp = await self.http().get(self.spec.url("/sse"), headers=headers)
        try:
            if resp.status != 200:
                raise SessionEnded(f"/sse answered {resp.status}")
            self.stats.established(clock() - t0)
            connection = resp.connection
            transport = connection.transport if connection is not None else None
            self.stats.start_meter(meter, transport.get_extra_info("socket") if transport else None)
            async with self.publishing(self.publish_http):
                await self._receive(resp.content)
        finally:
            self.stats.add_meter(meter)
            resp.close()

    async def _receive(self, content: aiohttp.StreamReader) -> None:
        parser = EventParser(self.last_event_id)
        record = self.recorder.record
        conn = self.conn_id
        stats = self.stats
        try:
            async for chunk in content.iter_any():
                now = clock()
                events = parser.feed(chunk)
                for event in events:
                    seq = record(conn, event.data, now)
                    if seq > stats.last_seq:
                        stats.last_seq = seq
                stats.messages += len(events)
                self.last_event_id = parser.last_event_id
            parser.feed_eof()  # the server ended the stream: a partial event is dropped
        finally:
            if parser.retry_ms is not None:
                self.retry_ms = parser.retry_ms


run = SseAiohttpClient.serve

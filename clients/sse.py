"""The light Server-Sent Events client: an asyncio Protocol, the shared response reader
(:mod:`pushbench.wire.http_response`) and :class:`pushbench.sse.EventParser`.

``GET /sse?topic=`` with ``Accept: text/event-stream`` (and ``Last-Event-ID``
on a reconnection), written as one prepared request when TCP is up. The
response head makes the connection established (its bytes, with the request's,
are the handshake bytes); the body — chunked (aiohttp, uvicorn), sized, or
until the connection ends (the raw stack) — goes through the event parser as
it arrives, and every event's data to :meth:`Recorder.record`, all with the
one clock reading taken when the read returned (:mod:`.http_light`).

Resumption is EventSource's: when the server ends the stream, the client
waits the ``retry`` the server sent (doubled per consecutive failure) and
reconnects with the last event id, so the server replays what was missed and
nothing is lost or received twice. The id survives across connections (an
``id:`` block without data moves it too; an empty ``id:`` clears it, and then no
header is sent); a partial event cut off by a disconnect is discarded, as the
spec requires. A chunked stream cut off mid-chunk is an error (aiohttp's
client raises too); an until-close stream ending is the normal end.

:mod:`.sse_aiohttp` is the same client on aiohttp (the ``sse-aiohttp`` transport).
"""

from __future__ import annotations

import asyncio

from pushbench.schema.worker import WorkerSpec
from pushbench.sse import EventParser
from pushbench.wire.http_response import request

from .common import ConnStats, SessionEnded
from .http_light import HttpProtocol, LightHttpClient
from .recorder import Recorder
from .rxengine import COMPILED, DONE, KIND_SSE, REMOVED, Handed, choice
from .tcpinfo import TcpMeter

__all__ = ["DEFAULT_RETRY_MS", "HEADERS", "SseClient", "eventsource_delay", "run"]

DEFAULT_RETRY_MS = 3000  # EventSource's usual default, until the server sends one
HEADERS: tuple[tuple[str, str], ...] = (
    ("Accept", "text/event-stream"),
    ("Cache-Control", "no-cache"),
)


def eventsource_delay(retry_ms: int, failures: int) -> float:
    """Seconds before reconnecting: the server's ``retry``, doubled per consecutive
    failure, at most 30 s (what the SSE clients of every engine wait)."""
    return min(30.0, retry_ms / 1000 * float(1 << min(failures, 16)))


class _SseProtocol(HttpProtocol):
    """One event stream: the response head, then events into the recorder."""

    client: SseClient

    def __init__(self, client: SseClient, request_bytes: bytes) -> None:
        super().__init__(client)
        self.request = request_bytes
        self.parser = EventParser(client.last_event_id)
        self._record = client.recorder.record
        self._conn = client.conn_id
        self._head = b""  # h45: the raw bytes until the head is in (the loop takes the rest)

    def on_connected(self) -> None:
        self.write(self.request)

    def on_data(self, data: bytes, now: int) -> None:
        reader = self.reader
        if reader.head is not None:
            self._events(reader.feed(data), now)
        else:
            raw = self._head = self._head + data
            body = reader.feed(data)
            head = reader.head
            if head is None:
                return
            if head.status != 200:
                raise SessionEnded(f"/sse answered {head.status}")
            self.start_meter()
            self.opened.set_result(now)
            if self.client.rx_engine == COMPILED and self.transport is not None:
                self._hand_over(self.transport, raw[reader.head_size :], body, now)
                return
            if body:
                self._events(body, now)
        if reader.done:  # a sized or chunked body ended: so did the stream
            self._stream_over()
            self.end()

    def on_eof(self) -> None:
        if self.reader.done or self.reader.head is None:
            return  # over already, or refused before any answer (connection_lost says so)
        self.reader.feed_eof()  # an until-close stream ends here; a cut chunked one raises
        self._stream_over()

    def _events(self, body: bytes, now: int) -> None:
        if not body:
            return
        parser = self.parser
        events = parser.feed(body)
        if events:
            record = self._record
            conn = self._conn
            last = 0
            for event in events:
                seq = record(conn, event.data, now)
                if seq > last:
                    last = seq
            stats = self.stats
            stats.messages += len(events)
            if last > stats.last_seq:
                stats.last_seq = last
        self.client.last_event_id = parser.last_event_id  # an id-only block moves it too

    def _hand_over(self, transport: asyncio.Transport, rest: bytes, body: bytes, now: int) -> None:
        """h45: the compiled loop reads the body from here (the raw bytes after the head)."""
        framing, left = self.reader.body_framing()
        if framing == "length":
            left += len(body)  # what the reader handed out of it is in ``rest`` too
        meter, self.meter = self.meter, TcpMeter()
        client = self.client
        self.handed = Handed(
            client.recorder,
            transport,
            self._conn,
            self.stats,
            meter,
            rest,
            now,
            kind=KIND_SSE,
            framing=(framing, left),
            last_id=client.last_event_id.encode(),
            on_sse=self._sse_state,
        )

    def _sse_state(self, last_id: bytes | None, retry_ms: int) -> None:
        if last_id is not None:
            self.client.last_event_id = self.parser.last_event_id = last_id.decode(
                "utf-8", "replace"
            )
        if retry_ms >= 0:
            self.parser.retry_ms = retry_ms

    async def handed_session(self, handed: Handed) -> None:
        """The rest of the session, the loop receiving: a stream that ended (its body,
        or an until-close connection) returns, a failure raises."""
        try:
            ending = await handed.wait()
        finally:
            handed.close()
            self.received += handed.received
        failure = ending.exception()
        if failure is not None:
            raise failure
        assert ending.status in (DONE, REMOVED)  # the stream ended, or we dropped it

    def _stream_over(self) -> None:
        self.parser.feed_eof()  # a partial event is dropped


class SseClient(LightHttpClient):
    """``GET /sse?topic=``; ``Last-Event-ID`` on reconnect; honours ``retry:``."""

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        super().__init__(conn_id, spec, recorder, stats)
        self.last_event_id = ""  # EventSource's last event ID string; "" sends no header
        self.retry_ms = DEFAULT_RETRY_MS
        self.rx_engine = choice(spec, recorder)  # h45: the compiled loop receives, or asyncio
        self.target = spec.target("/sse")

    def retry_delay(self, failures: int) -> float:
        return eventsource_delay(self.retry_ms, failures)

    def request_bytes(self) -> bytes:
        """The request of the next connection (with the id to resume from, if any)."""
        headers = HEADERS
        if self.last_event_id:
            headers = (*HEADERS, ("Last-Event-ID", self.last_event_id))
        return request(self.netloc, self.target, headers)

    def make_protocol(self) -> HttpProtocol:
        return _SseProtocol(self, self.request_bytes())

    def finished(self, protocol: HttpProtocol) -> None:
        assert isinstance(protocol, _SseProtocol)
        if protocol.parser.retry_ms is not None:
            self.retry_ms = protocol.parser.retry_ms


run = SseClient.serve

"""The SSE Locust session: the gevent twin of :mod:`pushbench.clients.sse`.

``GET /sse?topic=`` read with :class:`~pushbench.clients.locust_http.ResponseReader`
(chunked, sized or until-close bodies) and :class:`pushbench.sse.EventParser`;
``Last-Event-ID`` on reconnect, after the server's ``retry`` as EventSource waits.
"""

from __future__ import annotations

from pushbench.schema.worker import WorkerSpec
from pushbench.sse import EventParser

from .common import SessionEnded, clock
from .locust_common import PushSession, SessionHost
from .locust_http import ResponseReader, request

__all__ = ["SseSession"]


class SseSession(PushSession):
    """``GET /sse?topic=``; ``Last-Event-ID`` on reconnect; waits the server's ``retry``."""

    REQUEST_TYPE = "SSE"
    DEFAULT_RETRY_MS = 3000  # EventSource's usual default, until the server sends one

    def __init__(self, conn: int, spec: WorkerSpec, process: SessionHost) -> None:
        super().__init__(conn, spec, process)
        self.last_event_id = ""  # EventSource's last event ID string; "" sends no header
        self.retry_ms = self.DEFAULT_RETRY_MS

    def retry_delay(self, failures: int) -> float:
        return min(30.0, self.retry_ms / 1000 * float(1 << min(failures, 16)))

    def session(self) -> None:
        headers = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache")]
        if self.last_event_id:
            headers.append(("Last-Event-ID", self.last_event_id))
        reader = ResponseReader()
        with self.process.gate:
            t0 = clock()
            sock = self.connect(self.spec.connect_timeout_s)
            self.send(
                request(self.netloc, self.spec.target("/sse"), tuple(headers)), handshake=True
            )
            body = self.read_response_head(reader)
            now = clock()
            assert reader.head is not None
            if reader.head.status != 200:
                raise SessionEnded(f"/sse answered {reader.head.status}")
            sock.settimeout(None)
        self.established(t0)
        parser = EventParser(self.last_event_id)
        try:
            self._events(parser, body, now)
            while not reader.done:
                data = self.recv()
                now = clock()
                if not data:
                    reader.feed_eof()
                    break
                self._events(parser, reader.feed(data), now)
            parser.feed_eof()  # the stream ended: a partial event is dropped
        finally:
            if parser.retry_ms is not None:
                self.retry_ms = parser.retry_ms

    def _events(self, parser: EventParser, body: bytes, now: int) -> None:
        if not body:
            return
        events = parser.feed(body)
        if events:
            self.sink.deliver(self, [e.data for e in events], now)
        self.last_event_id = parser.last_event_id  # an id-only block moves it too

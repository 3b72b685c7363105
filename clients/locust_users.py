"""What the Locust users run: push sessions on gevent sockets over pushbench's own codecs.

A Locust user of ``clients/locustfile.py`` holds one :class:`PushSession` of
one transport and runs :meth:`PushSession.serve`: connect, receive until the
server ends the connection, reconnect with back-off, until Locust kills the
user's greenlet (``GreenletExit``, a ``BaseException``, passes every
``except Exception`` and closes the socket in ``finally``). A transport
subclass says only how one connection is opened and read, over the same
sans-I/O code the asyncio clients use: :mod:`pushbench.wire` (WebSocket
handshake and frames), :class:`pushbench.sse.EventParser`, and
:mod:`pushbench.clients.locust_http` (HTTP/1.1 heads, chunked and sized bodies).

Every message goes to :class:`MessageSink`: one row of the receipt arrays
(:class:`pushbench.clients.recorder.Recorder`, the asyncio clients' own receive path)
and one Locust request event — ``request_type`` per transport (``WS``,
``SSE``, ``LONGPOLL``, ``SHORTPOLL``), ``name`` the topic, ``response_time``
= receive − *scheduled* publish time in ms, ``response_length`` = the socket
bytes of the read that completed it (shared evenly when one read completes
several messages; bytes of reads that complete none, such as pings, SSE
comments or a partial frame, go to the next message). A failed connection
attempt fires an event named ``connect`` with the exception, an abnormal end
of an established one ``disconnect``.

:class:`LocustProcess` is the per-process part: the shared receipt arrays, a
limit on connections opening at once, the readiness file the runner's
wrapper (:mod:`pushbench.clients.locust_worker`) waits for, how late the gevent loop
wakes up, and the output written when the process quits. Without an output
directory (Locust run by hand) the arrays are a ring that is reused, so a
long run never fills them.

Byte counts come from the socket layer (what ``sendall`` wrote and ``recv``
returned; ``bytes_source`` "socket"): the handshake (WebSocket upgrade, SSE
request and response head, the first poll exchange of a connection) apart
from the rest, as the asyncio clients count them.
"""

from __future__ import annotations

import io
import json
import os
import socket as stdlib_socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import gevent
import gevent.lock
import gevent.socket
import numpy as np

from pushbench.results import atomic_write_bytes, atomic_write_json
from pushbench.schema.worker import WorkerSpec
from pushbench.sse import EventParser
from pushbench.wire import Close, Connection, Message, ProtocolError, Role, State
from pushbench.wire.handshake import check_response, client_request, find_head_end, parse_response

from .common import ConnStats, SessionEnded, clock
from .locust_http import ResponseReader, request
from .recorder import Recorder

__all__ = [
    "SESSIONS",
    "FireRequest",
    "LagMonitor",
    "LocustProcess",
    "MessageSink",
    "PushSession",
]

FireRequest = Callable[..., None]  # ``environment.events.request.fire`` (keywords only)
READ_SIZE = 65536
RING_CAPACITY = 1 << 16  # receipt rows when nothing is written out (a reused ring)
CLOSE_WAIT_S = 2.0  # after the close handshake, for the server to close TCP
_NORMAL_CLOSES = frozenset({1000, 1001})
_GOLDEN = 0.6180339887498949
_READ_SLACK_S = 10.0  # beyond the poll timeout, how long a poll answer may take
_NOT_AN_ENVELOPE = "not a pushbench message"


class MessageSink:
    """Receipt rows and Locust request events for every message of a process."""

    def __init__(self, fire: FireRequest, recorder: Recorder, *, ring: bool) -> None:
        self.fire = fire
        self.recorder = recorder
        self.ring_limit = recorder.capacity // 2 if ring else -1
        self._sched = memoryview(recorder.sched_ns)  # type: ignore[arg-type]
        self.events = 0  # successful request events fired (one per message)
        self.failures = 0  # failed request events fired

    def deliver(self, session: PushSession, payloads: list[bytes | bytearray], now: int) -> None:
        """The messages one read completed, all received at ``now``."""
        rec = self.recorder
        record = rec.record
        ring = self.ring_limit
        sched = self._sched
        fire = self.fire
        conn = session.conn
        request_type = session.REQUEST_TYPE
        name = session.name
        share, length = session.take_pending(len(payloads))  # the first gets the remainder
        stats = session.stats
        last = stats.last_seq
        delivered = 0
        for data in payloads:
            if rec.n == ring:
                rec.n = 0
            n0 = rec.n
            seq = record(conn, data, now)
            if seq < 0:
                self.failure(request_type, "message", ValueError(_NOT_AN_ENVELOPE), 0.0)
                continue
            if seq > last:
                last = seq
            fire(
                request_type=request_type,
                name=name,
                response_time=(now - sched[n0]) / 1e6 if rec.n > n0 else None,
                response_length=length,
                exception=None,
                context={},
            )
            length = share
            delivered += 1
        stats.messages += delivered
        stats.last_seq = last
        self.events += delivered

    def deliver_batch(self, session: PushSession, body: bytes, now: int) -> int:
        """A poll answer ``{"last":N,"messages":[…]}`` received at ``now`` → ``last``."""
        rec = self.recorder
        if self.ring_limit >= 0 and rec.n >= self.ring_limit:
            rec.n = 0
        n0 = rec.n
        last, count = rec.record_batch(session.conn, body, now)
        if last < 0:
            raise SessionEnded("unreadable /poll answer")
        stats = session.stats
        if not count:
            stats.empty_polls += 1
            return last
        stats.messages += count
        if last > stats.last_seq:
            stats.last_seq = last
        written = rec.n - n0  # fewer than count only when the arrays are full
        share, first = session.take_pending(count)
        sched = self._sched
        self.events += count
        for i in range(count):
            self.fire(
                request_type=session.REQUEST_TYPE,
                name=session.name,
                response_time=(now - sched[n0 + i]) / 1e6 if i < written else None,
                response_length=first if i == 0 else share,
                exception=None,
                context={},
            )
        return last

    def failure(self, request_type: str, name: str, exc: BaseException, elapsed_ms: float) -> None:
        self.failures += 1
        self.fire(
            request_type=request_type,
            name=name,
            response_time=elapsed_ms,
            response_length=0,
            exception=exc,
            context={},
        )


class LagMonitor:
    """How late a 1 ms ``gevent.sleep`` wakes up: every stall of the process's loop
    (a long callback, a collection, Locust's own work) delays the messages behind it."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.max_lag_ns = 0
        self.samples = 0
        self._greenlet: Any = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def reset(self) -> None:
        self.max_lag_ns = self.samples = 0

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _run(self) -> None:
        interval_ns = int(self.interval_s * 1e9)
        while True:
            t0 = clock()
            gevent.sleep(self.interval_s)
            lag = clock() - t0 - interval_ns
            self.samples += 1
            if lag > self.max_lag_ns:
                self.max_lag_ns = lag


class LocustProcess:
    """The push users of one Locust process (local, or one ``--worker``).

    ``out_dir`` (the wrapper's ``PUSHBENCH_RECEIPTS_DIR``) receives
    ``<pid>.ready`` while users connect (how many have settled: connected or
    failed their first attempt) and, from :meth:`write_outputs` when the
    process quits, ``<pid>.npz`` (receipt arrays; connection ids local to
    this process, in the order its users started) and ``<pid>.json``.
    """

    def __init__(
        self,
        fire: FireRequest,
        *,
        out_dir: Path | None = None,
        capacity: int = 2_000_000,
        connect_concurrency: int = 100,
    ) -> None:
        self.fire = fire
        self.out_dir = out_dir
        self.capacity = capacity if out_dir is not None else RING_CAPACITY
        self.gate = gevent.lock.Semaphore(connect_concurrency)
        self.sessions: list[PushSession] = []
        self.sink: MessageSink | None = None  # made with the first user: a master has none
        self.lag = LagMonitor()
        self.settled = 0
        self.role = "local"
        self.worker_index = 0

    def new_session(self, kind: type[PushSession], spec: WorkerSpec) -> PushSession:
        """A session for a new user; its connection id is its index in this process."""
        if self.sink is None:
            recorder = Recorder(self.capacity)
            self.sink = MessageSink(self.fire, recorder, ring=self.out_dir is None)
        self.lag.start()  # again after a stop, for the next test of a web UI session
        session = kind(len(self.sessions), spec, self)
        self.sessions.append(session)
        return session

    def on_settled(self) -> None:
        """A user's first attempt is over; the lag from here on is the run's."""
        self.settled += 1
        self.lag.reset()
        if self.out_dir is not None:
            _replace(self.out_dir / f"{os.getpid()}.ready", json.dumps({"settled": self.settled}))

    def result(self) -> dict[str, Any]:
        """This process's counters (the JSON written beside its receipts)."""
        sink = self.sink
        per_conn = []
        for s in self.sessions:
            entry = s.stats.to_dict()
            entry["bytes_source"] = "socket"
            per_conn.append(entry)
        return {
            "pid": os.getpid(),
            "role": self.role,
            "worker_index": self.worker_index,
            "users": len(self.sessions),
            "settled": self.settled,
            "request_types": sorted({s.REQUEST_TYPE for s in self.sessions}),
            "events": sink.events if sink is not None else 0,
            "failures": sink.failures if sink is not None else 0,
            "recorder": sink.recorder.counters() if sink is not None else {},
            "max_loop_lag_ns": self.lag.max_lag_ns,
            "loop_lag_samples": self.lag.samples,
            "per_connection": per_conn,
        }

    def write_outputs(self) -> None:
        """``<pid>.npz`` then ``<pid>.json`` (its presence means both are whole)."""
        if self.out_dir is None or self.sink is None:
            return
        self.lag.stop()
        buf = io.BytesIO()
        np.savez(buf, **self.sink.recorder.arrays())  # type: ignore[arg-type]
        pid = os.getpid()
        atomic_write_bytes(self.out_dir / f"{pid}.npz", buf.getvalue())
        atomic_write_json(self.out_dir / f"{pid}.json", self.result())


def _replace(path: Path, text: str) -> None:
    """Write-then-rename without fsync: a progress note, rewritten many times."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- sessions ------------------------------------------------------------------------------


class PushSession(ABC):
    """One user's connection to one push transport, kept up until its greenlet is killed."""

    REQUEST_TYPE: ClassVar[str]
    RETRY_BASE_S: ClassVar[float] = 0.05  # back-off after an error: doubled per failure
    RETRY_MAX_S: ClassVar[float] = 2.0

    def __init__(self, conn: int, spec: WorkerSpec, process: LocustProcess) -> None:
        assert process.sink is not None
        self.conn = conn
        self.spec = spec
        self.process = process
        self.sink = process.sink
        self.stats = ConnStats(conn)
        self.name = spec.topic
        url = urlsplit(spec.base_url)
        self.netloc = url.netloc
        self.address = (url.hostname or "127.0.0.1", url.port or 80)
        self.sock: Any = None
        self._settled = False
        self._pending = 0  # socket bytes received since the last read that completed a message

    # --- the life cycle ----------------------------------------------------------

    def serve(self) -> None:
        """Connect, receive, reconnect until killed; every error is counted, none raised."""
        stats = self.stats
        failures = 0
        while True:
            connects = stats.connects
            t0 = clock()
            try:
                self.session()
            except Exception as exc:
                stats.error(exc)
                what = "connect" if stats.connects == connects else "disconnect"
                self.sink.failure(self.REQUEST_TYPE, what, exc, (clock() - t0) / 1e6)
            finally:
                self.close()
            self._settle()
            failures = 0 if stats.connects > connects else failures + 1
            gevent.sleep(self.retry_delay(failures))

    @abstractmethod
    def session(self) -> None:
        """Open one connection, call :meth:`established`, receive until the server ends
        it (return) or it fails (raise)."""

    def retry_delay(self, failures: int) -> float:
        """Seconds before the next attempt after ``failures`` consecutive failed ones."""
        return min(self.RETRY_MAX_S, self.RETRY_BASE_S * float(1 << min(failures, 16)))

    def close(self) -> None:
        """End the connection from our side (also when the user is stopped)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def established(self, t0: int) -> None:
        self.stats.established(clock() - t0)
        self._settle()

    def _settle(self) -> None:
        if not self._settled:
            self._settled = True
            self.process.on_settled()

    # --- socket I/O, counted ---------------------------------------------------------

    def connect(self, timeout_s: float) -> Any:
        sock = gevent.socket.create_connection(self.address, timeout=self.spec.connect_timeout_s)
        sock.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
        sock.settimeout(timeout_s)
        self.sock = sock
        return sock

    def send(self, data: bytes, *, handshake: bool = False) -> None:
        self.sock.sendall(data)
        if handshake:
            self.stats.handshake_bytes_out += len(data)
        else:
            self.stats.bytes_out += len(data)

    def recv(self, *, handshake: bool = False) -> bytes:
        # A gevent recv with data already buffered returns without ever switching: a
        # connection the server keeps busy would starve every other greenlet (the other
        # users, Locust's own, the kill that stops this one). Yield first, read second,
        # so the receive time the caller takes right after is the data's.
        gevent.sleep(0)
        data: bytes = self.sock.recv(READ_SIZE)
        if handshake:
            self.stats.handshake_bytes_in += len(data)
        else:
            self.stats.bytes_in += len(data)
            self._pending += len(data)
        return data

    def not_handshake(self, nbytes: int) -> None:
        """The last ``nbytes`` read during the handshake were already data."""
        self.stats.handshake_bytes_in -= nbytes
        self.stats.bytes_in += nbytes
        self._pending += nbytes

    def take_pending(self, messages: int) -> tuple[int, int]:
        """Share the bytes read since the last message among ``messages`` messages →
        (each one's share, the first one's: the share plus the remainder)."""
        pending, self._pending = self._pending, 0
        share = pending // messages
        return share, pending - share * (messages - 1)

    def read_response_head(self, reader: ResponseReader) -> bytes:
        """Receive until ``reader`` has a response head, counted as handshake → the
        body bytes that came with it (counted as data)."""
        total = 0
        while True:
            data = self.recv(handshake=True)
            if not data:
                raise SessionEnded("connection closed before the response head")
            total += len(data)
            body = reader.feed(data)
            if reader.head is not None:
                self.not_handshake(total - reader.head_size)
                return body


class WsSession(PushSession):
    """``GET /ws?topic=`` (``since=`` the last seq on reconnect), one text frame per message."""

    REQUEST_TYPE = "WS"

    def __init__(self, conn: int, spec: WorkerSpec, process: LocustProcess) -> None:
        super().__init__(conn, spec, process)
        self.ws: Connection | None = None
        self.close_code: int | None = None

    def session(self) -> None:
        since = self.stats.last_seq
        target = self.spec.target("/ws", since=since) if since else self.spec.target("/ws")
        self.ws = None
        self.close_code = None
        with self.process.gate:
            t0 = clock()
            sock = self.connect(self.spec.connect_timeout_s)
            upgrade, key = client_request(self.netloc, target)
            self.send(upgrade, handshake=True)
            buf = b""
            while (end := find_head_end(buf)) < 0:
                data = self.recv(handshake=True)
                if not data:
                    raise SessionEnded("connection closed during the handshake")
                buf += data
            check_response(parse_response(buf[:end]), key)
            sock.settimeout(None)
        self.not_handshake(len(buf) - end)
        self.established(t0)
        self.ws = ws = Connection(Role.CLIENT)
        if end < len(buf):
            self._frames(ws, buf[end:], clock())
        while True:
            try:
                data = self.recv()
            except TimeoutError:
                if ws.state is State.CLOSED:
                    break  # the server did not close TCP after the close handshake
                raise
            now = clock()
            if not data:
                ws.receive_eof()
                break
            self._frames(ws, data, now)
            if ws.state is State.CLOSED:
                sock.settimeout(CLOSE_WAIT_S)  # the server closes TCP after the close handshake
        if self.close_code is None:
            raise SessionEnded("connection closed without a Close frame")
        if self.close_code not in _NORMAL_CLOSES:
            raise SessionEnded(f"closed by the server with {self.close_code}")

    def _frames(self, ws: Connection, data: bytes, now: int) -> None:
        failure: ProtocolError | None = None
        try:
            events = ws.receive_data(data)
        except ProtocolError as exc:
            events = ws.events_after_error()
            failure = exc
        payloads: list[bytes | bytearray] = []
        for event in events:
            if event.__class__ is Message:
                payloads.append(event.data)
            elif event.__class__ is Close:
                self.close_code = event.code
        if payloads:
            self.sink.deliver(self, payloads, now)
        out = ws.data_to_send()
        if out:
            self.send(out)
        if failure is not None:
            raise failure

    def close(self) -> None:
        ws, sock = self.ws, self.sock
        if ws is not None and sock is not None and ws.state is State.OPEN:
            try:  # stopped by Locust: Close 1000, as a browser leaving the page would
                ws.send_close(1000)
                sock.settimeout(1.0)
                self.send(ws.data_to_send())
            except OSError:
                pass
        super().close()


class SseSession(PushSession):
    """``GET /sse?topic=``; ``Last-Event-ID`` on reconnect; waits the server's ``retry``."""

    REQUEST_TYPE = "SSE"
    DEFAULT_RETRY_MS = 3000  # EventSource's usual default, until the server sends one

    def __init__(self, conn: int, spec: WorkerSpec, process: LocustProcess) -> None:
        super().__init__(conn, spec, process)
        self.last_event_id: str | None = None
        self.retry_ms = self.DEFAULT_RETRY_MS

    def retry_delay(self, failures: int) -> float:
        return min(30.0, self.retry_ms / 1000 * float(1 << min(failures, 16)))

    def session(self) -> None:
        headers = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache")]
        if self.last_event_id is not None:
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
        parser = EventParser()
        parser.last_id = self.last_event_id
        try:
            self._events(parser, body, now)
            while not reader.done:
                data = self.recv()
                now = clock()
                if not data:
                    reader.feed_eof()
                    break
                self._events(parser, reader.feed(data), now)
        finally:
            if parser.retry_ms is not None:
                self.retry_ms = parser.retry_ms

    def _events(self, parser: EventParser, body: bytes, now: int) -> None:
        if not body:
            return
        events = parser.feed(body)
        if events:
            self.sink.deliver(self, [e.data for e in events], now)
            self.last_event_id = parser.last_id


class PollSession(PushSession):
    """``GET /poll?topic=&since=&timeout=`` on one keep-alive connection per user.

    The first exchange of every connection is a short poll (``timeout=0``):
    it fetches the cursor without waiting, so the connection counts as
    established at once, and its bytes are the connection's handshake bytes.
    """

    LONG: ClassVar[bool]

    def __init__(self, conn: int, spec: WorkerSpec, process: LocustProcess) -> None:
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

    def __init__(self, conn: int, spec: WorkerSpec, process: LocustProcess) -> None:
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


#: Transport name (as in the worker spec) → session class.
SESSIONS: dict[str, type[PushSession]] = {
    "ws": WsSession,
    "sse": SseSession,
    "longpoll": LongPollSession,
    "shortpoll": ShortPollSession,
}

"""What every Locust session shares: the connection life cycle on gevent sockets, and the
receive path into receipts and Locust request events. The gevent twin of
:mod:`pushbench.clients.common`.

A Locust user of ``clients/locustfile.py`` holds one :class:`PushSession` of
one transport and runs :meth:`PushSession.serve`: connect, receive until the
server ends the connection, reconnect with back-off, until Locust kills the
user's greenlet (``GreenletExit``, a ``BaseException``, passes every
``except Exception`` and closes the socket in ``finally``). A transport
subclass (:mod:`~pushbench.clients.locust_ws`, :mod:`~pushbench.clients.locust_sse`,
:mod:`~pushbench.clients.locust_poll`, each the twin of its asyncio module) says
only how one connection is opened and read, over the same sans-I/O code the
asyncio clients use: :mod:`pushbench.wire` (WebSocket handshake and frames),
:class:`pushbench.sse.EventParser`, and :mod:`pushbench.clients.locust_http`
(HTTP/1.1 heads, chunked and sized bodies).

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

Byte counts come from the socket layer (what ``sendall`` wrote and ``recv``
returned; ``bytes_source`` "socket"): the handshake (WebSocket upgrade, SSE
request and response head, the first poll exchange of a connection) apart
from the rest, as the asyncio clients count them. What a session needs of its
process (:class:`~pushbench.clients.locust_process.LocustProcess`) is
:class:`SessionHost`.
"""

from __future__ import annotations

import socket as stdlib_socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import gevent
import gevent.socket

from pushbench import registry
from pushbench.schema.worker import WorkerSpec

from .common import ConnStats, SessionEnded, clock
from .locust_http import ResponseReader
from .recorder import Recorder

__all__ = [
    "READ_SIZE",
    "FireRequest",
    "MessageSink",
    "PushSession",
    "SessionHost",
    "session_class",
]

FireRequest = Callable[..., None]  # ``environment.events.request.fire`` (keywords only)
READ_SIZE = 65536
_NOT_AN_ENVELOPE = "not a pushbench message"


class MessageSink:
    """Receipt rows and Locust request events for every message of a process."""

    def __init__(
        self, fire: FireRequest, recorder: Recorder, *, ring: bool, shift_ns: int = 0
    ) -> None:
        """``shift_ns``: added to every receive time (the process's clock → the server's,
        :class:`~pushbench.clients.clockprobe.ClockCorrection`), in receipts and events."""
        self.fire = fire
        self.shift_ns = shift_ns
        self.recorder = recorder
        self.ring_limit = recorder.capacity // 2 if ring else -1
        self._sched = memoryview(recorder.sched_ns)  # type: ignore[arg-type]
        self.events = 0  # successful request events fired (one per message)
        self.failures = 0  # failed request events fired

    def deliver(self, session: PushSession, payloads: list[bytes | bytearray], now: int) -> None:
        """The messages one read completed, all received at ``now``."""
        now += self.shift_ns
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
        now += self.shift_ns
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


class SessionHost(Protocol):
    """What a session needs of its Locust process: the sink its messages go to, the
    limit on connections opening at once, and a note when its first attempt is over."""

    sink: MessageSink | None
    gate: AbstractContextManager[Any]

    def on_settled(self) -> None: ...


class PushSession(ABC):
    """One user's connection to one push transport, kept up until its greenlet is killed."""

    REQUEST_TYPE: ClassVar[str]
    RETRY_BASE_S: ClassVar[float] = 0.05  # back-off after an error: doubled per failure
    RETRY_MAX_S: ClassVar[float] = 2.0

    def __init__(self, conn: int, spec: WorkerSpec, process: SessionHost) -> None:
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


def session_class(transport: str) -> type[PushSession]:
    """The session class of ``transport``'s ``gevent`` entry point in the registry."""
    row = registry.transport(transport)
    found = row.load_client("gevent")
    if not (isinstance(found, type) and issubclass(found, PushSession)):
        raise TypeError(f"{row.client('gevent')} is not a PushSession class")
    return found

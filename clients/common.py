"""What every client shares: the worker spec, per-connection counters, and the
connection life cycle (connect, serve, reconnect with back-off, stop, publish).

A transport module only says how *one* connection is opened and read
(:meth:`Client.session`); :meth:`Client.run` keeps it connected until the stop
event, counts connects, reconnects and errors, and cancels the session at
stop so every client ends promptly. The receive path itself is
:class:`~pushbench.clients.recorder.Recorder`, called once per message.

Connection time (``connect_ns``) runs from the start of the TCP connect to the
end of the handshake (WebSocket 101, SSE response head, first poll answer).
``reconnects`` counts connections established after the first one; a failed
attempt counts in ``errors`` only.

Publishing (chat cells, ``spec.publish``) is open loop like the server's ticker,
and like wrk2: message *k* is due at start + k/rate and carries that time to the
hub (``sched``: :mod:`pushbench.contract`), so a server that holds publishes back
shows in the corrected latency. Sends never wait on each other: each runs as its
own task, at most :data:`PUBLISH_IN_FLIGHT` at once per publisher (POST /publish
on as many keep-alive connections; a WebSocket frame is done once written). A
publish due while that many are in flight is an *overrun*
(``publish_overruns``): it waits for a free slot and is then sent, stamped with
its own scheduled time — never skipped, so the schedule is kept, the wait is
measured latency, and "delivered" counts over every message published.

The publishers of a worker share its schedule evenly, as the ticker spaces its
messages: connection *i* of *n* publishes at the phase i/n of the interval on
one absolute CLOCK_MONOTONIC grid, so two publishers never collide (nor queue
behind each other's fan-out) merely because they connected at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pushbench.contract import publish_frame
from pushbench.outage import BACKOFF_BASE_S, BACKOFF_CAP_S, backoff_rng, backoff_s
from pushbench.schedule import open_loop
from pushbench.schema.worker import SEGMENT_TOTALS, WorkerSpec

from .recorder import Recorder
from .tcpinfo import HasFileno, Moved, TcpMeter, plus
from .tlsconn import Phases, context_for

if TYPE_CHECKING:  # imported where used: a worker of light clients never loads aiohttp
    import aiohttp

__all__ = [
    "PUBLISH_IN_FLIGHT",
    "SUMMED",
    "Client",
    "ConnStats",
    "SessionEnded",
    "segment_totals",
    "wait_stop",
]

clock = time.monotonic_ns  # CLOCK_MONOTONIC, the contract's clock
#: Publishes one publisher keeps in flight at most (HTTP: on as many keep-alive connections).
#: At chat rates (≤ 1,000 msg/s per publisher) 8 covers a server answering in 8 ms; a slower
#: one makes overruns, counted, not a silently lower rate.
PUBLISH_IN_FLIGHT = 8
#: Churn (the soak): how often a client checks that its connection is up, or resumable.
CHURN_STEP_S = 0.01
AddrInfo = tuple[Any, ...]  # (family, type, proto, canonname, sockaddr)


# --- per-connection counters -------------------------------------------------------------


#: The per-connection counters a worker adds up into its ``totals`` (every worker kind).
SUMMED: tuple[str, ...] = (
    "connects",
    "reconnects",
    "handshake_bytes_out",
    "handshake_bytes_in",
    "bytes_out",
    "bytes_in",
    "messages",
    "requests",
    "empty_polls",
    "missed_polls",
    "errors",
    "published",
    "publish_errors",
    "publish_lag_sum_ns",
    "publish_overruns",
)


@dataclass(eq=False)
class ConnStats:
    """The counters of one client connection, reported per connection in OUT.json."""

    conn: int
    connect_ns: int = -1  # first successful connection; -1: never connected
    # issue 12 item 2: its phases (clients/tlsconn.py): TCP connect, TLS handshake (-1: none)
    tcp_connect_ns: int = -1
    tls_handshake_ns: int = -1
    connects: int = 0
    reconnects: int = 0
    handshake_bytes_out: int = 0
    handshake_bytes_in: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    # TCP segments after the handshakes (TCP_INFO; None once a socket's were not counted)
    segs_out: int | None = 0
    segs_in: int | None = 0
    sockets_metered: int = 0
    sockets_unmetered: int = 0
    messages: int = 0  # received (recorded or overflowed)
    last_seq: int = 0
    requests: int = 0  # HTTP requests (polling)
    empty_polls: int = 0
    missed_polls: int = 0  # short-poll slots skipped because the previous poll ran late
    errors: int = 0
    last_error: str | None = None
    published: int = 0
    publish_errors: int = 0
    publish_lag_max_ns: int = 0
    publish_lag_sum_ns: int = 0
    publish_overruns: int = 0  # publishes due while PUBLISH_IN_FLIGHT were in flight
    # issue 17 item 6 (soak): connections this client closed itself to come back (churn),
    # and the connect time (TCP connect → handshake done) of every reconnect, ns
    churn_leaves: int = 0
    reconnect_ns: list[int] = field(default_factory=list)
    # h32 (issue 12 item 5): when (CLOCK_MONOTONIC ns) each reconnect's handshake was done:
    # the reconnect storm's rate at the server, seen from the clients
    reconnect_at_ns: list[int] = field(default_factory=list)
    # h27: the last WebSocket upgrade's status line and Server header, as received
    # (:meth:`upgrade_answer`); None: no upgrade answered (or not a light ws client).
    status_line: str | None = None
    server_header: str | None = None
    # h35 (issue 18 item 3): this client's streams ride on an HTTP/2 connection whose bytes
    # another client's ConnStats count (clients/h2_light.py): no socket of its own to meter
    bytes_elsewhere: bool = False
    # Set once the first attempt is over (connected or failed): the worker's readiness.
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Meters started and not yet finished: their bytes so far are read by bytes_now().
    open_meters: set[TcpMeter] = field(default_factory=set, repr=False)

    _OUTPUT: ClassVar[tuple[str, ...]] = (
        "conn",
        "connect_ns",
        "tcp_connect_ns",
        "tls_handshake_ns",
        "connects",
        "reconnects",
        "handshake_bytes_out",
        "handshake_bytes_in",
        "bytes_out",
        "bytes_in",
        "segs_out",
        "segs_in",
        "messages",
        "last_seq",
        "requests",
        "empty_polls",
        "missed_polls",
        "errors",
        "published",
        "publish_errors",
        "publish_lag_max_ns",
        "publish_lag_sum_ns",
        "publish_overruns",
        "churn_leaves",
        "reconnect_ns",
        "reconnect_at_ns",
    )

    @property
    def connected(self) -> bool:
        return self.connects > 0

    @property
    def bytes_source(self) -> str:
        """Where the byte counts come from: ``tcp_info`` when the kernel measured every
        socket, ``tcp_info-partial`` when some could not be, ``unavailable`` when none."""
        if self.sockets_metered == 0:
            return "elsewhere" if self.bytes_elsewhere else "unavailable"  # h35
        return "tcp_info" if self.sockets_unmetered == 0 else "tcp_info-partial"

    def established(self, connect_ns: int, phases: Phases | None = None) -> None:
        """A connection is up (handshake done) after ``connect_ns``; ``phases``: how long
        its TCP connect and TLS handshake took, where the client times them."""
        if self.connects == 0:
            self.connect_ns = connect_ns
            if phases is not None:
                self.tcp_connect_ns, self.tls_handshake_ns = phases.tcp_ns, phases.tls_ns
        else:
            self.reconnects += 1
            self.reconnect_ns.append(connect_ns)
            self.reconnect_at_ns.append(clock())
        self.connects += 1
        self.settled.set()

    def upgrade_answer(self, head: bytes) -> None:
        """Keep the status line and the Server header of an upgrade's answer ``head``
        (the bytes before the blank line), whatever the status: a 101 that came through a
        proxy, or what the proxy answered instead."""
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0].strip()[:200]
        servers = [v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                   if k.strip().lower() == "server"]  # fmt: skip
        self.server_header = servers[-1][:200] if servers else None

    def error(self, exc: BaseException | str) -> None:
        self.errors += 1
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.last_error = text[:300]

    def start_meter(self, meter: TcpMeter, sock: HasFileno | None) -> None:
        """The handshake of a socket is done: take ``meter``'s first snapshot."""
        if meter.start(sock):
            self.open_meters.add(meter)
        else:
            self.sockets_unmetered += 1

    def add_meter(self, meter: TcpMeter) -> None:
        """Finish ``meter`` (one socket's life) and add its bytes to the connection's;
        a meter already accounted for (or never started) adds nothing."""
        self.open_meters.discard(meter)
        done = meter.finish()
        if done is None:
            return
        if not done:
            self.sockets_unmetered += 1
            return
        self.sockets_metered += 1
        self.handshake_bytes_out += meter.handshake_out
        self.handshake_bytes_in += meter.handshake_in
        self.bytes_out, self.bytes_in, self.segs_out, self.segs_in = plus(
            self.bytes_now(finished_only=True), meter.moved
        )

    def bytes_now(self, *, finished_only: bool = False) -> Moved:
        """TCP payload bytes and segments after the handshakes so far: the finished
        sockets' plus (unless ``finished_only``) what the open ones carried until now (a
        window mark of the worker)."""
        moved = Moved(self.bytes_out, self.bytes_in, self.segs_out, self.segs_in)
        for meter in () if finished_only else self.open_meters:
            now = meter.peek()
            if now is not None:
                moved = plus(moved, now)
        return moved

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self._OUTPUT}
        out["reconnect_ns"] = list(self.reconnect_ns)
        out["reconnect_at_ns"] = list(self.reconnect_at_ns)
        out["bytes_source"] = self.bytes_source
        out["last_error"] = self.last_error
        if self.status_line is not None:  # h27: only where an upgrade was answered
            out["status_line"] = self.status_line
            out["server_header"] = self.server_header
        return out


def segment_totals(per_conn: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """``segs_out`` and ``segs_in`` summed over the connections (their ``to_dict``), for a
    worker's totals; a counter some connection could not count is left out."""
    conns = list(per_conn)
    out: dict[str, int] = {}
    for key in SEGMENT_TOTALS:
        values = [c.get(key) for c in conns]
        if all(isinstance(v, int) for v in values):
            out[key] = sum(int(v) for v in values if v is not None)
    return out


# --- the connection life cycle ------------------------------------------------------------


class SessionEnded(Exception):
    """The peer ended a connection in a way that counts as an error (e.g. WebSocket
    close 1011/1013), or answered with an unexpected HTTP status."""


async def wait_stop(stop: asyncio.Event, timeout: float) -> bool:
    """Sleep up to ``timeout`` s, waking early when ``stop`` is set → whether it is."""
    if not stop.is_set() and timeout > 0:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await stop.wait()
    return stop.is_set()


class Client(ABC):
    """One client connection of a worker, kept connected until the stop event."""

    # back-off after an error: a ceiling doubled per failure, capped, full jitter (h32)
    RETRY_BASE_S: ClassVar[float] = BACKOFF_BASE_S
    RETRY_MAX_S: ClassVar[float] = BACKOFF_CAP_S

    def __init__(
        self, conn_id: int, spec: WorkerSpec, recorder: Recorder, stats: ConnStats
    ) -> None:
        self.conn_id = conn_id
        self.spec = spec
        self.recorder = recorder
        self.stats = stats
        self.backoff_rng = backoff_rng(conn_id)  # h32: seeded per connection, reproducible
        self._http: aiohttp.ClientSession | None = None
        self.new_socket: socket.socket | None = None  # made by :meth:`http`, not yet seen
        self._publish_http: aiohttp.ClientSession | None = None
        self._publish_meters: list[TcpMeter] = []  # one per publish connection opened
        size = spec.publish.payload_size if spec.publish is not None else 0
        self.publish_payload = "x" * size
        self.publish_body = self.publish_payload.encode()  # POST /publish's body

    @classmethod
    async def serve(
        cls,
        conn_id: int,
        spec: WorkerSpec,
        recorder: Recorder,
        stats: ConnStats,
        stop: asyncio.Event,
    ) -> None:
        """Keep one client of this kind connected until ``stop``: each transport module
        exports this as its ``run(conn_id, spec, recorder, stats, stop_event)``."""
        await cls(conn_id, spec, recorder, stats).run(stop)

    @abstractmethod
    async def session(self) -> None:
        """Open one connection, call ``stats.established``, receive until the peer ends
        it (return) or it fails (raise). Cancelled at stop; must clean up in ``finally``."""

    def retry_delay(self, failures: int) -> float:
        """Seconds before the next attempt, after ``failures`` consecutive failed ones
        (0: the previous connection worked and then ended; still a short pause, so a
        server that closes every connection at once is not hammered): exponential with
        full jitter (:func:`pushbench.outage.backoff_s`), so the clients of a restarted
        server do not all come back in the same instant."""
        return backoff_s(failures, self.backoff_rng, self.RETRY_BASE_S, self.RETRY_MAX_S)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect, until ``stop``; every error is counted, none raised."""
        stats = self.stats
        stopper = asyncio.ensure_future(stop.wait())
        failures = 0
        churn = self.spec.churn
        rng = churn.rng(self.conn_id) if churn is not None else None
        try:
            while not stop.is_set():
                connects = stats.connects
                task = asyncio.ensure_future(self.session())
                waits: set[asyncio.Future[Any]] = {task, stopper}
                leave = None
                if churn is not None and rng is not None:
                    leave = asyncio.ensure_future(self._leave_after(churn.hold(rng), connects))
                    waits.add(leave)
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not task.done():
                        task.cancel()
                        await asyncio.wait({task})  # let its cleanup run, never raises
                    left = leave is not None and leave.done() and not leave.cancelled()
                    if leave is not None and not leave.done():
                        leave.cancel()
                if not task.cancelled():
                    exc = task.exception()
                    if exc is not None and not stop.is_set():
                        stats.error(exc)
                stats.settled.set()
                if stop.is_set():
                    break
                failures = 0 if stats.connects > connects else failures + 1
                if left and churn is not None and rng is not None:  # we left: come back
                    stats.churn_leaves += 1
                    await wait_stop(stop, churn.gap(rng))
                else:
                    await wait_stop(stop, self.retry_delay(failures))
        finally:
            stopper.cancel()
            stats.settled.set()
            await self.close()
            for meter in self._publish_meters:  # before the sessions close their sockets
                stats.add_meter(meter)
            for http in (self._http, self._publish_http):
                if http is not None:
                    await http.close()

    def resumable(self) -> bool:
        """Whether a new connection would resume where this one is (the churn leaves only
        then): a message received. A polling client has its cursor earlier."""
        return self.stats.last_seq > 0

    async def _leave_after(self, hold_s: float, connects: int) -> None:
        """Churn: return ``hold_s`` after the session's connection is up, once it can be
        resumed (:meth:`resumable`); the caller then closes it."""
        while self.stats.connects == connects:
            await asyncio.sleep(CHURN_STEP_S)
        await asyncio.sleep(hold_s)
        while not self.resumable():
            await asyncio.sleep(CHURN_STEP_S)

    async def close(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """At the very end: account for what outlives a session (a pooled socket)."""

    # --- shared helpers -------------------------------------------------------------

    def http(self) -> aiohttp.ClientSession:
        """This connection's own HTTP client: one pooled keep-alive connection, so the
        TCP connection (and its byte counters) belongs to exactly one client."""
        if self._http is None:
            self._http = _http_session(self.spec, self._make_socket)
        return self._http

    def _make_socket(self, addr_info: AddrInfo) -> socket.socket:
        """aiohttp's socket factory: every new TCP connection of :meth:`http` passes
        here, which is how a client learns that its keep-alive connection changed."""
        family, kind, proto, _, _ = addr_info
        self.new_socket = sock = socket.socket(family, kind, proto)
        return sock

    @contextlib.asynccontextmanager
    async def publishing(self, send: Callable[[int], Awaitable[None]]) -> AsyncIterator[None]:
        """Run the open-loop publisher (when the spec asks for one) inside the block.

        ``send(due_ns)`` publishes one message scheduled at ``due_ns`` (the time goes in
        the message: :meth:`publish_http`, or a WebSocket frame of :meth:`publish_text`)
        and raises when it fails; sends run concurrently (see the module docstring).
        """
        if self.spec.publish is None:
            yield
            return
        task = asyncio.ensure_future(self._publish_loop(send, self.spec.publish.rate))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.wait({task})

    async def _publish_loop(self, send: Callable[[int], Awaitable[None]], rate: float) -> None:
        """Message k is due at start + k/rate (start: this connection's phase of the
        worker's grid, see the module docstring): each send starts when due, as a task of
        its own, up to :data:`PUBLISH_IN_FLIGHT` at once. A publish that fell due while all
        slots were taken (found them taken, or came due while the loop waited for one) is
        an overrun: counted, then sent as soon as a slot frees (the open loop sends
        whatever is due at once, each with its own due time). Lateness against the
        schedule is kept in ``publish_lag_*``; at the end, sends still in flight are
        cancelled."""
        import aiohttp  # here: only publishing workers need its exception types

        stats = self.stats
        in_flight: set[asyncio.Task[None]] = set()

        def lag(lag_ns: int) -> None:
            stats.publish_lag_sum_ns += lag_ns
            if lag_ns > stats.publish_lag_max_ns:
                stats.publish_lag_max_ns = lag_ns

        async def one(due_ns: int) -> None:
            try:
                await send(due_ns)
                stats.published += 1
            except (OSError, aiohttp.ClientError, SessionEnded, RuntimeError) as exc:
                stats.publish_errors += 1
                stats.last_error = f"publish: {type(exc).__name__}: {exc}"[:300]

        waited_until = 0  # when the last wait for a free slot ended

        async def start(due_ns: int) -> None:
            nonlocal waited_until
            if due_ns < waited_until or len(in_flight) >= PUBLISH_IN_FLIGHT:
                # Due while every slot was taken (now, or while the loop waited for one).
                stats.publish_overruns += 1
            if len(in_flight) >= PUBLISH_IN_FLIGHT:
                while len(in_flight) >= PUBLISH_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                waited_until = clock()
            task = asyncio.ensure_future(one(due_ns))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

        interval = int(1e9 / rate)
        n = max(1, self.spec.connections)
        phase = (self.conn_id - self.spec.first_conn) % n * interval // n
        first = (clock() // interval + 1) * interval + phase  # this publisher's slot
        try:
            await open_loop(start, rate=rate, start_ns=first, on_lag=lag)
        finally:
            pending = set(in_flight)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    def publish_text(self, due_ns: int) -> str:
        """The WebSocket text message publishing this client's payload, due at ``due_ns``."""
        return publish_frame(self.publish_payload, due_ns)

    def _metered_socket(self, addr_info: AddrInfo) -> socket.socket:
        """A socket factory whose sockets are metered from before their connect on (no
        handshake: every byte is the publishes' and their answers'), counted in this
        connection's ``bytes_out``/``bytes_in`` as a WebSocket publisher's frames are, so
        chat bytes per message compare across transports."""
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        meter = TcpMeter()
        self.stats.start_meter(meter, sock)
        self._publish_meters.append(meter)
        return sock

    async def publish_http(self, due_ns: int) -> None:
        """POST /publish?sched=due_ns on this publisher's own pool of up to
        :data:`PUBLISH_IN_FLIGHT` keep-alive connections, metered (:meth:`_metered_socket`)."""
        if self._publish_http is None:
            self._publish_http = _http_session(
                self.spec, self._metered_socket, limit=PUBLISH_IN_FLIGHT
            )
        async with self._publish_http.post(
            self.spec.url("/publish", sched=due_ns), data=self.publish_body
        ) as resp:
            await resp.read()
            if resp.status != 200:
                raise SessionEnded(f"publish answered {resp.status}")


def _http_session(
    spec: WorkerSpec,
    socket_factory: Callable[[AddrInfo], socket.socket] | None = None,
    limit: int = 1,
) -> aiohttp.ClientSession:
    import aiohttp  # here: ~0.25 s of import a worker of light clients does not pay

    keepalive = max(60.0, 2 * spec.poll_interval_s + 10.0, spec.poll_timeout_s + 10.0)
    connector = aiohttp.TCPConnector(
        limit=limit,
        keepalive_timeout=keepalive,
        force_close=False,
        socket_factory=socket_factory,
        ssl=context_for(spec) or True,  # TLS cells: verified against the run's CA
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=spec.connect_timeout_s, sock_read=None)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )

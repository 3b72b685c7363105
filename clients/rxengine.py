"""The compiled receive loop of the light WebSocket and SSE clients, and the hand-over to it.

At the default cells' rates every read carries one message, so on the asyncio path
(:mod:`.ws_light`, :mod:`.sse`) the client pays per delivery what the server pays: an
event-loop wake-up, a ``recv`` and a Python callback per socket. ``clients/_rxloop.c``
instead runs one epoll loop over all of a worker's subscriber sockets in one thread with
the GIL released: ``recv``, ``clock_gettime(CLOCK_MONOTONIC)`` right after it (the
read's ``recv_ns``, the same meaning as on the asyncio path), WebSocket frames (Ping
answered with a masked Pong, Close ends the connection with its code) or the SSE body
(chunked, sized or until close; ``data:``/``id:``/``retry:`` lines and comments), and
the envelopes scanned straight into the recorder's arrays.

The handshake stays on asyncio (the upgrade or the SSE request and response head, TLS
phases, meters). Then :class:`Handed` takes a duplicate of the socket's descriptor, the
asyncio transport is closed (the connection lives on in the duplicate) and the
descriptor joins the loop with the bytes that came with the head. The loop's thread
calls back (with the GIL) at most every 10 ms while receipts arrive, and when a
connection ended: :meth:`RxEngine._sync` then moves the recorder's row count and each
connection's counters (messages, last seq, SSE last event id and retry) into the Python
objects the worker reads (so those lag the arrays by ≤ 10 ms), records the payloads the
fast scan did not recognise through :meth:`Recorder.record` (``slow_parses``, parse
errors), and wakes the sessions whose connection ended. While the engine runs the
recorder is written only from its thread.

Which path a worker uses (:func:`choice`, written into the worker's result as
``rx_engine``): the compiled loop for the ``ws`` and ``sse`` transports when it is built
and the C helpers are on, and the cell has no publishing connections (chat), no churn,
no compression, no TLS, and no client faults (a self-check's biased recorder or loop
stalls must act on every receipt as before); everything else stays on asyncio.
``PUSHBENCH_NO_RX_LOOP=1`` (or ``PUSHBENCH_NO_SPEEDUPS=1``) forces the asyncio path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

from pushbench.schema.worker import WorkerSpec
from pushbench.wire import speedups

from .common import ConnStats
from .recorder import LoopLagMonitor, Recorder
from .tcpinfo import TcpMeter

_rxloop: ModuleType | None
try:
    from . import _rxloop
except ImportError:  # pragma: no cover - depends on the build
    _rxloop = None

__all__ = ["ASYNCIO", "COMPILED", "Ending", "Handed", "RxEngine", "choice", "close_frame"]

COMPILED = "c-epoll"
ASYNCIO = "asyncio"
TRANSPORTS = frozenset({"ws", "sse"})  # the light clients that can hand over
KIND_WS, KIND_SSE = 0, 1
FRAMING = {"close": 0, "length": 1, "chunked": 2}
# the loop's per-connection status (clients/_rxloop.c)
CLOSED, EOF, ERROR, REMOVED, DONE = 1, 2, 3, 4, 5


def choice(spec: WorkerSpec, recorder: Recorder) -> str:
    """The receive path of a worker running ``spec`` into ``recorder``: :data:`COMPILED`
    or :data:`ASYNCIO` (see the module docstring)."""
    compiled = (
        _rxloop is not None
        and speedups.rx_loop()
        and spec.transport in TRANSPORTS
        and spec.publish is None
        and spec.churn is None
        and spec.compression == "off"
        and not spec.base_url.startswith("https")
        and type(recorder) is Recorder
        and not recorder.asyncio_only
    )
    return COMPILED if compiled else ASYNCIO


def close_frame(code: int | None) -> bytes:
    """A masked Close frame (``None``: without a code), as a client sends it."""
    payload = b"" if code is None else code.to_bytes(2, "big")
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x88, 0x80 | len(payload))) + key + masked


@dataclass(frozen=True, slots=True)
class Ending:
    """How a handed connection ended: the loop's status, the Close code (WebSocket) or
    errno (an error), and the error's text."""

    status: int
    code: int
    error: str

    def exception(self) -> BaseException | None:
        """The failure to raise for an error ending (None for the others)."""
        if self.status != ERROR:
            return None
        if self.error.startswith("errno") and self.code:
            return OSError(self.code, os.strerror(self.code))
        if self.error.startswith("BadResponse: "):
            from pushbench.wire.http_response import BadResponse

            return BadResponse(self.error.removeprefix("BadResponse: "))
        from pushbench.wire import ProtocolError

        return ProtocolError(1002, self.error)


class RxEngine:
    """The loop of one recorder (one worker process): its thread and handed connections.

    Made when the first connection is handed over, ended (thread joined, last counters
    synced, arrays released) when the last one is done; a later hand-over makes a new one.
    """

    _live: ClassVar[dict[int, RxEngine]] = {}  # id(recorder) → its running engine

    def __init__(self, recorder: Recorder) -> None:
        assert _rxloop is not None
        self.recorder = recorder
        self.loop = asyncio.get_running_loop()
        rec = recorder
        self.engine = _rxloop.Engine(*rec.rows, rec.n, rec.overflow)
        # the worker's loop-lag probe, in the loop that receives (LoopLagMonitor.attach)
        self.engine.probe(int(LoopLagMonitor.INTERVAL_S * 1e9))
        self.conns: dict[int, Handed] = {}
        self.thread = threading.Thread(
            target=self.engine.run, args=(self._sync,), name="rx-loop", daemon=True
        )
        self.thread.start()

    @classmethod
    def of(cls, recorder: Recorder) -> RxEngine:
        """The running engine of ``recorder`` (made now if there is none)."""
        engine = cls._live.get(id(recorder))
        if engine is None or engine.recorder is not recorder:
            engine = cls._live[id(recorder)] = cls(recorder)
        return engine

    @classmethod
    def live(cls, recorder: Recorder) -> RxEngine | None:
        """The running engine of ``recorder``, if its connections were handed over."""
        engine = cls._live.get(id(recorder))
        return engine if engine is not None and engine.recorder is recorder else None

    def _sync(self) -> None:
        """In the loop's thread, the loop paused: its counters into the Python objects."""
        rec = self.recorder
        n, overflow, updates, slow, ended = self.engine.take()
        rec.n, rec.overflow = n, overflow
        if slow:
            for ident, conn, payload, recv_ns in slow:
                seq = rec.record(conn, payload, recv_ns)
                handed = self.conns.get(ident)
                if handed is not None and seq > handed.stats.last_seq:
                    handed.stats.last_seq = seq
            self.engine.set_counts(rec.n, rec.overflow)
        for ident, messages, last_seq, last_id, retry_ms in updates:
            handed = self.conns.get(ident)
            if handed is not None:
                handed.update(messages, last_seq, last_id, retry_ms)
        for ident in ended:
            handed = self.conns.get(ident)
            if handed is not None:
                self.loop.call_soon_threadsafe(handed.wake)

    def done(self, handed: Handed) -> None:
        """``handed`` is over: forget it; the last one ends the engine."""
        self.engine.release(handed.ident)
        self.conns.pop(handed.ident, None)
        if self.conns:
            return
        if self._live.get(id(self.recorder)) is self:
            del self._live[id(self.recorder)]
        self.engine.stop()
        self.thread.join()
        self._sync()  # the thread is gone: nothing races the last counts
        self.engine.close()


class Handed:
    """One connection handed from its asyncio transport to the loop.

    ``on_sse`` (SSE) receives the last event id (bytes, when it moved) and the
    ``retry`` the stream set (-1: none yet) at every sync and at the end.
    """

    def __init__(
        self,
        recorder: Recorder,
        transport: asyncio.Transport,
        conn_id: int,
        stats: ConnStats,
        meter: TcpMeter,
        leftover: bytes,
        recv_ns: int,
        *,
        kind: int = KIND_WS,
        framing: tuple[str, int] = ("close", 0),
        last_id: bytes = b"",
        on_sse: Callable[[bytes | None, int], None] | None = None,
    ) -> None:
        raw = transport.get_extra_info("socket")
        self.sock = socket.socket(fileno=os.dup(raw.fileno()))
        self.sock.setblocking(False)
        transport.abort()  # its descriptor goes; the connection lives on in ours
        self.stats = stats
        self.meter = meter  # started on the handshake; finished by close()
        self.base = stats.messages
        self.on_sse = on_sse
        self.rx = RxEngine.of(recorder)
        self.ending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ending = Ending(0, 0, "")
        self.received = 0  # bytes the loop read (known once finished)
        self.ident = -1
        self.ident = self.rx.engine.add(
            self.sock.fileno(),
            conn_id,
            kind,
            leftover,
            recv_ns,
            FRAMING[framing[0]],
            framing[1],
            last_id,
        )
        self.rx.conns[self.ident] = self

    def update(self, messages: int, last_seq: int, last_id: bytes | None, retry_ms: int) -> None:
        """The loop's counters of this connection so far (from either thread, GIL held)."""
        stats = self.stats
        stats.messages = self.base + messages
        if last_seq > stats.last_seq:
            stats.last_seq = last_seq
        if self.on_sse is not None:
            self.on_sse(last_id, retry_ms)

    def abort(self) -> None:
        """Drop the connection from our side now (as ``transport.abort()`` does): the
        session's wait returns, ended :data:`REMOVED`."""
        self.finish()
        self.wake()

    def wake(self) -> None:
        if not self.ending.done():
            self.ending.set_result(None)

    async def wait(self) -> Ending:
        """Until the connection ends (the server closed it, or it failed) → how; when
        cancelled (the worker stops), the loop lets go of it first."""
        try:
            await self.ending
        finally:
            ending = self.finish()
        return ending

    def finish(self) -> Ending:
        """Take the connection out of the loop (if still there) → how it ended; its last
        counters are in ``stats``. Idempotent."""
        engine = self.rx.engine
        if self.ident < 0:
            return self._ending
        engine.remove(self.ident)
        _, status, code, error, messages, last_seq, last_id, retry_ms, self.received = engine.info(
            self.ident
        )
        self.update(messages, last_seq, last_id, retry_ms)
        self._ending = Ending(status, code, error)
        self.rx.done(self)
        self.ident = -1
        return self._ending

    def close(self, goodbye: bytes = b"") -> None:
        """Count the connection's bytes (before our goodbye and FIN), send ``goodbye``
        (a Close frame), close the socket."""
        self.stats.add_meter(self.meter)
        with contextlib.suppress(OSError):
            if goodbye:
                self.sock.send(goodbye)
        self.sock.close()

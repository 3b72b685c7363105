"""One upgraded connection of the raw stack: the :mod:`pushbench.wire` codec in, the
transport out, and everything that needs a clock or a socket around it.

The codec (:class:`pushbench.wire.Connection`) turns bytes into messages and
queues what must go out (pongs, Close replies); this module only moves bytes
between it and the transport and adds what a pure codec cannot do:

- keepalive: a Ping every ``ping_interval``, whatever ``ping_timeout`` is; a peer
  that sends nothing at all within ``ping_timeout`` of the first Ping it left
  unanswered is aborted (counted as ``dead_peers``);
- timeouts on closing: once we sent Close, or the close handshake finished,
  the transport is half-closed (FIN after the queued bytes, so unread input
  cannot turn into a RST that destroys them) and aborted if the peer has not
  closed within ``close_timeout``;
- flow control: while the transport's buffer is over its mark, reading from
  the peer stops (its own traffic, echoes and pongs, cannot be what fills it)
  and :meth:`WebSocket.send_frames` waits until the buffer drains.

What a path does with messages is its :class:`App` (``ws_apps``: ``/echo`` and
``/ws?topic=``), attached once the 101 is out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from pushbench.hub import Counters, Item, Lane
from pushbench.wire import CloseCode, Connection, Message, ProtocolError, Role, State
from pushbench.wire.deflate import PerMessageDeflate
from pushbench.wire.frames import RSV1, encode_frame

from .flow import Drain
from .lanes import lane_for
from .listener import Listener

__all__ = ["App", "WebSocket"]


class App(Protocol):
    """The behaviour behind one WebSocket path, attached once the 101 is out."""

    def start(self, ws: WebSocket) -> None: ...

    def on_message(self, ws: WebSocket, message: Message) -> None: ...

    def stop(self) -> None:
        """The WebSocket is closing or gone: release everything, never raise."""
        ...


class WebSocket(asyncio.Protocol):
    """The asyncio glue for one upgraded connection: codec in, transport out."""

    __slots__ = (
        "_abort_timer",
        "_app",
        "_config",
        "_conn",
        "_drain",
        "_hold",
        "_joined",
        "_keepalive",
        "_lane",
        "_last_rx",
        "_loop",
        "_next_ping",
        "_reading_paused",
        "_server",
        "_stats",
        "_wait_from",
        "transport",
    )

    def __init__(
        self,
        server: Listener,
        transport: asyncio.Transport,
        app: App,
        max_message_size: int,
        deflate: PerMessageDeflate | None = None,
    ) -> None:
        self._server = server
        self._config = server.service.config
        self._stats = server.service.stats.extra
        self._app = app
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._conn = Connection(
            Role.SERVER,
            # A single frame can never be longer than the message it carries.
            max_frame_size=max_message_size,
            max_message_size=max_message_size,
            deflate=deflate,
        )
        self._drain = Drain()
        self._hold = False  # the app asked us to stop reading (see hold_reading)
        self._reading_paused = False
        self._joined = False
        self._last_rx = self._loop.time()
        self._next_ping = 0.0  # when the next Ping is due
        self._wait_from: float | None = None  # the first Ping not followed by any byte
        self._keepalive: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        self._lane: Lane | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, early_data: bytes) -> None:
        """Called once the 101 is written; ``early_data`` followed the request head."""
        self._joined = True
        self._app.start(self)
        if self._config.ping_interval > 0:
            self._next_ping = self._loop.time() + self._config.ping_interval
            self._keepalive = self._loop.call_later(self._config.ping_interval, self._tick)
        if early_data:
            self.data_received(early_data)

    def data_received(self, data: bytes) -> None:
        # Any byte proves the peer alive: a large message may take longer than
        # ping_timeout to arrive, and its frames are events only once complete.
        self._last_rx = self._loop.time()
        conn = self._conn
        if conn.state is State.CLOSED:
            return  # closing: what the peer still sends is read and dropped
        try:
            events = conn.receive_data(data)
        except ProtocolError:
            # The codec holds a Close with the RFC code back: the messages decoded
            # before the violation are handled (echoed) first, then it goes out and
            # we hang up.
            self._stats["protocol_errors"] += 1
            for event in conn.events_after_error():
                if isinstance(event, Message) and self._joined:
                    self._app.on_message(self, event)
            self._finish()
            return
        # Not joined any more: we sent Close, so what still arrives is ignored.
        # Messages before a Close *received* in this batch are still delivered
        # and answered: the codec sends its Close reply after them.
        for event in events:
            if isinstance(event, Message) and self._joined:
                self._app.on_message(self, event)
        self._flush()  # pongs, echoes and the Close reply, in codec order
        if conn.closes_transport:
            self._finish()

    def eof_received(self) -> bool | None:
        self._conn.receive_eof()
        self._leave()
        return None  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lane is not None:  # before asyncio closes the socket: its fd may be reused
            self._lane.closed = True
        for timer in (self._keepalive, self._abort_timer):
            if timer is not None:
                timer.cancel()
        self._conn.receive_eof()
        self._drain.lost()
        self._leave()
        self._server.service.close_connection()
        self._server.forget(self)

    # -- flow control ----------------------------------------------------------

    def pause_writing(self) -> None:
        self._drain.pause()
        self._update_reading()

    def resume_writing(self) -> None:
        self._drain.resume()
        self._update_reading()

    def hold_reading(self, hold: bool) -> None:
        """Stop (True) or resume (False) reading for the app, e.g. while publishes queue."""
        self._hold = hold
        self._update_reading()

    def _update_reading(self) -> None:
        # Once both Close frames are exchanged we always read: the peer's EOF must be seen.
        pause = (self._drain.paused or self._hold) and self._conn.state is not State.CLOSED
        if pause != self._reading_paused and not self.transport.is_closing():
            self._reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # -- sending -------------------------------------------------------------

    @property
    def deflate(self) -> PerMessageDeflate | None:
        """permessage-deflate as negotiated (None: off); frames the app encodes itself
        must be compressed with it (:meth:`encode`)."""
        return self._conn.deflate

    def encode(self, opcode: int, data: bytes | bytearray) -> bytes:
        """One data message as the frame this connection sends: compressed (RSV1) when
        permessage-deflate is on."""
        deflate = self._conn.deflate
        if deflate is None:
            return encode_frame(opcode, data)
        return encode_frame(opcode, deflate.compress(data), rsv=RSV1)

    def lane(self, key: str, frame: Callable[[Item], bytes], counters: Counters) -> Lane | None:
        """Let the hub write frames framed as ``item.framed(key, frame)`` to this socket
        itself (:class:`pushbench.hub.Lane`) until a Close is queued; None for TLS."""
        if self._conn.state is not State.OPEN:
            return None
        self._lane = lane_for(self.transport, key, frame, counters)
        return self._lane

    def send(self, frame: bytes) -> None:
        """Queue an encoded data frame; written at the end of the current read.

        For replies to what the peer sent (the echo): the peer is throttled by
        pause_reading, so no flow control is needed here. Replies to messages that
        arrived with the peer's Close or before a violation still go out, before
        our Close.
        """
        if self._conn.may_reply:
            self._conn.send_raw(frame)

    async def send_frames(self, frames: bytes) -> int:
        """Write already-encoded data frames in one write, once the transport takes
        more → bytes written; ConnectionError when the socket is closing or gone."""
        await self._drain.wait()
        if self._conn.state is not State.OPEN:
            raise ConnectionError("WebSocket is closing")
        self._conn.send_raw(frames)
        self._flush()
        return len(frames)

    def try_send_frame(self, frame: bytes) -> int | None:
        """Write encoded data frames now if the transport takes more → their size, or
        None (paused, or not open): the caller queues them for :meth:`send_frames`."""
        if self._drain.paused or self._conn.state is not State.OPEN:
            return None
        self._conn.send_raw(frame)
        self._flush()
        return len(frame)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the close handshake; abort if it is not done in close_timeout."""
        if self._conn.state is not State.OPEN:
            return
        self._conn.send_close(code, reason)
        self._flush()
        self._leave()
        self._arm_abort()

    def abort(self) -> None:
        if self._lane is not None:
            self._lane.closed = True
        self.transport.abort()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if self._lane is not None and self._conn.state is not State.OPEN:
            self._lane.closed = True  # a Close is in data: no frame may follow it
        if data:
            self.transport.write(data)

    def _finish(self) -> None:
        """Both Close frames are exchanged, or the connection failed: close TCP.

        A half-close (FIN after the queued bytes) rather than close(): bytes the
        peer still sends are read and dropped instead of answered with a RST,
        which would destroy our Close frame before the peer reads it.
        """
        self._flush()
        self._leave()
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
        else:  # TLS cannot half-close: close() sends close_notify after the queued bytes
            transport.close()
        self._update_reading()  # keep reading, or the peer's EOF is never seen
        self._arm_abort()

    def _leave(self) -> None:
        if self._joined:
            self._joined = False
            self._app.stop()

    def _arm_abort(self) -> None:
        if self._abort_timer is None:
            self._abort_timer = self._loop.call_later(
                self._config.close_timeout, self.transport.abort
            )

    # -- keepalive -----------------------------------------------------------

    def _tick(self) -> None:
        """The keepalive timer: a Ping when one is due, the liveness check when the
        oldest unanswered Ping has waited ``ping_timeout``; re-armed for whichever
        comes first. (Once, the next Ping waited for the check: with a 1 s interval
        and the default 20 s timeout the stack pinged every 20 s.)"""
        if self._conn.state is not State.OPEN:
            return
        now = self._loop.time()
        config = self._config
        wait_from = self._wait_from
        if wait_from is not None and self._last_rx >= wait_from:
            wait_from = None  # any byte since proves the peer alive
        if wait_from is not None and now - wait_from >= config.ping_timeout:
            # While we are not reading (backpressure) silence proves nothing. Such a
            # peer costs bounded memory, and on /ws the hub drops it once it falls
            # queue_limit items behind.
            if not self._reading_paused:
                self._stats["dead_peers"] += 1
                self.transport.abort()
                return
            wait_from = None
        if now >= self._next_ping:
            self._conn.send_ping()
            self._flush()
            if wait_from is None:
                wait_from = now
            self._next_ping = now + config.ping_interval
        self._wait_from = wait_from
        due = self._next_ping
        if wait_from is not None:
            due = min(due, wait_from + config.ping_timeout)
        self._keepalive = self._loop.call_later(max(0.0, due - now), self._tick)

    # -- shutdown --------------------------------------------------------------

    def shutdown(self) -> None:
        self.close(CloseCode.GOING_AWAY, "server shutdown")

"""The WebSocket Locust session: the gevent twin of :mod:`pushbench.clients.ws_light`.

``GET /ws?topic=`` (``since=`` the last seq on reconnect) with our own
handshake and frame codec (:mod:`pushbench.wire`) over a gevent socket; one
text frame per message, pings answered by the codec. Stopped by Locust, it
closes with 1000 as a browser leaving the page would.
"""

from __future__ import annotations

from pushbench.schema.worker import WorkerSpec
from pushbench.wire import Close, Connection, Message, ProtocolError, Role, State
from pushbench.wire.handshake import check_response, client_request, find_head_end, parse_response

from .common import SessionEnded, clock
from .locust_common import PushSession, SessionHost

__all__ = ["WsSession"]

CLOSE_WAIT_S = 2.0  # after the close handshake, for the server to close TCP
_NORMAL_CLOSES = frozenset({1000, 1001})


class WsSession(PushSession):
    """``GET /ws?topic=`` (``since=`` the last seq on reconnect), one text frame per message."""

    REQUEST_TYPE = "WS"

    def __init__(self, conn: int, spec: WorkerSpec, process: SessionHost) -> None:
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

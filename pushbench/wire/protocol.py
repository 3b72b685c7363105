"""One WebSocket connection after the opening handshake, as a state machine.

Bytes go in through :meth:`Connection.receive_data`, events come out; whatever
the connection must send (our messages, the automatic pong, the close reply)
collects in an outgoing buffer drained by :meth:`Connection.data_to_send`.
There is no I/O and no clock here: keepalive and close timeouts are the
shell's, which knows time.

The close handshake (RFC 6455 §7), as a table of states:

=========  ======================  ==============================================
state      on Close received       on send_close()
=========  ======================  ==============================================
OPEN       reply Close → CLOSED    send Close → CLOSING
CLOSING    → CLOSED                error (already sent)
CLOSED     ignored                 error
=========  ======================  ==============================================

In CLOSED the server closes the TCP connection at once; the client waits for
the server to do it (§7.1.1), which :attr:`Connection.closes_transport` says.
A protocol violation *fails* the connection: a Close with the violation's code
is queued, the state becomes CLOSED, and :class:`ProtocolError` propagates.

Replies before the end: the Close that ends the connection (our reply to the
peer's Close, or the one failing it) is held back until :meth:`data_to_send`,
and until then :meth:`Connection.send_raw` still queues frames *before* it. So
messages decoded in the same read as the peer's Close or as a violation are
answered (echoed) before the Close goes out, as a strict endpoint must: every
valid message before the end is handled (Autobahn 3.2-3.4, 4.1.3-4.2.5, 5.15).
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple, cast

from .deflate import PerMessageDeflate
from .errors import CloseCode, ProtocolError, is_valid_close_code
from .frames import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    RSV1,
    Frame,
    FrameReader,
    Opcode,
    encode_close_payload,
    encode_frame,
    parse_close_payload,
)

__all__ = [
    "Close",
    "Connection",
    "Event",
    "Message",
    "Ping",
    "Pong",
    "Role",
    "State",
]


class Role(Enum):
    SERVER = "server"
    CLIENT = "client"


class State(Enum):
    OPEN = "open"
    CLOSING = "closing"  # we sent Close, waiting for the peer's
    CLOSED = "closed"  # both Close frames exchanged, or the connection failed


class Message(NamedTuple):
    """A whole data message; ``data`` of a TEXT message is valid UTF-8."""

    opcode: int
    data: bytes | bytearray

    @property
    def text(self) -> str:
        return self.data.decode()


class Ping(NamedTuple):
    payload: bytes | bytearray


class Pong(NamedTuple):
    payload: bytes | bytearray


class Close(NamedTuple):
    """The peer's Close frame: 1005 when it carried no code."""

    code: int
    reason: str


Event = Message | Ping | Pong | Close

_new = tuple.__new__


class Connection:
    """RFC 6455 endpoint logic for one side of one connection.

    ``auto_pong`` answers every Ping with a Pong carrying the same payload
    (§5.5.2) before the Ping event is returned. ``deflate``: permessage-deflate as
    the opening handshake agreed it (:mod:`.deflate`): RSV1 is then allowed on the
    first frame of a data message, such messages are inflated (at most
    ``max_message_size`` bytes, else 1009) and text is checked as UTF-8 after
    inflating (1007); what we send with :meth:`send_text` / :meth:`send_binary` is
    compressed. Control frames are never compressed.
    """

    def __init__(
        self,
        role: Role,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        auto_pong: bool = True,
        deflate: PerMessageDeflate | None = None,
    ) -> None:
        self.role = role
        self._client = role is Role.CLIENT
        self.deflate = deflate
        self._max_message = max_message_size
        self._reader = FrameReader(
            masked=not self._client,
            max_frame_size=max_frame_size,
            max_message_size=max_message_size,
            rsv_allowed=RSV1 if deflate is not None else 0,
        )
        self._auto_pong = auto_pong
        self._out: list[bytes] = []
        self._final = b""  # the Close ending the connection, after this batch's replies
        self._parts: list[bytes | bytearray] = []
        self._part_opcode = 0
        self._part_compressed = False
        self._frames: list[Frame] = []
        self.state = State.OPEN
        self.close_sent: tuple[int, str] | None = None
        self.close_received: Close | None = None
        self.error: ProtocolError | None = None
        self._pending_events: list[Event] = []
        self._pending_payloads: list[bytes | bytearray] = []

    # --- receiving --------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Decode ``data`` into events; raise :class:`ProtocolError` on a violation.

        On a violation the Close frame with its code is already queued in
        :meth:`data_to_send`, and events decoded before it are kept in
        :meth:`events_after_error`.
        """
        if self.state is State.CLOSED:
            return []
        frames = self._frames
        frames.clear()
        events: list[Event] = []
        try:
            try:
                self._reader.feed_into(data, frames)
            except ProtocolError:
                # The frames decoded before the violation still count (their
                # events are kept for events_after_error), and a violation in
                # bytes after a valid Close is ignored like any data after it.
                self._process(frames, events)
                if self.close_received is None:
                    raise
            else:
                self._process(frames, events)
        except ProtocolError as exc:
            self._pending_events = events
            self._fail(exc)
            raise
        return events

    def receive_payloads(self, data: bytes | bytearray | memoryview) -> list[bytes | bytearray]:
        """The payloads of the data messages ``data`` completes, text and binary alike,
        in order; everything else as :meth:`receive_data` does it (pings answered, a
        Close recorded in :attr:`close_received` and answered, violations raised).

        The receive path of a client that only records what it is sent: with the
        compiled parser a whole message arrives as its payload, with no frame or
        event object around it. After a :class:`ProtocolError`,
        :meth:`payloads_after_error` holds the payloads decoded before it.
        """
        if self.state is State.CLOSED:
            return []
        items: list[Frame | bytes] = []
        payloads: list[bytes | bytearray] = []
        try:
            try:
                mixed = self._reader.feed_payloads_into(data, items)
            except ProtocolError:
                self._collect(items, payloads)
                if self.close_received is None:
                    raise
                return payloads
            if not mixed:
                return cast("list[bytes | bytearray]", items)
            self._collect(items, payloads)
        except ProtocolError as exc:
            self._pending_payloads = payloads
            self._fail(exc)
            raise
        return payloads

    def payloads_after_error(self) -> list[bytes | bytearray]:
        """Payloads decoded in the :meth:`receive_payloads` call that raised, before the
        violation."""
        payloads, self._pending_payloads = self._pending_payloads, []
        return payloads

    def _collect(self, items: list[Frame | bytes], payloads: list[bytes | bytearray]) -> None:
        """Payloads and frames from :meth:`FrameReader.feed_payloads_into` → payloads.

        Consecutive frames go through :meth:`_process` together (on the pure path
        that is all of them); a payload is kept unless a Close came before it.
        """
        append = payloads.append
        run: list[Frame] = []
        for item in items:
            if item.__class__ is not bytes:
                run.append(cast(Frame, item))
                continue
            if run:
                self._process_run(run, payloads)
            if self.close_received is not None:
                return  # nothing may follow a Close (§5.5.1)
            append(item)
        if run:
            self._process_run(run, payloads)

    def _process_run(self, run: list[Frame], payloads: list[bytes | bytearray]) -> None:
        events: list[Event] = []
        try:
            self._process(run, events)
        finally:  # a violation keeps the messages before it, as receive_data does
            run.clear()
            for event in events:
                if event.__class__ is Message:
                    payloads.append(event.data)

    def events_after_error(self) -> list[Event]:
        """Events decoded in the call that raised, before the violation."""
        events, self._pending_events = self._pending_events, []
        return events

    def _process(self, frames: list[Frame], events: list[Event]) -> None:
        append = events.append
        for frame in frames:
            if self.close_received is not None:
                break  # nothing may follow a Close (§5.5.1)
            opcode = frame.opcode
            if opcode == 1 or opcode == 2:
                if frame.fin:
                    if frame.rsv:  # RSV1: only when deflate was negotiated (the reader)
                        append(_new(Message, (opcode, self._inflate(opcode, frame.payload))))
                    else:
                        append(_new(Message, (opcode, frame.payload)))
                else:
                    self._part_opcode = opcode
                    self._part_compressed = bool(frame.rsv)
                    self._parts = [frame.payload]
            elif opcode == 0:
                self._parts.append(frame.payload)
                if frame.fin:
                    parts = self._parts
                    self._parts = []
                    data = b"".join(parts)
                    if self._part_compressed:
                        data = self._inflate(self._part_opcode, data)
                    append(Message(self._part_opcode, data))
            elif opcode == Opcode.PING:
                # §5.5.2: a Ping MUST be answered unless a Close was *received*,
                # so CLOSING (our Close sent, theirs not yet in) still pongs.
                if self._auto_pong and self.state is not State.CLOSED:
                    self._out.append(encode_frame(Opcode.PONG, frame.payload, mask=self._client))
                append(Ping(frame.payload))
            elif opcode == Opcode.PONG:
                append(Pong(frame.payload))
            else:
                code, reason = parse_close_payload(frame.payload)
                self.close_received = close = Close(code, reason)
                if self.state is State.OPEN:
                    # Echo the code (§5.5.1); "no status" is echoed as an empty body.
                    echo = None if code == CloseCode.NO_STATUS else code
                    self._queue_close(echo, "", final=True)
                self.state = State.CLOSED
                append(close)

    def _inflate(self, opcode: int, payload: bytes | bytearray) -> bytes:
        """A compressed message's payload → the message (1009 over the limit, 1002 if
        corrupt, 1007 for text that is not UTF-8)."""
        deflate = self.deflate
        assert deflate is not None  # the reader refuses RSV1 without it
        data = deflate.decompress(payload, self._max_message)
        if opcode == 1:
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                raise ProtocolError(CloseCode.INVALID_DATA, "invalid UTF-8 in text") from exc
        return data

    def receive_eof(self) -> None:
        """The transport closed. Without a Close exchange that is 1006 (abnormal)."""
        if self.close_received is None:
            self.close_received = Close(CloseCode.ABNORMAL, "")
        self.state = State.CLOSED

    def _fail(self, exc: ProtocolError) -> None:
        self.error = exc
        if self.close_sent is None:
            self._queue_close(exc.code, exc.reason[:100], final=True)
        self.state = State.CLOSED

    # --- sending ----------------------------------------------------------

    def _check_open(self) -> None:
        if self.state is not State.OPEN:
            raise RuntimeError(f"cannot send in state {self.state.value}")

    def send_text(self, data: str | bytes) -> None:
        self._check_open()
        payload = data.encode() if isinstance(data, str) else data
        self._out.append(self._encode_message(Opcode.TEXT, payload))

    def send_binary(self, data: bytes | bytearray | memoryview) -> None:
        self._check_open()
        self._out.append(self._encode_message(Opcode.BINARY, data))

    def _encode_message(self, opcode: int, payload: bytes | bytearray | memoryview) -> bytes:
        """One data message as one frame: compressed with RSV1 when deflate is on."""
        deflate = self.deflate
        if deflate is None:
            return encode_frame(opcode, payload, mask=self._client)
        return encode_frame(opcode, deflate.compress(payload), mask=self._client, rsv=RSV1)

    def send_fragments(self, opcode: int, parts: list[bytes]) -> None:
        """Send one message as ``len(parts)`` frames (fragmentation, §5.4)."""
        self._check_open()
        if opcode not in (Opcode.TEXT, Opcode.BINARY) or not parts:
            raise ValueError("fragments need TEXT or BINARY and at least one part")
        last = len(parts) - 1
        for i, part in enumerate(parts):
            self._out.append(
                encode_frame(
                    opcode if i == 0 else Opcode.CONT, part, fin=i == last, mask=self._client
                )
            )

    def send_ping(self, payload: bytes = b"") -> None:
        self._check_open()
        if len(payload) > 125:
            raise ValueError("ping payload over 125 bytes")
        self._out.append(encode_frame(Opcode.PING, payload, mask=self._client))

    def send_pong(self, payload: bytes = b"") -> None:
        self._check_open()
        if len(payload) > 125:
            raise ValueError("pong payload over 125 bytes")
        self._out.append(encode_frame(Opcode.PONG, payload, mask=self._client))

    def send_close(self, code: int | None = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the close handshake (OPEN → CLOSING).

        ``code=None`` sends an empty Close; a code that may not appear on the
        wire (1005, 1006, 1015, unassigned ones: §7.4) raises ValueError.
        """
        self._check_open()
        if code is not None and not is_valid_close_code(code):
            raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
        self._queue_close(code, reason)
        self.state = State.CLOSING

    def _queue_close(self, code: int | None, reason: str, *, final: bool = False) -> None:
        """Queue a Close; ``final`` holds it back until :meth:`data_to_send`, after the
        replies to the messages decoded with it."""
        payload = encode_close_payload(code, reason)
        frame = encode_frame(Opcode.CLOSE, payload, mask=self._client)
        if final:
            self._final = frame
        else:
            self._out.append(frame)
        self.close_sent = (CloseCode.NO_STATUS if code is None else code, reason)

    @property
    def may_reply(self) -> bool:
        """Whether :meth:`send_raw` takes a frame: while OPEN, and after the peer's
        Close or a violation until :meth:`data_to_send` hands out our final Close
        (replies to the messages decoded before it)."""
        return self.state is State.OPEN or bool(self._final)

    def send_raw(self, frame_bytes: bytes) -> None:
        """Queue an already-encoded data frame (one encoding, many receivers); also a
        reply to a message of the batch that ended the connection (:attr:`may_reply`)."""
        if not self._final:
            self._check_open()
        self._out.append(frame_bytes)

    def data_to_send(self) -> bytes:
        """Everything queued since the last call, ready for the transport; a final
        Close last."""
        out = self._out
        if self._final:
            out.append(self._final)
            self._final = b""
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    @property
    def closes_transport(self) -> bool:
        """Whether this side should close TCP now (server, after the handshake)."""
        return self.state is State.CLOSED and (not self._client or self.error is not None)

"""The sans-I/O WebSocket wire layer: bytes in, events out, no sockets inside.

- :mod:`.frames`: frame encoding and the streaming :class:`FrameReader`;
- :mod:`.protocol`: :class:`Connection`, message reassembly, ping/pong and the
  close handshake state machine;
- :mod:`.handshake`: the opening handshake, server and client side;
- :mod:`.http_response`: HTTP/1.1 responses on the client side (the light SSE and
  polling clients and the Locust users share it);
- :mod:`.http11`: HTTP/1.1 requests on the server side (the raw stack's HTTP layer),
  a state machine whose transitions are a table;
- :mod:`.mask`, :mod:`.utf8`: the two byte-level primitives;
- :mod:`.errors`: :class:`ProtocolError` (carrying the close code) and
  :class:`HandshakeError` (carrying the HTTP status).
"""

from .errors import CloseCode, HandshakeError, ProtocolError
from .frames import Frame, FrameReader, Opcode, encode_frame
from .mask import apply_mask
from .protocol import Close, Connection, Message, Ping, Pong, Role, State

__all__ = [
    "Close",
    "CloseCode",
    "Connection",
    "Frame",
    "FrameReader",
    "HandshakeError",
    "Message",
    "Opcode",
    "Ping",
    "Pong",
    "ProtocolError",
    "Role",
    "State",
    "apply_mask",
    "encode_frame",
]

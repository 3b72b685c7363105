"""The one exception the wire layer raises, and the close codes it carries.

Every violation of RFC 6455 the codec detects becomes a :class:`ProtocolError`
whose ``code`` is the close code §7.4.1 names for it, so the I/O shell can
answer with a Close frame without knowing why the input was bad. A failed
opening handshake is a :class:`HandshakeError` carrying the HTTP status to
answer with instead (there is no WebSocket yet to close).
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Close codes of RFC 6455 §7.4.1 that this codebase sends or checks."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # never on the wire: "the close frame had no code"
    ABNORMAL = 1006  # never on the wire: "no close frame at all"
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


# Codes a peer may put in a Close frame: §7.4.1 defined codes minus the three
# reserved "never on the wire" ones, plus 3000-4999 (registered / private use).
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a Close frame on the wire (§7.4)."""
    return code in _SENDABLE or 3000 <= code <= 4999


class ProtocolError(Exception):
    """The peer broke RFC 6455; close the connection with ``code``.

    ``code`` is 1002 (protocol error), 1007 (invalid UTF-8 in a text message or
    close reason), 1009 (frame or message over the configured limit) or 1008
    (policy, e.g. a message kind this endpoint refuses).
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class HandshakeError(Exception):
    """The opening handshake failed; answer with HTTP ``status`` (server side).

    400 for a malformed or non-WebSocket request, 426 with
    ``Sec-WebSocket-Version: 13`` for a version mismatch, 403 for an Origin not
    on the allow-list. On the client side ``status`` is the status the server
    sent (or 0 when its response itself was malformed).
    """

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers

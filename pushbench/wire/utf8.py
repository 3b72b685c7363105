"""Incremental UTF-8 validation that fails at the first impossible byte.

RFC 6455 §8.1 lets an endpoint fail a text message as soon as the bytes seen
so far cannot be the start of valid UTF-8, even when a code point is split
across frames or across reads. CPython's incremental decoder already rejects
every impossible prefix except one: a lead byte 0xED followed by 0xA0-0xBF
(a UTF-16 surrogate) is buffered until the next byte arrives. We check that
one case on the decoder's pending bytes.
"""

from __future__ import annotations

import codecs

from .errors import CloseCode, ProtocolError

_Decoder = codecs.getincrementaldecoder("utf-8")


class Utf8Validator:
    """Feed the bytes of one text message in any split; raises ``ProtocolError(1007)``."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = _Decoder("strict")

    def feed(self, data: bytes | bytearray | memoryview, final: bool) -> None:
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise ProtocolError(CloseCode.INVALID_DATA, "invalid UTF-8 in text") from exc
        if not final:
            pending = self._decoder.getstate()[0]
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise ProtocolError(CloseCode.INVALID_DATA, "UTF-16 surrogate in text")

    def reset(self) -> None:
        self._decoder.reset()


def check_utf8(data: bytes | bytearray | memoryview) -> None:
    """Validate one complete text payload; raises ``ProtocolError(1007)``."""
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError as exc:
        raise ProtocolError(CloseCode.INVALID_DATA, "invalid UTF-8 in text") from exc

"""permessage-deflate (RFC 7692): negotiation and per-message (de)compression, sans I/O.

Negotiation works on the ``Sec-WebSocket-Extensions`` header value:

- client: :func:`offer` builds the one offer we send; :func:`accept_response` checks the
  server's answer against it (any deviation raises :class:`HandshakeError`: the client
  must fail the connection, §5.1) and returns the agreed :class:`PerMessageDeflate`;
- server: :func:`negotiate` walks the client's offers in order, *declines* every one it
  cannot accept (an unknown, repeated or invalid parameter, or a window of 8 bits we
  would have to compress with, §5.1 / zlib refuses raw deflate with an 8-bit window),
  and returns the response header value and the agreed :class:`PerMessageDeflate`
  for the first acceptable one, or None (the connection then runs uncompressed).

:class:`PerMessageDeflate` compresses one message at a time (sync flush, the trailing
``00 00 ff ff`` removed, §7.2.1) and decompresses with a bounded output
(``zlib.decompressobj().decompress(data, max_length)``), so a small frame that inflates
beyond the message limit fails with 1009 after producing at most limit + 1 bytes — the
decompression bomb never allocates more. Corrupt deflate data is a protocol error
(1002, as the ``websockets`` library answers it); text that is not UTF-8 once
decompressed is 1007, checked by the caller (:class:`~.protocol.Connection`).

Without context takeover on our side (``local_no_context_takeover``) a message's
compressed bytes depend only on the message and the settings (:attr:`share_key`), so a
server that pushes one message to many subscribers compresses it once for all of them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from .errors import CloseCode, HandshakeError, ProtocolError

__all__ = [
    "EXTENSION",
    "DeflateParams",
    "PerMessageDeflate",
    "accept_response",
    "compress_once",
    "negotiate",
    "offer",
    "parse_extensions",
]

EXTENSION = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"
_MIN_BITS = 8
_MAX_BITS = 15
_PARAMS = frozenset(
    {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
)

Extension = tuple[str, tuple[tuple[str, str | None], ...]]


class NegotiationError(ValueError):
    """An offer or response this side cannot accept."""


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """One set of permessage-deflate parameters (§7.1): an offer, a response or a preference.

    ``client_window_offered`` is for offers only: the client named
    ``client_max_window_bits`` (with or without a value), so the server may limit it.
    ``level`` is zlib's compression level for what this side sends (not on the wire).
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None
    client_window_offered: bool = False
    level: int = 6

    @property
    def offers_client_window(self) -> bool:
        """Whether an offer with these parameters names ``client_max_window_bits``."""
        return self.client_window_offered or self.client_max_window_bits is not None

    def header(self, *, is_offer: bool) -> str:
        """The extension with these parameters, as a header element."""
        parts = [EXTENSION]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is not None:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        elif is_offer and self.offers_client_window:
            parts.append("client_max_window_bits")
        return "; ".join(parts)


# --- header parsing -------------------------------------------------------------------


def _token(text: str) -> str:
    if not text or any(c in ' \t"(),/:;<=>?@[\\]{}' for c in text) or not text.isascii():
        raise NegotiationError(f"not a token: {text!r}")
    return text


def parse_extensions(value: str) -> list[Extension]:
    """``Sec-WebSocket-Extensions`` (RFC 6455 §9.1) → [(name, ((param, value|None), ...))].

    Quoted values are unquoted (§9.1 allows ``x="10"``); a malformed element raises
    :class:`NegotiationError`.
    """
    out: list[Extension] = []
    for element in value.split(","):
        if not element.strip():
            continue
        name, *raw = (p.strip() for p in element.split(";"))
        params: list[tuple[str, str | None]] = []
        for item in raw:
            key, eq, val = item.partition("=")
            key = _token(key.strip())
            if not eq:
                params.append((key, None))
                continue
            val = val.strip()
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1]
            params.append((key, _token(val)))
        out.append((_token(name), tuple(params)))
    return out


def _bits(value: str | None) -> int:
    if value is None or not value.isdigit() or value[0] == "0":
        raise NegotiationError(f"window bits not a number: {value!r}")
    bits = int(value)
    if not _MIN_BITS <= bits <= _MAX_BITS:
        raise NegotiationError(f"window bits {bits} outside 8..15")
    return bits


def _params(pairs: tuple[tuple[str, str | None], ...], *, is_offer: bool) -> DeflateParams:
    """Parameters of one element, checked (§7.1): known, each at most once, valid values."""
    seen: dict[str, str | None] = {}
    for key, val in pairs:
        if key not in _PARAMS:
            raise NegotiationError(f"unknown parameter {key}")
        if key in seen:
            raise NegotiationError(f"repeated parameter {key}")
        seen[key] = val
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in seen and seen[flag] is not None:
            raise NegotiationError(f"{flag} takes no value")
    smwb = _bits(seen["server_max_window_bits"]) if "server_max_window_bits" in seen else None
    cmwb: int | None = None
    if "client_max_window_bits" in seen:
        raw = seen["client_max_window_bits"]
        if raw is not None or not is_offer:  # a response must give the value (§7.1.2.2)
            cmwb = _bits(raw)
    return DeflateParams(
        server_no_context_takeover="server_no_context_takeover" in seen,
        client_no_context_takeover="client_no_context_takeover" in seen,
        server_max_window_bits=smwb,
        client_max_window_bits=cmwb,
        client_window_offered="client_max_window_bits" in seen,
    )


# --- negotiation ------------------------------------------------------------------------


def offer(prefs: DeflateParams = DeflateParams(client_window_offered=True)) -> str:
    """The client's offer (one element), for ``Sec-WebSocket-Extensions``."""
    return prefs.header(is_offer=True)


def negotiate(value: str | None, prefs: DeflateParams) -> tuple[str, PerMessageDeflate] | None:
    """Server side: the first acceptable offer in ``value`` → (response value, codec).

    ``prefs`` says what the server asks for on its own: ``server_no_context_takeover``
    (so it can compress a pushed message once for all subscribers),
    ``client_no_context_takeover``, ``server_max_window_bits`` (a cap) and
    ``client_max_window_bits`` (applied only when the client offered the parameter,
    §7.1.2.2). Offers it cannot accept are declined, never refused (§5.1): the
    handshake then completes without the extension.
    """
    if not value:
        return None
    try:
        extensions = parse_extensions(value)
    except NegotiationError:
        return None  # a malformed header: decline everything
    for name, pairs in extensions:
        if name != EXTENSION:
            continue
        try:
            got = _params(pairs, is_offer=True)
        except NegotiationError:
            continue
        smwb = got.server_max_window_bits
        if smwb is not None and prefs.server_max_window_bits is not None:
            smwb = min(smwb, prefs.server_max_window_bits)
        elif smwb is None:
            smwb = prefs.server_max_window_bits
        cmwb: int | None = None
        if got.client_window_offered:
            cmwb = prefs.client_max_window_bits
            if got.client_max_window_bits is not None:
                cmwb = min(cmwb or _MAX_BITS, got.client_max_window_bits)
        if smwb == _MIN_BITS:
            continue  # zlib cannot compress raw deflate with an 8-bit window
        agreed = DeflateParams(
            server_no_context_takeover=got.server_no_context_takeover
            or prefs.server_no_context_takeover,
            client_no_context_takeover=got.client_no_context_takeover
            or prefs.client_no_context_takeover,
            server_max_window_bits=smwb,
            client_max_window_bits=cmwb,
        )
        codec = PerMessageDeflate(
            local_no_context_takeover=agreed.server_no_context_takeover,
            remote_no_context_takeover=agreed.client_no_context_takeover,
            local_max_window_bits=smwb or _MAX_BITS,
            remote_max_window_bits=cmwb or _MAX_BITS,
            level=prefs.level,
        )
        return agreed.header(is_offer=False), codec
    return None


def accept_response(value: str, offered: DeflateParams) -> PerMessageDeflate:
    """Client side: check the server's ``Sec-WebSocket-Extensions`` against our offer.

    Raises :class:`HandshakeError` (status 101: the upgrade itself succeeded) for
    anything the client must fail the connection on (§5.1, §7.1): an extension we
    did not offer, more than one, an invalid or repeated parameter, a
    ``server_no_context_takeover`` or window we asked for and did not get, a
    ``client_max_window_bits`` we did not offer or over our value, or 8 bits for us.
    """
    try:
        extensions = parse_extensions(value)
        if len(extensions) != 1 or extensions[0][0] != EXTENSION:
            raise NegotiationError("server chose an extension we did not offer")
        got = _params(extensions[0][1], is_offer=False)
        if offered.server_no_context_takeover and not got.server_no_context_takeover:
            raise NegotiationError("server_no_context_takeover not granted")
        asked = offered.server_max_window_bits
        if asked is not None and (
            got.server_max_window_bits is None or got.server_max_window_bits > asked
        ):
            raise NegotiationError("server_max_window_bits not granted")
        cmwb = got.client_max_window_bits
        if cmwb is not None:
            if not offered.offers_client_window:
                raise NegotiationError("client_max_window_bits not offered")
            if offered.client_max_window_bits is not None and cmwb > offered.client_max_window_bits:
                raise NegotiationError("client_max_window_bits over our offer")
        local_bits = cmwb or offered.client_max_window_bits or _MAX_BITS
        if local_bits == _MIN_BITS:
            raise NegotiationError("client_max_window_bits=8: zlib cannot compress with it")
    except NegotiationError as exc:
        raise HandshakeError(101, f"permessage-deflate: {exc}") from exc
    return PerMessageDeflate(
        local_no_context_takeover=got.client_no_context_takeover
        or offered.client_no_context_takeover,
        remote_no_context_takeover=got.server_no_context_takeover,
        local_max_window_bits=local_bits,
        remote_max_window_bits=got.server_max_window_bits or _MAX_BITS,
        level=offered.level,
    )


# --- compression ------------------------------------------------------------------------


def compress_once(data: bytes | bytearray | memoryview, wbits: int, level: int) -> bytes:
    """One message compressed with a fresh context (no context takeover) → its payload."""
    enc = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = enc.compress(data) + enc.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


class PerMessageDeflate:
    """The agreed extension for one connection: compress what we send, decompress what
    arrives with RSV1, with or without context takeover in each direction."""

    __slots__ = (
        "_decoder",
        "_encoder",
        "level",
        "local_max_window_bits",
        "local_no_context_takeover",
        "remote_max_window_bits",
        "remote_no_context_takeover",
    )

    def __init__(
        self,
        *,
        local_no_context_takeover: bool = False,
        remote_no_context_takeover: bool = False,
        local_max_window_bits: int = _MAX_BITS,
        remote_max_window_bits: int = _MAX_BITS,
        level: int = 6,
    ) -> None:
        if not 9 <= local_max_window_bits <= _MAX_BITS:
            raise ValueError("zlib compresses raw deflate with 9..15 window bits")
        if not _MIN_BITS <= remote_max_window_bits <= _MAX_BITS:
            raise ValueError("window bits outside 8..15")
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.level = level
        self._encoder: zlib._Compress | None = None
        self._decoder: zlib._Decompress | None = None

    @property
    def share_key(self) -> tuple[int, int] | None:
        """(window bits, level) when a message compresses the same for every connection
        with this key (no context takeover on our side), else None."""
        if self.local_no_context_takeover:
            return (self.local_max_window_bits, self.level)
        return None

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """One whole message → the payload of its RSV1 frame."""
        if self.local_no_context_takeover:
            return compress_once(data, self.local_max_window_bits, self.level)
        enc = self._encoder
        if enc is None:
            enc = self._encoder = zlib.compressobj(
                self.level, zlib.DEFLATED, -self.local_max_window_bits
            )
        return (enc.compress(data) + enc.flush(zlib.Z_SYNC_FLUSH))[:-4]

    def decompress(self, data: bytes | bytearray, max_size: int) -> bytes:
        """The payload of one compressed message → the message, at most ``max_size`` bytes.

        Over ``max_size`` → :class:`ProtocolError` 1009 having inflated at most
        ``max_size + 1`` bytes; corrupt data → 1002.
        """
        dec = self._decoder
        if dec is None or self.remote_no_context_takeover:
            dec = self._decoder = zlib.decompressobj(-self.remote_max_window_bits)
        try:
            out = dec.decompress(bytes(data) + _TAIL, max_size + 1)
        except zlib.error as exc:
            self._decoder = None
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "invalid deflate data") from exc
        if len(out) > max_size or dec.unconsumed_tail:
            raise ProtocolError(
                CloseCode.MESSAGE_TOO_BIG, f"message inflates over {max_size} bytes"
            )
        if dec.eof:  # a final block (BFINAL, §7.2.3.3): the next message starts afresh
            self._decoder = None
        return out

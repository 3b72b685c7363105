"""Adapters that make each WebSocket library decode, encode and mask the same way.

One small adapter per library, registered in :data:`PEERS` (frame codecs) and
:data:`MASKERS` (1 MiB XOR kernels and copy floors). The benchmark runner only
sees these tables; adding a library means adding a row, not touching the runner.

Every adapter runs the library's *own* code path for the job, configured as the
role needs it:

- decode ``masked=True`` is a server reading client frames, ``masked=False`` a
  client reading server frames; the decoder is created fresh for each stream,
  fed the whole stream in one call, and returns the library's own frame or
  message objects with unmasked payload bytes;
- encode ``masked=False`` is a server writing frames, ``masked=True`` a client
  (a fresh random key per frame, drawn the way the library draws it); the
  result is the list of chunks the library hands to its transport.

Frames are binary and uncompressed, so no library spends time on UTF-8
validation or deflate. An adapter that cannot do a direction raises
:class:`NotApplicable` and is recorded as such, never substituted.

Also here: an independent *reference* encoder/decoder, written from RFC 6455
§5.2 for clarity rather than speed, which builds the input streams and checks
every adapter's output, so no library (ours included) grades its own work.

Imports of the libraries happen inside the adapter factories: importing this
module is cheap, and a missing library only disables its own row.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "MASKERS",
    "PEERS",
    "DecodeFn",
    "Decoder",
    "EncodeFn",
    "Masker",
    "NotApplicable",
    "Peer",
    "Unavailable",
    "masker_for",
    "masker_libraries",
    "peer_by_name",
    "reference_decode",
    "reference_encode",
    "reference_mask",
]

_T = TypeVar("_T")
_R = TypeVar("_R")

OPCODE_BINARY = 0x2

# Limits given to every decoder: at least one 1 MiB frame must pass. Each
# library still runs its own size checks, as it would in production.
MAX_FRAME = 1 << 20
MAX_MESSAGE = 4 << 20

# aiohttp's queue pauses the transport above 2 * limit queued bytes, and its
# reader then stalls; a benchmark stream is far below this, so it never does.
# (The queue stores the limit in a C unsigned int, hence not larger.)
_AIOHTTP_QUEUE_LIMIT = (1 << 31) - 1

DecodeFn = Callable[[bytes], Any]
"""Decode one whole stream with a fresh decoder → the library's frame container."""

EncodeFn = Callable[[list[bytes]], list[Any]]
"""Encode each payload as one binary frame → the chunks written, in order."""


class NotApplicable(Exception):
    """The library cannot do this direction at all (recorded as "n/a")."""


class Unavailable(Exception):
    """The library, or the build of it the case requires, is not installed."""


@dataclass(frozen=True)
class Decoder:
    """A stream decoder plus the way to read its output back as ``(opcode, payload)``."""

    decode: DecodeFn
    frames: Callable[[Any], list[tuple[int, bytes]]]


@dataclass(frozen=True)
class Peer:
    """One library in the comparison: how to build its decoder and encoder.

    ``probe`` imports the library and checks the build the row claims to
    measure (for example that the C speedups really loaded); it returns a note
    for the results or raises :class:`Unavailable`.
    """

    name: str
    distribution: str
    description: str
    probe: Callable[[], str]
    make_decoder: Callable[[bool], Decoder]
    make_encoder: Callable[[bool], EncodeFn]


@dataclass(frozen=True)
class Masker:
    """A 1 MiB XOR kernel (or a plain-copy floor) to time on one buffer.

    ``make(data, key)`` returns ``(call, result)``: ``call()`` is the timed
    operation, ``result()`` the bytes it produced, for the correctness check.
    ``expect`` says what a correct result is: the masked data, or a copy.
    """

    library: str
    variant: str
    distribution: str | None  # installed package whose version is recorded
    description: str
    make: Callable[[bytes, bytes], tuple[Callable[[], object], Callable[[], bytes]]]
    expect: str = "masked"  # or "copy"


# --- reference codec (independent of every library measured) -------------

_XOR_TABLES: dict[int, bytes] = {}


def _xor_table(k: int) -> bytes:
    table = _XOR_TABLES.get(k)
    if table is None:
        table = _XOR_TABLES[k] = bytes(b ^ k for b in range(256))
    return table


def reference_mask(data: bytes | bytearray, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` repeated (§5.3), one byte lane at a time."""
    out = bytearray(data)
    for lane in range(4):
        out[lane::4] = out[lane::4].translate(_xor_table(key[lane]))
    return bytes(out)


def reference_encode(payload: bytes, *, key: bytes | None = None, opcode: int = 2) -> bytes:
    """One final frame (§5.2), masked with ``key`` if given."""
    n = len(payload)
    mask_bit = 0x80 if key is not None else 0
    head = bytearray([0x80 | opcode])
    if n <= 125:
        head.append(mask_bit | n)
    elif n <= 0xFFFF:
        head.append(mask_bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(mask_bit | 127)
        head += n.to_bytes(8, "big")
    if key is None:
        return bytes(head) + payload
    return bytes(head) + key + reference_mask(payload, key)


def reference_decode(
    data: bytes, *, masked: bool, keys: list[bytes] | None = None
) -> list[tuple[int, bool, bytes]]:
    """Parse complete frames → ``(opcode, fin, payload)``; strict about masking.

    Raises ``ValueError`` on a truncated stream or a mask bit that does not
    match ``masked`` (a client must mask, a server must not). The masking
    keys met are appended to ``keys`` when given.
    """
    frames: list[tuple[int, bool, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            raise ValueError("truncated header")
        b0, b1 = data[pos], data[pos + 1]
        pos += 2
        if bool(b1 & 0x80) != masked:
            raise ValueError(f"mask bit is {bool(b1 & 0x80)}, expected {masked}")
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif n == 127:
            n = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = b""
        if masked:
            key = data[pos : pos + 4]
            pos += 4
            if keys is not None:
                keys.append(key)
        payload = data[pos : pos + n]
        if len(payload) != n:
            raise ValueError("truncated payload")
        pos += n
        frames.append(
            (b0 & 0x0F, bool(b0 & 0x80), reference_mask(payload, key) if key else payload)
        )
    return frames


# --- helpers ----------------------------------------------------------------


def _module(name: str) -> Any:
    """Import ``name`` or raise :class:`Unavailable` (typed ``Any``: private APIs)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"cannot import {name}: {exc}") from exc


def _rebind(func: Any, **globals_: Any) -> Any:
    """A copy of ``func`` whose module globals have ``globals_`` overridden.

    Used to run aiohttp's pure-Python code with its pure-Python mask, which is
    exactly what aiohttp executes when its extensions are absent
    (``AIOHTTP_NO_EXTENSIONS=1``, PyPy, no wheel), without re-importing aiohttp
    in a second process or patching the installed package.
    """
    namespace = dict(func.__globals__)
    namespace.update(globals_)
    new = types.FunctionType(
        func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__
    )
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__ = func.__qualname__
    return new


# --- pushbench (ours) ------------------------------------------------------


class _PureMask:
    """Context manager: run our codec on its pure Python/numpy mask path.

    ``pushbench.wire.mask.C_MASK`` is the switch the codec reads on every
    ``feed``/``apply_mask`` call (``PUSHBENCH_NO_SPEEDUPS=1`` sets it at
    import); flipping it around a timed call measures the fallback build in
    the same process. It costs two attribute stores per call of ≥ 4 frames.
    """

    __slots__ = ("_mod", "_saved")

    def __init__(self) -> None:
        from pushbench.wire import mask

        self._mod: Any = mask
        self._saved: Any = None

    def __enter__(self) -> None:
        self._saved = getattr(self._mod, "C_MASK", None)
        self._mod.C_MASK = None

    def __exit__(self, *exc: object) -> None:
        self._mod.C_MASK = self._saved


def _pure(func: Callable[[_T], _R]) -> Callable[[_T], _R]:
    """``func`` run with our C mask helper switched off (see :class:`_PureMask`)."""
    switch = _PureMask()

    def wrapped(arg: _T) -> _R:
        with switch:
            return func(arg)

    return wrapped


def _ours_probe(pure: bool) -> Callable[[], str]:
    def probe() -> str:
        from pushbench.wire import mask

        small = f"int XOR below {mask.MASK_NUMPY_MIN} B, numpy uint64 above"
        if pure:
            return f"sans-I/O codec, pure mask path forced (C_MASK=None): {small}"
        if getattr(mask, "C_MASK", None) is not None:
            return "sans-I/O codec with its C mask helper (pushbench.wire._speedups)"
        return f"sans-I/O codec, C mask helper NOT built: {small}"

    return probe


def _ours_decoder(pure: bool) -> Callable[[bool], Decoder]:
    def make(masked: bool) -> Decoder:
        from pushbench.wire.frames import FrameReader

        def decode(stream: bytes) -> Any:
            return FrameReader(
                masked=masked, max_frame_size=MAX_FRAME, max_message_size=MAX_MESSAGE
            ).feed(stream)

        def frames(out: Any) -> list[tuple[int, bytes]]:
            return [(f.opcode, bytes(f.payload)) for f in out]

        return Decoder(_pure(decode) if pure else decode, frames)

    return make


def _ours_encoder(pure: bool) -> Callable[[bool], EncodeFn]:
    def make(masked: bool) -> EncodeFn:
        from pushbench.wire.frames import encode_frame

        def encode(payloads: list[bytes]) -> list[Any]:
            return [encode_frame(OPCODE_BINARY, p, mask=masked) for p in payloads]

        return _pure(encode) if pure else encode

    return make


# --- wsproto ------------------------------------------------------------------


def _wsproto_probe() -> str:
    _module("wsproto.frame_protocol")
    return "pure Python FrameProtocol (frame layer of wsproto, no handshake/events)"


def _wsproto_decoder(masked: bool) -> Decoder:
    fp_mod = _module("wsproto.frame_protocol")
    protocol_cls = fp_mod.FrameProtocol

    def decode(stream: bytes) -> Any:
        # A server (client=False) requires masked frames, a client unmasked ones.
        proto = protocol_cls(client=not masked, extensions=[])
        proto.receive_bytes(stream)
        return list(proto.received_frames())

    def frames(out: Any) -> list[tuple[int, bytes]]:
        assert all(f.frame_finished and f.message_finished for f in out)
        return [(int(f.opcode), bytes(f.payload)) for f in out]

    return Decoder(decode, frames)


def _wsproto_encoder(masked: bool) -> EncodeFn:
    fp_mod = _module("wsproto.frame_protocol")
    # A client (client=True) masks with os.urandom(4) per frame.
    proto = fp_mod.FrameProtocol(client=masked, extensions=[])
    send = proto.send_data

    def encode(payloads: list[bytes]) -> list[Any]:
        return [send(p) for p in payloads]

    return encode


# --- websockets -------------------------------------------------------------


def _websockets_probe() -> str:
    frames = _module("websockets.frames")
    speedups = _module("websockets.speedups")
    if frames.apply_mask is not speedups.apply_mask:
        raise Unavailable("websockets.speedups not in use by websockets.frames")
    return "Frame.parse over streams.StreamReader / Frame.serialize; C apply_mask (speedups)"


def _websockets_decoder(masked: bool) -> Decoder:
    frames_mod = _module("websockets.frames")
    streams = _module("websockets.streams")
    parse = frames_mod.Frame.parse

    def parse_loop(read_exact: Any, out: list[Any]) -> Any:
        # The shape of websockets.protocol.Protocol.parse(): one long-lived
        # generator that parses frames until the reader runs dry and yields.
        append = out.append
        while True:
            frame = yield from parse(read_exact, mask=masked, max_size=MAX_FRAME, extensions=None)
            append(frame)

    def decode(stream: bytes) -> Any:
        reader = streams.StreamReader()
        out: list[Any] = []
        parser = parse_loop(reader.read_exact, out)
        next(parser)  # start: waits for the first header, as Protocol.__init__ does
        reader.feed_data(stream)
        next(parser)  # as Protocol.receive_data(): parse all complete frames
        return out

    def frames(out: Any) -> list[tuple[int, bytes]]:
        assert all(f.fin for f in out)
        return [(int(f.opcode), bytes(f.data)) for f in out]

    return Decoder(decode, frames)


def _websockets_encoder(masked: bool) -> EncodeFn:
    frames_mod = _module("websockets.frames")
    frame_cls = frames_mod.Frame
    binary = frames_mod.Opcode.BINARY

    def encode(payloads: list[bytes]) -> list[Any]:
        # Protocol.send_binary builds a Frame and serializes it; masking draws
        # secrets.token_bytes(4) per frame.
        return [frame_cls(binary, p).serialize(mask=masked) for p in payloads]

    return encode


# --- aiohttp (compiled reader, and its pure-Python fallback) ---------------


class _AiohttpProtocol:
    """The two attributes aiohttp's queue reads from its protocol for flow control."""

    _reading_paused = False

    def pause_reading(self) -> None:  # pragma: no cover - limit is never reached
        raise AssertionError("aiohttp reader asked to pause: benchmark stream too large")

    def resume_reading(self) -> None:  # pragma: no cover
        pass


class _AiohttpSink:
    """A transport that keeps what aiohttp's writer writes (list.append, no copy)."""

    __slots__ = ("chunks", "write")

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.write = self.chunks.append

    def take(self) -> list[Any]:
        out = self.chunks
        self.chunks = []
        self.write = self.chunks.append
        return out

    def is_closing(self) -> bool:
        return False


def _aiohttp_c_probe() -> str:
    reader = _module("aiohttp._websocket.reader")
    reader_c = _module("aiohttp._websocket.reader_c")
    mask_c = _module("aiohttp._websocket.mask")  # noqa: F841 - must be compiled too
    if reader.WebSocketReader is not reader_c.WebSocketReader:
        raise Unavailable("aiohttp is not using its compiled reader (AIOHTTP_NO_EXTENSIONS?)")
    return (
        "Cython reader_c.WebSocketReader into WebSocketDataQueue; writer with Cython mask; "
        "the writer passes unmasked payloads over 16 KiB to the transport uncopied"
    )


def _aiohttp_py_probe() -> str:
    _module("aiohttp._websocket.reader_py")
    return (
        "reader_py.WebSocketReader and the writer with aiohttp's pure-Python mask, "
        "as run when its extensions are absent (AIOHTTP_NO_EXTENSIONS=1); "
        "unmasked payloads over 16 KiB go to the transport uncopied"
    )


def _aiohttp_reader_classes(compiled: bool) -> tuple[Any, Any]:
    if compiled:
        mod = _module("aiohttp._websocket.reader_c")
        return mod.WebSocketDataQueue, mod.WebSocketReader
    mod = _module("aiohttp._websocket.reader_py")
    helpers = _module("aiohttp._websocket.helpers")
    # reader_py imports the *compiled* mask when it exists; the real fallback
    # build has only the Python one, so give this copy that one.
    reader_cls = type(
        "WebSocketReaderPurePython",
        (mod.WebSocketReader,),
        {
            "_feed_data": _rebind(
                mod.WebSocketReader._feed_data, websocket_mask=helpers._websocket_mask_python
            )
        },
    )
    return mod.WebSocketDataQueue, reader_cls


def _aiohttp_decoder(compiled: bool) -> Callable[[bool], Decoder]:
    def make(masked: bool) -> Decoder:
        # aiohttp's reader follows the mask bit of each frame whatever its
        # role, so `masked` only changes the stream it is given.
        queue_cls, reader_cls = _aiohttp_reader_classes(compiled)
        protocol = _AiohttpProtocol()

        def decode(stream: bytes) -> Any:
            queue = queue_cls(protocol, _AIOHTTP_QUEUE_LIMIT, loop=None)
            reader = reader_cls(queue, MAX_MESSAGE, False, True)  # no deflate, decode text
            reader.feed_data(stream)
            return queue

        def frames(queue: Any) -> list[tuple[int, bytes]]:
            if queue.exception() is not None:
                raise queue.exception()
            return [(int(msg.type), bytes(msg.data)) for msg, _size in queue._buffer]

        return Decoder(decode, frames)

    return make


def _aiohttp_encoder(compiled: bool) -> Callable[[bool], EncodeFn]:
    def make(masked: bool) -> EncodeFn:
        writer_mod = _module("aiohttp._websocket.writer")
        writer_cls = writer_mod.WebSocketWriter
        if not compiled:
            helpers = _module("aiohttp._websocket.helpers")
            writer_cls = type(
                "WebSocketWriterPurePython",
                (writer_cls,),
                {
                    "_write_websocket_frame": _rebind(
                        writer_cls._write_websocket_frame,
                        websocket_mask=helpers._websocket_mask_python,
                    )
                },
            )
        sink = _AiohttpSink()
        # use_mask=True is aiohttp's client: random.getrandbits(32) key per frame.
        writer = writer_cls(None, sink, use_mask=masked)
        # The framing function under `await send_frame()` for uncompressed
        # frames; the coroutine and flow-control wrapper are left out, as every
        # other library here is measured without its I/O layer.
        write_frame = writer._write_websocket_frame

        def encode(payloads: list[bytes]) -> list[Any]:
            for p in payloads:
                write_frame(p, OPCODE_BINARY, 0)
            return sink.take()

        return encode

    return make


# --- the tables ---------------------------------------------------------------

PEERS: tuple[Peer, ...] = (
    Peer(
        "pushbench",
        "pushbench",
        "ours as installed: pushbench.wire.frames.FrameReader.feed / encode_frame",
        _ours_probe(pure=False),
        _ours_decoder(pure=False),
        _ours_encoder(pure=False),
    ),
    Peer(
        "pushbench-py",
        "pushbench",
        "ours on the pure Python/numpy mask path (C helper switched off)",
        _ours_probe(pure=True),
        _ours_decoder(pure=True),
        _ours_encoder(pure=True),
    ),
    Peer(
        "wsproto",
        "wsproto",
        "wsproto.frame_protocol.FrameProtocol (pure Python)",
        _wsproto_probe,
        _wsproto_decoder,
        _wsproto_encoder,
    ),
    Peer(
        "websockets",
        "websockets",
        "websockets.frames.Frame.parse/serialize with C speedups",
        _websockets_probe,
        _websockets_decoder,
        _websockets_encoder,
    ),
    Peer(
        "aiohttp-c",
        "aiohttp",
        "aiohttp compiled WebSocketReader (Cython) / WebSocketWriter",
        _aiohttp_c_probe,
        _aiohttp_decoder(compiled=True),
        _aiohttp_encoder(compiled=True),
    ),
    Peer(
        "aiohttp-py",
        "aiohttp",
        "aiohttp pure-Python fallback reader_py / writer, Python mask",
        _aiohttp_py_probe,
        _aiohttp_decoder(compiled=False),
        _aiohttp_encoder(compiled=False),
    ),
)


def peer_by_name(name: str) -> Peer:
    """The :data:`PEERS` row called ``name`` (``KeyError`` if none)."""
    for peer in PEERS:
        if peer.name == name:
            return peer
    raise KeyError(name)


# --- 1 MiB masking kernels ----------------------------------------------------


def _mask_ours_alloc(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    from pushbench.wire.mask import apply_mask

    return (lambda: apply_mask(data, key)), (lambda: bytes(apply_mask(data, key)))


def _mask_ours_alloc_pure(
    data: bytes, key: bytes
) -> tuple[Callable[[], object], Callable[[], bytes]]:
    from pushbench.wire.mask import apply_mask

    switch = _PureMask()

    def call() -> object:
        with switch:
            return apply_mask(data, key)

    def result() -> bytes:
        with switch:
            return bytes(apply_mask(data, key))

    return call, result


def _mask_ours_into(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    from pushbench.wire.mask import apply_mask_into

    out = bytearray(len(data))
    return (lambda: apply_mask_into(data, key, out)), (lambda: bytes(out))


def _mask_ours_in_place(
    data: bytes, key: bytes
) -> tuple[Callable[[], object], Callable[[], bytes]]:
    from pushbench.wire.mask import apply_mask_into

    buf = bytearray(data)

    def result() -> bytes:
        fresh = bytearray(data)
        apply_mask_into(fresh, key, fresh)
        return bytes(fresh)

    # Like aiohttp's: each call re-masks the same buffer, touching 1 MiB, not 2.
    return (lambda: apply_mask_into(buf, key, buf)), result


def _mask_websockets(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    speedups = _module("websockets.speedups")
    apply_mask = speedups.apply_mask
    return (lambda: apply_mask(data, key)), (lambda: bytes(apply_mask(data, key)))


def _mask_aiohttp_c(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    mask_mod = _module("aiohttp._websocket.mask")
    mask = mask_mod._websocket_mask_cython
    buf = bytearray(data)

    def result() -> bytes:
        fresh = bytearray(data)
        mask(key, fresh)
        return bytes(fresh)

    # In place, as aiohttp uses it: each call re-masks the same buffer.
    return (lambda: mask(key, buf)), result


def _mask_numpy(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    import numpy as np

    if len(data) % 8:
        raise NotApplicable("numpy uint64 kernel needs a multiple of 8 bytes")
    src = np.frombuffer(data, dtype=np.uint64)
    out = bytearray(len(data))
    dst = np.frombuffer(out, dtype=np.uint64)
    k64 = np.frombuffer(key * 2, dtype=np.uint64)[0]
    xor = np.bitwise_xor
    return (lambda: xor(src, k64, out=dst)), (lambda: bytes(out))


def _copy_into(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    out = bytearray(len(data))
    view = memoryview(out)

    def call() -> None:
        view[:] = data  # one memcpy into a buffer whose pages are already mapped

    return call, (lambda: bytes(out))


def _copy_new(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    src = bytearray(data)
    return (lambda: bytes(src)), (lambda: bytes(src))


MASKERS: tuple[Masker, ...] = (
    Masker(
        "pushbench",
        "apply_mask",
        "pushbench",
        "ours as installed, fresh result (what FrameReader uses)",
        _mask_ours_alloc,
    ),
    Masker(
        "pushbench-py",
        "apply_mask",
        "pushbench",
        "ours, pure path (C helper off): copy to a fresh bytearray + numpy uint64 XOR",
        _mask_ours_alloc_pure,
    ),
    Masker(
        "pushbench",
        "apply_mask_into",
        "pushbench",
        "ours, numpy uint64 XOR into a preallocated buffer",
        _mask_ours_into,
    ),
    Masker(
        "pushbench",
        "apply_mask_into in place",
        "pushbench",
        "ours, numpy uint64 XOR in place on a bytearray",
        _mask_ours_in_place,
    ),
    Masker(
        "websockets",
        "speedups.apply_mask",
        "websockets",
        "C, fresh bytes result",
        _mask_websockets,
    ),
    Masker(
        "aiohttp-c",
        "_websocket_mask_cython",
        "aiohttp",
        "Cython, in place on a bytearray (aiohttp copies the payload first)",
        _mask_aiohttp_c,
    ),
    Masker(
        "numpy",
        "uint64 xor",
        "numpy",
        "np.bitwise_xor on uint64 views into a preallocated buffer",
        _mask_numpy,
    ),
    Masker(
        "floor",
        "copy into",
        None,
        "memoryview slice assignment into a preallocated buffer: memcpy, no XOR",
        _copy_into,
        "copy",
    ),
    Masker(
        "floor",
        "copy new",
        None,
        "bytes(bytearray): allocate + memcpy, no XOR",
        _copy_new,
        "copy",
    ),
)


def masker_for(library: str, variant: str) -> Masker:
    """The :data:`MASKERS` row for ``(library, variant)`` (``KeyError`` if none)."""
    for m in MASKERS:
        if (m.library, m.variant) == (library, variant):
            return m
    raise KeyError((library, variant))


def masker_libraries() -> Sequence[str]:
    """Library names appearing in :data:`MASKERS`, in order, without repeats."""
    return list(dict.fromkeys(m.library for m in MASKERS))

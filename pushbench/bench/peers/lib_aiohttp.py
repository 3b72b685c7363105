"""The adapter of aiohttp: its compiled (Cython) reader and writer, and its pure-Python
fallback as run when its extensions are absent; and its Cython mask as a 1 MiB kernel."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from .adapter import (
    MAX_MESSAGE,
    OPCODE_BINARY,
    Decoder,
    EncodeFn,
    Masker,
    Peer,
    Unavailable,
    require,
)

__all__ = ["MASKERS", "PEERS"]

# aiohttp's queue pauses the transport above 2 * limit queued bytes, and its
# reader then stalls; a benchmark stream is far below this, so it never does.
# (The queue stores the limit in a C unsigned int, hence not larger.)
_AIOHTTP_QUEUE_LIMIT = (1 << 31) - 1


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
    reader = require("aiohttp._websocket.reader")
    reader_c = require("aiohttp._websocket.reader_c")
    mask_c = require("aiohttp._websocket.mask")  # noqa: F841 - must be compiled too
    if reader.WebSocketReader is not reader_c.WebSocketReader:
        raise Unavailable("aiohttp is not using its compiled reader (AIOHTTP_NO_EXTENSIONS?)")
    return (
        "Cython reader_c.WebSocketReader into WebSocketDataQueue; writer with Cython mask; "
        "the writer passes unmasked payloads over 16 KiB to the transport uncopied"
    )


def _aiohttp_py_probe() -> str:
    require("aiohttp._websocket.reader_py")
    return (
        "reader_py.WebSocketReader and the writer with aiohttp's pure-Python mask, "
        "as run when its extensions are absent (AIOHTTP_NO_EXTENSIONS=1); "
        "unmasked payloads over 16 KiB go to the transport uncopied"
    )


def _aiohttp_reader_classes(compiled: bool) -> tuple[Any, Any]:
    if compiled:
        mod = require("aiohttp._websocket.reader_c")
        return mod.WebSocketDataQueue, mod.WebSocketReader
    mod = require("aiohttp._websocket.reader_py")
    helpers = require("aiohttp._websocket.helpers")
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
        writer_mod = require("aiohttp._websocket.writer")
        writer_cls = writer_mod.WebSocketWriter
        if not compiled:
            helpers = require("aiohttp._websocket.helpers")
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


def _mask_aiohttp_c(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    mask_mod = require("aiohttp._websocket.mask")
    mask = mask_mod._websocket_mask_cython
    buf = bytearray(data)

    def result() -> bytes:
        fresh = bytearray(data)
        mask(key, fresh)
        return bytes(fresh)

    # In place, as aiohttp uses it: each call re-masks the same buffer.
    return (lambda: mask(key, buf)), result


PEERS: tuple[Peer, ...] = (
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

MASKERS: tuple[Masker, ...] = (
    Masker(
        "aiohttp-c",
        "_websocket_mask_cython",
        "aiohttp",
        "Cython, in place on a bytearray (aiohttp copies the payload first)",
        _mask_aiohttp_c,
    ),
)

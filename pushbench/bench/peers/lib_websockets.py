"""The adapter of websockets: ``Frame.parse`` over its ``StreamReader``, ``Frame.serialize``,
with its C speedups; and its C ``apply_mask`` as a 1 MiB mask kernel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .adapter import MAX_FRAME, Decoder, EncodeFn, Masker, Peer, Unavailable, require

__all__ = ["MASKERS", "PEERS"]


def _websockets_probe() -> str:
    frames = require("websockets.frames")
    speedups = require("websockets.speedups")
    if frames.apply_mask is not speedups.apply_mask:
        raise Unavailable("websockets.speedups not in use by websockets.frames")
    return "Frame.parse over streams.StreamReader / Frame.serialize; C apply_mask (speedups)"


def _websockets_decoder(masked: bool) -> Decoder:
    frames_mod = require("websockets.frames")
    streams = require("websockets.streams")
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
    frames_mod = require("websockets.frames")
    frame_cls = frames_mod.Frame
    binary = frames_mod.Opcode.BINARY

    def encode(payloads: list[bytes]) -> list[Any]:
        # Protocol.send_binary builds a Frame and serializes it; masking draws
        # secrets.token_bytes(4) per frame.
        return [frame_cls(binary, p).serialize(mask=masked) for p in payloads]

    return encode


def _mask_websockets(data: bytes, key: bytes) -> tuple[Callable[[], object], Callable[[], bytes]]:
    speedups = require("websockets.speedups")
    apply_mask = speedups.apply_mask
    return (lambda: apply_mask(data, key)), (lambda: bytes(apply_mask(data, key)))


PEERS: tuple[Peer, ...] = (
    Peer(
        "websockets",
        "websockets",
        "websockets.frames.Frame.parse/serialize with C speedups",
        _websockets_probe,
        _websockets_decoder,
        _websockets_encoder,
    ),
)

MASKERS: tuple[Masker, ...] = (
    Masker(
        "websockets",
        "speedups.apply_mask",
        "websockets",
        "C, fresh bytes result",
        _mask_websockets,
    ),
)

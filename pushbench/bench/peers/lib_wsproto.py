"""The adapter of wsproto: its frame layer (``FrameProtocol``), pure Python, no handshake."""

from __future__ import annotations

from typing import Any

from .adapter import Decoder, EncodeFn, Peer, require

__all__ = ["PEERS"]


def _wsproto_probe() -> str:
    require("wsproto.frame_protocol")
    return "pure Python FrameProtocol (frame layer of wsproto, no handshake/events)"


def _wsproto_decoder(masked: bool) -> Decoder:
    fp_mod = require("wsproto.frame_protocol")
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
    fp_mod = require("wsproto.frame_protocol")
    # A client (client=True) masks with os.urandom(4) per frame.
    proto = fp_mod.FrameProtocol(client=masked, extensions=[])
    send = proto.send_data

    def encode(payloads: list[bytes]) -> list[Any]:
        return [send(p) for p in payloads]

    return encode


PEERS: tuple[Peer, ...] = (
    Peer(
        "wsproto",
        "wsproto",
        "wsproto.frame_protocol.FrameProtocol (pure Python)",
        _wsproto_probe,
        _wsproto_decoder,
        _wsproto_encoder,
    ),
)

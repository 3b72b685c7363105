"""The adapter of our own codec, compiled (as installed) and on its pure Python path.

Two :class:`~.adapter.Peer` rows — ``pushbench`` ("pushbench (C)": the frame
parser, encoder and mask of ``_speedups.c``) and ``pushbench-py``
("pushbench (pure)") — and our 1 MiB mask kernels. The pure rows run the same
code with every C helper switched off around each timed call, the compiled rows
with every helper switched on (:class:`_Path`), so both builds are measured in
the same process whatever ``PUSHBENCH_NO_SPEEDUPS`` says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .adapter import (
    MAX_FRAME,
    MAX_MESSAGE,
    OPCODE_BINARY,
    Decoder,
    EncodeFn,
    Masker,
    Peer,
    Unavailable,
)

__all__ = ["MASKERS", "PEERS"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class _Path:
    """Context manager: run our codec on one path, the compiled or the pure Python one.

    :mod:`pushbench.wire.speedups` holds the switch the codec reads on every
    ``feed``/``encode_frame``/``apply_mask`` call (``PUSHBENCH_NO_SPEEDUPS=1``
    turns it off for a process); setting it around a timed call measures both
    builds in the same process, whatever the process's own setting. It costs a
    few attribute stores per call of ≥ 4 frames.
    """

    __slots__ = ("_compiled", "_mod", "_saved")

    def __init__(self, compiled: bool) -> None:
        from pushbench.wire import speedups

        self._compiled = compiled
        self._mod: Any = speedups
        self._saved: Any = None

    def __enter__(self) -> None:
        self._saved = self._mod.state()
        self._mod.use_speedups(self._compiled)

    def __exit__(self, *exc: object) -> None:
        self._mod.restore(self._saved)


def _PureMask() -> _Path:
    """The pure Python path (every C helper off): see :class:`_Path`."""
    return _Path(False)


def _on(pure: bool, func: Callable[[_T], _R]) -> Callable[[_T], _R]:
    """``func`` run on the pure path (``pure``) or the compiled one (see :class:`_Path`)."""
    switch = _Path(not pure)

    def wrapped(arg: _T) -> _R:
        with switch:
            return func(arg)

    return wrapped


def _ours_probe(pure: bool) -> Callable[[], str]:
    def probe() -> str:
        from pushbench.wire import mask, speedups

        small = f"int XOR below {mask.MASK_NUMPY_MIN} B, numpy uint64 above"
        if pure:
            return f"sans-I/O codec, pure Python path forced (C helpers off): {small}"
        built = speedups.built()
        if all(built.values()):
            return "sans-I/O codec, compiled frame parser, encoder and mask (_speedups.c)"
        missing = ", ".join(name for name, ok in built.items() if not ok)
        raise Unavailable(f"the C helpers are not built ({missing}): {small}")

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

        return Decoder(_on(pure, decode), frames)

    return make


def _ours_encoder(pure: bool) -> Callable[[bool], EncodeFn]:
    def make(masked: bool) -> EncodeFn:
        from pushbench.wire.frames import encode_frame

        def encode(payloads: list[bytes]) -> list[Any]:
            return [encode_frame(OPCODE_BINARY, p, mask=masked) for p in payloads]

        return _on(pure, encode)

    return make


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


PEERS: tuple[Peer, ...] = (
    Peer(
        "pushbench",
        "pushbench",
        "pushbench (C): FrameReader.feed / encode_frame on the compiled parser and encoder",
        _ours_probe(pure=False),
        _ours_decoder(pure=False),
        _ours_encoder(pure=False),
    ),
    Peer(
        "pushbench-py",
        "pushbench",
        "pushbench (pure): the same calls with every C helper switched off",
        _ours_probe(pure=True),
        _ours_decoder(pure=True),
        _ours_encoder(pure=True),
    ),
)

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
)

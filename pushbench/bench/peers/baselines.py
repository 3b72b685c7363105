"""Reference points of the unmask comparison: numpy's uint64 XOR, and plain-copy floors.

No library is measured here: these rows say how fast a 1 MiB XOR or a memcpy
can be on this machine, so the kernels' GB/s have something to stand beside.
"""

from __future__ import annotations

from collections.abc import Callable

from .adapter import Masker, NotApplicable

__all__ = ["MASKERS"]


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

"""XOR masking of payloads (RFC 6455 §5.3), the codec's hottest primitive.

When the optional C helper (``_speedups.c``) is built, it masks every size.
Otherwise two pure paths are picked by size: small payloads XOR as one big
Python integer (no per-byte loop, no temporary arrays); large ones XOR as a
numpy ``uint64`` view against the key widened to 8 bytes, at memory
bandwidth. :data:`pushbench.wire.speedups.C_MASK` is None without the helper,
or after ``use_speedups(False)`` (``PUSHBENCH_NO_SPEEDUPS=1`` through
:class:`pushbench.settings.Settings`); the benchmark flips it to measure both.
"""

from __future__ import annotations

import numpy as np

from . import speedups as _speedups
from .speedups import MaskFunction, use_speedups

__all__ = [
    "MASK_NUMPY_MIN",
    "MaskFunction",
    "apply_mask",
    "apply_mask_into",
    "rotate_key",
    "use_speedups",
]


# Below this many bytes the integer path wins: numpy's per-call overhead is
# about a microsecond, which a 125-byte integer XOR never reaches.
MASK_NUMPY_MIN = 2048

_from_bytes = int.from_bytes


def _mask_small(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    n = len(data)
    # Big-endian keeps byte order aligned with the key repeated from offset 0.
    return (_from_bytes(data) ^ _from_bytes((key * ((n >> 2) + 1))[:n])).to_bytes(n)


def _mask_large(data: bytes | bytearray | memoryview, key: bytes) -> bytearray:
    # Copy then XOR in place: bytearray(data) reuses malloc'd memory, whereas
    # building a fresh 1 MiB ``bytes`` faults in new pages and runs ~10x slower.
    out = bytearray(data)
    apply_mask_into(out, key, out)
    return out


def apply_mask(data: bytes | bytearray | memoryview, key: bytes) -> bytes | bytearray:
    """Return ``data`` XORed with the 4-byte ``key`` repeated from offset 0.

    Masking and unmasking are the same operation. ``key`` must be 4 bytes.
    The result is ``bytes``, except on the pure path from ``MASK_NUMPY_MIN``
    bytes up, where it is a fresh ``bytearray`` (see ``_mask_large`` for why).
    """
    c_mask = _speedups.C_MASK
    if c_mask is not None:
        return c_mask(data, key)
    if len(data) < MASK_NUMPY_MIN:
        return _mask_small(data, key)
    return _mask_large(data, key)


def apply_mask_into(
    data: bytes | bytearray | memoryview, key: bytes, out: bytearray | memoryview
) -> None:
    """XOR ``data`` with ``key`` into the preallocated ``out`` (same length).

    The allocation-free variant for callers that reuse a buffer: at 1 MiB,
    fresh pages cost more than the XOR itself.
    """
    n = len(data)
    dst = np.frombuffer(out, dtype=np.uint8)
    src = np.frombuffer(data, dtype=np.uint8)
    words = n >> 3
    if words:
        k64 = np.frombuffer(key * 2, dtype=np.uint64)[0]
        np.bitwise_xor(src[: words * 8].view(np.uint64), k64, out=dst[: words * 8].view(np.uint64))
    tail = n - words * 8
    if tail:
        np.bitwise_xor(
            src[words * 8 :],
            np.frombuffer(key * 2, dtype=np.uint8)[:tail],
            out=dst[words * 8 :],
        )


def rotate_key(key: bytes, offset: int) -> bytes:
    """The key as seen by a payload slice starting ``offset`` bytes in."""
    r = offset & 3
    return key[r:] + key[:r] if r else key

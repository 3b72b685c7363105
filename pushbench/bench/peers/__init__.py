"""Adapters that make each WebSocket library decode, encode and mask the same way.

One small module per library (:mod:`.ours`, :mod:`.lib_wsproto`,
:mod:`.lib_websockets`, :mod:`.lib_aiohttp`, and the numpy/copy reference
points in :mod:`.baselines`), each exporting its rows; this package lists them
in :data:`PEERS` (frame codecs) and :data:`MASKERS` (1 MiB XOR kernels and
copy floors), in display order. The benchmark runner only sees these tables:
adding a library means adding a module and its rows here, not touching the
runner.

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

Also here: an independent *reference* encoder/decoder (:mod:`.reference`),
which builds the input streams and checks every adapter's output, so no
library (ours included) grades its own work.

Imports of the libraries happen inside the adapter factories: importing this
package is cheap, and a missing library only disables its own row.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import baselines, lib_aiohttp, lib_websockets, lib_wsproto, ours
from .adapter import (
    MAX_FRAME,
    MAX_MESSAGE,
    OPCODE_BINARY,
    DecodeFn,
    Decoder,
    EncodeFn,
    Masker,
    NotApplicable,
    Peer,
    Unavailable,
)
from .reference import reference_decode, reference_encode, reference_mask

__all__ = [
    "MASKERS",
    "MAX_FRAME",
    "MAX_MESSAGE",
    "OPCODE_BINARY",
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

#: Frame codecs compared, in display order (pushbench.schema.codec.LIBRARIES names them).
PEERS: tuple[Peer, ...] = (
    *ours.PEERS,
    *lib_wsproto.PEERS,
    *lib_websockets.PEERS,
    *lib_aiohttp.PEERS,
)

#: 1 MiB XOR kernels and copy floors, in display order.
MASKERS: tuple[Masker, ...] = (
    *ours.MASKERS,
    *lib_websockets.MASKERS,
    *lib_aiohttp.MASKERS,
    *baselines.MASKERS,
)


def peer_by_name(name: str) -> Peer:
    """The :data:`PEERS` row called ``name`` (``KeyError`` if none)."""
    for peer in PEERS:
        if peer.name == name:
            return peer
    raise KeyError(name)


def masker_for(library: str, variant: str) -> Masker:
    """The :data:`MASKERS` row for ``(library, variant)`` (``KeyError`` if none)."""
    for m in MASKERS:
        if (m.library, m.variant) == (library, variant):
            return m
    raise KeyError((library, variant))


def masker_libraries() -> Sequence[str]:
    """Library names appearing in :data:`MASKERS`, in order, without repeats."""
    return list(dict.fromkeys(m.library for m in MASKERS))

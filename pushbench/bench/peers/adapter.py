"""What a peer adapter is: the rows of the codec comparison and the errors they raise.

A :class:`Peer` is one library's frame codec, a :class:`Masker` one 1 MiB XOR
kernel (or a plain-copy floor). Each library's module in this package builds
its rows from these types; :mod:`pushbench.bench.peers` lists the rows.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_FRAME",
    "MAX_MESSAGE",
    "OPCODE_BINARY",
    "DecodeFn",
    "Decoder",
    "EncodeFn",
    "MaskFactory",
    "Masker",
    "NotApplicable",
    "Peer",
    "Unavailable",
    "require",
]

OPCODE_BINARY = 0x2

# Limits given to every decoder: at least one 1 MiB frame must pass. Each
# library still runs its own size checks, as it would in production.
MAX_FRAME = 1 << 20
MAX_MESSAGE = 4 << 20

DecodeFn = Callable[[bytes], Any]
"""Decode one whole stream with a fresh decoder → the library's frame container."""

EncodeFn = Callable[[list[bytes]], list[Any]]
"""Encode each payload as one binary frame → the chunks written, in order."""

MaskFactory = Callable[[bytes, bytes], tuple[Callable[[], object], Callable[[], bytes]]]
"""``make(data, key)`` → ``(call, result)``: the timed call, and the bytes it produced."""


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
    make: MaskFactory
    expect: str = "masked"  # or "copy"


def require(name: str) -> Any:
    """Import ``name`` or raise :class:`Unavailable` (typed ``Any``: private APIs)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Unavailable(f"cannot import {name}: {exc}") from exc

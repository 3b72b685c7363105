"""Which compiled helpers the codec uses: the one switch between the C and the pure path.

``_speedups.c`` (built by ``setup.py`` when a compiler is present) holds three
functions: the XOR mask, a frame parser and a frame encoder. Each is exposed
here as a module attribute that is None when the helper is not built (or an
older build lacks it) or after ``use_speedups(False)``; the codec reads the
attribute on every call, so flipping the switch at any time switches the whole
codec. ``PUSHBENCH_NO_SPEEDUPS=1`` turns it off through
:class:`pushbench.settings.Settings`; the codec benchmark flips it around its
``pushbench-py`` rows (:func:`state` / :func:`restore`) to time both paths in
one process.

The pure Python path stays the reference: :class:`pushbench.wire.frames.FrameReader`
hands every frame the parser does not take (incomplete, fragmented, or
breaking a rule) to its pure path, which raises the error.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = [
    "C_ENCODE",
    "C_MASK",
    "C_PARSE",
    "EncodeFunction",
    "FanoutFunction",
    "MaskFunction",
    "ParseFunction",
    "built",
    "enabled",
    "fanout",
    "restore",
    "rx_loop",
    "state",
    "use_fanout",
    "use_rx_loop",
    "use_speedups",
]

MaskFunction = Callable[[bytes | bytearray | memoryview, bytes], bytes]
ParseFunction = Callable[
    [type, list[Any], bytes | bytearray | memoryview, int, int, int, int, int], tuple[int, int]
]
EncodeFunction = Callable[[int, bytes | bytearray | memoryview, bytes | None], bytes]

_module: ModuleType | None
try:
    from . import _speedups as _module
except ImportError:  # pragma: no cover - depends on the build
    _module = None

_BUILT_MASK: MaskFunction | None = getattr(_module, "apply_mask", None)
_BUILT_PARSE: ParseFunction | None = getattr(_module, "parse_frames", None)
_BUILT_ENCODE: EncodeFunction | None = getattr(_module, "encode_frame", None)

C_MASK: MaskFunction | None = _BUILT_MASK
C_PARSE: ParseFunction | None = _BUILT_PARSE
C_ENCODE: EncodeFunction | None = _BUILT_ENCODE

State = tuple[MaskFunction | None, ParseFunction | None, EncodeFunction | None]


def use_speedups(enabled: bool) -> None:
    """Use every built C helper (``enabled``) or none of them (the pure path)."""
    restore((_BUILT_MASK, _BUILT_PARSE, _BUILT_ENCODE) if enabled else (None, None, None))


def built() -> dict[str, bool]:
    """Which helpers this installation has compiled: {mask, parse, encode}."""
    return {
        "mask": _BUILT_MASK is not None,
        "parse": _BUILT_PARSE is not None,
        "encode": _BUILT_ENCODE is not None,
    }


def enabled() -> bool:
    """Whether the compiled frame parser is in use (what "pushbench (C)" measures)."""
    return C_PARSE is not None


def state() -> State:
    """The current choice, to hand back to :func:`restore`."""
    return (C_MASK, C_PARSE, C_ENCODE)


def restore(saved: State) -> None:
    """Set the three helpers as :func:`state` returned them (or None for the pure path)."""
    global C_MASK, C_PARSE, C_ENCODE
    C_MASK, C_PARSE, C_ENCODE = saved


# h45: the light clients' compiled receive loop (pushbench.clients.rxengine) is a C
# helper too: off with the others (use_speedups(False)), or alone (PUSHBENCH_NO_RX_LOOP=1).
_RX_LOOP = True


def use_rx_loop(enabled: bool) -> None:
    """Let the light WebSocket and SSE clients use the compiled receive loop (when built)."""
    global _RX_LOOP
    _RX_LOOP = enabled


def rx_loop() -> bool:
    """Whether the compiled receive loop may be used: its switch and the C helpers are on."""
    return _RX_LOOP and C_PARSE is not None


# The raw stack's compiled fan-out (pushbench/_fanout.c: one publish written to many
# sockets in one call; pushbench.hub's lanes): off with the others (use_speedups(False)),
# or alone (PUSHBENCH_NO_FANOUT=1).
FanoutFunction = Callable[[list[int], bytes], list[tuple[int, int]]]

_fanout_module: ModuleType | None
try:
    from .. import _fanout as _fanout_module
except ImportError:  # pragma: no cover - depends on the build
    _fanout_module = None

_BUILT_FANOUT: FanoutFunction | None = getattr(_fanout_module, "send_each", None)
_FANOUT = True


def use_fanout(enabled: bool) -> None:
    """Let the raw stack write a publish to its plain-TCP subscribers in one compiled call."""
    global _FANOUT
    _FANOUT = enabled


def fanout() -> FanoutFunction | None:
    """The compiled fan-out when built and on (its switch and the C helpers), else None."""
    return _BUILT_FANOUT if _FANOUT and C_PARSE is not None else None

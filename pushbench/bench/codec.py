"""The codec benchmark's cases, as data: what to time, on which bytes, checked how.

``pushbench bench-codec`` times our WebSocket codec against the libraries
people use. It is built in the pytest-benchmark / pyperformance way, each
part in a module of its own:

1. **Cases are data** (this module). :func:`build_cases` returns a list of
   :class:`Case` values: {decode, encode} × {masked, unmasked} × payload sizes
   × libraries (the adapters in :mod:`pushbench.bench.peers`), plus 1 MiB
   mask/unmask kernels and copy floors. :func:`prepare` builds a case's timed
   call on deterministic :class:`Workloads` and checks the library's output
   against an independent reference codec once.
2. **One runner** (:mod:`.codec_runner`, timing loop in :mod:`.timing`):
   calibrates, warms up and times every case the same way, and returns
   :class:`~pushbench.schema.codec.Record` values; :mod:`.codec_profile`
   profiles our decoder afterwards.
3. **Stored as data, rendered separately.** The records and their files
   (``codec.json``, ``codec.csv``) are :mod:`pushbench.schema.codec`;
   :mod:`pushbench.report.codec` draws plots and the Markdown report from
   those files only, never re-running anything. ``pushbench bench-codec``
   (:mod:`pushbench.commands.bench_codec`) runs the one, then the other.

What one timed call is:

- decode: a stream of ``frames_per_call`` binary frames, fed in one call to a
  decoder created for it, to the list of frame objects with unmasked payloads
  (freeing that list included). Per-frame time is the call's time divided by
  the frame count, so decoder construction is amortised over ≥ 4 frames (1000
  for small payloads). No UTF-8 validation: the frames are binary.
- encode: ``frames_per_call`` payloads, each to one final binary frame (and a
  fresh random key per frame when masked), collected in a list.
- unmask: XOR of one 1 MiB buffer with a 4-byte key (or a plain copy, the floor).

Heavy imports (numpy via the codec, the peers' libraries) happen inside
functions so ``pushbench --help`` stays fast.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pushbench.schema.codec import LIBRARIES, MAX_FRAMES, MIN_FRAMES, STREAM_BYTES

__all__ = [
    "BASELINES",
    "DEFAULT_SIZES",
    "LIBRARIES",
    "QUICK_SIZES",
    "UNMASK_SIZE",
    "Case",
    "CheckFailed",
    "Prepared",
    "Workloads",
    "build_cases",
    "frames_per_call",
    "known_libraries",
    "prepare",
]

KiB = 1024
MiB = 1024 * KiB

DEFAULT_SIZES: tuple[int, ...] = (16, 125, KiB, 16 * KiB, MiB)
QUICK_SIZES: tuple[int, ...] = (125, 16 * KiB)
UNMASK_SIZE = MiB

# Reference points of the unmask comparison; always run (they are cheap and
# the ratios need them), whatever --only says.
BASELINES: tuple[str, ...] = ("numpy", "floor")

DEFAULT_REPEATS = 5
DEFAULT_MIN_TIME = 0.1
QUICK_REPEATS = 3  # a median of 3: one disturbed repeat does not move it
QUICK_MIN_TIME = 0.02
DEFAULT_PROFILE_TIME = 2.0
QUICK_PROFILE_TIME = 0.2

# Installed distributions whose versions go into metadata.json.
DISTRIBUTIONS: tuple[str, ...] = (
    "numpy",
    "wsproto",
    "websockets",
    "aiohttp",
    "pyinstrument",
    "matplotlib",
    "pandas",
)

_SEED = 6455  # payloads and keys are deterministic: every library sees the same bytes


# --- cases -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One benchmark: what to do, to what payload size, with which library."""

    op: str  # "decode" | "encode" | "unmask"
    masked: bool  # decode: server side (client frames are masked); encode: client side
    payload: int  # bytes per frame
    library: str
    variant: str = ""  # which function, where a library has several (unmask)

    @property
    def id(self) -> str:
        role = "masked" if self.masked else "unmasked"
        lib = f"{self.library}:{self.variant}" if self.variant else self.library
        return f"{self.op}/{role}/{self.payload}/{lib}"


def frames_per_call(payload: int) -> int:
    """How many frames one decode/encode call handles at this payload size."""
    return max(MIN_FRAMES, min(MAX_FRAMES, STREAM_BYTES // max(payload, 1)))


def build_cases(
    sizes: Sequence[int] = DEFAULT_SIZES, libraries: Iterable[str] = LIBRARIES
) -> list[Case]:
    """The benchmark table: every (op, masked, size, library), then unmask kernels."""
    from .peers import MASKERS

    wanted = set(libraries)
    cases = [
        Case(op, masked, size, lib)
        for op in ("decode", "encode")
        for masked in (True, False)
        for size in sizes
        for lib in LIBRARIES
        if lib in wanted
    ]
    cases += [
        Case("unmask", True, UNMASK_SIZE, m.library, m.variant)
        for m in MASKERS
        if m.library in wanted or m.library in BASELINES
    ]
    return cases


# --- workloads and preparation ------------------------------------------------


class Workloads:
    """Deterministic payloads and pre-encoded streams, built once per run.

    Streams are built with the reference encoder in :mod:`.peers`, so no
    library under test produces another's input.
    """

    def __init__(self, seed: int = _SEED) -> None:
        self._seed = seed
        self._payloads: dict[int, list[bytes]] = {}
        self._streams: dict[tuple[int, bool], bytes] = {}

    def payloads(self, size: int) -> list[bytes]:
        """``frames_per_call(size)`` distinct random payloads of ``size`` bytes."""
        got = self._payloads.get(size)
        if got is None:
            rng = random.Random(f"{self._seed}/payload/{size}")
            got = [rng.randbytes(size) for _ in range(frames_per_call(size))]
            self._payloads[size] = got
        return got

    def stream(self, size: int, masked: bool) -> bytes:
        """The wire bytes of :meth:`payloads`, masked with per-frame keys if ``masked``."""
        key = (size, masked)
        got = self._streams.get(key)
        if got is None:
            from .peers import reference_encode

            rng = random.Random(f"{self._seed}/keys/{size}")
            got = b"".join(
                reference_encode(p, key=rng.randbytes(4) if masked else None)
                for p in self.payloads(size)
            )
            self._streams[key] = got
        return got

    def mask_input(self) -> tuple[bytes, bytes]:
        """The 1 MiB buffer and key of the unmask cases."""
        rng = random.Random(f"{self._seed}/unmask")
        return rng.randbytes(UNMASK_SIZE), rng.randbytes(4)


@dataclass(frozen=True)
class Prepared:
    """A case ready to time: ``call()`` processes ``frames`` frames."""

    call: Callable[[], object]
    frames: int


class CheckFailed(Exception):
    """A library's output differed from the reference: the case is not timed."""


def _expect_equal(got: Sequence[Any], want: Sequence[Any], what: str) -> None:
    if len(got) != len(want):
        raise CheckFailed(f"{what}: {len(got)} frames, expected {len(want)}")
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if g != w:
            raise CheckFailed(f"{what}: frame {i} differs")


def prepare(case: Case, workloads: Workloads) -> Prepared:
    """Build the timed call for ``case`` and check its output once.

    Raises :class:`~pushbench.bench.peers.NotApplicable`,
    :class:`~pushbench.bench.peers.Unavailable` or :class:`CheckFailed`.
    """
    from . import peers

    if case.op == "unmask":
        masker = peers.masker_for(case.library, case.variant)
        data, key = workloads.mask_input()
        call, result = masker.make(data, key)
        call()
        want = data if masker.expect == "copy" else peers.reference_mask(data, key)
        if result() != want:
            raise CheckFailed(f"{case.id}: result differs from the reference mask")
        return Prepared(call, 1)

    peer = peers.peer_by_name(case.library)
    payloads = workloads.payloads(case.payload)
    if case.op == "decode":
        decoder = peer.make_decoder(case.masked)
        stream = workloads.stream(case.payload, case.masked)
        got = decoder.frames(decoder.decode(stream))
        _expect_equal(got, [(peers.OPCODE_BINARY, p) for p in payloads], case.id)
        decode = decoder.decode
        return Prepared(lambda: decode(stream), len(payloads))
    if case.op == "encode":
        encode = peer.make_encoder(case.masked)
        wire = b"".join(bytes(chunk) for chunk in encode(payloads))
        keys: list[bytes] = []
        try:
            frames = peers.reference_decode(wire, masked=case.masked, keys=keys)
        except ValueError as exc:
            raise CheckFailed(f"{case.id}: {exc}") from exc
        _expect_equal(frames, [(peers.OPCODE_BINARY, True, p) for p in payloads], case.id)
        # A client must draw a fresh key per frame; ≥ 4 random 32-bit keys
        # practically never repeat, so a repeat means a fixed or weak key.
        if len(set(keys)) != len(keys):
            raise CheckFailed(f"{case.id}: masking keys repeat across frames")
        return Prepared(lambda: encode(payloads), len(payloads))
    raise ValueError(f"unknown op {case.op!r}")


def known_libraries() -> list[str]:
    """The library names ``--only`` accepts: the codecs, then the mask-only rows."""
    from .peers import MASKERS

    return list(dict.fromkeys([*LIBRARIES, *(m.library for m in MASKERS)]))

"""What a published message carries: its kind (``filler`` or ``json``) at a given size.

``filler`` is ``"x" * size``, the default: every stack sends the same bytes and nothing
about the content matters. ``json`` is realistic application data for cells where the
content *does* matter — permessage-deflate (``compression = "deflate"``): a list of
price-tick records (symbols, prices, sizes, timestamps, venues) as JSON text, cut to
exactly ``size`` characters. :func:`make_payloads` gives a pool of different such texts
(a fixed seed: the same pool in every run) that the ticker publishes in turn, so that a
compressor with context takeover cannot just point back at the previous message: the pool
spans ~4 MiB, beyond any deflate window (32 KiB). Random bytes would
make deflate look useless; filler would make it look magic; this sits where a real push
feed sits. The text travels as the envelope's ``"p"`` string, so its quotes appear
escaped (``\\"``) on the wire, as a JSON payload relayed as a string would.
"""

from __future__ import annotations

import json
import random

__all__ = ["PAYLOAD_KINDS", "make_payload", "make_payloads"]

PAYLOAD_KINDS: tuple[str, ...] = ("filler", "json")

_VENUES = ("XNAS", "XNYS", "ARCX", "BATS", "IEXG")


_POOL_CHARS = 1 << 22  # the json pool's total size (≥ 4 texts, ≤ 256)


def _json_text(size: int, rng: random.Random) -> str:
    records: list[str] = []
    length = 2
    ts = 1_767_225_600_000 + rng.randint(0, 10**6)
    while length < size:
        ts += rng.randint(1, 400)
        record = json.dumps(
            {
                "sym": "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)),
                "px": round(rng.uniform(5, 900), 2),
                "qty": rng.randint(1, 50) * 100,
                "side": rng.choice(("buy", "sell")),
                "venue": rng.choice(_VENUES),
                "ts": ts,
            },
            separators=(",", ":"),
        )
        records.append(record)
        length += len(record) + 1
    return ("[" + ",".join(records) + "]")[:size]


def make_payload(kind: str, size: int) -> str:
    """The (first) payload of ``kind`` with exactly ``size`` characters (ASCII)."""
    return make_payloads(kind, size, 1)[0]


def make_payloads(kind: str, size: int, count: int | None = None) -> tuple[str, ...]:
    """The payloads a publisher of ``kind`` sends in turn, each of exactly ``size``
    characters: filler is one text; json is ``count`` different texts (default: as many
    as fit in ~4 MiB, 4 to 256)."""
    if kind == "filler":
        return ("x" * size,)
    if kind == "json":
        n = count or max(4, min(256, _POOL_CHARS // max(size, 1)))
        rng = random.Random(7692)  # fixed: the same pool in every run
        return tuple(_json_text(size, rng) for _ in range(n))
    raise ValueError(f"unknown payload kind {kind!r} (one of {', '.join(PAYLOAD_KINDS)})")

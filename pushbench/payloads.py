"""What a published message carries: its kind (``filler`` or ``json``) at a given size.

``filler`` is ``"x" * size``, the default: every stack sends the same bytes and nothing
about the content matters. ``json`` is realistic application data for cells where the
content *does* matter — permessage-deflate (``compression = "deflate"``): a list of
price-tick records (symbols, prices, sizes, timestamps, venues) as JSON text, the same
for a given size (a fixed seed), cut to exactly ``size`` characters. Random bytes would
make deflate look useless; filler would make it look magic; this sits where a real push
feed sits. The text travels as the envelope's ``"p"`` string, so its quotes appear
escaped (``\\"``) on the wire, as a JSON payload relayed as a string would.
"""

from __future__ import annotations

import json
import random

__all__ = ["PAYLOAD_KINDS", "make_payload"]

PAYLOAD_KINDS: tuple[str, ...] = ("filler", "json")

_VENUES = ("XNAS", "XNYS", "ARCX", "BATS", "IEXG")


def _json_text(size: int) -> str:
    rng = random.Random(7692)  # fixed: the same payload in every run
    records: list[str] = []
    length = 2
    ts = 1_767_225_600_000
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
    """The payload of ``kind`` with exactly ``size`` characters (ASCII)."""
    if kind == "filler":
        return "x" * size
    if kind == "json":
        return _json_text(size)
    raise ValueError(f"unknown payload kind {kind!r} (one of {', '.join(PAYLOAD_KINDS)})")

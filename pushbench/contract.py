"""The message contract every transport carries, defined once.

A pushed message is a topic, the per-topic sequence number the hub assigned
(monotonic, from 1), the time it was *scheduled* to be published and the time
it actually was, both CLOCK_MONOTONIC nanoseconds (system-wide on Linux, so
stamps from different processes on one host compare directly), and a payload.
Latency is measured against ``scheduled_ns`` so a late publisher cannot hide
its lateness (no coordinated omission); ``published_ns`` keeps the
uncorrected figure available beside it.

It is encoded once per published message, not once per subscriber: the hub
hands every transport the same ``bytes``. ``ENCODING`` names the encoding in
results.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

__all__ = [
    "ENCODING",
    "MAX_TOPIC_LENGTH",
    "Envelope",
    "decode",
    "encode",
    "now_ns",
    "valid_topic",
]

ENCODING = "json"
MAX_TOPIC_LENGTH = 64
_TOPIC = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

now_ns = time.monotonic_ns  # CLOCK_MONOTONIC


def valid_topic(topic: str) -> bool:
    """1-64 characters from ``[A-Za-z0-9_.-]``: safe in URLs, logs and Redis keys."""
    return _TOPIC.fullmatch(topic) is not None


@dataclass(frozen=True, slots=True)
class Envelope:
    topic: str
    seq: int
    scheduled_ns: int
    published_ns: int
    payload: str


def encode(env: Envelope) -> bytes:
    """One compact JSON object; keys are short because they cross the wire per message."""
    return json.dumps(
        {
            "t": env.topic,
            "s": env.seq,
            "sch": env.scheduled_ns,
            "pub": env.published_ns,
            "p": env.payload,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def decode(data: bytes | bytearray | str) -> Envelope:
    """Inverse of :func:`encode`; raises ValueError on anything else."""
    try:
        obj = json.loads(data)
        return Envelope(
            str(obj["t"]), int(obj["s"]), int(obj["sch"]), int(obj["pub"]), str(obj["p"])
        )
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a pushbench message: {exc}") from exc

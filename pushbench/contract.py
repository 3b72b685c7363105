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

A client that publishes (chat cells) carries its own schedule: ``POST
/publish?topic=&sched=N`` or, on a WebSocket, the text message
``{"sch":N,"p":"payload"}`` (:func:`publish_frame`), N the CLOCK_MONOTONIC ns the
message was *due*. The hub keeps N as the envelope's ``scheduled_ns``, so a
server that holds publishes back shows it in the corrected latency, as it does
for the ticker. A publish without one is stamped on arrival (scheduled = published).
:func:`check_scheduled` is the one validation of N; :func:`parse_publish_frame`
reads a WebSocket publish (any text not starting with :data:`PUBLISH_FRAME_PREFIX` is
the payload itself, as before).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

__all__ = [
    "ENCODING",
    "MAX_SCHEDULED_AHEAD_NS",
    "MAX_TOPIC_LENGTH",
    "PUBLISH_FRAME_PREFIX",
    "Envelope",
    "check_scheduled",
    "clock_body",
    "clock_identity",
    "decode",
    "encode",
    "now_ns",
    "parse_publish_frame",
    "publish_frame",
    "valid_topic",
]

ENCODING = "json"
MAX_TOPIC_LENGTH = 64
_TOPIC = re.compile(r"[A-Za-z0-9_.\-]{1,64}")

now_ns = time.monotonic_ns  # CLOCK_MONOTONIC

#: How far a publisher's scheduled time may lie ahead of the server's clock. A publisher
#: sends a message once it is due, so a time in the future is a clock of another host (or
#: boot) or a bug; the bound leaves room for a sender whose clock read races the server's.
MAX_SCHEDULED_AHEAD_NS = 1_000_000_000
#: A WebSocket text message starting with this is a publish with its scheduled time.
PUBLISH_FRAME_PREFIX = '{"sch":'
_MAX_NS = 2**63 - 1


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


_ENVELOPE = b'{"t":%s,"s":%d,"sch":%d,"pub":%d,"p":%s}'


@lru_cache(maxsize=32)
def _json_text(text: str) -> bytes:
    """``text`` as a JSON string (UTF-8, not ASCII-escaped). Cached: a topic and a
    ticker's filler payload recur in every message, so each is escaped once, not per
    message. A ``payload_kind = "json"`` ticker cycles through up to 256 texts, more than
    the cache holds, so there every payload misses and is escaped per message (as
    before the cache); a larger cache would keep that many payloads (up to 64 KiB each
    from publishers) alive in the server whose memory the runner measures."""
    return json.dumps(text, ensure_ascii=False).encode()


def encode(env: Envelope) -> bytes:
    """One compact JSON object; keys are short because they cross the wire per message.

    The bytes of ``json.dumps`` of the dict with compact separators, written from a
    template (one ``%`` on bytes instead of the encoder's walk of a dict: ~8× cheaper
    per publish; ``tests/test_core.py`` pins the equality)."""
    return encode_fields(env.topic, env.seq, env.scheduled_ns, env.published_ns, env.payload)


def encode_fields(
    topic: str, seq: int, scheduled_ns: int, published_ns: int, payload: str
) -> bytes:
    """:func:`encode` of the envelope with these fields, without building it (a hub's
    publish, once per message)."""
    return _ENVELOPE % (_json_text(topic), seq, scheduled_ns, published_ns, _json_text(payload))


def decode(data: bytes | bytearray | str) -> Envelope:
    """Inverse of :func:`encode`; raises ValueError on anything else."""
    try:
        obj = json.loads(data)
        return Envelope(
            str(obj["t"]), int(obj["s"]), int(obj["sch"]), int(obj["pub"]), str(obj["p"])
        )
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a pushbench message: {exc}") from exc


def check_scheduled(value: object, now: int) -> int:
    """A publisher's scheduled time → int ns; ValueError unless it is an integer in
    [0, ``now`` + :data:`MAX_SCHEDULED_AHEAD_NS`] (a digit string, as in a query, or an int;
    never a bool or a float, which would lose nanoseconds)."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > 19:
            raise ValueError("sched must be an integer (CLOCK_MONOTONIC ns)")
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("sched must be an integer (CLOCK_MONOTONIC ns)")
    if not 0 <= value <= min(_MAX_NS, now + MAX_SCHEDULED_AHEAD_NS):
        raise ValueError(
            f"sched must be CLOCK_MONOTONIC ns at most {MAX_SCHEDULED_AHEAD_NS // 10**6} ms "
            "ahead of the server's clock (the same host's clock)"
        )
    return value


def publish_frame(payload: str, scheduled_ns: int) -> str:
    """The WebSocket text message that publishes ``payload`` scheduled at ``scheduled_ns``."""
    return f'{PUBLISH_FRAME_PREFIX}{scheduled_ns},"p":{json.dumps(payload, ensure_ascii=False)}}}'


def parse_publish_frame(text: str) -> tuple[str, int | None]:
    """A WebSocket publish → (payload, its scheduled time or None when absent).

    Text not starting with :data:`PUBLISH_FRAME_PREFIX` is the payload itself (no
    schedule). Text that does must be a JSON object of exactly ``sch`` (a JSON integer)
    and ``p`` (a string), else ValueError; the time's range is :func:`check_scheduled`'s.
    """
    if not text.startswith(PUBLISH_FRAME_PREFIX):
        return text, None
    why = 'a publish starting {"sch": must be JSON {"sch": <integer ns>, "p": "<payload>"}'
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(why) from None
    if not isinstance(obj, dict) or obj.keys() != {"sch", "p"} or not isinstance(obj["p"], str):
        raise ValueError(why)
    sch = obj["sch"]
    if not isinstance(sch, int) or isinstance(sch, bool):
        raise ValueError(why)
    return obj["p"], sch


# --- GET /clock (issue 18 item 1: clock offset across hosts) ---------------------------------


@cache
def clock_identity() -> tuple[str, int]:
    """Which CLOCK_MONOTONIC this process reads: the kernel's boot id and this process's
    time-namespace offset of CLOCK_MONOTONIC in ns (0 outside one). Two processes with
    the same pair read the same clock; a worker that finds the server's pair equal to its
    own needs no offset estimate (:mod:`pushbench.clocksync`). ``("", 0)`` where Linux
    does not say (then the pair never matches another's)."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "", 0
    timens_ns = 0
    try:
        for line in Path("/proc/self/timens_offsets").read_text().splitlines():
            name, sec, nsec = line.split()
            if name in ("monotonic", "1"):  # CLOCK_MONOTONIC is clock id 1
                timens_ns = int(sec) * 1_000_000_000 + int(nsec)
    except (OSError, ValueError):
        pass
    return boot_id, timens_ns


def clock_body() -> bytes:
    """``GET /clock``'s answer on every stack: ``{"mono_ns": "<digits>", "boot_id": …,
    "timens_ns": …}`` — this process's CLOCK_MONOTONIC (:data:`now_ns`, the clock of the
    envelope's stamps), read as late as the handler can, and :func:`clock_identity`. The
    reading is a string because a JavaScript Number is exact only up to 2**53 ns (104
    days of uptime); the browser page reads it into a BigInt. Needs no token: it tells a
    client only what time it is."""
    boot_id, timens_ns = clock_identity()
    return b'{"mono_ns":"%d","boot_id":"%s","timens_ns":%d}' % (
        now_ns(),
        boot_id.encode(),
        timens_ns,
    )

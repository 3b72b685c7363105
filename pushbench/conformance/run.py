"""Run the conformance cases against one server's ``/echo`` over raw sockets.

Each case: a fresh TCP connection, the upgrade, the case's bytes in one write, then
every frame the server sends is read (leniently: whatever the server sends is
recorded, never judged by our own codec) until its Close and TCP's end, each wait
bounded by ``timeout_s``. :func:`classify` turns what was seen into OK /
NON-STRICT / FAILED by the rules in :mod:`.cases`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from pushbench.wire.handshake import check_response, client_request, find_head_end, parse_response

from .cases import CASES, CLOSE, PING, PONG, Case, Reply, close

__all__ = ["Observed", "Outcome", "Result", "classify", "format_table", "run_case", "run_suite"]


class Outcome(Enum):
    OK = "OK"
    NON_STRICT = "NON-STRICT"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Observed:
    """What the server did in one case."""

    replies: tuple[Reply, ...]  # whole messages and pongs, in order
    close_code: int | None  # of the server's Close (1005: empty); None: no Close frame
    tcp_closed: bool  # the server ended TCP within the timeout
    error: str = ""  # the handshake failed, or the connection broke oddly


@dataclass(frozen=True)
class Result:
    case: Case
    outcome: Outcome
    detail: str


class _Frames:
    """A lenient parser of the server's unmasked frames, reassembling messages."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.parts: list[bytes] = []
        self.opcode = 0
        self.replies: list[Reply] = []
        self.close_code: int | None = None

    def feed(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while self.close_code is None and len(buf) >= 2:
            n = buf[1] & 0x7F
            head = 2
            if n == 126:
                head, n = 4, int.from_bytes(buf[2:4], "big") if len(buf) >= 4 else -1
            elif n == 127:
                head, n = 10, int.from_bytes(buf[2:10], "big") if len(buf) >= 10 else -1
            if buf[1] & 0x80:
                head += 4  # a masked server frame: not expected, read anyway
            if n < 0 or len(buf) < head + n:
                return
            fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
            payload = bytes(buf[head : head + n])
            if buf[1] & 0x80:
                key = buf[head - 4 : head]
                payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            del buf[: head + n]
            if opcode == CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
            elif opcode in (PING, PONG):
                if opcode == PONG:
                    self.replies.append(Reply(PONG, payload))
            else:
                if opcode:
                    self.opcode, self.parts = opcode, []
                self.parts.append(payload)
                if fin:
                    self.replies.append(Reply(self.opcode, b"".join(self.parts)))


async def run_case(host: str, port: int, case: Case, *, timeout_s: float = 2.0) -> Observed:
    """Play one case against ``ws://host:port/echo`` → what the server did.

    Like a client should, we answer the server's Close with ours (unless we already
    sent one) and then wait for the server to end TCP (§7.1.1).
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    frames = _Frames()
    try:
        request, key = client_request(f"{host}:{port}", "/echo")
        writer.write(request)
        buf = b""
        while (end := find_head_end(buf)) < 0:
            chunk = await asyncio.wait_for(reader.read(65536), timeout_s)
            if not chunk:
                return Observed((), None, True, "closed during the handshake")
            buf += chunk
        check_response(parse_response(buf[:end]), key)
        writer.write(case.send)
        # The case's own bytes end with a Close unless it fails or we close after it.
        sent_close = not (case.fails or case.client_closes)
        frames.feed(buf[end:])
        if case.client_closes:
            await _read(reader, frames, timeout_s, until_replies=len(case.replies))
            if frames.close_code is None:
                writer.write(close(1000))
                sent_close = True
        tcp_closed = await _read(reader, frames, timeout_s, until_close=not sent_close)
        if frames.close_code is not None and not sent_close:
            with contextlib.suppress(OSError):
                writer.write(close(1000))
        if not tcp_closed:
            tcp_closed = await _read(reader, frames, timeout_s)
        return Observed(tuple(frames.replies), frames.close_code, tcp_closed)
    except (OSError, ValueError) as exc:
        return Observed(
            tuple(frames.replies), frames.close_code, True, f"{type(exc).__name__}: {exc}"
        )
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _read(
    reader: asyncio.StreamReader,
    frames: _Frames,
    timeout_s: float,
    *,
    until_replies: int | None = None,
    until_close: bool = False,
) -> bool:
    """Feed the server's bytes to ``frames`` until EOF (→ True), the timeout (→ False),
    ``until_replies`` replies are in, or (``until_close``) its Close is in."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if until_replies is not None and len(frames.replies) >= until_replies:
            return False
        if until_close and frames.close_code is not None:
            return False
        left = deadline - loop.time()
        if left <= 0:
            return False
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        if not chunk:
            return True
        frames.feed(chunk)


def classify(case: Case, seen: Observed) -> tuple[Outcome, str]:
    """Apply the rules of :mod:`.cases` → (outcome, what differed)."""
    want = case.replies
    got = seen.replies
    code_ok = seen.close_code in case.close_codes
    if seen.error:
        return Outcome.FAILED, seen.error
    if got == want and code_ok and seen.tcp_closed:
        return Outcome.OK, ""
    if got == want and code_ok:
        return Outcome.NON_STRICT, "TCP not closed after the close handshake"
    if (
        case.fails
        and got == want[: len(got)]
        and (code_ok or (seen.close_code is None and seen.tcp_closed))
    ):
        missing = len(want) - len(got)
        if missing:
            return Outcome.NON_STRICT, f"{missing} reply(ies) before the violation not sent"
        return Outcome.NON_STRICT, "failed without a Close frame"
    what = []
    if got != want:
        what.append(f"replies {_short(got)} != {_short(want)}")
    if not code_ok:
        what.append(f"close {seen.close_code} not in {case.close_codes}")
    return Outcome.FAILED, "; ".join(what)


def _short(replies: Sequence[Reply]) -> str:
    return "[" + ", ".join(f"{r.opcode}:{len(r.payload)}B" for r in replies) + "]"


async def run_suite(
    host: str, port: int, cases: Sequence[Case] = CASES, *, timeout_s: float = 2.0
) -> list[Result]:
    """Every case in turn (one connection at a time: results never depend on load)."""
    results = []
    for case in cases:
        made = case.materialize()  # large cases' bytes live only while the case runs
        seen = await run_case(host, port, made, timeout_s=case.timeout_s or timeout_s)
        outcome, detail = classify(made, seen)
        del made, seen
        results.append(Result(case, outcome, detail))
    return results


def format_table(by_stack: dict[str, list[Result]]) -> str:
    """The per-stack summary, then every case that is not OK on some stack."""
    lines = [f"{'stack':10} {'cases':>5} {'OK':>4} {'NON-STRICT':>10} {'FAILED':>6}"]
    for stack, results in by_stack.items():
        n = {o: sum(r.outcome is o for r in results) for o in Outcome}
        ok, non_strict, failed = n[Outcome.OK], n[Outcome.NON_STRICT], n[Outcome.FAILED]
        lines.append(f"{stack:10} {len(results):5} {ok:4} {non_strict:10} {failed:6}")
    for stack, results in by_stack.items():
        for r in results:
            if r.outcome is not Outcome.OK:
                lines.append(
                    f"  {stack}: {r.case.id} {r.outcome.value}: {r.detail} ({r.case.description})"
                )
    return "\n".join(lines)

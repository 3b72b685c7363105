"""The conformance cases as data: what the client sends, what a strict server answers.

Ids are Autobahn|Testsuite's where a case corresponds (sections 1-7 and 10: framing,
pings, reserved bits, opcodes, fragmentation, UTF-8, closing); ids starting with
``pb.`` are our own. Every case's bytes are sent in **one write**, so a valid message
and a violation after it arrive in the same read: the strict answer handles (echoes)
the message first and then fails the connection with the RFC's code.

Outcome rules (:func:`pushbench.conformance.run.classify`):

- OK: exactly ``replies`` (echoed messages and pongs, in order), then a Close whose
  code is in ``close_codes``, and TCP closed.
- NON-STRICT (only when ``fails``: a violation ends the case): the right Close but
  only a prefix of ``replies`` (what arrived with the violation was not answered), or
  the replies and TCP closed without any Close frame (§7.1.7 says SHOULD send one).
- FAILED: anything else (wrong close code, a reply that should not be, no close).

When ``client_closes`` the runner waits for the replies, then sends Close 1000 and
expects it answered; otherwise the case's own bytes end it (a violation or a Close).

Section 9 (messages of 64 KiB to 16 MiB) needs the server started with a larger
message limit: those cases carry ``server_args`` (``--max-message-size 16777216``), and
the runner starts each stack once per distinct argument set. Their bytes are made only
when the case runs (``build``), so importing the cases costs no memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from pushbench.wire import encode_frame

__all__ = ["CASES", "LARGE_ARGS", "Case", "Reply"]

TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10
PROTOCOL_ERROR, INVALID_DATA = 1002, 1007
_KEY = b"\x37\xfa\x21\x3d"  # a fixed mask key: the bytes of every case are reproducible


@dataclass(frozen=True)
class Reply:
    """One thing the server must send back: a whole message (TEXT/BINARY) or a PONG."""

    opcode: int
    payload: bytes


@dataclass(frozen=True)
class Case:
    id: str
    description: str
    send: bytes  # masked client frames, written at once
    replies: tuple[Reply, ...] = ()
    close_codes: tuple[int, ...] = (1000,)  # acceptable codes of the server's Close (1005: empty)
    fails: bool = False  # the bytes hold a violation: the server fails the connection
    client_closes: bool = False  # after the replies the runner sends Close 1000
    server_args: tuple[str, ...] = ()  # extra `pushbench serve` arguments the case needs
    timeout_s: float | None = None  # each wait's bound, when the runner's default is too short
    # Large cases: (send, replies) made when the case runs, not at import.
    build: Callable[[], tuple[bytes, tuple[Reply, ...]]] | None = None

    @property
    def section(self) -> str:
        return self.id.removeprefix("pb.").split(".")[0]

    def materialize(self) -> Case:
        """This case with its bytes made (itself when they are stored)."""
        if self.build is None:
            return self
        send, replies = self.build()
        return replace(self, send=send, replies=replies, build=None)


def f(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """One masked client frame (the project's encoder); ``rsv`` is Autobahn's 3-bit RSV value."""
    return encode_frame(opcode, payload, fin=fin, rsv=rsv << 4, mask=_KEY)


def close(code: int | None = 1000, reason: bytes = b"") -> bytes:
    return f(CLOSE, b"" if code is None else code.to_bytes(2, "big") + reason)


def _echo(case_id: str, description: str, opcode: int, payload: bytes) -> Case:
    return Case(
        case_id, description, f(opcode, payload), (Reply(opcode, payload),), client_closes=True
    )


def _fail(
    case_id: str,
    description: str,
    send: bytes,
    replies: tuple[Reply, ...] = (),
    code: int = PROTOCOL_ERROR,
) -> Case:
    return Case(case_id, description, send, replies, (code,), fails=True)


SIZES = (0, 125, 126, 127, 128, 65535, 65536)
HELLO = Reply(TEXT, b"Hello, world!")
HELLO_F = f(TEXT, b"Hello, world!")


def _framing() -> list[Case]:
    cases = [_echo(f"1.1.{i}", f"text, {n} bytes", TEXT, b"*" * n) for i, n in enumerate(SIZES, 1)]
    cases += [
        _echo(f"1.2.{i}", f"binary, {n} bytes", BINARY, b"\xfe" * n) for i, n in enumerate(SIZES, 1)
    ]
    return cases


def _pings() -> list[Case]:
    def pong(case_id: str, description: str, payload: bytes) -> Case:
        return Case(
            case_id, description, f(PING, payload), (Reply(PONG, payload),), client_closes=True
        )

    return [
        pong("2.1", "ping without payload", b""),
        pong("2.2", "ping with a small text payload", b"Hello, world!"),
        pong("2.3", "ping with a small binary payload", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"),
        pong("2.4", "ping with a 125-byte payload", b"\xfe" * 125),
        _fail(
            "2.5", "ping with a 126-byte payload (control frames <= 125)", f(PING, b"\xfe" * 126)
        ),
        Case("2.6", "unsolicited pong without payload: ignored", f(PONG), client_closes=True),
        Case(
            "2.7",
            "unsolicited pong with payload: ignored",
            f(PONG, b"unsolicited"),
            client_closes=True,
        ),
        Case(
            "2.10",
            "10 pings at once: 10 pongs",
            b"".join(f(PING, b"p%d" % i) for i in range(10)),
            tuple(Reply(PONG, b"p%d" % i) for i in range(10)),
            client_closes=True,
        ),
    ]


def _reserved_bits() -> list[Case]:
    ping = f(PING, b"after")
    return [
        _fail("3.1", "text with RSV = 1", f(TEXT, b"Hello, world!", rsv=1)),
        _fail(
            "3.2",
            "text, text with RSV = 2, ping: echo, then fail",
            HELLO_F + f(TEXT, b"x", rsv=2) + ping,
            (HELLO,),
        ),
        _fail(
            "3.3",
            "text, text with RSV = 3, ping: echo, then fail",
            HELLO_F + f(TEXT, b"x", rsv=3) + ping,
            (HELLO,),
        ),
        _fail(
            "3.4",
            "text, text with RSV = 4, ping: echo, then fail",
            HELLO_F + f(TEXT, b"x", rsv=4) + ping,
            (HELLO,),
        ),
        _fail("3.5", "binary with RSV = 5", f(BINARY, b"\xff" * 8, rsv=5)),
        _fail("3.6", "ping with RSV = 6", f(PING, b"x", rsv=6)),
        _fail("3.7", "close with RSV = 7", f(CLOSE, b"\x03\xe8", rsv=7)),
    ]


def _opcodes() -> list[Case]:
    ping = f(PING, b"after")
    cases: list[Case] = []
    for group, ops in (("1", (3, 4, 5, 6, 7)), ("2", (11, 12, 13, 14, 15))):
        kind = "non-control" if group == "1" else "control"
        cases.append(_fail(f"4.{group}.1", f"reserved {kind} opcode {ops[0]}", f(ops[0])))
        cases.append(
            _fail(
                f"4.{group}.2",
                f"reserved {kind} opcode {ops[1]} with payload",
                f(ops[1], b"reserved"),
            )
        )
        for i, op in enumerate(ops[2:], 3):
            payload = b"" if i == 3 else b"reserved"
            cases.append(
                _fail(
                    f"4.{group}.{i}",
                    f"text, reserved {kind} opcode {op}, ping: echo, then fail",
                    HELLO_F + f(op, payload) + ping,
                    (HELLO,),
                )
            )
    return cases


def _fragmentation() -> list[Case]:
    frag = f(TEXT, b"fragment1", fin=False) + f(CONT, b"fragment2")
    return [
        _fail("5.1", "fragmented ping", f(PING, b"fragment1", fin=False) + f(CONT, b"fragment2")),
        _fail("5.2", "fragmented pong", f(PONG, b"fragment1", fin=False) + f(CONT, b"fragment2")),
        Case(
            "5.3",
            "text in 2 fragments",
            frag,
            (Reply(TEXT, b"fragment1fragment2"),),
            client_closes=True,
        ),
        Case(
            "5.4",
            "binary in 2 fragments",
            f(BINARY, b"\x01", fin=False) + f(CONT, b"\x02"),
            (Reply(BINARY, b"\x01\x02"),),
            client_closes=True,
        ),
        Case(
            "5.6",
            "text fragment, ping, text fragment: pong, then echo",
            f(TEXT, b"fragment1", fin=False) + f(PING, b"ping") + f(CONT, b"fragment2"),
            (Reply(PONG, b"ping"), Reply(TEXT, b"fragment1fragment2")),
            client_closes=True,
        ),
        _fail("5.9", "continuation with FIN and no message to continue", f(CONT, b"fragment1")),
        _fail(
            "5.10",
            "continuation without FIN and no message to continue",
            f(CONT, b"fragment1", fin=False),
        ),
        _fail(
            "5.15",
            "text in 2 fragments, then a continuation and an interrupting text: echo, then fail",
            frag + f(CONT, b"fragment3", fin=False) + f(TEXT, b"fragment4"),
            (Reply(TEXT, b"fragment1fragment2"),),
        ),
        _fail(
            "5.18",
            "text fragment, then a new text before the first ends",
            f(TEXT, b"fragment1", fin=False) + f(TEXT, b"fragment2"),
        ),
        Case(
            "5.19",
            "text in 5 fragments with 2 pings between: 2 pongs, then echo",
            f(TEXT, b"f1", fin=False)
            + f(CONT, b"f2", fin=False)
            + f(PING, b"p1")
            + f(CONT, b"f3", fin=False)
            + f(CONT, b"f4", fin=False)
            + f(PING, b"p2")
            + f(CONT, b"f5"),
            (Reply(PONG, b"p1"), Reply(PONG, b"p2"), Reply(TEXT, b"f1f2f3f4f5")),
            client_closes=True,
        ),
    ]


UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()
KOSME = "κόσμε".encode()


def _utf8() -> list[Case]:
    return [
        Case("6.1.1", "empty text", f(TEXT), (Reply(TEXT, b""),), client_closes=True),
        _echo("6.2.1", "valid UTF-8 in one frame", TEXT, UTF8),
        Case(
            "6.2.3",
            "valid UTF-8, fragmented in the middle of a code point",
            f(TEXT, UTF8[:7], fin=False) + f(CONT, UTF8[7:]),
            (Reply(TEXT, UTF8),),
            client_closes=True,
        ),
        _echo("6.5.1", "valid UTF-8 (kosme)", TEXT, KOSME),
        _fail(
            "6.3.1",
            "invalid UTF-8 in one frame",
            f(TEXT, KOSME + b"\xed\xa0\x80edited"),
            code=INVALID_DATA,
        ),
        _fail(
            "6.3.2",
            "invalid UTF-8 in the second fragment",
            f(TEXT, KOSME, fin=False) + f(CONT, b"\xc0\xaf"),
            code=INVALID_DATA,
        ),
        _fail("pb.6.overlong", "overlong encoding of '/'", f(TEXT, b"\xc0\xaf"), code=INVALID_DATA),
        _fail(
            "pb.6.surrogate", "UTF-16 surrogate U+D800", f(TEXT, b"\xed\xa0\x80"), code=INVALID_DATA
        ),
        _fail(
            "pb.6.too-large",
            "code point above U+10FFFF",
            f(TEXT, b"\xf4\x90\x80\x80"),
            code=INVALID_DATA,
        ),
        _fail(
            "pb.6.truncated",
            "message ends inside a code point",
            f(TEXT, b"ab\xe2\x82"),
            code=INVALID_DATA,
        ),
        _fail(
            "pb.6.echo-then-invalid",
            "valid text, then invalid UTF-8: echo, then fail",
            HELLO_F + f(TEXT, b"\xff"),
            (HELLO,),
            code=INVALID_DATA,
        ),
    ]


VALID_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)
INVALID_CODES = (0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999)


def _closing() -> list[Case]:
    cases = [
        Case("7.1.1", "text, then close: echo, then close", HELLO_F + close(), (HELLO,)),
        Case("7.1.2", "close twice: the second is ignored", close() + close()),
        Case("7.1.3", "close, then ping: no pong", close() + f(PING, b"ping")),
        Case("7.1.4", "close, then text: no echo", close() + HELLO_F),
        Case(
            "7.1.5",
            "text fragment, close, text fragment: close, no echo",
            f(TEXT, b"fragment1", fin=False) + close() + f(CONT, b"fragment2"),
        ),
        Case("7.3.1", "close without payload", close(None), close_codes=(1005, 1000)),
        _fail("7.3.2", "close with a 1-byte payload", f(CLOSE, b"\x03")),
        Case("7.3.3", "close 1000 without reason", close()),
        Case("7.3.4", "close 1000 with a reason", close(1000, b"Hello World!")),
        Case("7.3.5", "close 1000 with a 123-byte reason", close(1000, b"*" * 123)),
        _fail(
            "7.3.6", "close 1000 with a 124-byte reason (payload over 125)", close(1000, b"*" * 124)
        ),
        _fail(
            "7.5.1",
            "close with an invalid UTF-8 reason",
            close(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"),
            code=INVALID_DATA,
        ),
    ]
    cases += [
        Case(f"7.7.{i}", f"close with valid code {c}", close(c), close_codes=(c, 1000))
        for i, c in enumerate(VALID_CODES, 1)
    ]
    cases += [
        _fail(f"7.9.{i}", f"close with invalid code {c}", close(c))
        for i, c in enumerate(INVALID_CODES, 1)
    ]
    cases += [
        _fail("7.13.1", "close with code 5000", close(5000)),
        _fail("7.13.2", "close with code 65535", close(65535)),
    ]
    return cases


def _limits() -> list[Case]:
    body = bytes(range(256)) * 256  # 64 KiB
    frames = [body[i : i + 1300] for i in range(0, len(body), 1300)]
    sent = f(BINARY, frames[0], fin=False) + b"".join(
        f(CONT, p, fin=i == len(frames) - 1) for i, p in enumerate(frames[1:], 1)
    )
    return [
        Case(
            "10.1.1",
            "64 KiB binary in 1300-byte fragments",
            sent,
            (Reply(BINARY, body),),
            client_closes=True,
        )
    ]


MiB = 1 << 20
LARGE_LIMIT = 16 * MiB
LARGE_ARGS = ("--max-message-size", str(LARGE_LIMIT))
LARGE_SIZES = (64 << 10, 256 << 10, MiB, 4 * MiB, 8 * MiB, 16 * MiB)  # Autobahn 9.1.x / 9.2.x
FRAGMENT_SIZES = (64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, MiB, 4 * MiB)


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB else f"{n >> 10} KiB" if n >= 1024 else f"{n} bytes"


def _large(case_id: str, description: str, opcode: int, size: int, fragment: int) -> Case:
    """One message of ``size`` bytes in frames of ``fragment`` bytes, echoed whole."""
    byte = b"*" if opcode == TEXT else b"\xfe"

    def build() -> tuple[bytes, tuple[Reply, ...]]:
        payload = byte * size
        if fragment >= size:
            return f(opcode, payload), (Reply(opcode, payload),)
        piece = byte * fragment  # every fragment is the same bytes: encode it once per kind
        n = size // fragment
        first = f(opcode, piece, fin=False)
        middle = f(CONT, piece, fin=False)
        last = f(CONT, piece)
        return first + middle * (n - 2) + last, (Reply(opcode, payload),)

    return Case(
        case_id,
        description,
        b"",
        client_closes=True,
        server_args=LARGE_ARGS,
        timeout_s=30.0,
        build=build,
    )


def _large_messages() -> list[Case]:
    """Autobahn section 9.1-9.4 (the server's limit set to 16 MiB)."""
    cases = []
    for group, opcode, kind in (("1", TEXT, "text"), ("2", BINARY, "binary")):
        cases += [
            _large(f"9.{group}.{i}", f"{kind}, {_size(n)}, one frame", opcode, n, n)
            for i, n in enumerate(LARGE_SIZES, 1)
        ]
    for group, opcode, kind in (("3", TEXT, "text"), ("4", BINARY, "binary")):
        cases += [
            _large(
                f"9.{group}.{i}",
                f"{kind}, 4 MiB in {_size(n)} fragments",
                opcode,
                4 * MiB,
                n,
            )
            for i, n in enumerate(FRAGMENT_SIZES, 1)
        ]
    return cases


CASES: tuple[Case, ...] = tuple(
    _framing()
    + _pings()
    + _reserved_bits()
    + _opcodes()
    + _fragmentation()
    + _utf8()
    + _closing()
    + _large_messages()
    + _limits()
)

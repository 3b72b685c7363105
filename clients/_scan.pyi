from typing import Any

def scan_envelopes(
    payloads: list[bytes | bytearray],
    start: int,
    conn: int,
    recv_ns: int,
    seq: Any,
    sch: Any,
    pub: Any,
    recv: Any,
    conns: Any,
    n: int,
    /,
) -> tuple[int, int, int, int]: ...
def scan_poll_answer(
    body: bytes | bytearray,
    conn: int,
    recv_ns: int,
    seq: Any,
    sch: Any,
    pub: Any,
    recv: Any,
    conns: Any,
    n: int,
    /,
) -> tuple[int, int, int] | None: ...

from collections.abc import Callable
from typing import Any

RUNNING: int
CLOSED: int
EOF: int
ERROR: int
REMOVED: int
DONE: int

class Engine:
    def __init__(
        self, seq: Any, sch: Any, pub: Any, recv: Any, conns: Any, n: int, overflow: int, /
    ) -> None: ...
    def add(
        self,
        fd: int,
        conn: int,
        kind: int,
        leftover: bytes,
        recv_ns: int,
        framing: int,
        left: int,
        last_id: bytes,
        /,
    ) -> int: ...
    def remove(self, ident: int, /) -> None: ...
    def release(self, ident: int, /) -> None: ...
    def info(self, ident: int, /) -> tuple[int, int, int, str, int, int, bytes, int, int]: ...
    def take(
        self,
    ) -> tuple[
        int,
        int,
        list[tuple[int, int, int, bytes | None, int]],
        list[tuple[int, int, bytes, int]],
        list[int],
    ]: ...
    def counts(self) -> tuple[int, int]: ...
    def probe(self, interval_ns: int, /) -> None: ...
    def lag(self, reset: bool, /) -> tuple[int, int, int, int, tuple[int, ...]]: ...
    def set_counts(self, n: int, overflow: int, /) -> None: ...
    def run(self, callback: Callable[[], object], /) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...

"""Push server stacks, one module per stack, started by ``pushbench serve``.

What every stack shares lives here, so the stacks stay comparable: the knobs
(:class:`Settings`), the counters a run reads back through ``GET /stats``
(:class:`Stats`), and the shape of a started server (:class:`RunningServer`)
that :mod:`servers.serve` drives. Nothing here imports asyncio or the codec:
``pushbench --help`` imports this package and must stay fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

__all__ = ["RunningServer", "Settings", "Stats"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Per-server limits and timers; every stack honours all of them.

    ``ping_interval`` 0 turns the keepalive off. The defaults follow the
    common libraries (websockets pings every 20 s and waits 20 s; aiohttp
    accepts 4 MiB messages) so a benchmark compares like with like.
    """

    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 5.0
    max_message_size: int = 4 << 20
    write_buffer_limit: int = 1 << 20

    def __post_init__(self) -> None:
        # Reject nonsense here, once, rather than as odd timer behaviour later.
        if self.ping_interval < 0:
            raise ValueError("ping_interval must be >= 0 (0 disables keepalive)")
        for name in ("ping_timeout", "close_timeout", "max_message_size", "write_buffer_limit"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


@dataclass(slots=True)
class Stats:
    """Counters of one server process, read by ``GET /stats``.

    Connections are WebSocket sessions (plain HTTP requests are not counted).
    ``messages_*`` count data messages; ``bytes_out`` counts every byte of
    every frame written to WebSocket transports, headers and control frames
    included, so wire overhead can be computed from it.
    """

    connections_open: int = 0
    connections_total: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    slow_consumers_dropped: int = 0
    dead_peers: int = 0
    protocol_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class RunningServer(Protocol):
    """A started stack, as :mod:`servers.serve` sees it."""

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound; the port is real even for port 0."""
        ...

    async def shutdown(self) -> None:
        """Stop accepting, close every WebSocket with 1001, wait at most close_timeout."""
        ...

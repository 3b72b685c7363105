"""A userspace TCP relay on asyncio that shapes traffic like a slow network.

This kernel has no netem, so the ``net`` dimension puts this relay between the clients
and the server: it accepts on a loopback port, opens one connection to the target per
client connection, and forwards each direction through a :class:`~.shaper.Shaper`
(one-way delay, seeded jitter, token-bucket cap, an optional stall) without ever
reordering bytes. A connection may also be cut (both sides aborted) at a set time after
it was accepted. Half-closes are forwarded (an EOF leaves after the bytes before it;
a read error counts as an EOF); a failed write or a cut aborts both sides.

Backpressure: a direction holds at most :data:`MAX_QUEUE_BYTES` not yet written; past
that it stops reading, so a sender faster than the cap is slowed by TCP as on a real
link instead of filling the relay's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .aim import Aim
from .profiles import Profile
from .shaper import Shaper

__all__ = ["MAX_QUEUE_BYTES", "READ_BYTES", "Relay", "RelayCounters"]

MAX_QUEUE_BYTES = 4 << 20
READ_BYTES = 65_536


@dataclass
class RelayCounters:
    """What the relay forwarded since it started (printed when it stops)."""

    accepted: int = 0
    upstream_failures: int = 0
    cuts: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class _Pipe:
    """One direction of one connection: read, hold until the release time, write."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        shaper: Shaper,
        aim: Aim,
    ) -> None:
        self.reader, self.writer, self.shaper, self.aim = reader, writer, shaper, aim
        self.queue: deque[tuple[float, bytes]] = deque()  # b"" marks the EOF
        self.queued = 0
        self.changed = asyncio.Event()
        self.forwarded = 0

    async def read_side(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self.queued > MAX_QUEUE_BYTES:
                self.changed.clear()
                await self.changed.wait()
            try:
                data = await self.reader.read(READ_BYTES)
            except (ConnectionError, OSError):
                data = b""
            at = self.shaper.release_at(loop.time(), len(data))
            self.queue.append((at, data))
            self.queued += len(data)
            self.changed.set()
            if not data:
                return

    async def write_side(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.changed.clear()
                await self.changed.wait()
            at, data = self.queue.popleft()
            self.queued -= len(data)
            self.changed.set()
            wait = self.aim.wait_s(at, loop.time())
            if wait > 0:
                await asyncio.sleep(wait)
                self.aim.observe(at, loop.time())
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                return
            self.writer.write(data)
            self.forwarded += len(data)
            await self.writer.drain()


class Relay:
    """Listens on ``host``:``port`` (0: a free one) and relays to ``target`` through
    ``profile``; ``seed`` seeds each connection's jitter (connection k: ``seed``, k)."""

    def __init__(self, profile: Profile, target: tuple[str, int], seed: int = 0) -> None:
        self.profile = profile
        self.target = target
        self.seed = seed
        self.counters = RelayCounters()
        self.aim = Aim()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start listening → the bound port."""
        self._server = await asyncio.start_server(self._accept, host, port, backlog=4096)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening and abort every relayed connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._connection(reader, writer, self.counters.accepted))
        self.counters.accepted += 1
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _shapers(self, index: int, start: float) -> tuple[Shaper, Shaper]:
        p = self.profile
        stall = None
        if p.stall_at_s is not None and p.stall_s > 0:
            stall = (start + p.stall_at_s, start + p.stall_at_s + p.stall_s)
        rng_up = random.Random(f"{self.seed}:{index}:up")
        rng_down = random.Random(f"{self.seed}:{index}:down")
        return Shaper(p.up, rng_up, stall=stall), Shaper(p.down, rng_down, stall=stall)

    async def _connection(
        self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter, index: int
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.counters.upstream_failures += 1
            c_writer.transport.abort()
            return
        up_shaper, down_shaper = self._shapers(index, start)
        up = _Pipe(c_reader, s_writer, up_shaper, self.aim)
        down = _Pipe(s_reader, c_writer, down_shaper, self.aim)
        tasks = [
            asyncio.ensure_future(coro)
            for coro in (up.read_side(), up.write_side(), down.read_side(), down.write_side())
        ]
        cut = None
        if self.profile.cut_at_s is not None:
            cut = loop.call_at(start + self.profile.cut_at_s, self._cut, tasks)
        clean = False
        try:
            await asyncio.gather(*tasks)
            clean = True  # both EOFs forwarded: close after the buffered bytes
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # a failed write or a cut: abort both sides below
        finally:
            if cut is not None:
                cut.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.counters.bytes_up += up.forwarded
            self.counters.bytes_down += down.forwarded
            for w in (c_writer, s_writer):
                if clean:
                    w.close()
                else:
                    w.transport.abort()

    def _cut(self, tasks: Sequence[asyncio.Future[None]]) -> None:
        self.counters.cuts += 1
        for task in tasks:
            task.cancel()

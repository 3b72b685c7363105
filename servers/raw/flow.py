"""Write flow control of the raw stack's connections, as something a coroutine can await.

asyncio pauses a protocol's writing (``pause_writing``) once its transport's
buffer passes the high-water mark, which every raw connection sets at half of
``write_buffer_limit``, and resumes it once the buffer drains. A push loop must
wait for that before it writes the next batch, so that a connection buffers at
most the limit plus one batch; :class:`Drain` is that wait.
"""

from __future__ import annotations

import asyncio

__all__ = ["Drain"]


class Drain:
    """asyncio's write flow control as something a coroutine can wait on.

    The protocol forwards ``pause_writing`` / ``resume_writing`` here;
    :meth:`wait` returns at once while the transport takes more, waits while
    it is paused, and raises ConnectionError once the connection is lost.
    """

    __slots__ = ("_lost", "_waiter", "paused")

    def __init__(self) -> None:
        self.paused = False
        self._lost = False
        self._waiter: asyncio.Future[None] | None = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def lost(self) -> None:
        self._lost = True
        self.paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("connection lost"))

    async def wait(self) -> None:
        while self.paused:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        if self._lost:
            raise ConnectionError("connection lost")

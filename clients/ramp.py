"""Pacing a worker's connection ramp (issue 18 item 2: 100,000 connections on one box).

Opening tens of thousands of connections as fast as ``connect_concurrency`` allows
overflows the server's accept backlog (SYNs dropped, 1 s and 3 s retransmits) and turns the
connect rate into a property of the kernel's retry timer rather than of the server. A
:class:`Pacer` hands each connection the next slot of a fixed rate (the spec's
``connect_rate``, connections per second; 0: unpaced, as before), so the ramp is a rate the
scenario chose and the achieved rate (connections ÷ ramp time) is a measurement of the
server against it.
"""

from __future__ import annotations

import asyncio

__all__ = ["Pacer"]


class Pacer:
    """Slots ``1 / rate`` seconds apart, given in the order :meth:`slot` is called; a
    caller after a pause (the stage's memory reading) starts a fresh schedule from now
    instead of catching up. ``rate`` 0: every slot is now."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next: float | None = None

    async def slot(self) -> None:
        """Wait for this caller's slot (the slot is taken before the first await, so
        callers started in order get slots in order)."""
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        if self.next is None or self.next < now:
            self.next = now
        due, self.next = self.next, self.next + self.interval
        if due > now:
            await asyncio.sleep(due - now)

"""The lazily re-armed deadline timer (``pushbench.deadline.LazyDeadline``): the head
timeout of the raw and Starlette stacks' connections and the raw stack's long polls.

One timer serves every deadline a connection sets; these pin that a wait (a held poll)
still expires exactly at its own deadline whatever the timer was armed for, and that a
withdrawn one calls nothing. A virtual clock drives the timer, so the tests neither
sleep nor depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any, cast

from pushbench.deadline import LazyDeadline


class _Handle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self._when = when
        self.callback = callback
        self.cancelled = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class _VirtualLoop:
    """``time``, ``call_at`` and an ``advance`` that runs what is due, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.armed = 0  # call_at calls: the timers the clock made
        self._heap: list[tuple[float, int, _Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        self.armed += 1
        handle = _Handle(when, callback)
        heapq.heappush(self._heap, (when, next(self._order), handle))
        return handle

    def advance(self, to: float) -> None:
        while self._heap and self._heap[0][0] <= to:
            when, _, handle = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if not handle.cancelled:
                handle.callback()
        self.now = to

    def pending(self) -> int:
        return sum(not h.cancelled for _, _, h in self._heap)


def _clock() -> tuple[LazyDeadline, _VirtualLoop]:
    loop = _VirtualLoop()
    return LazyDeadline(cast(asyncio.AbstractEventLoop, cast(Any, loop))), loop


def test_a_held_poll_expires_at_its_deadline_and_only_then() -> None:
    clock, loop = _clock()
    fired: list[float] = []
    clock.expire_at(30.0, lambda: fired.append(loop.time()))
    loop.advance(29.999)
    assert fired == []
    loop.advance(31.0)
    assert fired == [30.0]
    loop.advance(100.0)
    assert fired == [30.0]  # once


def test_answered_polls_share_one_timer_and_a_later_poll_gets_its_whole_timeout() -> None:
    clock, loop = _clock()
    fired: list[str] = []
    for i in range(100):  # 100 polls, each answered 0.1 s after it was held
        loop.advance(i * 0.1)
        clock.expire_at(loop.time() + 30.0, lambda: fired.append("answered poll"))
        clock.clear()
    assert loop.armed == 1  # one timer for all of them, not one each
    loop.advance(25.0)
    clock.expire_at(55.0, lambda: fired.append("held"))  # held at 25 s, 30 s timeout
    loop.advance(54.9)  # the timer armed for the first poll fired at 30 s and slept on
    assert fired == []
    loop.advance(55.0)
    assert fired == ["held"]
    assert loop.armed == 2


def test_a_shorter_timeout_than_the_armed_timer_rearms_it_earlier() -> None:
    clock, loop = _clock()
    fired: list[float] = []
    clock.expire_at(30.0, lambda: fired.append(-1.0))
    clock.clear()
    clock.expire_at(1.0, lambda: fired.append(loop.time()))  # timeout=1 after timeout=30
    loop.advance(2.0)
    assert fired == [1.0]
    assert loop.pending() == 0  # the 30 s timer was cancelled, not left to fire


def test_a_cleared_poll_calls_nothing_and_close_cancels_the_timer() -> None:
    clock, loop = _clock()
    fired: list[int] = []
    clock.expire_at(5.0, lambda: fired.append(1))
    clock.clear()
    loop.advance(10.0)
    assert fired == []
    clock.expire_at(20.0, lambda: fired.append(2))
    clock.close()
    assert loop.pending() == 0
    loop.advance(30.0)
    assert fired == []

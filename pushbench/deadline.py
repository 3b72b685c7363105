"""A deadline that moves often and rarely expires, on one lazily re-armed timer.

A connection waiting for a request head, or holding a long poll, has a deadline that
almost never comes: the head or a message arrives first, and the next wait sets a new
one. Arming and cancelling a ``call_at`` per wait costs a ``TimerHandle``, two heap
operations and a cancelled handle left in the event loop's heap each time (~2 % of a
short-poll server's CPU, measured on the uvicorn stack). :class:`LazyDeadline` keeps
one timer instead: a new deadline only moves a number, and the timer, when it fires
early, sleeps on to the current one. Used for the head timeout (the raw stack's
connections, the Starlette stack's uvicorn protocol) and the raw stack's long-poll
timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["LazyDeadline"]


class LazyDeadline:
    """One deadline at a time on one event loop, and one timer for all of them.

    :meth:`expire_at` notes the deadline and what to call then; the timer is armed only
    when none is, or when the armed one would fire after the new deadline. When it
    fires it calls the callback if its deadline has come, sleeps again until it does if
    the deadline moved on, and lapses if :meth:`clear` withdrew the callback.
    """

    __slots__ = ("_deadline", "_handle", "_loop", "_on_expiry")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._on_expiry: Callable[[], None] | None = None

    def expire_at(self, deadline: float, on_expiry: Callable[[], None]) -> None:
        """Call ``on_expiry`` at loop time ``deadline`` unless :meth:`clear` comes first."""
        self._deadline = deadline
        self._on_expiry = on_expiry
        handle = self._handle
        if handle is None or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(deadline, self._fire)

    def clear(self) -> None:
        """Nothing to call any more (the timer, if armed, lapses when it fires)."""
        self._on_expiry = None

    def close(self) -> None:
        """Done for good (the connection is gone): cancel the timer."""
        self._on_expiry = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        on_expiry = self._on_expiry
        if on_expiry is None:
            return  # withdrawn: nothing to do until the next expire_at
        if self._loop.time() < self._deadline:  # armed for an earlier deadline
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._on_expiry = None
        on_expiry()

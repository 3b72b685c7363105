"""The raw stack's long polls, held without a task: answered from the publish or a timer.

A held poll is one of its topic's waiters (:meth:`~pushbench.hub.Hub.hold`): a
future the first message published after ``since`` sets, and a deadline: the
poll's timeout. The future's callback runs the answer on the loop's next turn
(as a woken task would), so every message published before then goes into the
same answer; the answer is read from the hub's history
(:meth:`~pushbench.hub.Hub.since`) like any poll's. A timeout, or the server
shutting down, answers with what is there (maybe nothing).

The deadlines of one connection's polls share one timer (:class:`PollClock`), re-armed
lazily as the connection's head timeout is: a poll that a message answers long before
its timeout (the usual case) neither arms nor cancels a timer of its own — one
``call_at`` and one ``cancel`` less per poll, and no cancelled timer left in the event
loop's heap for each answered poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pushbench.service import PushService

__all__ = ["HeldPoll", "PollClock"]


class PollClock:
    """One connection's timer for the timeout of the poll it holds (one at a time).

    :meth:`expire_at` notes the held poll's deadline and what to call then; the timer
    is armed only when none is, or when the armed one would fire after the new
    deadline. When it fires it calls the held poll's callback if that poll's deadline
    has come, sleeps again until it does if not, and lapses if no poll is held.
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
        """The held poll is answered or gone: nothing to call (the timer lapses)."""
        self._on_expiry = None

    def close(self) -> None:
        """The connection is gone: cancel the timer."""
        self._on_expiry = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        on_expiry = self._on_expiry
        if on_expiry is None:
            return  # the poll it was armed for is answered; none is held now
        if self._loop.time() < self._deadline:  # armed for an earlier poll's deadline
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._on_expiry = None
        on_expiry()


class HeldPoll:
    """One long poll waiting for the first message after ``since`` (see the module doc)."""

    __slots__ = ("_clock", "_done", "_respond", "_service", "_since", "_topic", "_woken")

    def __init__(
        self,
        service: PushService,
        topic: str,
        since: int,
        timeout: float,
        respond: Callable[[bytes], None],
        clock: PollClock,
    ) -> None:
        self._service = service
        self._topic = topic
        self._since = since
        self._respond = respond
        self._clock = clock
        self._done = False
        self._woken = service.hub.hold(topic, since)
        self._woken.add_done_callback(self._on_woken)
        clock.expire_at(asyncio.get_running_loop().time() + timeout, self.finish)

    def _on_woken(self, woken: asyncio.Future[None]) -> None:
        self.finish()

    def finish(self) -> None:
        """Answer now with what the hub holds after ``since`` (on a message, a timeout,
        or the server's shutdown)."""
        if self._done:
            return
        self.cancel()
        items = self._service.hub.since(self._topic, self._since)
        self._respond(self._service.poll_answer(items, self._since))

    def cancel(self) -> None:
        """Release the poll and its deadline without answering (the peer is gone)."""
        if not self._done:
            self._done = True
            self._clock.clear()
            self._service.hub.release(self._topic, self._woken)

"""The raw stack's long polls, held without a task: answered from the publish or a timer.

A held poll is one of its topic's waiters (:meth:`~pushbench.hub.Hub.hold`): a
future the first message published after ``since`` sets, and a deadline: the
poll's timeout. The future's callback runs the answer on the loop's next turn
(as a woken task would), so every message published before then goes into the
same answer; the answer is read from the hub's history
(:meth:`~pushbench.hub.Hub.since`) like any poll's. A timeout, or the server
shutting down, answers with what is there (maybe nothing).

The deadlines of one connection's polls share one timer (a
:class:`~pushbench.deadline.LazyDeadline`, as its head timeout does): a poll that a
message answers long before its timeout (the usual case) neither arms nor cancels a
timer of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pushbench.deadline import LazyDeadline
from pushbench.service import PushService

__all__ = ["HeldPoll"]


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
        clock: LazyDeadline,
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

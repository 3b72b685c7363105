"""The raw stack's long polls, held without a task: answered from the publish or a timer.

A held poll is a subscription whose :attr:`~pushbench.hub.Subscription.sink`
takes the first message published after it, and one timer: the poll's timeout.
The first message schedules the answer for the end of the loop turn
(``call_soon``), so every message that turn publishes goes into the same
answer, as a woken task would have found them; the answer is read from the
hub's history (:meth:`~pushbench.hub.Hub.since`) like any poll's. A timeout, or
the server shutting down, answers with what is there (maybe nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pushbench.hub import Item
from pushbench.service import PushService

__all__ = ["HeldPoll"]


def _taken(items: list[Item]) -> bool:
    """The sink once the answer is on its way: later messages stay in history only."""
    return True


class HeldPoll:
    """One long poll waiting for the first message after ``since`` (see the module doc)."""

    __slots__ = ("_done", "_loop", "_respond", "_service", "_since", "_sub", "_timer", "_topic")

    def __init__(
        self,
        service: PushService,
        topic: str,
        since: int,
        timeout: float,
        respond: Callable[[bytes], None],
    ) -> None:
        self._service = service
        self._topic = topic
        self._since = since
        self._respond = respond
        self._done = False
        self._loop = asyncio.get_running_loop()
        self._sub = service.hub.subscribe(topic)
        self._sub.sink = self._on_item
        self._timer: asyncio.Handle = self._loop.call_later(timeout, self.finish)

    def _on_item(self, items: list[Item]) -> bool:
        # In the hub's fan-out: the subscription cannot be closed here (its set is being
        # walked), and the rest of this turn's messages belong in the same answer.
        if items[-1].seq <= self._since:
            return True  # not yet the client's next message (it came from a node ahead)
        self._sub.sink = _taken
        self._timer.cancel()
        self._timer = self._loop.call_soon(self.finish)
        return True

    def finish(self) -> None:
        """Answer now with what the hub holds after ``since`` (on a message, a timeout,
        or the server's shutdown)."""
        if self._done:
            return
        self.cancel()
        items = self._service.hub.since(self._topic, self._since)
        self._respond(self._service.poll_answer(items, self._since))

    def cancel(self) -> None:
        """Release the subscription and the timer without answering (the peer is gone)."""
        if not self._done:
            self._done = True
            self._timer.cancel()
            self._sub.close()

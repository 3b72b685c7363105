"""Open-loop schedules: message *i* is due at ``start + i / rate``, whatever happens.

The one pacing loop of the project (the server's ticker and the chat clients'
publishers both run it). A late wake-up never delays the schedule: whatever
is due is sent at once, each with its own due time, so lateness becomes
measured latency instead of silently thinning the load (coordinated
omission). The waits use :class:`~pushbench.timers.DeadlineSleeper` (a timerfd:
tens of µs late, where asyncio's own timers are up to a millisecond late);
each send's lateness goes to ``on_lag`` so the harness's own pacing error is
visible. With a ``meter`` (:class:`~pushbench.cputime.ThreadCpuMeter`) the loop's own
work is timed: switched on where the loop resumes, off where it hands over (the
sleep's wait; ``send`` itself switches it off around work that is not the loop's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .contract import now_ns
from .cputime import ThreadCpuMeter
from .timers import DeadlineSleeper

__all__ = ["MAX_BURST", "open_loop"]

MAX_BURST = 256  # most messages one send_many carries


async def open_loop(
    send: Callable[[int], Awaitable[object]],
    *,
    rate: float,
    start_ns: int,
    count: int | None = None,
    on_lag: Callable[[int], None] | None = None,
    meter: ThreadCpuMeter | None = None,
    send_many: Callable[[list[int]], Awaitable[object]] | None = None,
) -> None:
    """Call ``send(due_ns)`` for i = 0, 1, … (``count`` times, or until cancelled).

    ``send_many``: when a wake-up finds several messages due (the loop is late), they
    are sent by one ``send_many(dues)`` (at most :data:`MAX_BURST`), so a server can
    put them in one write per connection; a lone message still goes to ``send``.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    interval_ns = int(1e9 / rate)
    i = 0
    if meter is not None:
        meter.resume()
    try:
        with DeadlineSleeper() as sleeper:
            while count is None or i < count:
                due = start_ns + i * interval_ns
                now = now_ns()
                if due > now:
                    await sleeper.sleep_until(due, meter)
                    continue
                if send_many is not None and start_ns + (i + 1) * interval_ns <= now:
                    dues: list[int] = []
                    while due <= now and len(dues) < MAX_BURST and (count is None or i < count):
                        if on_lag is not None:
                            on_lag(now - due)
                        dues.append(due)
                        i += 1
                        due = start_ns + i * interval_ns
                    await send_many(dues)
                    continue
                if on_lag is not None:
                    on_lag(now - due)
                i += 1
                await send(due)
    finally:
        if meter is not None:
            meter.pause()

"""How early the relay's writer asks to wake, learned from how late it really wakes.

A relayed chunk is due at ``at``; the writer sleeps until ``at − slack``. asyncio rounds
epoll's timeout up to the next millisecond and the wake-up, read and write add their own
cost, so with a fixed slack the measured delay errs one way: at 0.5 ms the calibration read
0.85 ms late per direction, at a fixed 1 ms still 0.54 ms late (wan: 21.08 ms for a 20 ms
round trip). The amount depends on the machine and its load, so the relay learns it: after
each sleep it observes the lateness (``woke − at``, negative when early) and moves the
slack a fraction of the way (an integrating controller), which drives the *mean* lateness
to zero — the figure the calibration compares with the declared delay. Chunks already due
when dequeued (no sleep) say nothing about the timer and are not observed.
"""

from __future__ import annotations

__all__ = ["GAIN", "INITIAL_SLACK_S", "MAX_SLACK_S", "Aim"]

#: Where the slack starts: the fixed value the relay used before it learned.
INITIAL_SLACK_S = 0.001
#: Bounds: never aim later than the due time, never more than this early.
MAX_SLACK_S = 0.005
#: Fraction of each observed lateness added to the slack (≈ 1/GAIN observations to settle).
GAIN = 0.05


class Aim:
    """The slack one relay process aims early by; shared by its pipes (the timer's
    lateness is a property of the process's loop, not of a connection)."""

    __slots__ = ("observed", "slack_s")

    def __init__(self, slack_s: float = INITIAL_SLACK_S) -> None:
        self.slack_s = slack_s
        self.observed = 0

    def wait_s(self, at: float, now: float) -> float:
        """Seconds to sleep now for a chunk due at ``at`` (≤ 0: write at once)."""
        return at - now - self.slack_s

    def observe(self, at: float, woke: float) -> None:
        """After a sleep for a chunk due at ``at``: the loop woke at ``woke``."""
        late = woke - at
        self.slack_s = min(MAX_SLACK_S, max(0.0, self.slack_s + GAIN * late))
        self.observed += 1

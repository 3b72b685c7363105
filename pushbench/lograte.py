"""A rate limit on log records, so a client cannot flood the server's log.

Every stack logs something a peer can provoke at will: aiohttp a full traceback
for each malformed request ("Error handling request from …"), uvicorn a warning
for each invalid HTTP request and, on ``websockets-sansio``, a traceback for each
invalid-UTF-8 text frame. One connection each costs the attacker a few bytes and
the server ten lines of log. :class:`LogRateLimit` passes at most ``burst``
records per key and ``interval``; the rest are counted, and once the key's
interval is over one line says how many were suppressed ("suppressed K similar
records …"). The key is the logger, the message template (``record.msg``, so
records differing only in their arguments are similar) and, where the record
carries one (a ``peer`` attribute), the peer. Keys are bounded too
(``max_keys``): records past it share one key, so a flood of distinct templates
is limited as well.

``pushbench serve`` installs it (:func:`install`) on the one handler it puts on
the root logger, in place of Python's last-resort handler (same output: the
message, then any traceback, on stderr), so it applies to every stack and every
library's logger alike; ``sweep`` is called every ``interval`` to write the
summaries of windows that ended, and at shutdown to write the rest.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SUMMARY_LOGGER", "LogRateLimit", "install", "uninstall"]

#: The logger the summaries go to; its own records are never limited.
SUMMARY_LOGGER = "pushbench.lograte"
OVERFLOW_KEY = ("*", "* (more distinct log messages than the rate limit tracks)", None)

Key = tuple[str, str, object]


@dataclass
class _Window:
    """One key's current interval: when it began, records passed and suppressed."""

    start: float
    passed: int = 0
    suppressed: int = 0


class LogRateLimit(logging.Filter):
    """At most ``burst`` records per (logger, template, peer) every ``interval`` seconds."""

    def __init__(
        self,
        burst: int = 10,
        interval: float = 60.0,
        *,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if burst < 1 or interval <= 0 or max_keys < 1:
            raise ValueError("burst and max_keys must be >= 1 and interval > 0")
        self.burst = burst
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._windows: dict[Key, _Window] = {}
        self._summary = logging.getLogger(SUMMARY_LOGGER)
        self.suppressed_total = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == SUMMARY_LOGGER:
            return True
        now = self._clock()
        self.sweep(now)
        key: Key = (record.name, str(record.msg), getattr(record, "peer", None))
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.max_keys:
                key = OVERFLOW_KEY
                window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(now)
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.suppressed += 1
        self.suppressed_total += 1
        return False

    def sweep(self, now: float | None = None, *, flush: bool = False) -> None:
        """Close the windows whose interval is over (all of them with ``flush``),
        writing one summary line for each that suppressed records."""
        now = self._clock() if now is None else now
        ended = [
            (key, w) for key, w in self._windows.items() if flush or now - w.start >= self.interval
        ]
        for key, _ in ended:
            del self._windows[key]
        for (name, template, peer), w in ended:  # after the dict is consistent: logging re-enters
            if w.suppressed:
                self._summary.warning(
                    "suppressed %d similar records in %.0f s (logger %s%s): %.200r",
                    w.suppressed,
                    now - w.start,
                    name,
                    "" if peer is None else f", peer {peer}",
                    template,
                )


def install(limit: LogRateLimit) -> logging.Handler:
    """A stderr handler on the root logger with ``limit`` as its filter; returns it
    for :func:`uninstall`. Same output as Python's last-resort handler (WARNING and
    above, the message and any traceback), which it replaces."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(limit)
    logging.getLogger().addHandler(handler)
    return handler


def uninstall(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()

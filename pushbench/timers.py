"""Sleeping until a CLOCK_MONOTONIC deadline with microsecond, not millisecond, precision.

asyncio's timers go through ``epoll_wait``, whose timeout is whole
milliseconds (the selector rounds up), so ``asyncio.sleep`` wakes 0.5–1 ms
late on average — too coarse for a publisher that must keep a 100 µs
schedule at 10,000 msg/s. A Linux ``timerfd`` armed with an absolute
CLOCK_MONOTONIC deadline becomes readable at that instant, and the event loop
wakes on its readiness like on any socket: measured here, p50 ≈ 30 µs and
p99 ≈ 60 µs late instead of ≈ 560 / 1,150 µs.

``timerfd_create``/``timerfd_settime`` come from libc through ctypes (Python
3.11 has no ``os.timerfd_*``). Where they are missing (not Linux) the sleeper
falls back to ``asyncio.sleep``; :attr:`DeadlineSleeper.precise` tells which.

A timerfd is exact, but the wake is not: an idle virtual CPU halts, and the host takes
its time to run it again (75–230 µs at p50 on the 2-vCPU VM this was written on, varying
by the hour). :meth:`DeadlineSleeper.hold_until` is for a hold whose length is itself the
measurand (the self-check's calibration delay): it arms the timer early by what recent
wakes were late, and spends the rest of the way, never more than :data:`HOLD_SPIN_MAX_NS`,
on the CPU.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections.abc import Awaitable

from .contract import now_ns
from .cputime import ThreadCpuMeter

__all__ = ["HOLD_SPIN_MAX_NS", "DeadlineSleeper"]

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
HOLD_SPIN_MAX_NS = 300_000
"""The most :meth:`DeadlineSleeper.hold_until` arms early, so the most it spins per hold."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.timerfd_create  # noqa: B018 - AttributeError when the platform has none
        libc.timerfd_settime  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()
_PRECISE = True


def use_precise(enabled: bool) -> None:
    """Pace on a timerfd (the default) or, with ``enabled`` False, on asyncio's timers."""
    global _PRECISE
    _PRECISE = enabled


class DeadlineSleeper:
    """``await sleeper.sleep_until(due_ns)``: one timerfd, for one event loop.

    Not for concurrent use: one waiter at a time (each pacing loop owns one).
    Call :meth:`close` when done (or use it as a context manager).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._waiter: asyncio.Future[None] | None = None
        self._spec = _Itimerspec()
        self.margin_ns = 0  # hold_until's learned early arming: the recent wakes' mean lateness
        if _LIBC is not None and _PRECISE:
            fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            self._fd = int(fd)

    @property
    def precise(self) -> bool:
        """Whether a timerfd backs the sleeper (else it is ``asyncio.sleep``)."""
        return self._fd >= 0

    def _readable(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return  # a stale readiness: the timer was re-armed since it fired
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def sleep_until(self, due_ns: int, meter: ThreadCpuMeter | None = None) -> None:
        """Return at (or just after) ``due_ns`` on CLOCK_MONOTONIC; at once if it has passed.
        ``meter`` (the caller's, running) is switched off for the wait itself: arming the
        timer is the caller's work, the event loop's turns meanwhile are not."""
        delay_ns = due_ns - now_ns()
        if delay_ns <= 0:
            return
        if self._fd < 0 or _LIBC is None:
            waiter: Awaitable[None] = asyncio.sleep(delay_ns / 1e9)
        else:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
                self._loop.add_reader(self._fd, self._readable)
            value = self._spec.it_value
            value.tv_sec, value.tv_nsec = divmod(due_ns, 1_000_000_000)
            waiter = self._waiter = self._loop.create_future()
            if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None):
                self._waiter = None
                raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        if meter is not None:
            meter.pause()
        try:
            await waiter
        finally:
            self._waiter = None
            if meter is not None:
                meter.resume()

    async def hold_until(self, due_ns: int) -> None:
        """Return at ``due_ns``, never before, late by a few µs rather than by the wake.

        Sleeps until ``margin_ns`` before it, then spins (blocking the loop, at most
        :data:`HOLD_SPIN_MAX_NS`) to the deadline. ``margin_ns`` follows the mean of how
        late the sleeps woke (an average over ~8 wakes, capped), so about half the wakes
        land inside the margin and spin a little, and the others are late by the wake's
        spread rather than by its whole latency."""
        armed = due_ns - self.margin_ns
        if armed > now_ns():
            await self.sleep_until(armed)
            late = now_ns() - armed
            margin = self.margin_ns + ((late - self.margin_ns) >> 3)
            self.margin_ns = min(HOLD_SPIN_MAX_NS, max(0, margin))
        while now_ns() < due_ns:
            pass

    def close(self) -> None:
        if self._fd < 0:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> DeadlineSleeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

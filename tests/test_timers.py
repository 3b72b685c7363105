"""DeadlineSleeper: never wakes before its deadline, on the timerfd and the fallback path."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest

from pushbench import timers
from pushbench.contract import now_ns
from pushbench.schedule import open_loop
from pushbench.timers import DeadlineSleeper


@pytest.mark.parametrize("coarse", [False, True], ids=["timerfd", "asyncio-sleep"])
def test_never_wakes_before_the_deadline(monkeypatch: pytest.MonkeyPatch, coarse: bool) -> None:
    if coarse:
        monkeypatch.setattr(timers, "_PRECISE", False)

    async def main() -> list[int]:
        early = []
        with DeadlineSleeper() as sleeper:
            assert sleeper.precise is (sys.platform == "linux" and not coarse)
            for k in range(40):
                due = now_ns() + 200_000 + 7_000 * k
                await sleeper.sleep_until(due)
                early.append(due - now_ns())
        return early

    early = asyncio.run(main())
    assert max(early) <= 0, "woke before the deadline"


def test_a_past_deadline_returns_at_once_and_close_is_idempotent() -> None:
    async def main() -> None:
        sleeper = DeadlineSleeper()
        before = now_ns()
        await sleeper.sleep_until(before - 1_000_000)
        await sleeper.sleep_until(before)
        sleeper.close()
        sleeper.close()
        assert not sleeper.precise

    asyncio.run(main())


def test_a_rearmed_timer_does_not_wake_the_next_wait_early() -> None:
    """A wait that is cancelled leaves the timer armed; the next wait must not end at the
    old deadline (the readiness of a re-armed timerfd is stale)."""

    async def main() -> int:
        with DeadlineSleeper() as sleeper:
            first = now_ns() + 2_000_000
            task = asyncio.ensure_future(sleeper.sleep_until(first))
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            later = now_ns() + 30_000_000
            await sleeper.sleep_until(later)
            return later - now_ns()

    assert asyncio.run(main()) <= 0


def test_open_loop_sends_every_message_with_its_own_due_time() -> None:
    async def main() -> tuple[list[int], list[int], int]:
        dues: list[int] = []
        lags: list[int] = []
        start = now_ns() + 1_000_000
        await open_loop(_append(dues), rate=2000.0, start_ns=start, count=50, on_lag=lags.append)
        return dues, lags, start

    dues, lags, start = asyncio.run(main())
    assert dues == [start + i * 500_000 for i in range(50)]
    assert len(lags) == 50 and min(lags) >= 0


def _append(out: list[int]) -> Callable[[int], Awaitable[None]]:
    async def send(due: int) -> None:
        out.append(due)

    return send


def test_hold_learns_the_wake_lateness_and_spins_only_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A simulated clock whose timer wakes are always 200 µs late: after a few holds the
    sleeper arms ~200 µs early and each hold ends within µs of its deadline (not 200 µs
    after it), never before it, and no hold spins more than HOLD_SPIN_MAX_NS."""
    clock = [1_000_000_000]
    spins: list[int] = []

    def fake_now() -> int:
        clock[0] += 1_000  # every reading costs 1 µs, so a spin advances the clock
        return clock[0]

    async def late_sleep(self: DeadlineSleeper, due_ns: int, meter: object = None) -> None:
        clock[0] = max(clock[0], due_ns) + 200_000

    monkeypatch.setattr(timers, "now_ns", fake_now)
    monkeypatch.setattr(DeadlineSleeper, "sleep_until", late_sleep)

    async def main() -> list[int]:
        lateness = []
        with DeadlineSleeper() as sleeper:
            for _ in range(60):
                due = clock[0] + 5_000_000
                await sleeper.hold_until(due)
                end = clock[0]
                spins.append(end - (due - sleeper.margin_ns))
                lateness.append(end - due)
            assert 150_000 <= sleeper.margin_ns <= timers.HOLD_SPIN_MAX_NS
        return lateness

    lateness = asyncio.run(main())
    assert min(lateness) >= 0  # never early
    assert lateness[0] >= 200_000  # unlearned: late by the whole wake
    assert max(lateness[-20:]) <= 30_000, lateness[-20:]  # learned: µs, not the wake's 200
    assert max(spins) <= timers.HOLD_SPIN_MAX_NS + 250_000  # the wake and a bounded spin


def test_hold_margin_is_capped_after_a_very_late_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    """One 50 ms stall must not make later holds spin 50 ms: the margin stays capped."""
    clock = [1_000_000_000]
    monkeypatch.setattr(timers, "now_ns", lambda: clock[0])

    async def stalled(self: DeadlineSleeper, due_ns: int, meter: object = None) -> None:
        clock[0] = max(clock[0], due_ns) + 50_000_000

    monkeypatch.setattr(DeadlineSleeper, "sleep_until", stalled)

    async def main() -> int:
        with DeadlineSleeper() as sleeper:
            await sleeper.hold_until(clock[0] + 5_000_000)
            return sleeper.margin_ns

    assert asyncio.run(main()) == timers.HOLD_SPIN_MAX_NS

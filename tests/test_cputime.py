"""CPU to the nanosecond (:mod:`pushbench.cputime`), not in 10 ms ``/proc`` ticks.

Read against this very process: a burst of work moves the reading by an amount that is
not a whole number of clock ticks; a thread's work counts (summed over threads by
schedstat, and by the process CPU clock even after the thread exited); the split into
user and system time follows the ticks' ratio; the thread meter counts only the sections
it is switched on for. The runner's ``sample`` and the process trees read through it.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from pushbench import cputime
from pushbench.clients.proctree import TreeWindow, tree_cpu
from pushbench.procs import sample

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
linux = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux /proc only")


def _burn_ns(ns: int) -> int:
    """Spend about ``ns`` of this thread's CPU → what it spent (its thread clock)."""
    start = time.thread_time_ns()
    x = 0
    while time.thread_time_ns() - start < ns:
        x += 1
    return time.thread_time_ns() - start


def _off_the_tick(seconds: float) -> bool:
    """Whether ``seconds`` is not a whole number of clock ticks (to 10 ns)."""
    ticks = seconds / TICK_S
    return abs(ticks - round(ticks)) * TICK_S > 1e-8


@linux
def test_the_runners_sample_moves_by_nanoseconds_not_ticks() -> None:
    # Ticks would make every difference a multiple of 10 ms: try a few bursts, since one
    # difference could land on a multiple by chance (about once in a million).
    before = sample(os.getpid())
    assert before is not None
    moved = []
    for _ in range(3):
        _burn_ns(3_000_000)
        after = sample(os.getpid())
        assert after is not None
        moved.append(after.cpu_s - before.cpu_s)
        before = after
    assert all(m > 0 for m in moved)
    assert any(_off_the_tick(m) for m in moved), moved
    assert before.cpu_source in {"clock", "schedstat"}


@linux
def test_schedstat_sums_every_thread() -> None:
    main_tid = threading.get_native_id()
    done, park = threading.Event(), threading.Event()
    burned: list[int] = []

    def work() -> None:
        burned.append(_burn_ns(50_000_000))
        done.set()
        park.wait(10)  # alive (and off the CPU) while the test reads

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert done.wait(10)
        whole = cputime.schedstat_ns(os.getpid())
        with open(f"/proc/self/task/{main_tid}/schedstat") as f:
            main_only = int(f.read().split()[0])
    finally:
        park.set()
        thread.join()
    assert whole is not None
    assert whole - main_only >= burned[0] * 0.99  # the other thread's time is in the sum


@linux
def test_the_process_clock_keeps_threads_that_exited() -> None:
    before = cputime.read(os.getpid())
    burned: list[int] = []
    thread = threading.Thread(target=lambda: burned.append(_burn_ns(30_000_000)))
    thread.start()
    thread.join()
    after = cputime.read(os.getpid())
    assert before is not None and after is not None
    if after.source != "clock":
        pytest.skip(f"no process CPU clock here ({after.source})")
    assert after.ns - before.ns >= burned[0]


def _proc(ns: int, user: int, system: int, comm: str = "x") -> cputime.ProcCpu:
    return cputime.ProcCpu(ns, user, system, "clock", comm, 1)


def test_spent_splits_the_exact_total_in_the_ticks_ratio() -> None:
    first = {10: _proc(1_000_000_000, 100, 50), 11: _proc(5, 0, 0)}  # 11 ends in between
    last = {
        10: _proc(1_012_345_678, 103, 51),  # 12.345678 ms: 3 user ticks to 1 system tick
        12: _proc(2_000_000, 0, 0, "new"),  # born in between: counts whole, all user
    }
    spent = cputime.spent(first, last, kind=lambda pid, comm: comm)
    assert spent.total_s == pytest.approx(0.014345678)
    assert spent.user_s == pytest.approx(0.012345678 * 0.75 + 0.002)
    assert spent.sys_s == pytest.approx(0.012345678 * 0.25)
    assert (spent.processes, spent.ended, spent.sources) == (2, 1, ("clock",))
    assert spent.by_kind_s == pytest.approx({"x": 0.012345678, "new": 0.002})


def test_a_span_without_ticks_takes_the_process_ratio() -> None:
    spent = cputime.spent({1: _proc(0, 30, 10)}, {1: _proc(4_000_000, 30, 10)})
    assert (spent.user_s, spent.sys_s) == pytest.approx((0.003, 0.001))


def test_the_thread_meter_counts_only_its_sections() -> None:
    meter = cputime.ThreadCpuMeter()
    meter.pause()  # not running: adds nothing
    assert (meter.ns, meter.sections) == (0, 0)
    meter.resume()
    inside = _burn_ns(20_000_000)
    meter.pause()
    outside = _burn_ns(40_000_000)
    meter.pause()
    assert meter.sections == 1
    assert inside <= meter.ns < inside + outside / 2


def test_a_sampled_meter_reads_the_clock_for_one_section_in_n(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nine sections of 1 ms each on a fake clock, one in three timed: 6 reads, not 18,
    and the estimate scales the three timed back to all nine."""
    clock = iter(range(0, 10**9, 1_000_000))
    reads: list[int] = []

    def fake() -> int:
        reads.append(1)
        return next(clock)

    monkeypatch.setattr(cputime.time, "thread_time_ns", fake)
    meter = cputime.ThreadCpuMeter(sample_every=3)
    for _ in range(9):
        meter.resume()
        meter.pause()
    assert (meter.sections, meter.sampled, len(reads)) == (9, 3, 6)
    assert meter.ns == 3_000_000
    assert meter.estimate_ns == 9_000_000
    with pytest.raises(ValueError):
        cputime.ThreadCpuMeter(sample_every=0)


@linux
def test_a_process_trees_window_mark_is_not_in_ticks() -> None:
    tree = TreeWindow(os.getpid(), 1, tree_cpu(os.getpid()), None)
    start = tree.mark(at_end=False)
    marks = []
    for _ in range(3):
        _burn_ns(3_000_000)
        marks.append(tree.mark(at_end=True))
    moved = [b.cpu_s - a.cpu_s for a, b in zip([start, *marks], marks, strict=False)]
    assert all(m > 0 for m in moved)
    assert any(_off_the_tick(m) for m in moved), moved

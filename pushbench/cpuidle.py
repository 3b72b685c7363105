"""The cores' idle states, recorded with every run, and a PM QoS hold for latency runs.

An idle core must leave its idle state before it runs the next message's work. On
bare metal that is a C-state exit; on a VM whose idle is a halt (the ``haltpoll``
cpuidle driver of KVM and Firecracker guests), each wake-up goes through the
hypervisor, and part of it lands in the CPU time of the process that wakes and in
its latency. On the 2-vCPU Firecracker VM this project is developed on (haltpoll
driver, guest halt polling off), holding the PM QoS CPU latency at 0 (idle cores
poll instead of halting) lowered the aiohttp stack's WebSocket p50 at 10 subscribers ×
1,000 msg/s from 243 to 148 µs and its server CPU per message from 27.7 to 20.1 µs.
So what a figure includes depends on the idle states, and every run records them
(``metadata.json`` ``cpu_idle``: :func:`read`).

``pushbench run --cpu-latency-us N`` holds the kernel's PM QoS CPU latency at N µs
for the whole run (:class:`LatencyHold`: ``/dev/cpu_dma_latency`` kept open with
the value written, as tuned's latency-performance profile and cyclictest do; the
kernel drops the request when the file is closed). It is off by default: a polling
core burns its idle time (a VM's host sees both vCPUs always busy), and figures
taken with it are not comparable with figures taken without (``pushbench compare``
says when the two runs differ).
"""

from __future__ import annotations

import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .results import read_first_line

__all__ = [
    "DEVICE",
    "MAX_LATENCY_US",
    "IdleStates",
    "LatencyHold",
    "LatencyHoldError",
    "check_latency_us",
    "read",
]

DEVICE = Path("/dev/cpu_dma_latency")
MAX_LATENCY_US = 2_000_000_000  # the kernel's PM_QOS_DEFAULT_VALUE: "no constraint"
_CPUIDLE = Path("devices/system/cpu/cpuidle")
_CPU0_STATES = Path("devices/system/cpu/cpu0/cpuidle")
_HALT_POLL = Path("module/haltpoll/parameters/guest_halt_poll_ns")


class LatencyHoldError(RuntimeError):
    """The PM QoS latency asked for cannot be held (no device, no permission)."""


@dataclass(frozen=True, slots=True)
class IdleStates:
    """What decided how fast an idle core woke during a run (``metadata.json`` ``cpu_idle``).

    ``states``: cpu0's idle states, shallowest first (``POLL`` is busy-waiting);
    ``guest_halt_poll_ns``: how long a haltpoll guest polls before it halts (0: never);
    ``held_latency_us``: the PM QoS CPU latency the run held (None: none held, the
    kernel chose freely).
    """

    driver: str | None
    governor: str | None
    states: tuple[str, ...]
    guest_halt_poll_ns: int | None
    held_latency_us: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IdleStates:
        """The record back from ``metadata.json`` (unknown keys ignored, missing ones None)."""
        held, poll = data.get("held_latency_us"), data.get("guest_halt_poll_ns")
        return cls(
            driver=data.get("driver"),
            governor=data.get("governor"),
            states=tuple(str(s) for s in data.get("states") or ()),
            guest_halt_poll_ns=poll if isinstance(poll, int) else None,
            held_latency_us=held if isinstance(held, int) else None,
        )

    def line(self) -> str:
        """One line for the report's environment table."""
        if self.driver is None and not self.states:
            where = "no cpuidle driver (the idle states are the platform's)"
        else:
            where = f"driver {self.driver}, governor {self.governor}"
            if self.states:
                where += f", states {' / '.join(self.states)}"
        if self.guest_halt_poll_ns is not None:
            where += f", guest halt polling {self.guest_halt_poll_ns:,} ns"
        if self.held_latency_us is None:
            return f"{where}; PM QoS latency not held (idle cores may sleep as deep as they like)"
        return f"{where}; PM QoS latency held at {self.held_latency_us} µs for the run" + (
            " (idle cores poll: no idle-state exit in any figure)"
            if self.held_latency_us == 0
            else ""
        )


def check_latency_us(us: int) -> int:
    """``us`` when it is a PM QoS CPU latency the kernel takes (0..:data:`MAX_LATENCY_US`),
    else ValueError saying so."""
    if not 0 <= us <= MAX_LATENCY_US:
        raise ValueError(f"a PM QoS CPU latency is 0..{MAX_LATENCY_US} µs, not {us}")
    return us


def read(sysfs: Path = Path("/sys"), *, held_latency_us: int | None = None) -> IdleStates:
    """The idle states of this machine's cores now (missing files read as None / ())."""
    names = []
    base = sysfs / _CPU0_STATES
    try:
        entries = sorted(
            (p for p in base.iterdir() if p.name.startswith("state")),
            key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0,
        )
    except OSError:
        entries = []
    for entry in entries:
        name = read_first_line(entry / "name")
        if name is not None:
            names.append(name)
    poll = read_first_line(sysfs / _HALT_POLL)
    return IdleStates(
        driver=read_first_line(sysfs / _CPUIDLE / "current_driver"),
        governor=read_first_line(sysfs / _CPUIDLE / "current_governor")
        or read_first_line(sysfs / _CPUIDLE / "current_governor_ro"),
        states=tuple(names),
        guest_halt_poll_ns=int(poll) if poll is not None and poll.isdigit() else None,
        held_latency_us=held_latency_us,
    )


class LatencyHold:
    """Hold the PM QoS CPU latency at ``us`` µs while the ``with`` block runs (None: hold
    nothing). Raises :class:`LatencyHoldError` on entry, with what to do, when the
    device cannot be opened or written."""

    def __init__(self, us: int | None, device: Path | None = None) -> None:
        self.us = None if us is None else check_latency_us(us)
        self.device = DEVICE if device is None else device
        self._fd: int | None = None

    def __enter__(self) -> LatencyHold:
        if self.us is None:
            return self
        try:
            fd = os.open(self.device, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise LatencyHoldError(
                f"cannot open {self.device} ({exc.strerror}): run as root on Linux, or "
                "leave --cpu-latency-us out",
            ) from exc
        try:
            os.write(fd, struct.pack("=i", self.us))  # the kernel reads a native s32
        except OSError as exc:
            os.close(fd)
            raise LatencyHoldError(
                f"cannot write {self.us} to {self.device} ({exc.strerror})"
            ) from exc
        self._fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the kernel drops the request with the last close
            self._fd = None

    @property
    def held(self) -> int | None:
        """The latency held now (None: nothing is held)."""
        return self.us if self._fd is not None else None

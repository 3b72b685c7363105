"""The idle-state record and the PM QoS hold (pushbench.cpuidle), and their CLI and report."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from pushbench import cli, cpuidle
from pushbench.exitcodes import ExitCode
from pushbench.report.build import _idle_line
from pushbench.report.compare import conditions


def _sysfs(root: Path, states: dict[str, str], poll: str | None = "0") -> Path:
    idle = root / "devices/system/cpu/cpuidle"
    idle.mkdir(parents=True)
    (idle / "current_driver").write_text("haltpoll\n")
    (idle / "current_governor_ro").write_text("haltpoll\n")
    for entry, name in states.items():
        d = root / "devices/system/cpu/cpu0/cpuidle" / entry
        d.mkdir(parents=True)
        (d / "name").write_text(name + "\n")
    if poll is not None:
        p = root / "module/haltpoll/parameters"
        p.mkdir(parents=True)
        (p / "guest_halt_poll_ns").write_text(poll + "\n")
    return root


def test_read_takes_driver_governor_states_in_numeric_order_and_halt_polling(
    tmp_path: Path,
) -> None:
    root = _sysfs(tmp_path, {"state10": "C10", "state2": "C2", "state0": "POLL"}, "200000")
    idle = cpuidle.read(root, held_latency_us=0)
    assert idle == cpuidle.IdleStates("haltpoll", "haltpoll", ("POLL", "C2", "C10"), 200000, 0)
    assert cpuidle.IdleStates.from_dict(idle.as_dict()) == idle


def test_read_of_a_machine_without_cpuidle_is_all_unknown(tmp_path: Path) -> None:
    idle = cpuidle.read(tmp_path)
    assert idle == cpuidle.IdleStates(None, None, (), None, None)
    assert "no cpuidle driver" in idle.line() and "not held" in idle.line()


def test_the_line_says_whether_the_latency_was_held() -> None:
    free = cpuidle.IdleStates("haltpoll", "haltpoll", ("POLL", "haltpoll idle"), 0, None)
    assert "PM QoS latency not held" in free.line()
    assert "guest halt polling 0 ns" in free.line()
    held = cpuidle.IdleStates("haltpoll", "haltpoll", ("POLL",), 0, 0)
    assert "held at 0 µs" in held.line() and "idle cores poll" in held.line()
    assert "poll" not in cpuidle.IdleStates(None, None, ("C1",), None, 20).line().split(";")[1]


def test_the_report_line_of_a_run_without_the_record() -> None:
    assert _idle_line(None).startswith("not recorded")
    assert "held at 0 µs" in _idle_line({"driver": "intel_idle", "held_latency_us": 0})


def test_a_hold_writes_a_native_s32_and_lets_go_on_exit(tmp_path: Path) -> None:
    device = tmp_path / "cpu_dma_latency"
    device.write_bytes(b"")
    hold = cpuidle.LatencyHold(25, device)
    with hold:
        assert hold.held == 25
        assert hold._fd is not None
        fd = hold._fd
        os.fstat(fd)  # open while the block runs
    assert hold.held is None
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: the kernel drops the request
    assert device.read_bytes() == struct.pack("=i", 25)


def test_no_latency_holds_nothing_and_opens_nothing(tmp_path: Path) -> None:
    with cpuidle.LatencyHold(None, tmp_path / "absent") as hold:
        assert hold.held is None


def test_a_device_that_cannot_be_opened_says_what_to_do(tmp_path: Path) -> None:
    hold = cpuidle.LatencyHold(0, tmp_path / "absent")
    with pytest.raises(cpuidle.LatencyHoldError, match=r"absent.*run as root.*--cpu-latency-us"):
        hold.__enter__()
    assert hold.held is None
    with pytest.raises(ValueError, match=r"0\.\.2000000000"):
        cpuidle.LatencyHold(-1)


def test_run_refuses_a_latency_it_cannot_hold_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cpuidle, "DEVICE", tmp_path / "no-such-device")
    assert cli.main(["run", "smoke", "--no-progress", "--cpu-latency-us", "0"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "pushbench run: error: --cpu-latency-us: cannot open" in err, err
    assert "no-such-device" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(
    not os.access(cpuidle.DEVICE, os.R_OK | os.W_OK), reason="needs /dev/cpu_dma_latency (root)"
)
def test_the_kernel_holds_the_latency_while_the_device_is_open() -> None:
    def current() -> int:
        with cpuidle.DEVICE.open("rb") as f:  # reading gives the effective request, s32
            return int(struct.unpack("=i", f.read(4))[0])

    before = current()
    with cpuidle.LatencyHold(0):
        assert current() == 0
    assert current() == before


def test_compare_names_the_conditions_that_differ() -> None:
    a = {"hostname": "h", "kernel": "Linux 6", "cpu": {"model": "EPYC"}}
    b = {**a, "cpu_idle": {"driver": "haltpoll", "held_latency_us": 0}}
    assert conditions(a, a) == ()
    assert conditions(a, b) == ("PM QoS CPU latency: A not held, B held at 0 µs",)
    c = {**b, "hostname": "other", "cpu_idle": {"driver": "acpi_idle", "held_latency_us": 0}}
    d = {**a, "cpu_idle": {"driver": "haltpoll", "states": ["POLL"], "guest_halt_poll_ns": 0}}
    assert conditions(a, d) == ()  # a run before the record held nothing either
    assert conditions(b, d) == (
        "PM QoS CPU latency: A held at 0 µs, B not held",
        "idle states: A haltpoll, B haltpoll (POLL), halt poll 0 ns",
    )
    assert conditions(b, c) == (
        "host: A h, B other",
        "idle states: A haltpoll, B acpi_idle",
    )

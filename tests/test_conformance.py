"""The Autobahn-style conformance suite against every stack's /echo.

The raw stack is our own code: every case must be OK (no NON-STRICT, no FAILED).
aiohttp's and Starlette's deviations are their libraries' behaviour; they are pinned
here exactly, so a change either way (an upstream fix, or a regression) is noticed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pushbench.conformance.cases import CASES, LARGE_ARGS
from pushbench.conformance.run import Outcome, Result, format_table
from pushbench.conformance.stacks import STACKS, conformance

UPSTREAM = "upstream library behaviour"
NS, FAILED = Outcome.NON_STRICT, Outcome.FAILED

#: case id → (outcome, reason) for every case that is not OK on that stack.
KNOWN_DEVIATIONS: dict[str, dict[str, tuple[Outcome, str]]] = {
    "raw": {},
    "aiohttp": {
        # aiohttp accepts a Close carrying 1006 or a code >= 5000 and answers 1000
        # instead of failing with 1002 (RFC 6455 §7.4).
        "7.9.5": (FAILED, UPSTREAM),
        "7.13.1": (FAILED, UPSTREAM),
        "7.13.2": (FAILED, UPSTREAM),
    },
    "starlette": {
        # uvicorn's WebSocket layer fails the connection on the violation before the
        # app has echoed the valid message that came in the same read.
        **{
            case_id: (NS, UPSTREAM)
            for case_id in (
                "3.2",
                "3.3",
                "3.4",
                "4.1.3",
                "4.1.4",
                "4.1.5",
                "4.2.3",
                "4.2.4",
                "4.2.5",
                "5.15",
                "pb.6.echo-then-invalid",
            )
        },
        # A text message and a Close in one read: the Close reaches the app first.
        "7.1.1": (FAILED, UPSTREAM),
        # A Close in the middle of a fragmented message is answered with 1002.
        "7.1.5": (FAILED, UPSTREAM),
    },
}


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="module")
def results(log_dir: Path) -> dict[str, list[Result]]:
    by_stack = conformance(STACKS, log_dir)
    print(format_table(by_stack))  # shown with -s, and on failure
    return by_stack


def test_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    known = {case_id for table in KNOWN_DEVIATIONS.values() for case_id in table}
    assert known <= set(ids)


@pytest.mark.parametrize("stack", STACKS)
def test_deviations_are_exactly_the_known_ones(
    stack: str, results: dict[str, list[Result]]
) -> None:
    got = {r.case.id: r.outcome for r in results[stack] if r.outcome is not Outcome.OK}
    want = {case_id: outcome for case_id, (outcome, _) in KNOWN_DEVIATIONS[stack].items()}
    assert got == want, format_table({stack: results[stack]})
    assert len(results[stack]) == len(CASES)


def test_raw_echoes_before_failing(results: dict[str, list[Result]]) -> None:
    """One write: a valid text frame, then a frame with a reserved bit → the echo,
    then Close 1002 (Autobahn 3.2, strict)."""
    (result,) = [r for r in results["raw"] if r.case.id == "3.2"]
    assert result.outcome is Outcome.OK, result.detail
    assert result.case.replies and result.case.close_codes == (1002,)


def test_cli_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pushbench.cli import main

    assert main(["conformance", "--stack", "raw"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["raw", str(len(CASES)), str(len(CASES)), "0", "0"]


def test_section_9_runs_with_a_16_mib_limit(
    results: dict[str, list[Result]], log_dir: Path
) -> None:
    """Autobahn 9.1-9.4 (64 KiB to 16 MiB, whole and fragmented) are in the suite, they
    need the server's limit raised, and each stack is started once per argument set
    (one log per start: the default set, then the 16 MiB one)."""
    large = [case for case in CASES if case.section == "9"]
    assert {case.id for case in large} >= {"9.1.5", "9.1.6", "9.2.5", "9.2.6", "9.3.1", "9.4.9"}
    assert {case.server_args for case in large} == {LARGE_ARGS}
    assert all(case.server_args == () for case in CASES if case.section != "9")
    (biggest,) = [r for r in results["raw"] if r.case.id == "9.1.6"]
    assert biggest.outcome is Outcome.OK, biggest.detail
    assert len(biggest.case.materialize().replies[0].payload) == 16 << 20
    logs = {path.name for path in log_dir.iterdir()}
    assert logs == {f"{stack}{suffix}.log" for stack in STACKS for suffix in ("", "-1")}


def test_the_default_limit_refuses_8_mib_with_1009(tmp_path: Path) -> None:
    """Without the case's server arguments the 4 MiB default applies: the 8 MiB message
    is refused with close 1009, so the 16 MiB limit is what makes section 9 pass."""
    (case,) = [c for c in CASES if c.id == "9.1.5"]
    (result,) = conformance(("raw",), tmp_path, [dataclasses.replace(case, server_args=())])["raw"]
    assert result.outcome is Outcome.FAILED
    assert "close 1009" in result.detail

"""The command line's conventions: --version, describe, run --dry-run, `latest`, exit codes.

What a k6, Locust or wrk2 user expects of any tool: a version that says which install
runs, a way to see what a run would do without starting it, a run named the same way
in every subcommand, and one exit status per kind of outcome, whichever subcommand
(the table of :mod:`pushbench.exitcodes`, printed by ``pushbench --help``). The wheel
itself is tested in ``tests/test_wheel.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

import pushbench
from pushbench import cli, procs, results
from pushbench.exitcodes import EXIT_CODES, ExitCode, summary
from pushbench.scenario import SCENARIOS_DIR, describe, list_scenarios, load, transport_names
from pushbench.scenario.describe import narrow

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "tests" / "fixtures" / "report-run"


def _main(argv: list[str]) -> int:
    """The exit status of ``pushbench ARGV``, whether a command returned it or argparse
    exited (a bad option)."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


# --- --version and --help ----------------------------------------------------------


def test_version_names_the_version_and_the_install(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["--version"]) == 0
    out = capsys.readouterr().out
    where = Path(pushbench.__file__).resolve().parent
    assert out.startswith(f"pushbench {pushbench.__version__} from {where} (Python 3.")
    # one source for the version: the package metadata reads pushbench.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "pushbench.__version__"}


def test_help_documents_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["--help"]) == 0
    text = capsys.readouterr().out
    epilog = text.split("exit status (the same in every subcommand):", 1)[1]
    assert [int(m) for m in re.findall(r"^ +(\d+)  ", epilog, re.M)] == [int(c) for c in ExitCode]
    assert {int(c) for c in ExitCode} == {0, 1, 2, 3, 130, 143}
    assert [c for c, _, _ in EXIT_CODES] == list(ExitCode)
    for name in cli.SUBCOMMANDS:
        assert _main([name, "--help"]) == 0
        sub = " ".join(capsys.readouterr().out.split())  # argparse rewraps the epilog
        assert summary() in sub, name


def test_a_subcommand_imports_only_its_own_module() -> None:
    """The runner starts ``pushbench serve`` once per cell repeat: importing every other
    subcommand's module (the report pulls pandas) cost ~0.75 s of each start on a slow
    host, which make bench's 10-minute budget paid 69 times."""
    assert cli.chosen(["serve", "--stack", "raw"]) == "serve"
    assert cli.chosen(["--help"]) is None and cli.chosen(["nonsense", "run"]) is None
    code = (
        "import sys\n"
        "from pushbench import cli\n"
        "args = cli.build_parser(only='serve').parse_args(['serve', '--stack', 'raw'])\n"
        "assert args.stack == 'raw', args\n"
        "heavy = sorted(m for m in ('pandas', 'matplotlib', 'pushbench.report.build',\n"
        "    'pushbench.runner.orchestrate') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    status, out, err = procs.run_captured([sys.executable, "-c", code], timeout=60)
    assert status == 0, err
    assert out.strip() == "[]"
    # the whole parser still knows every subcommand, with its options
    whole = cli.build_parser()
    assert whole.parse_args(["report", "latest"]).command == "report"


# --- the scenarios, found by name ----------------------------------------------------


def test_bundled_scenarios_are_package_data_linked_like_servers_and_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = ROOT / "pushbench" / "scenarios"
    assert link.is_symlink() and os.readlink(link) == "../scenarios"
    assert os.readlink(ROOT / "pushbench" / "servers") == "../servers"  # the same pattern
    assert (ROOT / "scenarios").resolve() == SCENARIOS_DIR
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]["pushbench"]
    assert {"scenarios/*.toml", "scenarios/README.md"} <= set(data)
    monkeypatch.chdir(tmp_path)  # found by name from anywhere, not from the working directory
    assert Path(load("smoke").source) == SCENARIOS_DIR / "smoke.toml"


# --- describe and run --dry-run -----------------------------------------------------


def test_describe_shows_cells_parameters_and_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["describe", "smoke"]) == 0
    out = capsys.readouterr().out
    smoke = load("smoke")
    assert out == describe(smoke) + "\n"
    assert "8 cells × 1 repeat = 8 runs" in out  # every registered transport
    assert all(
        re.search(rf"^  {re.escape(c.cell_id)} +1 × 4\.5 s$", out, re.M) for c in smoke.cells()
    )
    h1 = [t for t in transport_names() if not t.endswith("-h2")]  # h35: h2 needs an h2 stack
    assert f"transports: {', '.join(h1)}  (varies)" in out
    assert re.search(r"^estimated duration: 36 s ", out, re.M)


def test_describe_without_a_scenario_lists_the_bundled_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _main(["describe"]) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^  (\S+) ", out, re.M)
    assert listed == [p.stem for p in list_scenarios()] and "smoke" in listed
    assert re.search(r"^  smoke +36 s  Every transport", out, re.M)


def test_dry_run_describes_what_would_run_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_run(*args: object) -> None:
        raise AssertionError("a dry run started the scenario")

    monkeypatch.setattr("pushbench.runner.command.run_scenario", must_not_run)
    out = tmp_path / "results"
    argv = [
        "run",
        "quick",
        "--dry-run",
        "--out",
        str(out),
        "--only",
        "aiohttp-ws",
        "--repeats",
        "1",
    ]
    assert _main(argv) == 0
    text = capsys.readouterr().out
    assert text == describe(narrow(load("quick"), "aiohttp-ws", 1)) + "\n"
    assert "5 cells × 1 repeat = 5 runs" in text and "estimated duration: 33 s" in text
    assert not out.exists()
    # without narrowing, the dry run prints exactly what describe prints
    assert _main(["run", "smoke", "--dry-run", "--out", str(out)]) == 0
    dry = capsys.readouterr().out
    assert _main(["describe", "smoke"]) == 0
    assert dry == capsys.readouterr().out
    assert not out.exists()


# --- `latest` and the exit codes -----------------------------------------------------


def test_latest_is_accepted_wherever_a_run_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = shutil.copytree(RUN, tmp_path / "results" / "20260101T000000Z-aaaaaa")
    results.update_latest(run)
    monkeypatch.chdir(tmp_path)
    assert results.resolve_run("latest") == run.resolve()
    assert _main(["compare", "latest", "latest"]) == 0
    assert "0 worse, 0 better" in capsys.readouterr().out
    out = tmp_path / "rendered"
    assert _main(["report", "latest", "--compare", "latest", "--out", str(out)]) == 0
    assert "## Comparison with 20260101T000000Z-aaaaaa" in (out / "report.md").read_text()
    capsys.readouterr()


def _bad_toml(tmp: Path) -> str:
    path = tmp / "bad.toml"
    path.write_text('rate = "fast"\n')
    return str(path)


#: (argv, why): each must exit 2 (bad input, nothing run) with `pushbench CMD: error:`.
#: "MISSING" is a run directory that does not exist, "BAD" a scenario that does not validate.
BAD_INPUT = [
    (["report", "MISSING"], "a missing run directory"),
    (["compare", "MISSING", "RUN"], "the same missing run directory, as the baseline"),
    (["compare", "RUN", "MISSING"], "the same missing run directory, as run B"),
    (["report", "latest"], "`latest` with no run yet"),
    (["compare", "latest", "latest"], "`latest` with no run yet"),
    (["report", "RUN", "--codec", "RUN"], "a --codec run that is not a codec run"),
    (["run", "no-such-scenario"], "an unknown scenario name"),
    (["describe", "no-such-scenario"], "an unknown scenario name"),
    (["run", "BAD", "--dry-run"], "a scenario that does not validate"),
    (["describe", "BAD"], "a scenario that does not validate"),
    (["run", "smoke", "--repeats", "0"], "a bad option value"),
    (["run", "smoke", "--cpu-latency-us", "-1"], "a PM QoS latency below 0"),
    (["run", "smoke", "--only", "no-cell-has-this"], "an option that selects nothing"),
    (["report", "RUN", "--no-such-option"], "an unknown option"),
    (["compare", "RUN"], "a missing argument"),
    (["no-such-command"], "an unknown subcommand"),
]


@pytest.mark.parametrize(("argv", "why"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2_in_every_subcommand(
    argv: list[str],
    why: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no results/ here: `latest` names nothing
    swap = {"MISSING": str(tmp_path / "nothing-here"), "RUN": str(RUN), "BAD": _bad_toml(tmp_path)}
    assert _main([swap.get(a, a) for a in argv]) == ExitCode.USAGE, why
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    # `pushbench CMD: error: …` (argparse says `pushbench: error:` for unknown arguments)
    assert re.search(rf"^pushbench(: | {re.escape(argv[0])}: )error: ", err, re.M), err
    assert not (tmp_path / "results").exists()


def test_the_same_missing_run_gives_the_same_message_in_report_and_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nothing-here")
    assert _main(["report", missing]) == _main(["compare", str(RUN), missing]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"pushbench {cmd}: error: no run directory at {missing}" for cmd in ("report", "compare")
    ]


def test_ctrl_c_exits_130_in_any_subcommand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("pushbench.commands.describe.run", interrupted)
    assert _main(["describe", "smoke"]) == ExitCode.INTERRUPTED == 130
    assert "interrupted" in capsys.readouterr().err

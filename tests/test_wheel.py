"""The package as a user gets it: build the wheel, install it into a fresh venv, run it.

A checkout hides packaging mistakes (files found relative to the source tree, top-level
folders importable from the working directory), so this builds the wheel from a copy of the
sources the way ``pip wheel .`` does, checks the build prints no warning from our own
configuration and that the wheel holds one top-level package with the scenarios as package
data, installs it into a new venv and runs the installed ``pushbench`` from a directory
outside the checkout: ``--version``, ``describe smoke`` and a whole ``run smoke`` (~20 s).

The new venv must not download anything: it reaches the dependencies already installed
beside the running interpreter (CI's ``.venv``) through a ``.pth`` file added after the
install, so ``import pushbench`` still finds the wheel's copy first (a venv's own
site-packages precede ``.pth`` entries) and never the checkout's.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What a source copy needs to build; the rest (tests, results, caches, .git) is left out.
_NOT_SOURCES = {
    ".git",
    ".venv",
    "build",
    "dist",
    "results",
    "tests",
    "notebooks",
    "docs",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}
#: Words of the setuptools warnings our configuration used to cause (license table,
#: experimental ext-modules) and of any deprecation to come.
_WARNING = re.compile(r"BuildBackendWarning|DeprecationWarning|deprecated|experimental", re.I)


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _NOT_SOURCES or n.endswith((".egg-info", ".so"))}


def _clean_env() -> dict[str, str]:
    """The environment without anything that would put the checkout on sys.path."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _sh(argv: list[str | Path], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _build_wheel(tmp: Path) -> tuple[Path, str]:
    src = tmp / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=_ignore)  # links stay links
    dist = tmp / "dist"
    built = _sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, src], tmp, 240)
    log = built.stdout + built.stderr
    assert built.returncode == 0, log
    (wheel,) = dist.glob("pushbench-*.whl")
    return wheel, log


def _site_packages(venv: Path) -> Path:
    (site,) = venv.glob("lib/python3*/site-packages")
    return site


@pytest.mark.timeout(420)
def test_the_wheel_installs_and_runs_smoke_outside_the_checkout(tmp_path: Path) -> None:
    wheel, log = _build_wheel(tmp_path)
    ours = [line for line in log.splitlines() if _WARNING.search(line)]
    assert not ours, "the build warns about our configuration:\n" + "\n".join(ours)

    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"pushbench"}, tops  # no top-level servers/, clients/, scenarios/
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["pushbench"]
    assert "pushbench/scenarios/smoke.toml" in names and "pushbench/scenarios/README.md" in names
    assert "pushbench/servers/serve.py" in names and "pushbench/clients/worker.py" in names
    assert "pushbench/servers/node/server.js" in names  # node-ws, not its node_modules
    assert not any("node_modules" in n for n in names)

    venv = tmp_path / "venv"
    made = _sh([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, 120)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _sh(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--no-deps",
            "--no-index",
            wheel,
        ],
        tmp_path,
        120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # Only now the dependencies (numpy, aiohttp, …) of the interpreter running the tests:
    # pip above saw a bare venv, so it could neither skip nor touch another pushbench.
    parent = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (_site_packages(venv) / "_parent_deps.pth").write_text("\n".join(parent) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pushbench = venv / "bin" / "pushbench"

    version = _sh([pushbench, "--version"], elsewhere, 60)
    assert version.returncode == 0, version.stderr
    assert str(_site_packages(venv).resolve() / "pushbench") in version.stdout, version.stdout
    assert str(ROOT) not in version.stdout

    described = _sh([pushbench, "describe", "smoke"], elsewhere, 60)
    assert described.returncode == 0, described.stderr
    assert "8 cells" in described.stdout and "known scenarios" not in described.stderr
    assert str(_site_packages(venv).resolve()) in described.stdout  # the bundled file
    estimate = re.search(r"estimated duration: .*\((\d+) s", described.stdout)
    assert estimate and int(estimate.group(1)) <= 60, described.stdout  # smoke stays short

    out = elsewhere / "results"
    ran = _sh([pushbench, "run", "smoke", "--out", out, "--no-progress"], elsewhere, 300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with (out / "latest" / "cells.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"ok"}, rows

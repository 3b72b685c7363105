"""The package's shape, checked from its source: small modules, no import cycles, arrows
that only point the allowed way, and argv, the environment and child processes touched
only where ``docs/architecture.md`` says.

These read the code as text (``ast``), so they run in milliseconds and need nothing
installed. ``pushbench/servers`` and ``pushbench/clients`` are links to the top-level
``servers/`` and ``clients/`` folders and are checked as the ``pushbench.servers`` and
``pushbench.clients`` packages they are imported as.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pushbench"
MAX_LINES = 600

#: Where argv and the environment may be read: the CLI, and the modules a process is
#: started with (each builds a Settings from the environment and applies it).
ENTRY_POINTS = {
    "pushbench.cli",
    "pushbench.clients.worker",
    "pushbench.clients.browser_worker",
    "pushbench.clients.browser_streams",  # h43: the [browser_streams] page
    "pushbench.clients.locust_worker",
    "pushbench.clients.locustfile",
    "pushbench.bench.feeder",
    "pushbench.servers.minimal.aiohttp_twin",  # the hand-written twins: external stack rows
    "pushbench.servers.minimal.starlette_twin",
}
#: The one module that starts processes (and runs short tools such as git and ss).
PROCESS_HELPER = "pushbench.procs"
#: (importer prefix, imported prefix): arrows that must not exist.
FORBIDDEN = (
    ("pushbench.report", "pushbench.bench"),
    ("pushbench.report", "pushbench.runner"),
    ("pushbench.bench", "pushbench.report"),
    ("pushbench.bench", "pushbench.runner"),
    ("pushbench.runner", "pushbench.report"),
    ("pushbench.runner", "pushbench.bench"),
    ("pushbench.schema", "pushbench.report"),
    ("pushbench.schema", "pushbench.bench"),
    ("pushbench.schema", "pushbench.runner"),
    ("pushbench.registry", "pushbench."),
    ("pushbench.wire", "pushbench.servers"),
    ("pushbench.wire", "pushbench.clients"),
)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package (links followed), name → file."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):  # into servers/, clients/
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(".py"):
                found[_module_name(Path(folder) / file)] = Path(folder) / file
    return found


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(), filename=str(modules()[name]))


def _is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def imports(name: str) -> set[str]:
    """The project modules ``name`` imports, at any depth in the file (lazy imports count)."""
    known = modules()
    base = name if _is_package(name) else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree(name)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                mod = ".".join([*parent, node.module] if node.module else parent)
            else:
                mod = node.module or ""
            # from PKG import submodule: an arrow to the submodule, else to PKG
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
            targets = subs if len(subs) == len(node.names) else [mod, *subs]
        for target in targets:
            # the longest known module that the target names (from pkg import submodule)
            while target and target not in known:
                target = target.rpartition(".")[0]
            # a module's own packages are initialised before it: not an arrow
            if target and target != name and not name.startswith(target + "."):
                out.add(target)
    return out


def _cycles(edges: Callable[[str], set[str]] = imports) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {m: sorted(edges(m)) for m in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_package_is_found_whole() -> None:
    names = modules()
    for expected in (
        "pushbench.registry",
        "pushbench.servers.serve",
        "pushbench.clients.worker",
        "pushbench.wire.frames",
    ):
        assert expected in names


def test_no_module_over_600_lines() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split by responsibility): {long}"


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a made-up arrow back from the wire codec to a client
    that imports it closes a cycle."""
    assert "pushbench.wire" in imports("pushbench.clients.ws_light")

    def with_back_arrow(name: str) -> set[str]:
        extra = {"pushbench.clients.ws_light"} if name == "pushbench.wire" else set()
        return imports(name) | extra

    assert any(
        "pushbench.wire" in c and "pushbench.clients.ws_light" in c
        for c in _cycles(with_back_arrow)
    )


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_no_forbidden_arrow(importer: str, imported: str) -> None:
    bad = sorted(
        (m, t)
        for m in modules()
        if m == importer or m.startswith(importer + ".")
        for t in imports(m)
        if t.startswith(imported) and not t.startswith(importer)
    )
    assert not bad, f"{importer} must not import {imported}: {bad}"


def _calls(name: str, forbidden: dict[str, set[str]]) -> list[int]:
    """Lines of ``name`` whose code uses ``module.attribute`` of ``forbidden``, or imports
    a forbidden module or name (``import subprocess``, ``from os import environ``)."""
    lines = []
    for node in ast.walk(tree(name)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.attr in forbidden.get(node.value.id, set())
        ):
            lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(a.name in forbidden for a in node.names):
            if any(not forbidden[a.name] for a in node.names if a.name in forbidden):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module in forbidden:
            names = forbidden[node.module]
            if not names or any(a.name in names for a in node.names):
                lines.append(node.lineno)
    return sorted(lines)


#: module → attributes that read argv or the environment.
ENVIRONMENT = {"os": {"environ", "environb", "getenv", "getenvb"}, "sys": {"argv"}}
#: module → attributes that start processes; an empty set: importing the module at all.
PROCESSES = {
    "subprocess": set(),
    "os": {"fork", "forkpty", "execv", "execve", "execvp", "execvpe", "spawnv", "posix_spawn"},
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
    "multiprocessing": set(),
}


def test_argv_and_environment_only_in_entry_points() -> None:
    found = {
        name: lines
        for name in modules()
        if name not in ENTRY_POINTS and (lines := _calls(name, ENVIRONMENT))
    }
    assert not found, f"argv/environment read outside the CLI and entry points: {found}"


def test_processes_only_through_the_helper() -> None:
    found = {
        name: lines
        for name in modules()
        if name != PROCESS_HELPER and (lines := _calls(name, PROCESSES))
    }
    assert not found, f"processes started outside {PROCESS_HELPER}: {found}"


def test_the_source_checks_can_fail(tmp_path: Path) -> None:
    """The two checks above see real uses (and only code, not prose)."""
    sample = ast.parse(
        '"""os.environ in a docstring is prose."""\n'
        "import os, subprocess\n"
        "x = os.environ.get('A')\n"
        "subprocess.run(['true'])\n"
    )
    tree.cache_clear()
    modules()["pushbench.__sample__"] = tmp_path / "sample.py"
    (tmp_path / "sample.py").write_text(ast.unparse(sample))
    try:
        assert _calls("pushbench.__sample__", ENVIRONMENT) == [3]
        assert _calls("pushbench.__sample__", PROCESSES) == [2]  # import subprocess
    finally:
        del modules()["pushbench.__sample__"]
        tree.cache_clear()


def test_a_worker_of_light_clients_does_not_load_aiohttp() -> None:
    """Every cell starts its client workers afresh, so their import time is paid 66 times
    in ``make bench``; aiohttp (~0.25 s of it) is loaded only where a client uses it."""
    code = (
        "import sys, pushbench.clients.worker\n"
        "from pushbench.clients import ws_light, sse, poll, http_light, rxengine\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"

"""Start each stack with ``pushbench serve`` (through :mod:`pushbench.procs`) on a free
loopback port and run the conformance suite against its ``/echo``.

Cases that need extra server arguments (section 9: a 16 MiB message limit) are grouped
by those arguments: each stack is started once per distinct argument set, and the
results come back in the cases' order."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pushbench.procs import ProcessGroup

from .cases import CASES, Case
from .run import Result, run_suite

__all__ = ["STACKS", "conformance"]

READY = re.compile(r"listening on http://(\S+):(\d+)$")
STACKS = ("raw", "aiohttp", "starlette")


def conformance(
    stacks: tuple[str, ...], log_dir: Path, cases: Sequence[Case] = CASES
) -> dict[str, list[Result]]:
    """Each stack in turn, once per argument set: ``pushbench serve`` on a free loopback
    port, that set's cases, stop."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, case in enumerate(cases):
        groups.setdefault(case.server_args, []).append(i)
    group = ProcessGroup(log_dir)
    by_stack: dict[str, list[Result]] = {}
    try:
        for stack in stacks:
            results: dict[int, Result] = {}
            for n, (server_args, indices) in enumerate(groups.items()):
                argv = [sys.executable, "-m", "pushbench.cli", "serve", "--stack", stack]
                entry = group.start(
                    stack if n == 0 else f"{stack}-{n}",
                    [*argv, "--host", "127.0.0.1", "--port", "0", *server_args],
                    ready_prefix="pushbench serve:",
                )
                match = READY.search(entry.ready_line)
                assert match is not None, entry.ready_line
                run = asyncio.run(run_suite(match[1], int(match[2]), [cases[i] for i in indices]))
                results.update(zip(indices, run, strict=True))
                group.stop(entry)
            by_stack[stack] = [results[i] for i in range(len(cases))]
    finally:
        group.stop_all()
    return by_stack

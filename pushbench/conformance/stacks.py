"""Start each stack with ``pushbench serve`` (through :mod:`pushbench.procs`) on a free
loopback port and run the conformance suite against its ``/echo``."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from pushbench.procs import ProcessGroup

from .run import Result, run_suite

__all__ = ["STACKS", "conformance"]

READY = re.compile(r"listening on http://(\S+):(\d+)$")
STACKS = ("raw", "aiohttp", "starlette")


def conformance(stacks: tuple[str, ...], log_dir: Path) -> dict[str, list[Result]]:
    """Each stack in turn: ``pushbench serve`` on a free loopback port, the suite, stop."""
    group = ProcessGroup(log_dir)
    by_stack: dict[str, list[Result]] = {}
    try:
        for stack in stacks:
            argv = [sys.executable, "-m", "pushbench.cli", "serve", "--stack", stack]
            entry = group.start(
                stack,
                [*argv, "--host", "127.0.0.1", "--port", "0"],
                ready_prefix="pushbench serve:",
            )
            match = READY.search(entry.ready_line)
            assert match is not None, entry.ready_line
            by_stack[stack] = asyncio.run(run_suite(match[1], int(match[2])))
            group.stop(entry)
    finally:
        group.stop_all()
    return by_stack

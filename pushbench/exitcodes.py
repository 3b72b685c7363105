"""The exit status of every ``pushbench`` subcommand: one table, the same code for the same error.

A script or a CI job tells what happened from the status alone, whichever subcommand ran:
a bad scenario, option or run directory is 2 in ``run``, ``describe``, ``report`` and
``compare`` alike (as argparse itself exits 2 on a bad option), a run that could not measure
everything is 1, a failed threshold 3, and an interrupted command follows the shell's
128 + signal convention. ``pushbench --help`` prints :data:`EXIT_CODES` as its epilog.
"""

from __future__ import annotations

import textwrap
from enum import IntEnum

__all__ = ["EXIT_CODES", "ExitCode", "epilog", "summary"]


class ExitCode(IntEnum):
    """What a subcommand's exit status means (``pushbench --help`` lists them)."""

    OK = 0
    INCOMPLETE = 1
    USAGE = 2
    THRESHOLD = 3
    INTERRUPTED = 130
    TERMINATED = 143


#: Each code, a few words (a subcommand's --help) and what it means (``pushbench --help``).
EXIT_CODES: tuple[tuple[ExitCode, str, str], ...] = (
    (ExitCode.OK, "ok", "success (compare: whatever the verdicts, unless --fail-on-worse)"),
    (
        ExitCode.INCOMPLETE,
        "did not complete",
        "the command ran but did not complete: a run with a cell that could not be measured, "
        "a benchmark with an error, a server that failed; compare --fail-on-worse with a "
        "figure worse",
    ),
    (
        ExitCode.USAGE,
        "bad input",
        "bad input, nothing was run: a bad option, a bad or unknown scenario, a missing or "
        "unreadable run directory",
    ),
    (
        ExitCode.THRESHOLD,
        "a [thresholds] condition failed",
        "a run completed but a [thresholds] condition of its scenario failed (run --junit "
        "FILE writes them for CI)",
    ),
    (ExitCode.INTERRUPTED, "interrupted", "interrupted (Ctrl-C, SIGINT)"),
    (ExitCode.TERMINATED, "terminated", "terminated (SIGTERM)"),
)


def epilog(width: int = 79) -> str:
    """The exit-code table as preformatted text (argparse's ``RawDescriptionHelpFormatter``)."""
    lines = ["exit status (the same in every subcommand):"]
    for code, _, text in EXIT_CODES:
        lines += textwrap.wrap(
            text, width, initial_indent=f"  {int(code):>3}  ", subsequent_indent=" " * 7
        )
    return "\n".join(lines)


def summary() -> str:
    """The table in one sentence, for each subcommand's ``--help`` (argparse rewraps it)."""
    codes = ", ".join(f"{int(code)} {short}" for code, short, _ in EXIT_CODES)
    return f"exit status: {codes} (details: pushbench --help)"

"""What a report shows of a path: where a thing is in the project or the results folder,
never where it was on the machine that ran.

Reports travel (attached to an issue, committed as ``docs/example-report/``), and an
absolute path in one says nothing useful to its reader while telling them the home
directory, the checkout and the temporary folders of whoever ran it. So every path a
report prints goes through :func:`shown_path`:

- a file of the project from its project folder on: ``/home/ann/src/pushbench/scenarios/
  quick.toml`` → ``scenarios/quick.toml``, ``…/pushbench/wire/frames.py`` →
  ``pushbench/wire/frames.py`` (the last of :data:`PROJECT_FOLDERS` in the path);
- an installed module from its package on: ``…/site-packages/aiohttp/web.py`` →
  ``aiohttp/web.py``, ``…/lib/python3.11/asyncio/events.py`` → ``asyncio/events.py``;
- anything else as ``…/`` and its name (``--out /tmp/tmpab12`` → ``--out …/tmpab12``).

A run directory is shown as its results folder's name and its id
(:func:`run_label`: ``results/20261126-013712-quick``), the form ``pushbench report``
takes from the directory a run was started in; a command line by :func:`shown_command`
(the program's name, each absolute argument shortened); free text holding paths (a
cProfile listing) by :func:`scrub`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

__all__ = ["ELIDED", "PROJECT_FOLDERS", "run_label", "scrub", "shown_command", "shown_path"]

#: Top-level folders of the checkout (and the package): a path is shown from the last one in it.
PROJECT_FOLDERS = frozenset({"pushbench", "scenarios", "tests", "docs", "servers", "clients"})
ELIDED = "…"  # stands for the dropped prefix of a path outside the project
_INSTALLED = re.compile(r"/(?:site-packages|dist-packages|lib/python\d+(?:\.\d+)?)(?=/)")
#: An absolute path of two components or more inside free text, not preceded by a word
#: character (``msgs/s``, ``1/2`` are not paths); it ends at a space, quote, bracket or colon.
_IN_TEXT = re.compile(r"(?<![\w.~/\\-])(?:/[^/\s`'\"()<>\[\]:,;|]+){2,}")


def shown_path(path: str | Path) -> str:
    """``path`` as a report shows it: unchanged when relative, else without the machine's
    prefix (see the module's rules)."""
    text = str(path)
    if not text.startswith("/"):
        return text
    installed = list(_INSTALLED.finditer(text))
    if installed:
        return text[installed[-1].end() + 1 :] or ELIDED
    parts = PurePosixPath(text).parts[1:]
    anchors = [i for i, part in enumerate(parts[:-1]) if part in PROJECT_FOLDERS]
    if anchors:
        return "/".join(parts[anchors[-1] :])
    return f"{ELIDED}/{parts[-1]}" if parts else ELIDED


def run_label(run_dir: Path) -> str:
    """A run directory as ``<results folder's name>/<run id>`` (``results/<id>``)."""
    return f"{run_dir.parent.name}/{run_dir.name}" if run_dir.parent.name else run_dir.name


def shown_command(argv: Sequence[str]) -> str:
    """A recorded command line as a report shows it: the program by its name
    (``python -m pushbench.cli`` when it was the module's file), every absolute path
    argument (``/x/y``, ``--out=/x/y``) through :func:`shown_path`."""
    if not argv:
        return ""
    program = PurePosixPath(argv[0])
    if program.parent.name == "pushbench" and program.name in ("cli.py", "__main__.py"):
        first = "python -m pushbench" + (".cli" if program.name == "cli.py" else "")
    else:
        first = program.name or str(program)
    return " ".join([first, *(_argument(a) for a in argv[1:])])


def _argument(arg: str) -> str:
    if arg.startswith("-") and "=" in arg:
        option, value = arg.split("=", 1)
        return f"{option}={shown_path(value)}"
    return shown_path(arg)


def scrub(text: str) -> str:
    """``text`` with every absolute path in it shown as :func:`shown_path` shows it."""
    return _IN_TEXT.sub(lambda m: shown_path(m.group(0)), text)

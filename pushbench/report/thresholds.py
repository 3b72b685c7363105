"""The report's "Thresholds" section: the pass/fail table ``pushbench run`` stored.

It reads ``thresholds.json`` (written by ``pushbench run`` when the scenario has a
``[thresholds]`` table) and shows it; it never re-evaluates, so the report says
exactly what gated the run, even if the thresholds code changes later. A run
without the file (no thresholds, or a run older than them) gets no section.
"""

from __future__ import annotations

from pushbench.results import read_json
from pushbench.thresholds import THRESHOLDS_FILE, Verdict, summary_line, table_rows

from . import doc
from .load import Run

__all__ = ["section", "stored_verdict"]


def stored_verdict(run: Run) -> Verdict | None:
    """The run's stored verdict, or None when it has no ``thresholds.json``."""
    path = run.path / THRESHOLDS_FILE
    if not path.exists():
        return None
    return Verdict.from_dict(read_json(path))


def section(run: Run) -> list[doc.Section]:
    """``[Section]`` with the table, or ``[]`` when the run stored no thresholds."""
    verdict = stored_verdict(run)
    if verdict is None:
        return []
    line = summary_line(verdict).removeprefix("thresholds: ")
    head: doc.Block = (
        doc.Note(f"**Thresholds FAILED**: {line}.", warning=True)
        if not verdict.passed
        else doc.Paragraph(f"Every threshold passed: {line}.")
    )
    rows = tuple(table_rows(verdict))
    table = doc.Table(
        ("result", "threshold", "cell", "value", "note"),
        rows,
        caption="The scenario's [thresholds], judged by `pushbench run` on each cell's median "
        f"over its ok repeats (stored in {THRESHOLDS_FILE}); a cell with a failed or skipped "
        "repeat fails every threshold that applies to it.",
        flags=tuple(
            "failed" if o.passed is False else "flagged" if o.passed is None else ""
            for o in verdict.outcomes
        ),
    )
    return [doc.Section("Thresholds", "thresholds", (head, table))]

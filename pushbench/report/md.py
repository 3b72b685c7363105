"""Write a :class:`~.doc.Document` as Markdown, images linked by their file names.

The Markdown sits beside its PNGs in the run directory, so relative links
work there (and on a code-hosting site); the HTML twin embeds the images.
Each section heading follows an ``<a id="anchor">`` so in-report links
(``[text](#anchor)``) land on it as they do in the HTML.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .doc import (
    Block,
    Bullets,
    Document,
    Figure,
    Missing,
    Note,
    Paragraph,
    Pre,
    Section,
    Table,
)

__all__ = ["render"]

_FLAG_MARK = {"failed": "✗ ", "flagged": "⚠ "}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> Iterable[str]:
    yield "| " + " | ".join(_cell(h) for h in t.header) + " |"
    yield (
        "|"
        + "|".join("---" if i == 0 or not t.numeric else "--:" for i in range(len(t.header)))
        + "|"
    )
    for i, row in enumerate(t.rows):
        cells = [_cell(c) for c in row]
        if cells:
            cells[0] = _FLAG_MARK.get(t.flag(i), "") + cells[0]
        yield "| " + " | ".join(cells) + " |"
    if t.caption:
        yield ""
        yield f"*{t.caption}*"
    yield ""


def _block(block: Block, base: Path | None) -> Iterable[str]:
    if isinstance(block, Paragraph):
        yield from (block.text, "")
    elif isinstance(block, Bullets):
        yield from (f"- {item}" for item in block.items)
        yield ""
    elif isinstance(block, Note):
        yield from (f"> {'**Warning:** ' if block.warning else ''}{block.text}", "")
    elif isinstance(block, Pre):
        yield from ("```", block.text.rstrip("\n"), "```", "")
    elif isinstance(block, Table):
        yield from _table(block)
    elif isinstance(block, Figure):
        link = block.path.name if base is None else os.path.relpath(block.path, base)
        yield from (f"![{block.title}]({Path(link).as_posix()})", "")
        yield from (f"**{block.title}.** {block.caption}", "")
    elif isinstance(block, Missing):
        yield from (f"> **{block.title}**: {block.text}", "")


def _section(section: Section, level: int, base: Path | None) -> Iterable[str]:
    # the section's id, so ``[text](#anchor)`` links work as in the HTML twin
    yield from (f'<a id="{section.anchor}"></a>', "")
    yield from ("#" * level + " " + section.title, "")
    for block in section.blocks:
        yield from _block(block, base)
    for sub in section.subsections:
        yield from _section(sub, min(level + 1, 6), base)


def render(doc: Document, base: Path | None = None) -> str:
    """The Markdown text of ``doc``; images are linked relative to ``base`` (its directory)."""
    lines = [f"# {doc.title}", ""]
    for banner in doc.banners:
        lines += [f"> **⚠ {banner}**", ""]
    for section in doc.sections:
        lines.extend(_section(section, 2, base))
    return "\n".join(lines).rstrip("\n") + "\n"

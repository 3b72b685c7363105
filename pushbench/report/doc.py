"""The report as data: sections of paragraphs, tables, figures and notes.

The report is built once as a :class:`Document` and written twice, by
:mod:`.html` (one self-contained file) and :mod:`.md`, so the two never say
different things. Text may carry three inline marks, rendered by both writers:
```code``` in backticks, ``**bold**``, and ``[text](#anchor)``: a link to the
section whose :attr:`Section.anchor` is ``anchor`` (both writers give every
section that id), so a verdict can point at its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "NBSP",
    "Block",
    "Bullets",
    "Document",
    "Figure",
    "Missing",
    "Note",
    "Paragraph",
    "Pre",
    "Section",
    "Table",
]


#: Joins a figure to its unit and its ``±`` spread, so a table cell never wraps inside it.
NBSP = "\u00a0"


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Note:
    """A highlighted remark; ``warning`` ones are drawn as a banner."""

    text: str
    warning: bool = False


@dataclass(frozen=True)
class Pre:
    """Preformatted text (a profile, a command's output)."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table; ``flags[i]`` marks row ``i``: ``failed``, ``flagged``, ``better`` or ``""``.

    ``numeric`` tables right-align every column after the first (figures); a table of
    text (``numeric=False``) is left-aligned throughout."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    flags: tuple[str, ...] = ()
    numeric: bool = True

    def flag(self, i: int) -> str:
        return self.flags[i] if i < len(self.flags) else ""


@dataclass(frozen=True)
class Figure:
    """A PNG beside the report (embedded in the HTML), its title and how to read it."""

    path: Path
    title: str
    caption: str


@dataclass(frozen=True)
class Missing:
    """A figure or section the run has no data for: what is missing and how to get it."""

    title: str
    text: str


Block = Paragraph | Bullets | Note | Pre | Table | Figure | Missing


@dataclass(frozen=True)
class Section:
    title: str
    anchor: str
    blocks: tuple[Block, ...]
    subsections: tuple[Section, ...] = ()


@dataclass(frozen=True)
class Document:
    title: str
    banners: tuple[str, ...] = ()
    sections: tuple[Section, ...] = field(default_factory=tuple)

"""Write a :class:`~.doc.Document` as one self-contained HTML file.

Images are embedded as base64 ``data:`` URIs, the CSS is inline, there is no
script and no external URL: the file opens offline, can be mailed or
attached to an issue, and shows the same thing everywhere.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable

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

__all__ = ["inline", "render"]

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1180px;
padding:0 1.2em 3em;color:#1d1d1d}
h1{font-size:1.6em;margin:.8em 0 .3em}h2{border-bottom:1px solid #ccc;margin-top:2em}
h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px}
th,td{border:1px solid #d0d0d0;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f1f1f1}td:first-child,th:first-child{text-align:left}
caption{caption-side:bottom;text-align:left;color:#555;font-size:12px;padding-top:4px}
tr.failed td{background:#fde2e1}tr.flagged td{background:#fff4d6}
tr.better td{background:#e3f4e1}td.nw{white-space:nowrap}
table.text td,table.text th{text-align:left}
code{background:#f3f3f3;padding:0 3px;border-radius:3px;font-size:90%}
pre{background:#f7f7f7;padding:.7em;overflow-x:auto;font-size:12px}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #e3e3e3}
figcaption{color:#444;font-size:13px;max-width:900px}
.banner{background:#b3261e;color:#fff;padding:.7em 1em;margin:1em 0;border-radius:4px;
font-weight:600}
.note{background:#eef4fb;border-left:4px solid #0072b2;padding:.5em .8em;margin:.8em 0}
.note.warning{background:#fff4d6;border-left-color:#d55e00}
.missing{background:#f5f5f5;border:1px dashed #999;padding:.6em .9em;margin:.8em 0}
nav ul{columns:2;font-size:14px}
"""


def inline(text: str) -> str:
    """Escape ``text`` for HTML, then render ```code```, ``**bold**`` and
    ``[text](#anchor)`` (a link within the page; nothing else becomes a link)."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\[([^\]]+)\]\(#([\w-]+)\)", r'<a href="#\2">\1</a>', out)


#: A ± and the figure after it (``±5 %``, ``±<1 %``, ``±2.0 %``), with the spaces around.
_PM = re.compile(r"([ \u00a0]?)±([ \u00a0]?)(\S+)(?:[ \u00a0](%))?")
#: A cell that is one figure with its spread (``1,234 ±5 %``, ``99.9 % ±<1 %``).
_FIGURE = re.compile(r"^\S+(?:\s\S+)?\s±\S+(?:\s%)?$")


def _glue(m: re.Match[str]) -> str:
    nb = "\u00a0"
    return f"{nb if m[1] else ''}±{nb if m[2] else ''}{m[3]}{nb + '%' if m[4] else ''}"


def _cell(text: str) -> str:
    """A table cell: a figure with a ± spread never wraps (``class="nw"``), and in any
    other text the ± stays joined to its neighbours by non-breaking spaces."""
    glued = _PM.sub(_glue, text)
    cls = ' class="nw"' if _FIGURE.match(text) else ""
    return f"<td{cls}>{inline(glued)}</td>"


def _image(fig: Figure) -> str:
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    alt = html.escape(fig.title)
    return f'<img src="data:image/png;base64,{data}" alt="{alt}">'


def _table(t: Table) -> Iterable[str]:
    yield "<table>" if t.numeric else '<table class="text">'
    if t.caption:
        yield f"<caption>{inline(t.caption)}</caption>"
    yield "<thead><tr>" + "".join(f"<th>{inline(h)}</th>" for h in t.header) + "</tr></thead>"
    yield "<tbody>"
    for i, row in enumerate(t.rows):
        cls = f' class="{t.flag(i)}"' if t.flag(i) else ""
        yield f"<tr{cls}>" + "".join(_cell(c) for c in row) + "</tr>"
    yield "</tbody></table>"


def _block(block: Block) -> Iterable[str]:
    if isinstance(block, Paragraph):
        yield f"<p>{inline(block.text)}</p>"
    elif isinstance(block, Bullets):
        yield "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block.items) + "</ul>"
    elif isinstance(block, Note):
        cls = "note warning" if block.warning else "note"
        yield f'<div class="{cls}">{inline(block.text)}</div>'
    elif isinstance(block, Pre):
        yield f"<pre>{html.escape(block.text)}</pre>"
    elif isinstance(block, Table):
        yield from _table(block)
    elif isinstance(block, Figure):
        yield (
            f"<figure>{_image(block)}<figcaption><strong>{inline(block.title)}.</strong> "
            f"{inline(block.caption)}</figcaption></figure>"
        )
    elif isinstance(block, Missing):
        yield (
            f'<div class="missing"><strong>{inline(block.title)}</strong>: '
            f"{inline(block.text)}</div>"
        )


def _section(section: Section, level: int) -> Iterable[str]:
    yield f'<section id="{html.escape(section.anchor)}">'
    yield f"<h{level}>{inline(section.title)}</h{level}>"
    for block in section.blocks:
        yield from _block(block)
    for sub in section.subsections:
        yield from _section(sub, min(level + 1, 6))
    yield "</section>"


def render(doc: Document) -> str:
    """The whole HTML page of ``doc``."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{inline(doc.title)}</h1>",
    ]
    parts += [f'<div class="banner" role="alert">{inline(b)}</div>' for b in doc.banners]
    if len(doc.sections) > 1:
        parts.append("<nav><ul>")
        parts += [
            f'<li><a href="#{html.escape(s.anchor)}">{inline(s.title)}</a></li>'
            for s in doc.sections
        ]
        parts.append("</ul></nav>")
    for section in doc.sections:
        parts.extend(_section(section, 2))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

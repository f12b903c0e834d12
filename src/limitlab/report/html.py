"""A small static HTML page writer shared by the studies' reports: headings, paragraphs, lists, tables, figures.

No JavaScript and no external assets: one self-contained ``index.html`` that references its PNG figures by a path
relative to the page, so the report folder can be zipped, copied or served as it is. Every piece of text is
HTML-escaped; numbers are formatted by :func:`fmt` (floats to 3 significant digits, None/NaN as an em dash).

A figure carries a sentence saying what it shows (its caption and alt text); the file name is a small link under
it. A page with more than :data:`TOC_MIN_SECTIONS` section headings (h2) gets a table of contents before the first
one, each heading an anchor (its own ``anchor``, else one made from its text).

>>> page = Page("counting: m_thr vs d")
>>> page.heading("Comparison with the paper")
>>> page.paragraph("m_thr grows linearly in d.")
>>> page.table([{"claim": "linear", "verdict": "agree"}], highlight={"verdict": VERDICT_CLASSES})
>>> page.figure("mthr_qc.png", "m_thr vs d (QC)")
>>> "<table" in page.render() and 'src="mthr_qc.png"' in page.render()
True
>>> for name in ("Protocol", "m_thr", "Heatmaps"):
...     page.heading(name)
>>> '<nav class="toc">' in page.render() and 'href="#m-thr"' in page.render()
True
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["TOC_MIN_SECTIONS", "Page", "VERDICT_CLASSES", "fmt"]

TOC_MIN_SECTIONS = 3  # a page with more section headings (h2) than this gets a table of contents

# css class per verdict string: used with ``Page.table(..., highlight={"verdict": VERDICT_CLASSES})``
VERDICT_CLASSES = {"agree": "good", "disagree": "bad", "inconclusive": "warn", "not measured": "muted"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
h3 { font-size: 1.1em; margin-top: 1.3em; }
table { border-collapse: collapse; margin: .8em 0 1.2em; font-size: .9em; display: block; max-width: 100%;
        overflow-x: auto; }
caption { text-align: left; font-weight: 600; padding-bottom: .3em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; vertical-align: top; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.good { background: #dff3df; font-weight: 600; }
td.bad { background: #f8dcdc; font-weight: 600; }
td.muted { background: #f1f1f1; color: #666; }
td.warn { background: #fff3cd; }
figure { margin: 1em 0 1.5em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; }
figcaption a.file { font-size: .85em; color: #888; margin-left: .5em; }
nav.toc { background: #f8f8f8; border: 1px solid #e4e4e4; padding: .3em 1em; margin: 1em 0; display: inline-block; }
nav.toc ol { margin: .2em 0; padding-left: 1.4em; }
.scale { background: #e8f1fb; border-left: 4px solid #4a90d9; padding: .4em .8em; }
.note { background: #fff8e1; border-left: 4px solid #f0c040; padding: .4em .8em; }
.error { background: #fdecea; border-left: 4px solid #d9534f; padding: .4em .8em; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell's text: floats to ``digits`` significant digits, ints as is, None/NaN as '—'.

    >>> fmt(0.123456), fmt(12345.6), fmt(None), fmt(float("nan")), fmt(3), fmt(True)
    ('0.123', '1.23e+04', '—', '—', '3', 'yes')
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"):
        value = float(value)
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) or hasattr(value, "dtype")


class Page:
    """An HTML page built top to bottom; ``write(path)`` saves it. See the module docstring for an example."""

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self._parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        self._sections: list[tuple[int, str, str]] = []  # (index in _parts, text, anchor) of each h2
        if subtitle:
            self.paragraph(subtitle)
        self._top = len(self._parts)  # where a banner goes: under the title and subtitle

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        """A section heading (h2 by default); ``anchor`` gives it an id to link to (an h2 always gets one, for the
        table of contents: made from its text when not given)."""
        if not 1 <= level <= 6:
            raise ValueError(f"heading level must be 1..6, got {level}")
        if level == 2:
            taken = {a for _, _, a in self._sections}
            anchor = anchor or _slug(text, taken)
            self._sections.append((len(self._parts), text, anchor))
        ident = f' id="{html.escape(anchor, quote=True)}"' if anchor else ""
        self._parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str | None = None) -> None:
        """A paragraph of plain text (escaped). ``css``: 'note', 'error' or 'scale' for a highlighted box."""
        cls = f' class="{html.escape(css, quote=True)}"' if css else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def banner(self, text: str, css: str = "scale") -> None:
        """A highlighted paragraph placed under the title and subtitle, whenever it is added (e.g. the scale note
        of :func:`limitlab.report.scale.scale_note`)."""
        cls = html.escape(css, quote=True)
        self._parts.insert(self._top, f'<p class="{cls}">{html.escape(text)}</p>')
        self._top += 1
        self._sections = [(i + 1 if i >= self._top - 1 else i, t, a) for i, t, a in self._sections]

    def bullets(self, items: Iterable[str]) -> None:
        """An unordered list of plain-text items."""
        lis = "".join(f"<li>{html.escape(str(item))}</li>" for item in items)
        self._parts.append(f"<ul>{lis}</ul>")

    def code(self, text: str) -> None:
        """A preformatted block (escaped)."""
        self._parts.append(f"<pre><code>{html.escape(text)}</code></pre>")

    def table(
        self,
        data: Any,
        columns: Sequence[str] | None = None,
        caption: str | None = None,
        highlight: Mapping[str, Mapping[str, str]] | None = None,
        digits: int = 3,
        percent: Sequence[str] = (),
        links: Mapping[str, Sequence[str | None]] | None = None,
    ) -> None:
        """A table from a DataFrame, a list of dicts, or a list of rows (then ``columns`` names them).

        ``highlight`` maps a column to {cell text: css class} ('good', 'bad', 'muted', 'warn'), e.g. to colour a
        verdict column. ``percent`` names columns of fractions shown as percentages (0.726 -> '72.6%'), for a page
        that gives its accuracies in percent. ``links`` maps a column to one relative URL per row (None: no
        link), e.g. each claim to its study page. Missing keys of a dict row show as '—'. An empty table shows
        '(no rows)'.
        """
        header, rows = _rows_of(data, columns)
        highlight = highlight or {}
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in header) + "</tr>")
        if not rows:
            out.append(f'<tr><td colspan="{max(len(header), 1)}" class="muted">(no rows)</td></tr>')
        links = links or {}
        for i, row in enumerate(rows):
            cells = []
            for name, value in zip(header, row):
                text = _percent(value) if name in percent and _is_number(value) else fmt(value, digits)
                classes = []
                if _is_number(value):
                    classes.append("num")
                css = highlight.get(str(name), {}).get(text)
                if css:
                    classes.append(css)
                cls = f' class="{" ".join(classes)}"' if classes else ""
                href = links[name][i] if name in links else None
                shown = html.escape(text)
                if href:
                    if re.match(r"^[a-z][a-z0-9+.-]*:|^/", href, re.I):
                        raise ValueError(f"table link {href!r} must be a relative path (the folder must stay movable)")
                    shown = f'<a href="{html.escape(href, quote=True)}">{shown}</a>'
                cells.append(f"<td{cls}>{shown}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self._parts.append("\n".join(out))

    def figure(self, src: str | os.PathLike, caption: str, width: int | None = None) -> None:
        """An image by a path *relative to the page* (absolute paths are refused: the folder must stay movable).

        ``caption`` says what the figure shows (it is also the alt text); the file name alone is refused, and is
        shown anyway as a small link under the caption."""
        src = Path(src).as_posix()
        if src.startswith("/") or (len(src) > 1 and src[1] == ":"):
            raise ValueError(f"figure path must be relative to the page, got {src!r}")
        text = (caption or "").strip()
        if not text or text in (src, Path(src).name, Path(src).stem):
            raise ValueError(f"figure {src!r} needs a caption saying what it shows, not its file name; got "
                             f"{caption!r}")
        style = f' width="{int(width)}"' if width else ""
        link = html.escape(src, quote=True)
        self._parts.append(f'<figure><img src="{link}" alt="{html.escape(text, quote=True)}"{style}><figcaption>'
                           f'{html.escape(text)} <a class="file" href="{link}">{html.escape(Path(src).name)}</a>'
                           "</figcaption></figure>")

    def raw(self, fragment: str) -> None:
        """Append an HTML fragment as is (the caller escapes)."""
        self._parts.append(fragment)

    def render(self) -> str:
        """The whole page as a string (with a table of contents when it has more than TOC_MIN_SECTIONS h2s)."""
        parts = list(self._parts)
        if len(self._sections) > TOC_MIN_SECTIONS:
            items = "".join(f'<li><a href="#{html.escape(a, quote=True)}">{html.escape(t)}</a></li>'
                            for _, t, a in self._sections)
            parts.insert(self._sections[0][0], f'<nav class="toc"><strong>Contents</strong><ol>{items}</ol></nav>')
        body = "\n".join(parts)
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
                "</body>\n</html>\n")

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page (UTF-8) and return its path; the folder is created if needed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.render(), encoding="utf-8")
        os.replace(tmp, path)
        return path


def _percent(value: Any) -> str:
    """A fraction as a percentage with one decimal: 0.7256 -> '72.6%'; NaN -> '—'."""
    value = float(value)
    return "—" if math.isnan(value) else f"{100 * value:.1f}%"


def _slug(text: str, taken: set[str]) -> str:
    """An HTML id from a heading's text, not in ``taken``: 'Accuracy over d × m' -> 'accuracy-over-d-m'."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, k = base, 2
    while slug in taken:
        slug, k = f"{base}-{k}", k + 1
    return slug


def _rows_of(data: Any, columns: Sequence[str] | None) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) from a DataFrame, a list of mappings, or a list of sequences."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        header = [str(c) for c in (columns if columns is not None else data.columns)]
        records = data.to_dict("records")
        return header, [[_scalar(r.get(c)) for c in header] for r in records]
    data = list(data)
    if not data:
        return list(columns or []), []
    if isinstance(data[0], Mapping):
        if columns is None:
            header: list[str] = []
            for row in data:
                header.extend(k for k in row if k not in header)
        else:
            header = list(columns)
        return header, [[_scalar(row.get(c)) for c in header] for row in data]
    if columns is None:
        raise ValueError("a table from plain rows needs column names")
    return list(columns), [list(row) for row in data]


def _scalar(value: Any) -> Any:
    """numpy scalars -> python; pandas NA -> None."""
    if value is None:
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    try:
        if value != value:  # NaN / NA
            return None
    except (TypeError, ValueError):
        pass
    return value

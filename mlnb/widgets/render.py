"""The HTML the widgets show: one style sheet, escaped tables, links to a run's files.

Every widget's view is a pure ``*_html`` function of the data built from these pieces;
values become one line of text with :func:`mlnb.records.display_text`.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

STYLE = """<style>
.mlnb-table {border-collapse: collapse; font-size: 12px; margin: 4px 0 8px 0}
.mlnb-table th, .mlnb-table td {border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left;
  vertical-align: top}
.mlnb-table tr.mlnb-changed td {background: #fff3cd; font-weight: bold}
.mlnb-failed {color: #b00020}
.mlnb-ok {color: #1b7f3b}
</style>"""


def html_table(header: Iterable[str], rows: Iterable[Iterable[Any]], row_class: Iterable[str] | None = None,
               raw_columns: Iterable[int] = ()) -> str:
    """An HTML table; cells are escaped except in ``raw_columns`` (already HTML)."""
    raw = set(raw_columns)
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    classes = list(row_class) if row_class is not None else None
    body = []
    for i, row in enumerate(rows):
        cells = "".join(
            f"<td>{c if j in raw else html.escape(str(c))}</td>" for j, c in enumerate(row)
        )
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<table class="mlnb-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def project_root(start: Path) -> Path:
    """The nearest directory from ``start`` up holding ``mlnb.yaml`` or ``.git``, else ``start``."""
    for d in (start, *start.parents):
        if (d / "mlnb.yaml").is_file() or (d / ".git").exists():
            return d
    return start


def html_href(path: str | os.PathLike, base: str | os.PathLike | None = None) -> str:
    """A link target for a file, as a notebook in ``base`` (default: the working directory) sees it.

    Relative to ``base`` when the file lies in the project that holds ``base`` (the
    directory JupyterLab is usually started from, so JupyterLab opens the link itself);
    a ``file://`` URL otherwise.
    """
    base_dir = Path(base if base is not None else Path.cwd()).resolve()
    target = Path(path).resolve()
    root = project_root(base_dir)
    if target == root or root in target.parents:
        return quote(Path(os.path.relpath(target, base_dir)).as_posix())
    return target.as_uri()

"""A run's notebook as untrusted content: the report view, and the headers it is served with.

The *report* is the run's sealed ``notebook.html`` with every code cell's input removed,
exactly as nbconvert's ``exclude_input`` renders it with the lab template (the code cell
keeps its outputs and gets the ``jp-mod-noInput`` class). It is derived from the stored file
rather than rendered again from ``notebook.ipynb``, so the report shows the very bytes whose
sha256 the record holds, minus the code, and costs a few milliseconds instead of an
nbconvert render. A notebook rendered with another template is rendered again with
nbconvert's ``exclude_input``.

Any cell output can carry HTML and script, so both views are served from their own path
with :data:`NOTEBOOK_CSP`: the ``sandbox`` directive puts the document in an opaque origin
(also when it is opened directly, not in the UI's iframe), so its script can read neither the
UI's pages nor its cookies, and ``connect-src 'none'`` keeps it from sending anything.
"""

from __future__ import annotations

import re
from pathlib import Path

#: Content-Security-Policy of notebook HTML and artifacts served by ``mlnb ui``.
NOTEBOOK_CSP = (
    "sandbox allow-scripts allow-popups; default-src 'none'; img-src data: blob:; "
    "style-src 'unsafe-inline'; font-src data:; script-src 'unsafe-inline'; connect-src 'none'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
#: The same policy as a meta element, for exported pages (no header there). A meta policy
#: cannot sandbox, so an export runs no script of a notebook at all. Stylesheets may come
#: from the export itself (nbconvert's theme, shared), also when it is opened from disk.
EXPORT_META_CSP = (
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' data:; "
    "style-src 'self' file: 'unsafe-inline'; font-src data:; form-action 'none'; base-uri 'none'\">"
)

_CODE_CELL = re.compile(r'<div class="jp-Cell jp-CodeCell(?P<rest>[^"]*)"')
_INPUT = '<div class="jp-Cell-inputWrapper"'
_DIV = re.compile(r"<div\b|</div\s*>")


def _block_end(text: str, start: int) -> int | None:
    """Offset just after the ``</div>`` that closes the ``<div`` at ``start``."""
    depth = 0
    for m in _DIV.finditer(text, start):
        depth += 1 if m.group().startswith("<div") else -1
        if depth == 0:
            return m.end()
    return None


def strip_inputs(html: str) -> str | None:
    """The lab-template HTML without code-cell inputs, or None if it is not lab-template HTML."""
    if "jp-Notebook" not in html:
        return None
    out, pos = [], 0
    for m in _CODE_CELL.finditer(html):
        if m.start() < pos:
            continue
        tag_end = html.index(">", m.end()) + 1
        out.append(html[pos:m.start()])
        # where nbconvert's lab template puts it: after jp-mod-noOutputs, before the cell tags
        classes = m.group("rest").split()
        anchor = "jp-mod-noOutputs" if "jp-mod-noOutputs" in classes else "jp-Notebook-cell"
        at = classes.index(anchor) + 1 if anchor in classes else len(classes)
        classes.insert(at, "jp-mod-noInput")
        out.append(f'<div class="jp-Cell jp-CodeCell {" ".join(classes)}"')
        out.append(html[m.end():tag_end])
        pos = tag_end
        ahead = html[pos:pos + 200].lstrip()
        if ahead.startswith(_INPUT):
            start = html.index(_INPUT, pos)
            end = _block_end(html, start)
            if end is None:
                return None
            out.append(html[pos:start])
            # the input block and the newline nbconvert puts after it
            pos = end + 1 if html[end:end + 1] == "\n" else end
    out.append(html[pos:])
    return "".join(out)


def render_report(notebook_path: Path) -> str:
    """The report of a notebook file with nbconvert's ``exclude_input`` (lab template)."""
    import logging

    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", exclude_input=True)
    exporter.log.setLevel(logging.ERROR)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4))
    return body


def report_html(run_path: Path) -> str:
    """The report of a run: its notebook.html without code inputs."""
    html_path = run_path / "notebook.html"
    try:
        html = html_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        html = None
    report = strip_inputs(html) if html is not None else None
    if report is None:
        report = render_report(run_path / "notebook.ipynb")
    return report


def with_meta_csp(html: str) -> str:
    """``html`` with :data:`EXPORT_META_CSP` as the first element of its head."""
    m = re.search(r"<head[^>]*>", html, re.I)
    if m is None:
        return EXPORT_META_CSP + html
    return html[: m.end()] + EXPORT_META_CSP + html[m.end():]

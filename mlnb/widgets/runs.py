"""The run browser: filter a store's runs, list them, show one (``mlnb runs list`` / ``runs show``)."""

from __future__ import annotations

import html
import os
from datetime import date

import ipywidgets as w

from mlnb import records
from mlnb.exceptions import MlnbError
from mlnb.store import Run, Store, as_store
from mlnb.widgets.render import STYLE, html_href, html_table

ALL = "all"
STATUSES = (ALL, "succeeded", "failed")


def filter_runs(items: list[dict], since: date | None = None, until: date | None = None) -> list[dict]:
    """Runs (``Store.list_runs`` items) started on or after ``since`` and on or before ``until`` (UTC dates)."""
    out = []
    for item in items:
        day = item["started"][:10]
        if since is not None and day < since.isoformat():
            continue
        if until is not None and day > until.isoformat():
            continue
        out.append(item)
    return out


def runs_table_html(items: list[dict], total: int | None = None) -> str:
    """The run table the browser shows: id, template, status, started (UTC), seconds, parent."""
    if not items:
        return STYLE + "<p><i>No runs match.</i></p>"
    rows, classes = [], []
    for i in items:
        seconds = f"{i['duration_s']:.1f}" if i.get("duration_s") is not None else "-"
        rows.append((i["id"], i["template"], i["status"], i["started"][:19].replace("T", " "), seconds, i.get("parent") or "-"))
        classes.append("mlnb-failed" if i["status"] != "succeeded" else "")
    shown = len(items)
    total = shown if total is None else total
    caption = f"<p>{total} run{'s' if total != 1 else ''}" + (f", newest {shown} shown" if shown < total else "") + "</p>"
    return STYLE + caption + html_table(("id", "template", "status", "started (UTC)", "seconds", "parent"), rows, classes)


def run_details_html(run: Run, base: str | os.PathLike | None = None, max_table_rows: int = 10) -> str:
    """What the browser shows for one run: status, parameters, scraps, inputs, artifacts, HTML link.

    Table scraps are shown as their first ``max_table_rows`` rows.
    """
    rec = run.record
    ok = run.succeeded
    status = f'<span class="{"mlnb-ok" if ok else "mlnb-failed"}">{html.escape(run.status)}</span>'
    duration = f", {rec['duration_s']:.1f} s" if rec.get("duration_s") is not None else ""
    parts = [
        STYLE,
        f"<h4>{html.escape(run.id)}</h4>",
        f"<p>template <b>{html.escape(run.template)}</b> · {status} · started {html.escape(rec['started'])}{duration}"
        + (f" · parent {html.escape(rec['parent'])}" if rec.get("parent") else "") + "</p>",
    ]
    if rec.get("error"):
        e = rec["error"]
        parts.append(
            f'<p class="mlnb-failed">error: {html.escape(str(e.get("kind")))} in cell {html.escape(str(e.get("cell_index")))}: '
            f'{html.escape(str(e.get("ename")))}: {html.escape(str(e.get("evalue")))}</p>'
        )
    href = html_href(run.html_path, base)
    parts.append(f'<p><a href="{html.escape(href)}">Open the rendered notebook (notebook.html)</a></p>')
    parts.append("<b>Parameters</b>")
    parts.append(html_table(("name", "value"), ((k, records.display_text(v, 160)) for k, v in rec["parameters"].items())))
    if rec["scraps"]:
        parts.append("<b>Scraps</b>")
        parts.append(html_table(("name", "value"), ((k, records.display_text(v, 160)) for k, v in rec["scraps"].items())))
        for name, value in rec["scraps"].items():
            if isinstance(value, dict) and "$artifact" in value:
                try:
                    frame = run.scrap(name)
                except (OSError, ValueError) as exc:  # a missing or unreadable Parquet file
                    parts.append(f"<p>{html.escape(name)}: cannot read the table ({html.escape(str(exc))})</p>")
                    continue
                more = f" (first {max_table_rows} of {len(frame)})" if len(frame) > max_table_rows else ""
                parts.append(f"<p><b>{html.escape(name)}</b>{more}</p>")
                parts.append(frame.head(max_table_rows).to_html(index=False, classes="mlnb-table", border=0, float_format=lambda x: f"{x:.4g}"))
    if rec.get("inputs"):
        parts.append("<b>Inputs</b>")
        parts.append(html_table(("parameter", "path", "sha256", "bytes"),
                            ((i["parameter"], i["path"], i["sha256"][:12], i["bytes"]) for i in rec["inputs"])))
    if rec["artifacts"]:
        parts.append("<b>Artifacts</b>")
        parts.append(html_table(("path", "sha256", "bytes"), ((a["path"], a["sha256"][:12], a["bytes"]) for a in rec["artifacts"])))
    return "".join(parts)


def _html_output(text: str) -> tuple[dict]:
    """Outputs of an ``ipywidgets.Output`` showing HTML.

    An Output widget, unlike an HTML widget, renders with the notebook's own renderer, so
    JupyterLab opens relative links (the run's notebook.html) inside JupyterLab.
    """
    return ({"output_type": "display_data", "data": {"text/html": text, "text/plain": "run details"}, "metadata": {}},)


class RunBrowser(w.VBox):
    """Browse the runs of a store: filters, a table of runs, and the details of one run.

    Args:
        store: a :class:`~mlnb.store.Store` or its path.
        limit: how many of the newest matching runs the table and the list show.
        link_base: the directory links to ``notebook.html`` are relative to (default: the
            working directory, which is the notebook's directory in JupyterLab).

    Attributes:
        template: Dropdown, ``"all"`` or a template name.
        status: Dropdown, ``"all"``, ``"succeeded"`` or ``"failed"``.
        since, until: DatePicker, first and last UTC day of ``started`` (None: open).
        refresh_button: Button, re-read the store (new runs, new templates).
        table: HTML, the matching runs, newest first.
        select: Select, the run ids of the table; choosing one shows it in ``details``.
        details: Output, the selected run (``runs show``) with a link to its notebook.html.
        runs: the ``Store.list_runs`` items the table shows.
    """

    def __init__(self, store: Store | str | os.PathLike, *, limit: int = 200,
                 link_base: str | os.PathLike | None = None):
        self.store = as_store(store)
        self.limit = limit
        self.link_base = link_base
        self.runs: list[dict] = []
        self.template = w.Dropdown(description="template", options=[ALL], value=ALL)
        self.status = w.Dropdown(description="status", options=list(STATUSES), value=ALL)
        self.since = w.DatePicker(description="since", value=None)
        self.until = w.DatePicker(description="until", value=None)
        self.refresh_button = w.Button(description="Refresh", icon="refresh", tooltip="read the store again")
        self.table = w.HTML()
        self.select = w.Select(options=[], rows=8, description="run", layout=w.Layout(width="60%"))
        self.details = w.Output()
        super().__init__(children=[
            w.HBox([self.template, self.status]),
            w.HBox([self.since, self.until, self.refresh_button]),
            self.table, self.select, self.details,
        ])
        for control in (self.template, self.status, self.since, self.until):
            control.observe(self._on_filter, names="value")
        self.select.observe(self._on_select, names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.refresh()

    def __repr__(self) -> str:
        n = len(self.runs)
        return f"RunBrowser: {n} run{'s' if n != 1 else ''} shown"

    def refresh(self) -> None:
        """Re-read the store: templates on offer, the table and the list."""
        self.store.sync_index()  # runs that reached the directory without the index
        templates = sorted({i["template"] for i in self.store.list_runs()})
        current = self.template.value
        self.template.options = [ALL, *templates]
        self.template.value = current if current in self.template.options else ALL
        self._update()

    def _on_filter(self, _change) -> None:
        self._update()

    def _update(self) -> None:
        items = self.store.list_runs(
            template=None if self.template.value == ALL else self.template.value,
            status=None if self.status.value == ALL else self.status.value,
        )
        items = filter_runs(items, self.since.value, self.until.value)
        self.runs = items[: self.limit]
        self.table.value = runs_table_html(self.runs, total=len(items))
        previous = self.select.value
        self.select.options = [(f"{i['id']}  ({i['status']})", i["id"]) for i in self.runs]
        ids = [i["id"] for i in self.runs]
        if previous in ids:
            self.select.value = previous
        else:
            self.select.value = None
            self.details.outputs = ()

    def _on_select(self, change) -> None:
        self.show(change["new"])

    def show(self, run_id: str | None) -> None:
        """Show one run in ``details`` (None clears it)."""
        if not run_id:
            self.details.outputs = ()
            return
        try:
            text = run_details_html(self.store.get(run_id), self.link_base)
        except MlnbError as exc:  # removed meanwhile, or its record no longer reads
            text = f'<p class="mlnb-failed">{html.escape(str(exc))}</p>'
        self.details.outputs = _html_output(text)

    @property
    def details_html(self) -> str:
        """The HTML shown in ``details`` ("" when no run is selected)."""
        return self.details.outputs[0]["data"]["text/html"] if self.details.outputs else ""

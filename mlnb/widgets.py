"""JupyterLab widgets over a run store: browse runs, compare two, manage the model registry.

Three ipywidgets panels, each an ``ipywidgets.VBox`` that displays itself in a notebook and
exposes its controls as attributes, so code (and tests) can drive it exactly as a person
clicking would::

    from mlnb.widgets import RunBrowser, RunComparison, RegistryView
    browser = RunBrowser("runs")          # filter by template, status, dates; pick a run
    browser.template.value = "drift"
    browser.select.value = browser.select.options[0][1]
    RunComparison("runs", a, b)           # two runs side by side, changed values marked
    RegistryView("runs", "weather")       # versions, aliases, history; promote and roll back

They are built from the calls the CLI makes (``Store.list_runs`` for ``mlnb runs list``,
``Store.get`` for ``runs show``, :func:`mlnb.diff.diff_runs` for ``runs diff``, and
:class:`mlnb.registry.Registry` for ``mlnb models``), so a widget shows what the CLI prints.
Every view is rendered by a pure ``*_html`` function of the data, which is what the
widgets put on screen. Buttons that move an alias refuse to act without a reason and
record ``caused_by="widget:<user>"``.

Two helpers for notebooks sit here as well: :func:`table_scraps` stacks one table scrap
(such as drift's ``columns``) of many runs into a DataFrame, and :func:`lineage` follows a
model version back to the data it was trained on.
"""

from __future__ import annotations

import html
import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import quote

import ipywidgets as w

from mlnb.diff import diff_runs
from mlnb.exceptions import MlnbError
from mlnb.registry import Registry, default_actor
from mlnb import records
from mlnb.store import Run, Store, as_store

if TYPE_CHECKING:
    import pandas as pd

ALL = "all"
STATUSES = (ALL, "succeeded", "failed")
#: Aliases offered in the registry view besides the ones a model already has.
COMMON_ALIASES = ("production", "champion", "challenger")

_STYLE = """<style>
.mlnb-table {border-collapse: collapse; font-size: 12px; margin: 4px 0 8px 0}
.mlnb-table th, .mlnb-table td {border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left;
  vertical-align: top}
.mlnb-table tr.mlnb-changed td {background: #fff3cd; font-weight: bold}
.mlnb-failed {color: #b00020}
.mlnb-ok {color: #1b7f3b}
</style>"""


def _store(store: Store | str | os.PathLike) -> Store:
    return as_store(store)


def _text(value: Any, width: int = 80) -> str:
    """A value as one line of text, shortened to ``width`` characters."""
    return records.display_text(value, width)


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]], row_class: Iterable[str] | None = None,
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


def _project_root(start: Path) -> Path:
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
    root = _project_root(base_dir)
    if target == root or root in target.parents:
        return quote(Path(os.path.relpath(target, base_dir)).as_posix())
    return target.as_uri()


# -- run browser ----------------------------------------------------------------------------


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
        return _STYLE + "<p><i>No runs match.</i></p>"
    rows, classes = [], []
    for i in items:
        seconds = f"{i['duration_s']:.1f}" if i.get("duration_s") is not None else "-"
        rows.append((i["id"], i["template"], i["status"], i["started"][:19].replace("T", " "), seconds, i.get("parent") or "-"))
        classes.append("mlnb-failed" if i["status"] != "succeeded" else "")
    shown = len(items)
    total = shown if total is None else total
    caption = f"<p>{total} run{'s' if total != 1 else ''}" + (f", newest {shown} shown" if shown < total else "") + "</p>"
    return _STYLE + caption + _table(("id", "template", "status", "started (UTC)", "seconds", "parent"), rows, classes)


def run_details_html(run: Run, base: str | os.PathLike | None = None, max_table_rows: int = 10) -> str:
    """What the browser shows for one run: status, parameters, scraps, inputs, artifacts, HTML link.

    Table scraps are shown as their first ``max_table_rows`` rows.
    """
    rec = run.record
    ok = run.succeeded
    status = f'<span class="{"mlnb-ok" if ok else "mlnb-failed"}">{html.escape(run.status)}</span>'
    duration = f", {rec['duration_s']:.1f} s" if rec.get("duration_s") is not None else ""
    parts = [
        _STYLE,
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
    parts.append(_table(("name", "value"), ((k, _text(v, 160)) for k, v in rec["parameters"].items())))
    if rec["scraps"]:
        parts.append("<b>Scraps</b>")
        parts.append(_table(("name", "value"), ((k, _text(v, 160)) for k, v in rec["scraps"].items())))
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
        parts.append(_table(("parameter", "path", "sha256", "bytes"),
                            ((i["parameter"], i["path"], i["sha256"][:12], i["bytes"]) for i in rec["inputs"])))
    if rec["artifacts"]:
        parts.append("<b>Artifacts</b>")
        parts.append(_table(("path", "sha256", "bytes"), ((a["path"], a["sha256"][:12], a["bytes"]) for a in rec["artifacts"])))
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
        self.store = _store(store)
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


# -- run comparison -------------------------------------------------------------------------


def comparison_html(rows: list, a_id: str, b_id: str, only_changed: bool = False) -> str:
    """``runs diff`` as an HTML table: changed rows highlighted and marked ``≠``."""
    shown = [r for r in rows if r.changed or not only_changed]
    n = sum(r.changed for r in rows)
    body = _table(
        ("", "section", "name", "A", "B"),
        ((("≠" if r.changed else ""), r.section, r.name, _text(r.a, 60), _text(r.b, 60)) for r in shown),
        ["mlnb-changed" if r.changed else "" for r in shown],
    )
    return (_STYLE + f"<p>A = {html.escape(a_id)}<br>B = {html.escape(b_id)}</p>"
            + f"<p>{n} of {len(rows)} values differ (marked ≠)</p>" + body)


class RunComparison(w.VBox):
    """Two runs side by side (``mlnb runs diff``), changed values highlighted and marked ``≠``.

    Args:
        store: a :class:`~mlnb.store.Store` or its path.
        a, b: run ids (or unique prefixes) to compare first; default: the two newest runs
            of the newest run's template.

    Attributes:
        a, b: Dropdown of run ids.
        only_changed: Checkbox, hide the values that are equal.
        table: HTML, the comparison.
        rows: the :func:`mlnb.diff.diff_runs` rows shown.
    """

    def __init__(self, store: Store | str | os.PathLike, a: str | None = None, b: str | None = None):
        self.store = _store(store)
        self.rows: list = []
        items = self.store.list_runs()
        options = [(f"{i['id']}  ({i['status']})", i["id"]) for i in items]
        if a is None and b is None and items:
            same = [i["id"] for i in items if i["template"] == items[0]["template"]]
            a, b = (same[1], same[0]) if len(same) > 1 else (same[0], same[0])
        a = self.store.resolve_id(a) if a else None
        b = self.store.resolve_id(b) if b else None
        self.a = w.Dropdown(description="A", options=options, value=a, layout=w.Layout(width="60%"))
        self.b = w.Dropdown(description="B", options=options, value=b, layout=w.Layout(width="60%"))
        self.only_changed = w.Checkbox(description="only changed values", value=False)
        self.table = w.HTML()
        super().__init__(children=[self.a, self.b, self.only_changed, self.table])
        for control in (self.a, self.b, self.only_changed):
            control.observe(lambda _: self._update(), names="value")
        self._update()

    def __repr__(self) -> str:
        return f"RunComparison: {sum(r.changed for r in self.rows)} of {len(self.rows)} values differ"

    def _update(self) -> None:
        if not self.a.value or not self.b.value:
            self.rows = []
            self.table.value = "<p><i>Choose two runs.</i></p>"
            return
        try:
            run_a, run_b = self.store.get(self.a.value), self.store.get(self.b.value)
            self.rows = diff_runs(run_a, run_b)
        except (MlnbError, OSError) as exc:
            self.rows = []
            self.table.value = f'<p class="mlnb-failed">{html.escape(str(exc))}</p>'
            return
        self.table.value = comparison_html(self.rows, run_a.id, run_b.id, self.only_changed.value)


# -- registry view --------------------------------------------------------------------------


def versions_html(rows: list[dict]) -> str:
    """``Registry.versions_table`` rows as HTML: version, aliases, training run, metrics (4 digits)."""
    if not rows:
        return "<p><i>No versions.</i></p>"
    metrics = sorted({k for r in rows for k in r if k.startswith("metric.")})
    header = ("version", "aliases", "run", "created", *(m.removeprefix("metric.") for m in metrics))
    body = (
        (r["version"], r["aliases"] or "-", r["run_id"], r["created"][:19].replace("T", " "),
         *(f"{r[m]:.4g}" if isinstance(r.get(m), (int, float)) else "-" for m in metrics))
        for r in rows
    )
    return _STYLE + _table(header, body)


def history_html(events: list) -> str:
    """Alias moves (``Registry.history``) as HTML, oldest first."""
    if not events:
        return "<p><i>No alias has been set.</i></p>"
    body = ((e.seq, e.at[:19].replace("T", " "), e.alias, e.action,
             "-" if e.from_version is None else e.from_version, e.to_version, e.reason or "-", e.caused_by)
            for e in events)
    return _STYLE + _table(("#", "at (UTC)", "alias", "action", "from", "to", "reason", "caused by"), body)


def lineage(registry: Registry, uri: str) -> list[dict]:
    """The chain from a model version back to the data it was trained on, each link checked.

    Steps, in order: the version (its artifact's sha256 checked), the training run (every
    hash of its record checked), each data file the run read (sha256 recomputed), and, when
    a pipeline started the run, the pipeline run and the batch it processed.

    Returns:
        One dict per step: ``step``, ``what``, ``detail`` and ``intact`` (True, False, or
        None when there is nothing to check).
    """
    from mlnb import records
    from mlnb.exceptions import ArtifactTampered

    mv = registry.get(uri)
    store = registry.store
    try:
        registry.read_artifact(mv)
        artifact_ok = True
    except ArtifactTampered:
        artifact_ok = False
    steps = [{
        "step": "model version", "what": mv.uri,
        "detail": f"{mv.estimator}, aliases: {', '.join(mv.aliases) or '-'}, artifact {mv.artifact}",
        "intact": artifact_ok,
    }]
    run = store.get(mv.run_id)
    steps.append({
        "step": "training run", "what": run.id,
        "detail": f"template {run.template}, {run.status}, target {mv.target}, features {', '.join(mv.features)}",
        "intact": not store.verify(run.id),
    })

    def file_step(step: str, entry: dict) -> dict:
        path = Path(entry["path"])
        same = path.is_file() and records.sha256_file(path) == entry["sha256"]
        return {"step": step, "what": str(path), "detail": f"{entry['bytes']} bytes, sha256 {entry['sha256'][:12]}", "intact": same}

    for entry in mv.data:
        steps.append(file_step(f"training data ({entry.get('parameter', 'data')})", entry))
    parent_id = run.record.get("parent")
    if parent_id:
        try:
            parent = store.get(parent_id)
        except MlnbError:
            steps.append({"step": "started by", "what": parent_id, "detail": "run not in this store", "intact": False})
            return steps
        decision = parent.record["scraps"].get("decision") if parent.template == "pipeline" else None
        detail = f"template {parent.template}, {parent.status}"
        if isinstance(decision, dict) and decision.get("outcome"):
            detail += f", outcome {decision['outcome']}"
        steps.append({"step": "started by", "what": parent.id, "detail": detail, "intact": not store.verify(parent.id)})
        if isinstance(decision, dict) and isinstance(decision.get("batch"), dict):
            steps.append(file_step("batch processed", decision["batch"]))
    return steps


def lineage_html(steps: list[dict]) -> str:
    mark = {True: "✓", False: "✗ changed", None: "-"}
    return _STYLE + _table(("step", "what", "detail", "intact"), ((s["step"], s["what"], s["detail"], mark[s["intact"]]) for s in steps))


class RegistryView(w.VBox):
    """A model's versions, aliases and alias history, with promote and rollback buttons.

    Both buttons ask for a reason: with an empty ``reason`` they change nothing and say so
    in ``message``. A move is recorded with the reason and ``caused_by="widget:<user>"``.

    Args:
        store: a :class:`~mlnb.store.Store` or its path.
        name: the model to show first (default: the first registered model).

    Attributes:
        model: Dropdown of registered model names.
        versions_table: HTML, every version with its aliases and metrics.
        history_table: HTML, every alias move, oldest first.
        version: Dropdown of the model's version numbers (newest first).
        lineage: HTML, the chain from the chosen version back to its training data.
        alias: Combobox, the alias to move (default ``production``).
        reason: Text, why; required by both buttons.
        promote_button: Button, point ``alias`` at ``version``.
        rollback_button: Button, undo the latest move of ``alias``.
        message: HTML, what the last click did, or why it did nothing.
        registry: the :class:`~mlnb.registry.Registry` the view reads and writes.
    """

    def __init__(self, store: Store | str | os.PathLike, name: str | None = None, *, user: str | None = None):
        self.registry = Registry(_store(store))
        self.caused_by = f"widget:{user}" if user else default_actor("widget")
        models = self.registry.models()
        if name is not None and name not in models:
            models = [*models, name]  # shown, so that the message says it has no versions
        self.model = w.Dropdown(description="model", options=models, value=name or (models[0] if models else None))
        self.versions_table = w.HTML()
        self.history_table = w.HTML()
        self.version = w.Dropdown(description="version", options=[])
        self.lineage = w.HTML()
        self.alias = w.Combobox(description="alias", value="production", options=list(COMMON_ALIASES), ensure_option=False)
        self.reason = w.Text(description="reason", placeholder="why (required)", layout=w.Layout(width="60%"))
        self.promote_button = w.Button(description="Promote", button_style="warning", tooltip="point the alias at this version")
        self.rollback_button = w.Button(description="Roll back", button_style="danger", tooltip="undo the alias's latest move")
        self.message = w.HTML()
        super().__init__(children=[
            self.model,
            w.HTML("<b>Versions</b>"), self.versions_table,
            w.HTML("<b>Alias history</b>"), self.history_table,
            self.version, w.HTML("<b>Lineage</b>"), self.lineage,
            w.HBox([self.alias, self.reason]),
            w.HBox([self.promote_button, self.rollback_button]),
            self.message,
        ])
        self.model.observe(lambda _: self.refresh(), names="value")
        self.version.observe(lambda _: self._show_lineage(), names="value")
        self.promote_button.on_click(lambda _: self.promote())
        self.rollback_button.on_click(lambda _: self.rollback())
        self.refresh()

    def __repr__(self) -> str:
        n = len(self.version.options)
        return f"RegistryView: model {self.model.value!r}, {n} version{'s' if n != 1 else ''}"

    def refresh(self) -> None:
        """Re-read the registry: versions, aliases, history, and the lineage shown."""
        name = self.model.value
        if name is None:
            self.versions_table.value = "<p><i>No model is registered in this store.</i></p>"
            self.history_table.value = ""
            self.version.options = []
            return
        rows = self.registry.versions_table(name)
        self.versions_table.value = versions_html(rows)
        try:
            self.history_table.value = history_html(self.registry.history(name))
        except MlnbError as exc:
            self.history_table.value = f"<p><i>{html.escape(str(exc))}</i></p>"
        aliases = sorted({a for (n, a) in self.registry.aliases(name)} | set(COMMON_ALIASES))
        self.alias.options = aliases
        chosen = self.version.value
        labels = []
        for r in sorted(rows, key=lambda r: -r["version"]):
            labels.append((f"{r['version']}" + (f" ({r['aliases']})" if r["aliases"] else ""), r["version"]))
        self.version.options = labels
        versions = [v for _, v in labels]
        self.version.value = chosen if chosen in versions else (versions[0] if versions else None)
        self._show_lineage()

    def _show_lineage(self) -> None:
        if self.model.value is None or self.version.value is None:
            self.lineage.value = ""
            return
        try:
            self.lineage.value = lineage_html(lineage(self.registry, f"{self.model.value}/{self.version.value}"))
        except MlnbError as exc:
            self.lineage.value = f'<p class="mlnb-failed">{html.escape(str(exc))}</p>'

    def _say(self, text: str, ok: bool) -> None:
        cls, color = ("mlnb-ok", "#1b7f3b") if ok else ("mlnb-failed", "#b00020")
        self.message.value = f'<span class="{cls}" style="color: {color}">{html.escape(text)}</span>'

    def _ready(self) -> tuple[str, str, str] | None:
        reason = self.reason.value.strip()
        if self.model.value is None:
            self._say("No model to change.", ok=False)
            return None
        if not reason:
            self._say("Give a reason first: every move of an alias is recorded with why it was made.", ok=False)
            return None
        alias = self.alias.value.strip()
        return self.model.value, alias, reason

    def promote(self) -> None:
        """What the Promote button does: point ``alias`` at ``version``, with the reason."""
        ready = self._ready()
        if ready is None:
            return
        name, alias, reason = ready
        if self.version.value is None:
            self._say("Choose a version to promote.", ok=False)
            return
        try:
            event = self.registry.promote(name, self.version.value, alias, reason, caused_by=self.caused_by)
        except MlnbError as exc:
            self._say(str(exc), ok=False)
            return
        if event is None:
            self._say(f"{name}@{alias} already points at version {self.version.value}; nothing recorded.", ok=True)
        else:
            self._say(f"{name}@{alias}: {event.from_version or '-'} → {event.to_version} (promote, recorded).", ok=True)
            self.reason.value = ""
        self.refresh()

    def rollback(self) -> None:
        """What the Roll back button does: undo the latest move of ``alias``, with the reason."""
        ready = self._ready()
        if ready is None:
            return
        name, alias, reason = ready
        try:
            event = self.registry.rollback(name, alias, reason, caused_by=self.caused_by)
        except MlnbError as exc:
            self._say(str(exc), ok=False)
            return
        self._say(f"{name}@{alias}: {event.from_version} → {event.to_version} (rollback, recorded).", ok=True)
        self.reason.value = ""
        self.refresh()

    def close(self) -> None:
        self.registry.close()
        super().close()


# -- helpers for notebooks ------------------------------------------------------------------


def table_scraps(store: Store | str | os.PathLike, name: str, template: str | None = None,
                 status: str | None = "succeeded") -> "pd.DataFrame":
    """One table scrap of many runs stacked into one DataFrame, oldest run first.

    Reads the run list from the index and each run's Parquet artifact (never the
    notebooks). Columns ``run_id`` and ``started`` come first; runs without that scrap are
    skipped. The tables are joined in Arrow and converted to pandas once, which is about
    twice as fast as one ``pd.read_parquet`` per run (``benchmarks/bench_scraps.py``).

    Args:
        store: a store or its path.
        name: the scrap, e.g. ``"columns"`` of drift runs.
        template, status: filters, as in :meth:`Store.list_runs`.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlnb import records

    s = _store(store)
    tables = []
    for item in reversed(s.list_runs(template=template, status=status)):
        value = item["scraps"].get(name)
        if isinstance(value, dict) and "$artifact" in value:
            table = pq.read_table(s.path / item["id"] / records.ARTIFACTS_DIR / value["$artifact"])
            tables.append((item["id"], item["started"], table))
    if not tables:
        return pd.DataFrame(columns=["run_id", "started"])
    if all(_plain_pandas_table(table) for _, _, table in tables):
        try:
            joined = pa.concat_tables(
                [_with_run(table.replace_schema_metadata(None), run_id, started) for run_id, started, table in tables],
                promote_options="permissive",
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # columns whose types cannot be unified
            joined = None
        if joined is not None:
            out = joined.to_pandas()
            out["started"] = pd.to_datetime(out["started"])
            return out
    frames = []
    for run_id, started, table in tables:
        frame = table.to_pandas()
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()  # a meaningful index becomes columns
        frame.insert(0, "started", started)
        frame.insert(0, "run_id", run_id)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["started"] = pd.to_datetime(out["started"])
    return out


def _plain_pandas_table(table) -> bool:
    """True when a Parquet table holds a DataFrame with a default index and text column names,
    so its pandas metadata can be dropped without losing anything."""
    import json

    meta = (table.schema.metadata or {}).get(b"pandas")
    if meta is None:
        return True
    meta = json.loads(meta)
    range_index = all(isinstance(i, dict) and i.get("kind") == "range" for i in meta.get("index_columns", []))
    text_names = all(isinstance(c.get("name"), str) or c.get("name") is None for c in meta.get("columns", []))
    return range_index and text_names


def _with_run(table, run_id: str, started: str):
    import pyarrow as pa

    n = table.num_rows
    table = table.add_column(0, "started", pa.array([started] * n, pa.string()))
    return table.add_column(0, "run_id", pa.array([run_id] * n, pa.string()))


__all__ = [
    "RegistryView", "RunBrowser", "RunComparison", "comparison_html", "filter_runs", "history_html",
    "html_href", "lineage", "lineage_html", "run_details_html", "runs_table_html", "table_scraps",
    "versions_html",
]

"""The registry view: a model's versions, aliases and history, its lineage, promote and roll back."""

from __future__ import annotations

import html
import os
from pathlib import Path

import ipywidgets as w

from mlnb import records
from mlnb.exceptions import ArtifactTampered, MlnbError
from mlnb.registry import Registry, default_actor
from mlnb.store import Store, as_store
from mlnb.widgets.render import STYLE, html_table

#: Aliases offered in the registry view besides the ones a model already has.
COMMON_ALIASES = ("production", "champion", "challenger")


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
    return STYLE + html_table(header, body)


def history_html(events: list) -> str:
    """Alias moves (``Registry.history``) as HTML, oldest first."""
    if not events:
        return "<p><i>No alias has been set.</i></p>"
    body = ((e.seq, e.at[:19].replace("T", " "), e.alias, e.action,
             "-" if e.from_version is None else e.from_version, e.to_version, e.reason or "-", e.caused_by)
            for e in events)
    return STYLE + html_table(("#", "at (UTC)", "alias", "action", "from", "to", "reason", "caused by"), body)


def lineage(registry: Registry, uri: str) -> list[dict]:
    """The chain from a model version back to the data it was trained on, each link checked.

    Steps, in order: the version (its artifact's sha256 checked), the training run (every
    hash of its record checked), each data file the run read (sha256 recomputed), and, when
    a pipeline started the run, the pipeline run and the batch it processed.

    Returns:
        One dict per step: ``step``, ``what``, ``detail`` and ``intact`` (True, False, or
        None when there is nothing to check).
    """
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
    return STYLE + html_table(("step", "what", "detail", "intact"), ((s["step"], s["what"], s["detail"], mark[s["intact"]]) for s in steps))


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
        self.registry = Registry(as_store(store))
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

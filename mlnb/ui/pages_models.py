"""The model pages of ``mlnb ui``: every registered model, one model, one version and its lineage.

:class:`ModelPages` is a part of :class:`~mlnb.ui.site.Site`: its methods build each page's
``(template, context)`` from the registry (``registry``, ``_versions``) and the run index
(``run_item``, ``items``, ``children``, ``maps``).
"""

from __future__ import annotations

import contextlib

from mlnb.store import RUN_ID
from mlnb.ui import charts, queries
from mlnb.ui.pages_monitor import MAX_BATCHES
from mlnb.ui.queries import NotFound


class ModelPages:
    """The models, model and version pages of a site."""

    def models_page(self, links=None) -> tuple[str, dict]:
        models = []
        with self.registry() as registry:
            db = registry.connection()
            if db is not None:
                counts = queries.version_counts(db)
                aliases = queries.aliases(db)
                for name in sorted(counts):
                    latest = registry.get(f"{name}/latest")
                    models.append({"name": name, "versions": counts[name], "aliases": aliases.get(name, []),
                                   "latest": latest})
        return "models.html", {"title": "Models", "models": models}

    def model_page(self, name: str, links=None) -> tuple[str, dict]:
        versions, events = self._versions(name)
        metric_names = list(dict.fromkeys(k for mv in versions for k, v in mv.metrics.items()
                                          if charts.numeric(v) is not None))
        aliases = sorted({a for mv in versions for a in mv.aliases} | {e.alias for e in events})
        shown = versions[-MAX_BATCHES:]
        labels = [f"v{mv.version}" for mv in shown]
        series = [{"name": m, "points": [{"x": i, "y": charts.numeric(mv.metrics.get(m)), "href": links.version(name, mv.version),
                                          "title": f"{name}/{mv.version}: {m} = {mv.metrics.get(m)}"} for i, mv in enumerate(shown)]}
                  for m in metric_names[:6]]
        metrics_chart = charts.line_chart(series, labels, title="metrics of each version (holdout of its training run)") if series else None
        # the alias history as steps over its moves (one x position per move, in order), so
        # moves made within a second stay apart; hover tells when and why
        shown_events = events[-MAX_BATCHES:]
        alias_series = [{"name": alias, "points": [
            {"x": k, "y": e.to_version, "href": links.version(name, e.to_version),
             "title": f"{e.at} {e.action} {e.alias}: {e.from_version or '-'} → {e.to_version} by {e.caused_by}"
                      + (f" ({e.reason})" if e.reason else "")}
            for k, e in enumerate(shown_events) if e.alias == alias]} for alias in aliases]
        alias_chart = charts.line_chart(
            [a for a in alias_series if a["points"]], [f"#{e.seq} {e.action[:4]}" for e in shown_events],
            title="alias history: the version each alias points at after each move") if events else None
        return "model.html", {
            "metrics_chart": metrics_chart, "alias_chart": alias_chart,
            "title": f"Model {name}", "name": name, "versions": list(reversed(versions)), "events": list(reversed(events)),
            "metric_names": metric_names, "aliases": aliases,
        }

    def version_page(self, name: str, version: int, links=None) -> tuple[str, dict]:
        versions, events = self._versions(name)
        mv = next((v for v in versions if v.version == version), None)
        if mv is None:
            raise NotFound(f"model {name!r} has no version {version}; its versions are 1 to {versions[-1].version}")
        training = None
        with contextlib.suppress(NotFound):
            training = self.run_item(mv.run_id)
        pipeline = None
        for candidate in (mv.created_by, (training or {}).get("parent")):
            if isinstance(candidate, str) and RUN_ID.match(candidate):
                with contextlib.suppress(NotFound):
                    item = self.run_item(candidate)
                    if item["template"] == "pipeline":
                        pipeline = item
                        break
        siblings = []
        decision = {}
        if pipeline:
            decision = pipeline["scraps"].get("decision") or {}
            siblings = self.children(pipeline["id"])
            for s in siblings:
                s["step"] = (s["tags"] or {}).get("pipeline_step") or s["template"]
        moves = [e for e in events if e.to_version == version or e.from_version == version]
        causes = {}
        for e in moves:
            if RUN_ID.match(e.caused_by or ""):
                with contextlib.suppress(NotFound):
                    causes[e.caused_by] = self.run_item(e.caused_by)
        used_by = self.items(self.maps()["used"].get((name, version), [])[:50])
        return "version.html", {
            "title": f"{name}/{version}", "mv": mv, "training": training, "pipeline": pipeline,
            "decision": decision, "siblings": siblings, "moves": moves, "causes": causes, "used_by": used_by,
            "name": name,
        }

"""The monitoring page of ``mlnb ui``: drift, production metrics, decisions and alerts per batch.

A batch is one pipeline run (its drift and evaluate steps), or, in a store without
pipelines, one drift run. :class:`MonitorPages` is a part of :class:`~mlnb.ui.site.Site`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlnb.ui import charts, queries
from mlnb.ui.values import model_of, text

#: Batches shown on a monitoring dashboard (the newest).
MAX_BATCHES = 100


class MonitorPages:
    """The monitoring dashboard of a site, of one model or of the whole store."""

    def monitor_page(self, name: str | None = None, links=None) -> tuple[str, dict]:
        """Drift per batch, a per-column drift heatmap, production metrics, decisions and alerts."""
        if name is not None:
            versions, events = self._versions(name)
            pipelines = queries.newest_pipelines(self.index(), name, MAX_BATCHES)
        else:
            events = []
            pipelines = queries.newest_runs(self.index(), "pipeline", MAX_BATCHES)
        children: dict[str, list[dict]] = {}
        if pipelines:
            for p in pipelines:
                children[p["id"]] = self.children(p["id"])
        if pipelines:
            batches = []
            for p in pipelines:
                decision = p["scraps"].get("decision") or {}
                batch = decision.get("batch") or {}
                label = Path(batch.get("path") or "").stem or p["started"][:10]
                steps = {(c["tags"] or {}).get("pipeline_step") or c["template"]: c for c in children.get(p["id"], [])}
                batches.append({"label": label, "pipeline": p, "decision": decision, "steps": steps,
                                "drift": steps.get("drift"), "evaluate": steps.get("evaluate_production")})
        else:
            # no pipeline: every drift run of the store is a batch
            drift_runs = queries.newest_runs(self.index(), "drift", MAX_BATCHES)
            batches = [{"label": Path(str(d["parameters"].get("current") or "")).stem or d["started"][:10],
                        "pipeline": None, "decision": {}, "steps": {"drift": d}, "drift": d, "evaluate": None}
                       for d in drift_runs]
        return "monitor.html", {"title": f"Monitoring {name}" if name else "Monitoring", "name": name,
                                "batches": batches, "events": events,
                                **self._monitor_charts(batches, events, links)}

    def _monitor_charts(self, batches: list[dict], events: list, links) -> dict:
        labels = [b["label"] for b in batches]
        out: dict[str, Any] = {}
        # drift share per batch
        points, limit = [], None
        for i, b in enumerate(batches):
            d = b["drift"]
            if d is None:
                continue
            share = charts.numeric(d["scraps"].get("drift_share"))
            limit = charts.numeric(d["parameters"].get("drift_share")) if limit is None else limit
            points.append({"x": i, "y": share, "href": links.run(d["id"]),
                           "title": f"{b['label']}: drift share {text(share, 8)}"
                                    f"{' (dataset drift)' if d['scraps'].get('dataset_drift') else ''} — {d['id']}"})
        out["drift_chart"] = charts.line_chart([{"name": "drift share", "points": points}], labels,
                                               title="share of drifted columns per batch", threshold=limit,
                                               y_range=(0.0, 1.0)) if points else None
        # per-column heatmap
        columns: list[str] = []
        cells: dict = {}
        per_batch = []
        for b in batches:
            d = b["drift"]
            ref = (d or {}).get("scraps", {}).get("columns") if d else None
            rows = self.table_rows(d["id"], ref["$artifact"]) if isinstance(ref, dict) and "$artifact" in ref else None
            rows = [r for r in rows or [] if "column" in r]
            per_batch.append(rows)
            for r in rows:
                if str(r["column"]) not in columns:
                    columns.append(str(r["column"]))
        for i, (b, rows) in enumerate(zip(batches, per_batch)):
            for rec in rows:
                r = columns.index(str(rec["column"]))
                drifted = bool(rec.get("drifted"))
                p = charts.numeric(rec.get("p_value"))
                stat = charts.numeric(rec.get("statistic"))
                color = charts.color_scale(0.75 + 0.25 * (1 - (p or 0))) if drifted else charts.color_scale(
                    0.35 * (1 - (p if p is not None else 1)))
                cells[(r, i)] = {"color": color, "href": links.run(b["drift"]["id"]),
                                 "title": f"{rec['column']} in {b['label']}: {rec.get('method')} statistic {text(stat, 8)}, "
                                          f"p {text(p, 8)}, {'drifted' if drifted else 'not drifted'}"}
        out["heatmap"] = charts.heatmap(columns, labels, cells, title="drift per column and batch",
                                        legend="red: drifted; green to orange: not drifted, darker as p falls") if cells else None
        # production metrics per batch, and by version
        metric_names: list[str] = []
        for b in batches:
            e = b["evaluate"]
            for k, v in ((e or {}).get("scraps", {}).get("metrics") or {}).items():
                if charts.numeric(v) is not None and k not in metric_names:
                    metric_names.append(k)
        series = []
        for m in metric_names[:6]:
            pts = []
            for i, b in enumerate(batches):
                e = b["evaluate"]
                if e is None:
                    continue
                ref = model_of(e)
                pts.append({"x": i, "y": charts.numeric((e["scraps"].get("metrics") or {}).get(m)), "href": links.run(e["id"]),
                            "title": f"{b['label']}: {m} {text((e['scraps'].get('metrics') or {}).get(m), 8)}"
                                     f" of {ref[0]}/{ref[1] if ref else '?'} — {e['id']}" if ref else
                                     f"{b['label']}: {m} — {e['id']}"})
            series.append({"name": m, "points": pts})
        out["metrics_chart"] = charts.line_chart(series, labels, title="production model on each batch") if series else None
        if metric_names:
            main = metric_names[0]
            by_version: dict[str, list] = {}
            for i, b in enumerate(batches):
                e = b["evaluate"]
                ref = model_of(e) if e else None
                if ref is None:
                    continue
                by_version.setdefault(f"v{ref[1]}", []).append(
                    {"x": i, "y": charts.numeric((e["scraps"].get("metrics") or {}).get(main)), "href": links.run(e["id"]),
                     "title": f"{b['label']}: {main} of {ref[0]}/{ref[1]} — {e['id']}"})
            out["version_chart"] = charts.line_chart(
                [{"name": k, "points": v} for k, v in by_version.items()][-10:], labels,
                title=f"{main} on each batch, by the version in production") if by_version else None
        else:
            out["version_chart"] = None
        # decisions and alerts
        tl, lanes = [], ["decisions", "alerts"]
        colors = {"promoted": "#2ca02c", "retrained": "#ff7f0e", "not_promoted": "#ff7f0e", "rejected": "#d62728",
                  "error": "#d62728", "nothing_needed": "#7f7f7f", "skipped": "#bbbbbb"}
        alerts = []
        for b in batches:
            p = b["pipeline"]
            if p is None:
                continue
            outcome = str(b["decision"].get("outcome") or p["scraps"].get("outcome") or p["status"])
            tl.append({"lane": "decisions", "at": p["started"], "label": outcome[:10], "href": links.run(p["id"]),
                       "color": colors.get(outcome, "#1f77b4"),
                       "title": f"{b['label']}: {outcome}: " + "; ".join(map(str, b["decision"].get("reasons") or []))[:400]})
            for a in b["decision"].get("alerts") or []:
                alerts.append({"batch": b["label"], "run": p["id"], "text": a.get("text") if isinstance(a, dict) else str(a)})
                tl.append({"lane": "alerts", "at": p["started"], "label": "alert", "href": links.run(p["id"]),
                           "color": "#d62728", "title": a.get("text") if isinstance(a, dict) else str(a)})
        for e in events:
            if e.alias not in lanes:
                lanes.append(e.alias)
            tl.append({"lane": e.alias, "at": e.at, "label": f"v{e.to_version}", "href": links.version(e.name, e.to_version),
                       "color": {"rollback": "#d62728"}.get(e.action, "#9467bd"),
                       "title": f"{e.action} {e.alias} {e.from_version or '-'} → {e.to_version} by {e.caused_by}"})
        out["timeline"] = charts.timeline(lanes, tl, title="decisions, alerts and alias moves") if tl else None
        out["alerts"] = alerts
        return out

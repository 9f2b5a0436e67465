"""The run pages of ``mlnb ui``: the runs table, one run, and runs side by side.

:class:`RunPages` is a part of :class:`~mlnb.ui.site.Site`: its methods build each page's
``(template, context)`` from what the site reads (``index``, ``items``, ``children``,
``run``, ``verify``, ``table_rows``, ``maps``).
"""

from __future__ import annotations

import contextlib
import json
import math

from mlnb import filters
from mlnb.ui import charts, queries
from mlnb.ui.queries import NotFound
from mlnb.ui.values import flatten, model_of, text

PER_PAGE = 50
MAX_COMPARE = 200
SORTABLE = ("started", "template", "status", "duration", "id", "parent")


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def summary(scraps: dict) -> list[tuple[str, str]]:
    """A few headline values of a run for the runs table: metrics first, then scalars."""
    out = []
    metrics = scraps.get("metrics")
    if isinstance(metrics, dict):
        out += [(k, text(v, 12)) for k, v in list(metrics.items())[:3] if charts.numeric(v) is not None]
    for key in ("outcome", "passed", "dataset_drift", "drift_share", "n_rows"):
        if key in scraps and not isinstance(scraps[key], (dict, list)):
            out.append((key, text(scraps[key], 16)))
    return out[:4]


class RunPages:
    """The runs, run and compare pages of a site."""

    def runs_page(self, filter: str | None = None, sort: str | None = None, order: str | None = None,
                  page: int = 1, per_page: int = PER_PAGE, links=None) -> tuple[str, dict]:
        """The runs table: filtered, sorted, one page, with status and verify badges."""
        error = None
        db = self.index()
        try:
            where, args = filters.compile_filter(filter, db.dialect)
        except filters.FilterError as exc:
            error, where, args = str(exc), "1 = 0", []
        sort = (sort or "started").strip()
        order = "asc" if order == "asc" else "desc"
        try:
            key_sql, key_args = filters.sort_sql(sort, db.dialect)
        except filters.FilterError as exc:
            error = error or f"sort: {exc}"
            sort, (key_sql, key_args) = "started", ("started", [])
        total = queries.count_runs(db, where, args)
        everything = queries.count_runs(db)
        pages = max(1, math.ceil(total / per_page))
        page = min(max(int(page or 1), 1), pages)
        items = queries.page_of_runs(db, where, args, key_sql, key_args, order, per_page, (page - 1) * per_page)
        templates = queries.templates(db)
        for item in items:
            item["summary"] = summary(item["scraps"])
            item["problems"] = self.verify(item["id"])
        return "runs.html", {
            "title": "Runs", "items": items, "total": total, "everything": everything, "page": page,
            "pages": pages, "filter": filter or "", "sort": sort, "order": order, "error": error,
            "templates": templates, "sortable": SORTABLE, "per_page": per_page,
        }

    def all_runs_pages(self, per_page: int = PER_PAGE):
        """Every page of the unfiltered runs table, newest first, from one query (for an export).

        Yields:
            ``(page number, template, context)``.
        """
        rows = queries.all_runs(self.db())
        templates = sorted({r[1] for r in rows})
        pages = max(1, math.ceil(len(rows) / per_page))
        for page in range(1, pages + 1):
            items = [queries.item(r) for r in rows[(page - 1) * per_page:page * per_page]]
            for item in items:
                item["summary"] = summary(item["scraps"])
                item["problems"] = self.verify(item["id"])
            yield page, "runs.html", {
                "title": "Runs", "items": items, "total": len(rows), "everything": len(rows), "page": page,
                "pages": pages, "filter": "", "sort": "started", "order": "desc", "error": None,
                "templates": templates, "sortable": SORTABLE, "per_page": per_page,
            }

    def run_page(self, run_id: str, links=None) -> tuple[str, dict]:
        run = self.run(run_id)
        rec = run.record
        problems = self.verify(run.id)
        children = self.children(run.id)
        parent = None
        if rec.get("parent"):
            with contextlib.suppress(NotFound):
                parent = self.run_item(rec["parent"])
        scalars, nested, tables = [], [], []
        for name, value in (rec.get("scraps") or {}).items():
            if isinstance(value, dict) and "$artifact" in value:
                rows = self.table_rows(run.id, value["$artifact"])
                tables.append({"name": name, "artifact": value["$artifact"], "rows": value.get("rows"),
                               "columns": list(rows[0]) if rows else value.get("columns") or [],
                               "head": [[text(v, 60) for v in r.values()] for r in (rows or [])[:50]],
                               "readable": rows is not None})
            elif isinstance(value, dict):
                nested.append({"name": name, "items": [(k, text(v, 200)) for k, v in flatten(value).items()]})
            else:
                scalars.append((name, text(value, 300)))
        images = [a for a in rec.get("artifacts") or [] if a["path"].lower().endswith((".png", ".jpg", ".jpeg", ".gif"))]
        lineage = self._run_lineage(run.id, rec)
        return "run.html", {
            "title": f"Run {run.id}", "run": run, "rec": rec, "problems": problems, "children": children,
            "parent": parent, "scalars": scalars, "nested": nested, "tables": tables, "images": images,
            "lineage": lineage, "params": [(k, text(v, 300)) for k, v in rec["parameters"].items()],
            "compare_children": len(children) >= 2,
        }

    def _run_lineage(self, run_id: str, rec: dict) -> dict:
        maps = self.maps()
        produced, moves, used = maps["produced"].get(run_id, []), maps["moves"].get(run_id, []), []
        ref = model_of({"scraps": rec.get("scraps") or {}})
        if ref:
            used.append({"name": ref[0], "version": ref[1]})
        return {"produced": produced, "used": used, "moves": moves}

    def compare_page(self, ids: list[str] | None = None, parent: str | None = None, links=None) -> tuple[str, dict]:
        """Runs side by side: every parameter and scalar scrap, charts, parallel coordinates."""
        if parent:
            items = self.children(parent)
            if not items:
                raise NotFound(f"no runs with parent {parent!r} in this store")
        else:
            ids = list(dict.fromkeys(i for i in ids or [] if i))[:MAX_COMPARE]
            found = queries.runs_by_id(self.index(), ids) if ids else {}
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFound(f"no run {missing[0]!r} in this store")
            items = [found[i] for i in ids]
        rows: dict[str, dict] = {}
        for section, key in (("parameter", "parameters"), ("scrap", "scraps")):
            for item in items:
                for name, value in flatten(item[key]).items():
                    if section == "scrap" and isinstance(value, (list, dict)):
                        continue
                    rows.setdefault(f"{section}:{name}", {"section": section, "name": name, "values": {}})
                    rows[f"{section}:{name}"]["values"][item["id"]] = value
        table = []
        for row in rows.values():
            values = [row["values"].get(i["id"], _MISSING) for i in items]
            shown = [json.dumps(v, sort_keys=True, default=str) for v in values]
            row["cells"] = ["" if v is _MISSING else text(v, 40) for v in values]
            row["differs"] = len(set(shown)) > 1
            row["numeric"] = all(charts.numeric(v) is not None for v in values if v is not _MISSING) and any(
                v is not _MISSING for v in values)
            table.append(row)
        short = {i["id"]: i["id"].split("-", 1)[0][9:15] + "-" + i["id"][-6:] for i in items}
        bar_charts = []
        for row in table:
            if row["section"] == "scrap" and row["numeric"] and row["differs"]:
                bars = [{"label": short[i["id"]], "value": float(row["values"][i["id"]]), "href": links.run(i["id"]),
                         "title": f"{i['id']}: {row['name']} = {row['values'][i['id']]}", "id": i["id"]}
                        for i in items if i["id"] in row["values"]]
                bar_charts.append(charts.bar_chart(bars, title=row["name"]))
        varying_params = [r["name"] for r in table if r["section"] == "parameter" and r["numeric"] and r["differs"]]
        varying_scraps = [r["name"] for r in table if r["section"] == "scrap" and r["numeric"] and r["differs"]]
        parallel = None
        if len(items) >= 3 and varying_params and varying_scraps:
            axes = [f"params.{p}" for p in varying_params[:8]] + varying_scraps[:6]
            lines = []
            for item in items:
                p = flatten(item["parameters"])
                s = flatten(item["scraps"])
                values = {f"params.{k}": charts.numeric(p.get(k)) for k in varying_params[:8]}
                values.update({k: charts.numeric(s.get(k)) for k in varying_scraps[:6]})
                lines.append({"values": values, "id": item["id"], "href": links.run(item["id"]),
                              "title": item["id"] + ": " + ", ".join(f"{a}={text(v, 10)}" for a, v in values.items())})
            parallel = charts.parallel_coordinates(axes, lines, title=f"{len(items)} runs across what varies "
                                                   f"(colour: {varying_scraps[0]})", color_axis=varying_scraps[0])
        return "compare.html", {
            "title": f"Compare {len(items)} runs", "items": items, "table": table, "short": short,
            "bar_charts": bar_charts, "parallel": parallel, "parent": parent,
            "n_differ": sum(r["differs"] for r in table),
        }

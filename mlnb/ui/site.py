"""What each page of ``mlnb ui`` shows, as plain data built from the store's index and registry.

:class:`Site` answers one method per page with ``(template, context)``; the FastAPI app
and the static export render those with the same Jinja2 templates. Lists come from SQL on
the index (one query per table, paginated), so a page costs the same with 100 runs as with
10,000. Runs are immutable, so what is derived from one run's files (its verify status,
its drift table) is cached by the files' sizes and modification times.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from mlnb import filters, records
from mlnb.exceptions import MlnbError, ModelNotFound, RunNotFound
from mlnb import store as store_mod
from mlnb.store import RUN_ID, Run, Store, as_store
from mlnb.ui import charts

PER_PAGE = 50
MAX_COMPARE = 200
#: Batches shown on a monitoring dashboard (the newest).
MAX_BATCHES = 100
SORTABLE = ("started", "template", "status", "duration", "id", "parent")
_INDEX_COLUMNS = "id, template, status, started, finished, duration_s, parent, parameters, scraps, tags"


class NotFound(MlnbError, LookupError):
    """A run, model or version named in a URL that the store does not have."""


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_or(self, key, make):
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


def _row(row: tuple) -> dict:
    keys = ("id", "template", "status", "started", "finished", "duration_s", "parent")
    item = dict(zip(keys, row[:7]))
    item["parameters"] = json.loads(row[7])
    item["scraps"] = json.loads(row[8])
    item["tags"] = json.loads(row[9])
    return item


def flatten(values: dict, prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Nested dicts as dotted keys (``metrics.f1``); tables and lists stay one value."""
    return records.flatten(values, prefix, depth)


def text(value: Any, width: int = 80) -> str:
    """A value as one short line."""
    return records.display_text(value, width, digits=4, long_tables=False)


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


def model_of(item: dict) -> tuple[str, int] | None:
    """``(name, version)`` a run used, from its ``model`` scrap (evaluate, predict)."""
    model = item["scraps"].get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("version"), int):
        return model["name"], model["version"]
    return None


class Site:
    """The pages of one store.

    Args:
        store: a Store or its path.
        write_enabled: show the promote and rollback forms (the app checks the token).
    """

    def __init__(self, store: Store | str | os.PathLike, write_enabled: bool = False):
        self.store = as_store(store)
        self.write_enabled = write_enabled
        self._synced_at = 0.0
        self._sync_lock = threading.Lock()
        self._verify = _LRU(20_000)
        self._tables = _LRU(2_000)
        self._reports = _LRU(64)
        self._local = threading.local()
        self._maps_key = None
        self._maps_checked = 0.0
        self._model_cache: dict[str, tuple] = {}
        self._maps: dict = {}
        self._maps_lock = threading.Lock()
        #: "inline": a request brings the index up to date (at most once a second);
        #: "background": a thread does (see :meth:`sync_forever`); "never": as of check().
        self.sync_mode = "inline"

    # -- access ------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise StoreError unless the store can be read (before a server starts)."""
        from mlnb.exceptions import StoreError

        path = self.store.path
        if not path.exists():
            raise StoreError(f"store {str(path)!r} does not exist; give --store PATH of a run store")
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            raise StoreError(f"store {str(path)!r} cannot be read as a directory")
        try:
            self.sync(force=True)
            self.db().execute("SELECT COUNT(*) FROM runs").fetchone()
            from mlnb.registry import Registry

            with Registry(self.store) as registry:
                registry.models()
        except sqlite3_errors() as exc:
            raise StoreError(f"store {str(path)!r}: cannot read its index {store_mod.DATABASE}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"store {str(path)!r} cannot be read: {exc}") from exc

    def warm(self) -> None:
        """Import and compile what the first requests would otherwise wait for."""
        import pyarrow.parquet  # noqa: F401  (table scraps)

        from mlnb.ui.links import Links
        from mlnb.ui.render import environment

        for name in ("runs.html", "run.html", "compare.html", "models.html", "model.html", "version.html",
                     "monitor.html", "error.html"):
            environment().get_template(name)
        _, context = self.runs_page(links=Links())
        if context["items"]:  # and the record's JSON-schema validator that verify compiles
            with contextlib.suppress(MlnbError, OSError):
                self.run_page(context["items"][0]["id"], links=Links())

    def sync_forever(self, interval: float = 2.0) -> threading.Thread:
        """Keep the index up to date from a daemon thread, so no request waits for it."""
        self.sync_mode = "background"

        def loop():
            while True:
                time.sleep(interval)
                with contextlib.suppress(MlnbError, OSError, sqlite3_errors()):
                    self.sync(force=True)

        thread = threading.Thread(target=loop, name="mlnb-ui-sync", daemon=True)
        thread.start()
        return thread

    def sync(self, force: bool = False) -> None:
        """Bring the index up to date with the run directories, at most once a second."""
        if not force and self.sync_mode != "inline" and self._synced_at:
            return
        now = time.monotonic()
        if not force and now - self._synced_at < 1.0:
            return
        with self._sync_lock:
            if force or now - self._synced_at >= 1.0:
                self.store.sync_index()
                self._synced_at = time.monotonic()

    def db(self):
        """This thread's connection to the store's database (opened once per thread)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.store.connect()
        return db

    def registry(self):
        from mlnb.registry import Registry

        return Registry(self.store)

    def _query(self, sql: str, args: list | tuple = ()) -> list[dict]:
        self.sync()
        return [_row(r) for r in self.db().execute(sql, list(args)).fetchall()]

    def maps(self) -> dict:
        """Who is whose child, which runs used or produced which version, which run moved
        which alias: read in one pass each, rebuilt when the index or registry grows."""
        db = self.db()
        now = time.monotonic()
        if self._maps_key is not None and (self.sync_mode == "never" or now - self._maps_checked < 1.0):
            return self._maps
        self._maps_checked = now
        key = [db.execute("SELECT COUNT(*), MAX(rowid) FROM runs").fetchone()]
        with contextlib.suppress(sqlite3_errors()):
            key.append(db.execute("SELECT COUNT(*) FROM model_versions").fetchone())
            key.append(db.execute("SELECT MAX(seq) FROM alias_events").fetchone())
        if key == self._maps_key:
            return self._maps
        with self._maps_lock:
            children: dict[str, list[str]] = {}
            for run_id, parent in db.execute("SELECT id, parent FROM runs WHERE parent IS NOT NULL ORDER BY started, id"):
                children.setdefault(parent, []).append(run_id)
            used: dict[tuple, list[str]] = {}
            for run_id, name, version in db.execute(
                    "SELECT id, json_extract(scraps, '$.model.name'), json_extract(scraps, '$.model.version') FROM runs "
                    "WHERE json_type(scraps, '$.model.name') = 'text' ORDER BY started DESC, id DESC"):
                used.setdefault((name, version), []).append(run_id)
            produced: dict[str, list[dict]] = {}
            moves: dict[str, list[dict]] = {}
            cols = ("seq", "name", "alias", "action", "from_version", "to_version", "undoes", "reason", "caused_by", "at")
            with contextlib.suppress(sqlite3_errors()):  # a store without a registry yet
                for name, version, run_id, created_by in db.execute(
                        "SELECT name, version, run_id, created_by FROM model_versions ORDER BY name, version"):
                    for who in dict.fromkeys((run_id, created_by)):
                        produced.setdefault(who, []).append({"name": name, "version": version})
                for row in db.execute(f"SELECT {', '.join(cols)} FROM alias_events ORDER BY seq"):
                    event = dict(zip(cols, row))
                    moves.setdefault(event["caused_by"], []).append(event)
            self._maps = {"children": children, "used": used, "produced": produced, "moves": moves}
            self._maps_key = key
        return self._maps

    def items(self, ids: list[str]) -> list[dict]:
        """Index rows of these runs, in the order given (unknown ids left out)."""
        found: dict[str, dict] = {}
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._query(f"SELECT {_INDEX_COLUMNS} FROM runs WHERE id IN ({marks})", chunk):
                found[r["id"]] = r
        return [found[i] for i in ids if i in found]

    def children(self, run_id: str) -> list[dict]:
        return self.items(self.maps()["children"].get(run_id, []))

    def run_item(self, run_id: str) -> dict:
        if not RUN_ID.match(run_id):
            raise NotFound(f"no run {run_id!r} in this store")
        rows = self._query(f"SELECT {_INDEX_COLUMNS} FROM runs WHERE id = ?", [run_id])
        if not rows:
            raise NotFound(f"no run {run_id!r} in this store")
        return rows[0]

    def run(self, run_id: str):
        if not RUN_ID.match(run_id):
            raise NotFound(f"no run {run_id!r} in this store")
        path = self.store.path / run_id
        try:
            # the schema is checked by verify(), whose result every page shows
            return Run(path, records.read_record(path, validate=False))
        except (RunNotFound, MlnbError, KeyError) as exc:
            raise NotFound(f"no run {run_id!r} in this store") from exc

    # -- derived from a run's files (cached) -------------------------------------------------

    def _signature(self, path: Path) -> tuple:
        sig = []
        for dirpath, _, names in os.walk(path):
            for name in names:
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(dirpath, name))
                    sig.append((dirpath, name, st.st_mtime_ns, st.st_size))
        return tuple(sorted(sig))

    def verify(self, run_id: str) -> list[records.Problem]:
        """What :func:`mlnb.records.verify` finds for a run, cached by file sizes and times."""
        path = self.store.path / run_id
        key = (run_id, self._signature(path))
        return self._verify.get_or(key, lambda: records.verify(path))

    def table_rows(self, run_id: str, artifact: str) -> list[dict] | None:
        """A table scrap as a list of row dicts (pyarrow, no pandas; cached), or None."""
        path = self.store.path / run_id / records.ARTIFACTS_DIR / artifact

        def read():
            import pyarrow.parquet as pq

            try:
                return pq.read_table(path).to_pylist()
            except (OSError, ValueError):
                return None

        return self._tables.get_or((run_id, "rows", artifact, self._signature(path.parent)), read)

    def report(self, run_id: str) -> str:
        from mlnb.ui.report import report_html

        run = self.run(run_id)
        return self._reports.get_or((run_id, self._signature(run.path)), lambda: report_html(run.path))

    # -- pages -------------------------------------------------------------------------------

    def runs_page(self, filter: str | None = None, sort: str | None = None, order: str | None = None,
                  page: int = 1, per_page: int = PER_PAGE, links=None) -> tuple[str, dict]:
        """The runs table: filtered, sorted, one page, with status and verify badges."""
        error = None
        try:
            where, args = filters.compile_filter(filter)
        except filters.FilterError as exc:
            error, where, args = str(exc), "0", []
        sort = (sort or "started").strip()
        order = "asc" if order == "asc" else "desc"
        try:
            key_sql, key_args = filters.sort_sql(sort)
        except filters.FilterError as exc:
            error = error or f"sort: {exc}"
            sort, (key_sql, key_args) = "started", ("started", [])
        self.sync()
        db = self.db()
        total = db.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", args).fetchone()[0]
        everything = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        pages = max(1, math.ceil(total / per_page))
        page = min(max(int(page or 1), 1), pages)
        rows = db.execute(
            f"SELECT {_INDEX_COLUMNS} FROM runs WHERE {where} "
            f"ORDER BY ({key_sql}) IS NULL, ({key_sql}) {order.upper()}, id DESC LIMIT ? OFFSET ?",
            [*args, *key_args, *key_args, per_page, (page - 1) * per_page],
        ).fetchall()
        templates = [r[0] for r in db.execute("SELECT DISTINCT template FROM runs ORDER BY template")]
        items = [_row(r) for r in rows]
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
        db = self.db()
        rows = db.execute(f"SELECT {_INDEX_COLUMNS} FROM runs ORDER BY started DESC, id DESC").fetchall()
        templates = sorted({r[1] for r in rows})
        pages = max(1, math.ceil(len(rows) / per_page))
        for page in range(1, pages + 1):
            items = [_row(r) for r in rows[(page - 1) * per_page:page * per_page]]
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
            found = {}
            if ids:
                marks = ",".join("?" * len(ids))
                found = {r["id"]: r for r in self._query(f"SELECT {_INDEX_COLUMNS} FROM runs WHERE id IN ({marks})", ids)}
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

    def models_page(self, links=None) -> tuple[str, dict]:
        models = []
        with self.registry() as registry:
            db = registry.connection()
            if db is not None:
                counts = dict(db.execute("SELECT name, COUNT(*) FROM model_versions GROUP BY name").fetchall())
                aliases: dict[str, list] = {}
                for name, alias, version in db.execute("SELECT name, alias, version FROM model_aliases ORDER BY alias"):
                    aliases.setdefault(name, []).append((alias, version))
                for name in sorted(counts):
                    latest = registry.get(f"{name}/latest")
                    models.append({"name": name, "versions": counts[name], "aliases": aliases.get(name, []),
                                   "latest": latest})
        return "models.html", {"title": "Models", "models": models}

    def _versions(self, name: str):
        from mlnb.registry import validate_name

        try:
            validate_name(name)
        except MlnbError as exc:
            raise NotFound(f"no model {name!r} in this store") from exc
        cached = self._model_cache.get(name) if self.sync_mode == "never" else None
        if cached is not None:
            return cached
        with self.registry() as registry:
            try:
                versions = registry.versions(name)
                events = registry.history(name)
            except ModelNotFound as exc:
                raise NotFound(str(exc)) from exc
        if self.sync_mode == "never":  # an export: the registry as it was when it started
            self._model_cache[name] = (versions, events)
        return versions, events

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

    def monitor_page(self, name: str | None = None, links=None) -> tuple[str, dict]:
        """Drift per batch, a per-column drift heatmap, production metrics, decisions and alerts."""
        if name is not None:
            versions, events = self._versions(name)
            pipelines = self._query(
                f"SELECT {_INDEX_COLUMNS} FROM runs WHERE template = 'pipeline' AND "
                "json_extract(scraps, '$.decision.model') = ? ORDER BY started DESC, id DESC LIMIT ?",
                [name, MAX_BATCHES])[::-1]
        else:
            events = []
            pipelines = self._query(
                f"SELECT {_INDEX_COLUMNS} FROM runs WHERE template = 'pipeline' ORDER BY started DESC, id DESC LIMIT ?",
                [MAX_BATCHES])[::-1]
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
            drift_runs = self._query(f"SELECT {_INDEX_COLUMNS} FROM runs WHERE template = 'drift' "
                                     "ORDER BY started DESC, id DESC LIMIT ?", [MAX_BATCHES])[::-1]
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


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def sqlite3_errors():
    import sqlite3

    return sqlite3.Error



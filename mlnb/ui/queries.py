"""What ``mlnb ui`` reads from the store's database: SQL on the run index and the registry.

Every query of the pages lives here, each a function of an open connection
(:meth:`mlnb.store.Store.connect` for the index, :meth:`mlnb.registry.Registry.connection`
for the registry's tables of the same database). Index rows come back as dicts with
``parameters``, ``scraps`` and ``tags`` decoded; lists are paginated in SQL, so a page costs
the same with 100 runs as with 10,000.
"""

from __future__ import annotations

import contextlib

from mlnb import filters
from mlnb.database import decode_json
from mlnb.exceptions import MlnbError

INDEX_COLUMNS = "id, template, status, started, finished, duration_s, parent, parameters, scraps, tags"
_ALIAS_EVENT_COLUMNS = ("seq", "name", "alias", "action", "from_version", "to_version", "undoes", "reason",
                        "caused_by", "at")


class NotFound(MlnbError, LookupError):
    """A run, model or version named in a URL that the store does not have."""


def item(row: tuple) -> dict:
    """An index row (:data:`INDEX_COLUMNS`) as a dict, its JSON columns decoded."""
    keys = ("id", "template", "status", "started", "finished", "duration_s", "parent")
    out = dict(zip(keys, row[:7]))
    out["parameters"] = decode_json(row[7])
    out["scraps"] = decode_json(row[8])
    out["tags"] = decode_json(row[9])
    return out


# -- the run index ----------------------------------------------------------------------------


def count_runs(db, where: str | None = None, args: list | tuple = ()) -> int:
    """How many runs match a compiled filter (:func:`mlnb.filters.compile_filter`); all by default."""
    if where is None:
        where = filters.DIALECTS[db.dialect]
    return db.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", list(args)).fetchone()[0]


def templates(db) -> list[str]:
    """Every template with a run in the index, sorted."""
    return [r[0] for r in db.execute("SELECT DISTINCT template FROM runs ORDER BY template")]


def page_of_runs(db, where: str, args: list, key_sql: str, key_args: list, order: str,
                 limit: int, offset: int) -> list[dict]:
    """One page of the runs matching ``where``, sorted by ``key_sql`` (nulls last, then newest id)."""
    rows = db.execute(
        f"SELECT {INDEX_COLUMNS} FROM runs WHERE {where} "
        f"ORDER BY ({key_sql}) IS NULL, ({key_sql}) {order.upper()}, id DESC LIMIT ? OFFSET ?",
        [*args, *key_args, *key_args, limit, offset],
    ).fetchall()
    return [item(r) for r in rows]


def all_runs(db) -> list[tuple]:
    """Every index row, newest first, undecoded (an export decodes one page at a time)."""
    return db.execute(f"SELECT {INDEX_COLUMNS} FROM runs ORDER BY started DESC, id DESC").fetchall()


def runs_by_id(db, ids: list[str]) -> dict[str, dict]:
    """The index rows of these runs by id (unknown ids left out), read 500 at a time."""
    found: dict[str, dict] = {}
    for k in range(0, len(ids), 500):
        chunk = ids[k:k + 500]
        marks = ",".join("?" * len(chunk))
        for r in db.execute(f"SELECT {INDEX_COLUMNS} FROM runs WHERE id IN ({marks})", chunk).fetchall():
            found[r[0]] = item(r)
    return found


def run_row(db, run_id: str) -> dict | None:
    """The index row of one run, or None."""
    rows = db.execute(f"SELECT {INDEX_COLUMNS} FROM runs WHERE id = ?", [run_id]).fetchall()
    return item(rows[0]) if rows else None


def newest_runs(db, template: str, limit: int) -> list[dict]:
    """The newest ``limit`` runs of a template, oldest first."""
    rows = db.execute(f"SELECT {INDEX_COLUMNS} FROM runs WHERE template = ? ORDER BY started DESC, id DESC LIMIT ?",
                      [template, limit]).fetchall()
    return [item(r) for r in rows][::-1]


def newest_pipelines(db, model: str, limit: int) -> list[dict]:
    """The newest ``limit`` pipeline runs whose decision concerns ``model``, oldest first."""
    decided, args = filters.text_sql("scrap.decision.model", db.dialect)
    rows = db.execute(f"SELECT {INDEX_COLUMNS} FROM runs WHERE template = 'pipeline' AND "
                      f"{decided} = ? ORDER BY started DESC, id DESC LIMIT ?",
                      [*args, model, limit]).fetchall()
    return [item(r) for r in rows][::-1]


# -- links between runs and models --------------------------------------------------------------


def maps_key(db) -> list:
    """What changes when runs, versions or alias moves are added (when to rebuild :func:`maps`)."""
    key = [db.execute("SELECT COUNT(*), MAX(id) FROM runs").fetchone()]  # runs are added, never changed
    with contextlib.suppress(*db.database.errors):
        key.append(db.execute("SELECT COUNT(*) FROM model_versions").fetchone())
        key.append(db.execute("SELECT MAX(seq) FROM alias_events").fetchone())
    return key


def maps(db) -> dict:
    """Who is whose child (``children``), which runs used a version (``used``, by
    ``(name, version)``), which versions a run produced (``produced``) and which alias moves
    a run caused (``moves``), each read in one pass."""
    children: dict[str, list[str]] = {}
    for run_id, parent in db.execute("SELECT id, parent FROM runs WHERE parent IS NOT NULL ORDER BY started, id"):
        children.setdefault(parent, []).append(run_id)
    used: dict[tuple, list[str]] = {}
    name_sql, name_args = filters.text_sql("scrap.model.name", db.dialect)
    version_sql, version_args = filters.sort_sql("scrap.model.version", db.dialect)
    for run_id, name, version in db.execute(
            f"SELECT id, {name_sql}, {version_sql} FROM runs WHERE {name_sql} IS NOT NULL "
            "ORDER BY started DESC, id DESC", [*name_args, *version_args, *name_args]):
        used.setdefault((name, version), []).append(run_id)
    produced: dict[str, list[dict]] = {}
    moves: dict[str, list[dict]] = {}
    with contextlib.suppress(*db.database.errors):  # a store without a registry yet
        for name, version, run_id, created_by in db.execute(
                "SELECT name, version, run_id, created_by FROM model_versions ORDER BY name, version"):
            for who in dict.fromkeys((run_id, created_by)):
                produced.setdefault(who, []).append({"name": name, "version": version})
        for row in db.execute(f"SELECT {', '.join(_ALIAS_EVENT_COLUMNS)} FROM alias_events ORDER BY seq"):
            event = dict(zip(_ALIAS_EVENT_COLUMNS, row))
            moves.setdefault(event["caused_by"], []).append(event)
    return {"children": children, "used": used, "produced": produced, "moves": moves}


# -- the registry -------------------------------------------------------------------------------


def version_counts(db) -> dict[str, int]:
    """How many versions each registered model has."""
    return dict(db.execute("SELECT name, COUNT(*) FROM model_versions GROUP BY name").fetchall())


def aliases(db) -> dict[str, list[tuple[str, int]]]:
    """Each model's ``(alias, version)`` pairs, by alias."""
    out: dict[str, list] = {}
    for name, alias, version in db.execute("SELECT name, alias, version FROM model_aliases ORDER BY alias"):
        out.setdefault(name, []).append((alias, version))
    return out

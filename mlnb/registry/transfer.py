"""Copying a registry into another store's: every version, tag, alias and alias move, as they are.

Versions keep their numbers and alias moves their sequence numbers, so URIs such as
``weather/3`` and the history mean the same in the copy. The copy goes into a registry
that does not know the models yet, in one transaction: all of it or nothing.
"""

from __future__ import annotations

from mlnb import ledger
from mlnb.exceptions import RegistryError
from mlnb.registry.entries import _EVENT_COLUMNS, _VERSION_COLUMNS

_TAG_COLUMNS = ledger.TAG_COLUMNS
_ALIAS_COLUMNS = "name, alias, version, event, updated"


def check_copy(source, target) -> None:
    """Raise what :func:`copy_registry` would refuse, reading only: a copy of runs and then the
    registry calls this first, so a refusal comes before any run is written.

    Raises:
        RegistryError: ``target`` already has a model of the same name, or an alias history
            while ``source`` has one; a registry of another schema.
    """
    src = source.connection()
    if src is None:
        return
    names = [row[0] for row in src.execute("SELECT DISTINCT name FROM model_versions")]
    if not names:
        return
    dst = target.connection()
    if dst is not None:
        _refuse(dst, set(names), src.execute("SELECT 1 FROM alias_events LIMIT 1").fetchone() is not None)


def _refuse(db, names: set[str], has_events: bool) -> None:
    """Raise RegistryError when the registry of ``db`` cannot take models ``names`` (and an alias history)."""
    clash = sorted({row[0] for row in db.execute("SELECT DISTINCT name FROM model_versions")} & names)
    if clash:
        raise RegistryError(f"the target registry already has model {clash[0]!r}; copy into a store "
                            "whose registry does not know these models")
    if has_events and db.execute("SELECT 1 FROM alias_events LIMIT 1").fetchone() is not None:
        raise RegistryError("the target registry already has an alias history; copy into an empty registry")


def copy_registry(source, target) -> int:
    """Copy every model of registry ``source`` into ``target``; return the versions copied.

    Raises:
        RegistryError: ``target`` already has a model of the same name (nothing is copied).
    """
    src = source.connection()
    if src is None:
        return 0
    tags_order = src.database.row_order
    versions = src.execute(f"SELECT {_VERSION_COLUMNS} FROM model_versions ORDER BY name, version").fetchall()
    if not versions:
        return 0
    tags = src.execute(f"SELECT {_TAG_COLUMNS} FROM model_tags ORDER BY {tags_order}").fetchall()
    events = src.execute(f"SELECT {_EVENT_COLUMNS} FROM alias_events ORDER BY seq").fetchall()
    aliases = src.execute(f"SELECT {_ALIAS_COLUMNS} FROM model_aliases ORDER BY name, alias").fetchall()
    names = sorted({row[0] for row in versions})
    with target._write() as db:
        _refuse(db, set(names), bool(events))  # checked again under the lock: a writer may have come since
        db.executemany(f"INSERT INTO model_versions ({_VERSION_COLUMNS}) VALUES ({', '.join('?' * 17)})", versions)
        db.executemany(f"INSERT INTO model_tags ({_TAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", tags)
        db.executemany(f"INSERT INTO alias_events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 10)})", events)
        db.executemany(f"INSERT INTO model_aliases ({_ALIAS_COLUMNS}) VALUES (?, ?, ?, ?, ?)", aliases)
        for kind, columns, rows, subject in (
                ("version", _VERSION_COLUMNS, versions, "{name}/{version}"),
                ("tag", _TAG_COLUMNS, tags, "{name}/{version}"),
                ("alias", _EVENT_COLUMNS, events, "{name}@{alias}")):
            for row in rows:
                change = ledger.row_change(columns, row)
                ledger.append(target.store, db, kind, subject.format(**change), change)
        if db.dialect == "postgresql" and events:
            # explicit sequence numbers do not move the serial: the next move must come after them
            db.execute("SELECT setval(pg_get_serial_sequence('alias_events', 'seq'), (SELECT MAX(seq) FROM alias_events))")
    return len(versions)

"""The model registry: named, numbered model versions and movable aliases, in the store's SQLite.

A **version** is made from a succeeded training run (:meth:`Registry.register`) and never
changes: it references the run's model artifact by path and sha256 and copies the lineage a
reviewer needs from the run record (metrics, hyperparameters, features, target, the
fingerprints of the data the run read, the template and git commit, the scikit-learn
version). Versions are numbered 1, 2, 3… per model name inside one ``BEGIN IMMEDIATE``
transaction, so concurrent registrations neither lose nor repeat a number. Tags can be added
to a version later; they are appended, the newest value of a key wins.

The artifact is **referenced, not copied**: runs are immutable and read-only, so the run's
``artifacts/`` is already the safest place for the file, the registry row stays one hop from
the record that made it, and there is no second copy to verify or to drift. Loading checks
the file's sha256 against the registry row first; a run that was removed or altered makes
its versions unloadable (:class:`~mlnb.exceptions.ArtifactTampered`), never silently wrong.

An **alias** (``production``, ``champion``, any name) points at one version of a model.
Every move is appended to ``alias_events`` (time, from, to, action, reason, and what caused
it: a run id, a pipeline run id, or ``cli:<user>``); the ``model_aliases`` table holds the
current targets and is updated in the same transaction. Rollback is *undo*: it reverts the
most recent move of the alias (a set or promote) that has not been rolled back yet, moving
the alias to the version that move came from. Repeated rollbacks therefore walk back through
earlier deployments instead of flip-flopping between the last two, and stop with an error
at the alias's first assignment. Promoting the version an alias already points at is not a
move and is not recorded. SQLite triggers refuse UPDATE and DELETE on versions, tags and the
history, so the history can only grow.

URIs name models everywhere: ``NAME@ALIAS`` or ``NAME/VERSION`` (``NAME/latest`` for the
highest version). Names and aliases match ``[a-z0-9][a-z0-9._-]*``.

This module imports neither scikit-learn nor skops; :func:`load` imports them when called.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from mlnb import records
from mlnb.exceptions import ArtifactTampered, ModelNotFound, RegistryError
from mlnb.store import Store, as_store

SCHEMA = records.REGISTRY
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
MAX_NAME = 100
DEFAULT_ALIAS = "production"
ACTIONS = ("set", "promote", "rollback")

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS registry_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    run_id TEXT NOT NULL,
    artifact TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    task TEXT,
    estimator TEXT,
    target TEXT,
    features TEXT NOT NULL,
    hyperparameters TEXT NOT NULL,
    metrics TEXT NOT NULL,
    data TEXT NOT NULL,
    code TEXT NOT NULL,
    sklearn_version TEXT,
    created TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS model_versions_run ON model_versions (run_id);
CREATE TABLE IF NOT EXISTS model_tags (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    at TEXT NOT NULL,
    caused_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS model_tags_version ON model_tags (name, version);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    event INTEGER NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS alias_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('set', 'promote', 'rollback')),
    from_version INTEGER,
    to_version INTEGER NOT NULL,
    undoes INTEGER,
    reason TEXT,
    caused_by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alias_events_alias ON alias_events (name, alias, seq);
CREATE TRIGGER IF NOT EXISTS model_versions_immutable BEFORE UPDATE ON model_versions
    BEGIN SELECT RAISE(ABORT, 'model versions are never modified'); END;
CREATE TRIGGER IF NOT EXISTS model_versions_kept BEFORE DELETE ON model_versions
    BEGIN SELECT RAISE(ABORT, 'model versions are never deleted'); END;
CREATE TRIGGER IF NOT EXISTS model_tags_append_only_u BEFORE UPDATE ON model_tags
    BEGIN SELECT RAISE(ABORT, 'model tags are append-only'); END;
CREATE TRIGGER IF NOT EXISTS model_tags_append_only_d BEFORE DELETE ON model_tags
    BEGIN SELECT RAISE(ABORT, 'model tags are append-only'); END;
CREATE TRIGGER IF NOT EXISTS alias_events_append_only_u BEFORE UPDATE ON alias_events
    BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS alias_events_append_only_d BEFORE DELETE ON alias_events
    BEGIN SELECT RAISE(ABORT, 'alias history is append-only'); END;
INSERT OR IGNORE INTO registry_meta VALUES ('schema', 'mlnb.registry/1');
"""

_VERSION_COLUMNS = (
    "name, version, run_id, artifact, sha256, bytes, task, estimator, target, features, "
    "hyperparameters, metrics, data, code, sklearn_version, created, created_by"
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_actor(prefix: str = "api") -> str:
    """``<prefix>:<user>``, what an event records when no run caused it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{prefix}:{user}"


# -- names and URIs -------------------------------------------------------------------------


def validate_name(name: Any, what: str = "model name") -> str:
    """Return ``name`` if it matches ``[a-z0-9][a-z0-9._-]*`` (at most 100 characters).

    Raises:
        RegistryError: naming the value and the rule; nothing touches disk first.
    """
    if not isinstance(name, str) or not NAME.match(name) or len(name) > MAX_NAME:
        raise RegistryError(
            f"{what} {name!r} is not allowed; use lowercase letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit (at most {MAX_NAME} characters)"
        )
    return name


def parse_version(value: Any) -> int:
    """A version number from an int or its decimal text (``3``, ``"3"``).

    Raises:
        RegistryError: not a whole number >= 1.
    """
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or value < 1:
        raise RegistryError(f"version {value!r} is not allowed; versions are whole numbers 1, 2, 3…")
    return value


@dataclass(frozen=True)
class ModelRef:
    """A parsed URI: ``name`` with either ``version`` (None for ``latest``) or ``alias``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}/{self.version if self.version is not None else 'latest'}"


def parse_uri(uri: Any) -> ModelRef:
    """Parse ``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME/latest``.

    Raises:
        RegistryError: any other form, or a bad name, alias or version.
    """
    example = uri.partition("@")[0].partition("/")[0] if isinstance(uri, str) and uri else "NAME"
    example = example if NAME.match(example) else "NAME"
    forms = f"give NAME@ALIAS ({example}@production) or NAME/VERSION ({example}/3)"
    if not isinstance(uri, str) or not uri:
        raise RegistryError(f"model URI {uri!r} is empty or not text; {forms}")
    if "@" in uri:
        name, _, alias = uri.partition("@")
        return ModelRef(validate_name(name), alias=validate_name(alias, "alias"))
    if "/" in uri:
        name, _, version = uri.partition("/")
        validate_name(name)
        if version == "latest":
            return ModelRef(name)
        try:
            return ModelRef(name, version=parse_version(version))
        except RegistryError:
            raise RegistryError(f"model URI {uri!r}: version {version!r} is not a whole number >= 1 or 'latest'; {forms}") from None
    validate_name(uri)
    raise RegistryError(f"model URI {uri!r} names no version; {forms}")


# -- records --------------------------------------------------------------------------------


@dataclass
class ModelVersion:
    """One registered version and its lineage (what :meth:`Registry.get` returns)."""

    name: str
    version: int
    run_id: str
    artifact: str  # path relative to the run's artifacts/
    sha256: str
    bytes: int
    task: str | None
    estimator: str | None
    target: str | None
    features: list[str]
    hyperparameters: dict
    metrics: dict
    data: list[dict]  # the run's inputs: parameter, path, sha256, bytes
    code: dict  # template name and sha256, record digest, git commit
    sklearn_version: str | None
    created: str
    created_by: str
    tags: dict = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"{self.name}/{self.version}"

    def to_dict(self) -> dict:
        """Plain JSON data (what ``mlnb models show --json`` prints).

        A shallow copy: the nested values are this object's own (decoded from JSON).
        """
        return {"uri": self.uri, **{f.name: getattr(self, f.name) for f in fields(self)}}


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias, as recorded in the append-only history."""

    seq: int
    name: str
    alias: str
    action: str
    from_version: int | None
    to_version: int
    undoes: int | None
    reason: str | None
    caused_by: str
    at: str

    def to_dict(self) -> dict:
        return asdict(self)


def _version_from_row(row: tuple) -> ModelVersion:
    (name, version, run_id, artifact, sha256, size, task, estimator, target, features,
     hyperparameters, metrics, data, code, sklearn_version, created, created_by) = row
    return ModelVersion(
        name=name, version=version, run_id=run_id, artifact=artifact, sha256=sha256, bytes=size,
        task=task, estimator=estimator, target=target, features=json.loads(features),
        hyperparameters=json.loads(hyperparameters), metrics=json.loads(metrics),
        data=json.loads(data), code=json.loads(code), sklearn_version=sklearn_version,
        created=created, created_by=created_by,
    )


def _event_from_row(row: tuple) -> AliasEvent:
    return AliasEvent(*row)


_EVENT_COLUMNS = "seq, name, alias, action, from_version, to_version, undoes, reason, caused_by, at"


def replay(events: list[AliasEvent]) -> dict[tuple[str, str], int]:
    """The alias table that a history produces: ``{(name, alias): version}``."""
    table: dict[tuple[str, str], int] = {}
    for event in sorted(events, key=lambda e: e.seq):
        table[(event.name, event.alias)] = event.to_version
    return table


# -- the registry ---------------------------------------------------------------------------


class Registry:
    """The model registry of a store.

    Args:
        store: a :class:`~mlnb.store.Store`, a store path, or None for the default store.

    One connection is opened on first use and kept; use the registry as a context manager
    or call :meth:`close`. Do not share one instance across processes.
    """

    def __init__(self, store: Store | str | os.PathLike | None = None):
        self.store = as_store(store)
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"Registry({str(self.store.path)!r})"

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- database ---------------------------------------------------------------------------

    def connection(self, create: bool = False) -> sqlite3.Connection | None:
        """The registry's connection to the store's database, kept open until :meth:`close`;
        None when the store has no database and ``create`` is False."""
        if self._db is None:
            if not create and not self.store.has_database():
                return None
            if create:
                self.store.ensure_writable()
            db = self.store.connect()
            try:
                row = db.execute("SELECT value FROM registry_meta WHERE key = 'schema'").fetchone()
            except sqlite3.OperationalError:  # no registry in this store yet
                row = None
            if row is None:
                # DDL writes; done once per store, so readers do not take the write lock
                db.executescript(_SCHEMA_SQL)
                row = db.execute("SELECT value FROM registry_meta WHERE key = 'schema'").fetchone()
            schema = row[0]
            if schema != SCHEMA:
                db.close()
                raise RegistryError(f"store {self.store.path} has registry schema {schema!r}; this mlnb reads {SCHEMA!r}")
            self._db = db
        return self._db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds SQLite's write lock from its first statement."""
        db = self.connection(create=True)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        db = self.connection()
        return db.execute(sql, args).fetchall() if db is not None else []

    # -- registering ------------------------------------------------------------------------

    def register(
        self, run_id: str, name: str, *, tags: dict[str, str] | None = None, caused_by: str | None = None
    ) -> ModelVersion:
        """Create the next version of model ``name`` from a succeeded training run.

        The run must have succeeded, glue ``model_artifact`` naming one of its artifacts, and
        be intact (every hash of its record still matches).

        Raises:
            RegistryError: a bad name, a failed run, a run without a model artifact.
            RunNotFound: no such run.
            ArtifactTampered: the run's files changed since it was recorded.
        """
        validate_name(name)
        tags = self._check_tags(tags)
        run = self.store.get(run_id)
        rec = run.record
        if not run.succeeded:
            err = rec.get("error") or {}
            detail = f": {err.get('ename')}: {err.get('evalue')}" if err.get("ename") else ""
            raise RegistryError(f"run {run.id} failed{detail}; only a succeeded training run can be registered")
        scraps = rec.get("scraps") or {}
        artifact = scraps.get("model_artifact")
        if not isinstance(artifact, str) or not artifact:
            raise RegistryError(
                f"run {run.id} (template {rec['template']['name']!r}) has no model artifact: it glued no "
                "'model_artifact'; register a run of the train template"
            )
        entry = next((a for a in rec.get("artifacts") or [] if a.get("path") == artifact), None)
        if entry is None:
            listed = ", ".join(a["path"] for a in rec.get("artifacts") or []) or "none"
            raise RegistryError(f"run {run.id} glued model_artifact {artifact!r} but has no such artifact; it has: {listed}")
        problems = self.store.verify(run.id)
        if problems:
            raise ArtifactTampered(
                f"run {run.id} changed since it was recorded ({problems[0].where}: {problems[0].what}); "
                f"'mlnb runs verify {run.id}' lists every change"
            )
        code = {
            "template": rec["template"]["name"],
            "template_sha256": rec["template"]["sha256"],
            "record_digest": rec["digest"],
            "git": rec.get("git"),
        }
        values = {
            "run_id": run.id,
            "artifact": artifact,
            "sha256": entry["sha256"],
            "bytes": entry["bytes"],
            "task": scraps.get("task"),
            "estimator": scraps.get("estimator") or rec["parameters"].get("estimator"),
            "target": scraps.get("target"),
            "features": json.dumps(scraps.get("features") or []),
            "hyperparameters": json.dumps(scraps.get("hyperparameters") or {}, sort_keys=True),
            "metrics": json.dumps(scraps.get("metrics") or {}, sort_keys=True),
            "data": json.dumps(rec.get("inputs") or []),
            "code": json.dumps(code, sort_keys=True),
            "sklearn_version": ((rec.get("environment") or {}).get("packages") or {}).get("scikit-learn"),
            "created": _now(),
            "created_by": caused_by or default_actor(),
        }
        with self._write() as db:
            version = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?", (name,)
            ).fetchone()[0]
            db.execute(
                f"INSERT INTO model_versions ({_VERSION_COLUMNS}) VALUES ({', '.join('?' * 17)})",
                (name, version, *values.values()),
            )
            self._insert_tags(db, name, version, tags, values["created"], values["created_by"])
        return self.get(f"{name}/{version}")

    @staticmethod
    def _check_tags(tags: dict | None) -> dict[str, str]:
        tags = dict(tags or {})
        for key, value in tags.items():
            if not isinstance(key, str) or not key or not isinstance(value, str):
                raise RegistryError(f"tag {key!r}={value!r} is not allowed; tags are non-empty text keys with text values")
        return tags

    @staticmethod
    def _insert_tags(db, name: str, version: int, tags: dict, at: str, caused_by: str) -> None:
        db.executemany(
            "INSERT INTO model_tags VALUES (?, ?, ?, ?, ?, ?)",
            [(name, version, key, value, at, caused_by) for key, value in tags.items()],
        )

    def add_tags(self, uri: str, tags: dict[str, str], caused_by: str | None = None) -> ModelVersion:
        """Add tags to a version (a key set again takes the new value; old values stay in the table)."""
        tags = self._check_tags(tags)
        with self._write() as db:
            name, version = self._resolve(db, parse_uri(uri))
            self._insert_tags(db, name, version, tags, _now(), caused_by or default_actor())
        return self.get(f"{name}/{version}")

    # -- reading ----------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of registered models, sorted."""
        return [r[0] for r in self._read("SELECT DISTINCT name FROM model_versions ORDER BY name")]

    def describe_models(self) -> str:
        """``registered models in store PATH: a, b`` (or ``none``), for error messages."""
        return f"registered models in store {self.store.path}: {', '.join(self.models()) or 'none'}"

    def _unknown_model(self, name: str) -> ModelNotFound:
        import difflib

        close = difflib.get_close_matches(name, self.models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(self.models()) or "none"
        return ModelNotFound(f"no model named {name!r} in store {self.store.path}; registered models: {known}{hint}")

    def _resolve(self, db: sqlite3.Connection | None, ref: ModelRef) -> tuple[str, int]:
        """``(name, version)`` a reference points at, or ModelNotFound saying what exists."""
        if db is None:
            raise self._unknown_model(ref.name)
        top = db.execute("SELECT MAX(version) FROM model_versions WHERE name = ?", (ref.name,)).fetchone()[0]
        if top is None:
            raise self._unknown_model(ref.name)
        if ref.alias is not None:
            row = db.execute(
                "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (ref.name, ref.alias)
            ).fetchone()
            if row is None:
                current = self._alias_map(db, ref.name)
                listed = ", ".join(f"{a} -> {v}" for a, v in current.items()) or "none"
                raise ModelNotFound(f"model {ref.name!r} has no alias {ref.alias!r}; its aliases: {listed}")
            return ref.name, row[0]
        if ref.version is None:
            return ref.name, top
        exists = db.execute(
            "SELECT 1 FROM model_versions WHERE name = ? AND version = ?", (ref.name, ref.version)
        ).fetchone()
        if exists is None:
            raise ModelNotFound(f"model {ref.name!r} has no version {ref.version}; its versions are 1 to {top}")
        return ref.name, ref.version

    @staticmethod
    def _alias_map(db: sqlite3.Connection, name: str) -> dict[str, int]:
        rows = db.execute("SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,))
        return dict(rows.fetchall())

    def resolve(self, uri: str) -> tuple[str, int]:
        """``(name, version)`` that a URI points at now.

        Raises:
            RegistryError: a malformed URI. ModelNotFound: an unknown model, version or alias.
        """
        return self._resolve(self.connection(), parse_uri(uri))

    def get(self, uri: str) -> ModelVersion:
        """The version a URI points at, with its tags and the aliases pointing at it."""
        db = self.connection()
        name, version = self._resolve(db, parse_uri(uri))
        row = db.execute(
            f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        mv = _version_from_row(row)
        mv.tags = self._tags(db, name).get(version, {})
        mv.aliases = sorted(a for a, v in self._alias_map(db, name).items() if v == version)
        return mv

    @staticmethod
    def _tags(db: sqlite3.Connection, name: str | None = None) -> dict:
        sql = "SELECT name, version, key, value FROM model_tags"
        rows = db.execute(sql + (" WHERE name = ?" if name else "") + " ORDER BY rowid", (name,) if name else ())
        out: dict = {}
        for n, v, key, value in rows:
            out.setdefault((n, v) if name is None else v, {})[key] = value
        return out

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of model ``name``), by name then version, with tags and aliases."""
        db = self.connection()
        if db is None:
            if name is not None:
                raise self._unknown_model(validate_name(name))
            return []
        sql = f"SELECT {_VERSION_COLUMNS} FROM model_versions"
        args: tuple = ()
        if name is not None:
            validate_name(name)
            sql += " WHERE name = ?"
            args = (name,)
        rows = db.execute(sql + " ORDER BY name, version", args).fetchall()
        if name is not None and not rows:
            raise self._unknown_model(name)
        aliases: dict[tuple[str, int], list[str]] = {}
        alias_sql = "SELECT name, version, alias FROM model_aliases" + (" WHERE name = ?" if name else "")
        for n, v, alias in db.execute(alias_sql + " ORDER BY alias", args):
            aliases.setdefault((n, v), []).append(alias)
        tags = self._tags(db)
        out = []
        for row in rows:
            mv = _version_from_row(row)
            mv.aliases = aliases.get((mv.name, mv.version), [])
            mv.tags = tags.get((mv.name, mv.version), {})
            out.append(mv)
        return out

    def alias_version(self, name: str, alias: str = DEFAULT_ALIAS) -> dict | None:
        """The version ``name@alias`` points at, as :meth:`ModelVersion.to_dict`, or None.

        None when the model has no version yet or the alias is not set, so a caller can
        bootstrap; a malformed name or alias still raises RegistryError.
        """
        validate_name(name)
        validate_name(alias, "alias")
        try:
            return self.get(f"{name}@{alias}").to_dict()
        except ModelNotFound:
            return None

    def versions_table(self, name: str | None = None) -> list[dict]:
        """Versions as flat rows for a DataFrame: ids, aliases, created, one key per metric.

        An unknown model gives no rows (a report before the first registration).
        """
        try:
            versions = self.versions(name)
        except ModelNotFound:
            return []
        rows = []
        for mv in versions:
            row = {"name": mv.name, "version": mv.version, "run_id": mv.run_id, "created": mv.created,
                   "aliases": ", ".join(mv.aliases), "estimator": mv.estimator}
            row.update({f"metric.{k}": v for k, v in mv.metrics.items()})
            rows.append(row)
        return rows

    def aliases(self, name: str | None = None) -> dict[tuple[str, str], int]:
        """The current alias table: ``{(name, alias): version}``."""
        sql = "SELECT name, alias, version FROM model_aliases"
        rows = self._read(sql + (" WHERE name = ?" if name else ""), (name,) if name else ())
        return {(n, a): v for n, a, v in rows}

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every recorded move of the aliases of model ``name`` (or of one alias), oldest first.

        Raises:
            ModelNotFound: no model of that name.
        """
        validate_name(name)
        if alias is not None:
            validate_name(alias, "alias")
        db = self.connection()
        if db is None or db.execute("SELECT 1 FROM model_versions WHERE name = ? LIMIT 1", (name,)).fetchone() is None:
            raise self._unknown_model(name)
        sql = f"SELECT {_EVENT_COLUMNS} FROM alias_events WHERE name = ?"
        args: tuple = (name,)
        if alias is not None:
            sql += " AND alias = ?"
            args += (alias,)
        return [_event_from_row(r) for r in db.execute(sql + " ORDER BY seq", args)]

    def all_events(self) -> list[AliasEvent]:
        """The whole alias history of the store, oldest first."""
        return [_event_from_row(r) for r in self._read(f"SELECT {_EVENT_COLUMNS} FROM alias_events ORDER BY seq")]

    # -- moving aliases ---------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str,
        reason: str | None = None,
        caused_by: str | None = None,
        *,
        action: str = "set",
    ) -> AliasEvent | None:
        """Point ``name@alias`` at ``version`` and record the move.

        Returns:
            The recorded event, or None when the alias already pointed at that version.

        Raises:
            RegistryError: a bad name, alias or version. ModelNotFound: unknown model or version.
        """
        validate_name(name)
        validate_name(alias, "alias")
        version = parse_version(version)
        if action not in ("set", "promote"):
            raise RegistryError(f"action {action!r} is not allowed; use 'set' or 'promote' (rollback has its own method)")
        with self._write() as db:
            self._resolve(db, ModelRef(name, version=version))
            row = db.execute("SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            current = row[0] if row else None
            if current == version:
                return None
            return self._move(db, name, alias, action, current, version, None, reason, caused_by)

    def promote(
        self,
        name: str,
        version: int | str,
        alias: str = DEFAULT_ALIAS,
        reason: str | None = None,
        caused_by: str | None = None,
    ) -> AliasEvent | None:
        """Point ``name@alias`` (``production`` by default) at ``version``; see :meth:`set_alias`."""
        return self.set_alias(name, alias, version, reason, caused_by, action="promote")

    def rollback(
        self, name: str, alias: str = DEFAULT_ALIAS, reason: str | None = None, caused_by: str | None = None
    ) -> AliasEvent:
        """Undo the latest move of ``name@alias`` that is not undone yet; return the event.

        Raises:
            ModelNotFound: unknown model or alias.
            RegistryError: the alias has no earlier version (it is at its first assignment).
        """
        validate_name(name)
        validate_name(alias, "alias")
        with self._write() as db:
            _, current = self._resolve(db, ModelRef(name, alias=alias))
            stack: list[tuple[int, int | None]] = []
            for seq, action, from_version in db.execute(
                "SELECT seq, action, from_version FROM alias_events WHERE name = ? AND alias = ? ORDER BY seq",
                (name, alias),
            ):
                if action == "rollback":
                    if stack:
                        stack.pop()
                else:
                    stack.append((seq, from_version))
            if not stack or stack[-1][1] is None:
                raise RegistryError(
                    f"cannot roll back {name}@{alias}: it points at version {current}, its first "
                    "assignment, and has no earlier version to return to"
                )
            undone, target = stack[-1]
            return self._move(db, name, alias, "rollback", current, target, undone, reason, caused_by)

    @staticmethod
    def _move(db, name, alias, action, from_version, to_version, undoes, reason, caused_by) -> AliasEvent:
        at = _now()
        caused_by = caused_by or default_actor()
        cursor = db.execute(
            "INSERT INTO alias_events (name, alias, action, from_version, to_version, undoes, reason, caused_by, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, alias, action, from_version, to_version, undoes, reason, caused_by, at),
        )
        seq = cursor.lastrowid
        db.execute(
            "INSERT INTO model_aliases (name, alias, version, event, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, event = excluded.event, "
            "updated = excluded.updated",
            (name, alias, to_version, seq, at),
        )
        return AliasEvent(seq, name, alias, action, from_version, to_version, undoes, reason, caused_by, at)

    # -- loading ----------------------------------------------------------------------------

    def artifact_path(self, mv: ModelVersion) -> Path:
        """Where a version's model file is: in its training run's ``artifacts/``."""
        base = (self.store.path / mv.run_id / records.ARTIFACTS_DIR).resolve()
        path = (base / mv.artifact).resolve()
        if base not in path.parents:
            raise ArtifactTampered(f"{mv.uri}: artifact path {mv.artifact!r} leaves the run's artifacts directory")
        return path

    def read_artifact(self, mv: ModelVersion) -> bytes:
        """The model file's bytes, after checking their sha256 against the registry.

        Raises:
            ArtifactTampered: the file is missing or its content changed.
        """
        path = self.artifact_path(mv)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactTampered(
                f"{mv.uri}: model artifact {path} is missing (was run {mv.run_id} removed?); refusing to load"
            ) from None
        actual = records.sha256_bytes(data)
        if actual != mv.sha256:
            raise ArtifactTampered(
                f"{mv.uri}: model artifact {path} changed since it was registered (sha256 {actual[:12]}…, "
                f"registered {mv.sha256[:12]}…); refusing to load it; 'mlnb runs verify {mv.run_id}' shows what changed"
            )
        return data

    def load_version(self, mv: ModelVersion):
        """Load a version's model: sha256 checked, then skops with mlnb's trusted types only.

        Raises:
            ArtifactTampered: the file changed or is missing.
            mlnb.metrics.UntrustedModel: the file holds a type outside the trusted list.
        """
        from mlnb.metrics import load_model_bytes

        return load_model_bytes(self.read_artifact(mv), where=mv.uri)

    def load(self, uri: str):
        """Load the model a URI points at (see :meth:`load_version`)."""
        return self.load_version(self.get(uri))


# -- module-level shortcuts -----------------------------------------------------------------


def _with_registry(store, method: str, *args, **kwargs):
    with Registry(store) as registry:
        return getattr(registry, method)(*args, **kwargs)


def register(run_id: str, name: str, *, store=None, tags=None, caused_by=None) -> ModelVersion:
    """Create the next version of ``name`` from a training run; see :meth:`Registry.register`."""
    return _with_registry(store, "register", run_id, name, tags=tags, caused_by=caused_by)


def get(uri: str, *, store=None) -> ModelVersion:
    """The version a URI points at; see :meth:`Registry.get`."""
    return _with_registry(store, "get", uri)


def set_alias(name, alias, version, reason=None, *, store=None, caused_by=None) -> AliasEvent | None:
    """Point ``name@alias`` at ``version``; see :meth:`Registry.set_alias`."""
    return _with_registry(store, "set_alias", name, alias, version, reason, caused_by)


def promote(name, version, alias=DEFAULT_ALIAS, reason=None, *, store=None, caused_by=None) -> AliasEvent | None:
    """Point ``name@alias`` (production) at ``version``; see :meth:`Registry.promote`."""
    return _with_registry(store, "promote", name, version, alias, reason, caused_by)


def rollback(name, alias=DEFAULT_ALIAS, reason=None, *, store=None, caused_by=None) -> AliasEvent:
    """Undo the latest move of ``name@alias``; see :meth:`Registry.rollback`."""
    return _with_registry(store, "rollback", name, alias, reason, caused_by)


def history(name, alias=None, *, store=None) -> list[AliasEvent]:
    """The alias moves of a model, oldest first; see :meth:`Registry.history`."""
    return _with_registry(store, "history", name, alias)


def load(uri: str, *, store=None):
    """Load a registered model, verified and with trusted types only; see :meth:`Registry.load`."""
    return _with_registry(store, "load", uri)

"""The registry: named, numbered model versions and movable aliases, read and written in one store.

:class:`Registry` registers versions from succeeded training runs (numbered inside one
write transaction that serialises writers — SQLite's ``BEGIN IMMEDIATE``, a PostgreSQL
advisory lock — so concurrent registrations neither lose nor repeat a number), resolves URIs, moves aliases (set, promote, rollback as undo) and finds a version's
model file in its run's ``artifacts/``. Loading hands that path and the registered sha256 to
:mod:`mlnb.model.persist`, which checks the hash and loads with trusted types only.

It talks to the store through its public API (:meth:`~mlnb.store.Store.connect`,
:meth:`~mlnb.store.Store.has_database`, :meth:`~mlnb.store.Store.run_file`,
:func:`~mlnb.store.as_store`), the same SQL on SQLite and PostgreSQL, and imports neither
scikit-learn nor skops; :meth:`Registry.load` imports them when called.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from pathlib import Path
from typing import Iterator

from mlnb import ledger, records
from mlnb.database import Connection
from mlnb.exceptions import ArtifactTampered, ModelNotFound, RecordError, RegistryError, RunNotFound
from mlnb.registry.entries import (
    _EVENT_COLUMNS,
    _VERSION_COLUMNS,
    AliasEvent,
    ModelVersion,
    _event_from_row,
    _now,
    _version_from_row,
    default_actor,
)
from mlnb.registry.names import DEFAULT_ALIAS, ModelRef, parse_uri, parse_version, validate_name
from mlnb.registry.schema import SCHEMA, schema_sql
from mlnb.store import Store, as_store


class Registry:
    """The model registry of a store.

    Args:
        store: a :class:`~mlnb.store.Store`, a store path, or None for the default store.

    One connection is opened on first use and kept; use the registry as a context manager
    or call :meth:`close`. Do not share one instance across processes.
    """

    def __init__(self, store: Store | str | os.PathLike | None = None):
        self.store = as_store(store)
        self._db: Connection | None = None

    def __repr__(self) -> str:
        return f"Registry({self.store.location!r})"

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- database ---------------------------------------------------------------------------

    def connection(self, create: bool = False) -> Connection | None:
        """The registry's connection to the store's database, kept open until :meth:`close`;
        None when the store has no database and ``create`` is False."""
        if self._db is None:
            if not create and not self.store.has_database():
                return None
            if create:
                self.store.ensure_writable()
            db = self.store.connect()
            row = None
            if db.has_table("registry_meta"):  # else no registry in this store yet
                row = db.execute("SELECT value FROM registry_meta WHERE key = 'schema'").fetchone()
            if row is None and self.store.read_only and not create:
                db.close()
                return None  # a read-only store without a registry: no models
            if row is None:
                # DDL writes; done once per store, so readers do not take the write lock
                db.script(schema_sql(db.database))
                row = db.execute("SELECT value FROM registry_meta WHERE key = 'schema'").fetchone()
            schema = row[0]
            if schema != SCHEMA:
                db.close()
                raise RegistryError(f"store {self.store.location} has registry schema {schema!r}; this mlnb "
                                    f"reads {SCHEMA!r}: use the mlnb that wrote it, or a newer one")
            self._db = db
        return self._db

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction that runs after every other registry writer's, never beside one."""
        with self.connection(create=True).transaction(lock="mlnb.registry") as db:
            yield db

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
            row = (name, version, *values.values())
            db.execute(f"INSERT INTO model_versions ({_VERSION_COLUMNS}) VALUES ({', '.join('?' * 17)})", row)
            ledger.append(self.store, db, "version", f"{name}/{version}", ledger.row_change(_VERSION_COLUMNS, row))
            self._insert_tags(db, name, version, tags, values["created"], values["created_by"])
        return self.get(f"{name}/{version}")

    @staticmethod
    def _check_tags(tags: dict | None) -> dict[str, str]:
        tags = dict(tags or {})
        for key, value in tags.items():
            if not isinstance(key, str) or not key or not isinstance(value, str):
                raise RegistryError(f"tag {key!r}={value!r} is not allowed; tags are non-empty text keys with text values")
        return tags

    def _insert_tags(self, db, name: str, version: int, tags: dict, at: str, caused_by: str) -> None:
        rows = [(name, version, key, value, at, caused_by) for key, value in tags.items()]
        db.executemany(f"INSERT INTO model_tags ({ledger.TAG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
        for row in rows:
            ledger.append(self.store, db, "tag", f"{name}/{version}", ledger.row_change(ledger.TAG_COLUMNS, row))

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
        return f"registered models in store {self.store.location}: {', '.join(self.models()) or 'none'}"

    def _unknown_model(self, name: str) -> ModelNotFound:
        import difflib

        close = difflib.get_close_matches(name, self.models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(self.models()) or "none"
        return ModelNotFound(f"no model named {name!r} in store {self.store.location}; registered models: {known}{hint}")

    def _resolve(self, db: Connection | None, ref: ModelRef) -> tuple[str, int]:
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
            if db.execute("SELECT 1 FROM model_versions WHERE name = ? AND version = ?",
                          (ref.name, row[0])).fetchone() is None:  # a database edited outside mlnb
                raise ModelNotFound(f"alias {ref.alias!r} of model {ref.name!r} points at version {row[0]}, which "
                                    f"the registry does not have (versions 1 to {top}); point it at one with "
                                    f"'mlnb models promote {ref.name} VERSION --alias {ref.alias}'")
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
    def _alias_map(db: Connection, name: str) -> dict[str, int]:
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
    def _tags(db: Connection, name: str | None = None) -> dict:
        sql = "SELECT name, version, key, value FROM model_tags"
        order = f" ORDER BY {db.database.row_order}"
        rows = db.execute(sql + (" WHERE name = ?" if name else "") + order, (name,) if name else ())
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

    def _move(self, db, name, alias, action, from_version, to_version, undoes, reason, caused_by) -> AliasEvent:
        at = _now()
        caused_by = caused_by or default_actor()
        seq = db.execute(
            "INSERT INTO alias_events (name, alias, action, from_version, to_version, undoes, reason, caused_by, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            (name, alias, action, from_version, to_version, undoes, reason, caused_by, at),
        ).fetchone()[0]
        db.execute(
            "INSERT INTO model_aliases (name, alias, version, event, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, event = excluded.event, "
            "updated = excluded.updated",
            (name, alias, to_version, seq, at),
        )
        event = AliasEvent(seq, name, alias, action, from_version, to_version, undoes, reason, caused_by, at)
        ledger.append(self.store, db, "alias", f"{name}@{alias}", event.to_dict())
        return event

    # -- loading ----------------------------------------------------------------------------

    def artifact_path(self, mv: ModelVersion) -> Path:
        """A local path of a version's model file, from its training run's ``artifacts/``
        (fetched from a team store's object store first)."""
        rel = posixpath.normpath(mv.artifact)
        if rel.startswith(("../", "/")) or rel in ("..", "."):
            raise ArtifactTampered(f"{mv.uri}: artifact path {mv.artifact!r} leaves the run's artifacts directory")
        try:
            return self.store.run_file(mv.run_id, f"{records.ARTIFACTS_DIR}/{rel}")
        except FileNotFoundError as exc:
            raise ArtifactTampered(f"{mv.uri}: model file {mv.artifact!r} of run {mv.run_id} is missing") from exc
        except RecordError as exc:
            raise ArtifactTampered(f"{mv.uri}: artifact path {mv.artifact!r} leaves the run's artifacts directory") from exc

    def _checked_artifact(self, mv: ModelVersion) -> Path:
        """:meth:`artifact_path`, once the training run's own record (its digest checked)
        lists the model file with the sha256 the registry holds: a registry row edited to
        match a swapped file is refused too, not only a file that differs from its row."""
        try:
            rec = self.store.get(mv.run_id).record
        except RunNotFound as exc:
            raise ArtifactTampered(f"{mv.uri}: its training run {mv.run_id} is not in the store") from exc
        except RecordError as exc:
            raise ArtifactTampered(f"{mv.uri}: the record of its training run {mv.run_id} changed: {exc}") from exc
        entry = next((a for a in rec.get("artifacts") or [] if a.get("path") == mv.artifact), None)
        if entry is None or entry.get("sha256") != mv.sha256:
            recorded = f"sha256 {entry['sha256'][:12]}…" if entry else "no such file"
            raise ArtifactTampered(
                f"{mv.uri}: the registry's sha256 {mv.sha256[:12]}… of {mv.artifact!r} is not what training run "
                f"{mv.run_id} recorded ({recorded}); refusing to load it; 'mlnb store verify' shows what changed"
            )
        return self.artifact_path(mv)

    def read_artifact(self, mv: ModelVersion) -> bytes:
        """The model file's bytes, after checking their sha256 against the registry.

        Raises:
            ArtifactTampered: the file is missing or its content changed.
        """
        from mlnb.model.persist import read_verified

        return read_verified(self._checked_artifact(mv), mv.sha256, where=mv.uri, run_id=mv.run_id)

    def load_version(self, mv: ModelVersion):
        """Load a version's model: sha256 checked, then skops with mlnb's trusted types only.

        Raises:
            ArtifactTampered: the file changed or is missing.
            mlnb.exceptions.UntrustedModel: the file holds a type outside the trusted list.
        """
        from mlnb.model.persist import load_verified

        return load_verified(self._checked_artifact(mv), mv.sha256, where=mv.uri, run_id=mv.run_id)

    def load(self, uri: str):
        """Load the model a URI points at (see :meth:`load_version`)."""
        return self.load_version(self.get(uri))

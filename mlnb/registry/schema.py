"""The registry's tables in the store's database, and the version of their layout.

Versions, tags and the alias history are append-only: triggers refuse UPDATE and DELETE on
them (and TRUNCATE on PostgreSQL), so the history can only grow. ``model_aliases`` holds
the current targets. One definition serves SQLite and PostgreSQL; :mod:`mlnb.database`
fills in the words each spells its own way.
"""

from __future__ import annotations

from mlnb import records
from mlnb.database import Database

SCHEMA = records.REGISTRY

_TABLES = """
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
    bytes BIGINT NOT NULL,
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
    caused_by TEXT NOT NULL{row_seq}
);
CREATE INDEX IF NOT EXISTS model_tags_version ON model_tags (name, version);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    event BIGINT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS alias_events (
    seq {serial},
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('set', 'promote', 'rollback')),
    from_version INTEGER,
    to_version INTEGER NOT NULL,
    undoes BIGINT,
    reason TEXT,
    caused_by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alias_events_alias ON alias_events (name, alias, seq);
"""

_APPEND_ONLY = {
    "model_versions": {"UPDATE": "model versions are never modified", "DELETE": "model versions are never deleted"},
    "model_tags": {"UPDATE": "model tags are append-only", "DELETE": "model tags are append-only"},
    "alias_events": {"UPDATE": "alias history is append-only", "DELETE": "alias history is append-only"},
}


def schema_sql(database: Database) -> str:
    """The DDL that creates the registry in ``database`` (idempotent), its version row last."""
    parts = [database.ddl(_TABLES)]
    parts += [database.append_only(table, messages) for table, messages in _APPEND_ONLY.items()]
    parts.append(f"INSERT INTO registry_meta VALUES ('schema', '{SCHEMA}') ON CONFLICT (key) DO NOTHING;")
    return "\n".join(parts)

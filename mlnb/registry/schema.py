"""The registry's tables in the store's SQLite database, and the version of their layout.

Versions, tags and the alias history are append-only: SQLite triggers refuse UPDATE and
DELETE on them, so the history can only grow. ``model_aliases`` holds the current targets.
"""

from __future__ import annotations

from mlnb import records

SCHEMA = records.REGISTRY

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

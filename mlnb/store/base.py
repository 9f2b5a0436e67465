"""What every store is: committed runs read by id, an index to list and filter them, a
database that also holds the model registry, and an honest commit.

Two implementations share this interface: :class:`~mlnb.store.local.LocalStore` (a
directory and a SQLite file, the embedded default) and :class:`~mlnb.store.team.TeamStore`
(run files on an object store through fsspec, index and registry in PostgreSQL). Records,
execution, the registry, the pipeline, serving, widgets and sweeps use only what is here.

``Store(location)`` picks the implementation from the location, as ``pathlib.Path`` picks
its flavour: a path is a local store, ``s3://…`` (or another fsspec URL) a team store.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb import records
from mlnb.database import Connection, Database, decode_json_columns
from mlnb.exceptions import StoreError

if TYPE_CHECKING:
    import pandas as pd

STAGING = ".staging"
DATA_DIR = "data"
SHADOW_DIR = "shadow"
PREDICTIONS_DIR = "predictions"
RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[a-z0-9-]+-[0-9a-f]{6}$")

_INDEX_TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    duration_s {real},
    parent TEXT,
    parameters {json} NOT NULL,
    scraps {json} NOT NULL,
    tags {json} NOT NULL,
    digest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_template ON runs (template, started);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started);
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent);
"""
_INDEX_COLUMNS = ("id", "template", "status", "started", "finished", "duration_s", "parent", "parameters", "scraps",
                  "tags", "digest")
_JSON_COLUMNS = ("parameters", "scraps", "tags")


def index_sql(database: Database) -> str:
    """The DDL of the runs index and the ledger's mirror in ``database`` (idempotent)."""
    from mlnb import ledger

    return database.ddl(_INDEX_TABLES) + ledger.table_sql(database)


def index_values(record: dict) -> dict[str, Any]:
    """A record's row in the runs index, ``{column: value}`` (JSON columns as Python values)."""
    return {
        "id": record["id"], "template": record["template"]["name"], "status": record["status"],
        "started": record["started"], "finished": record.get("finished"), "duration_s": record.get("duration_s"),
        "parent": record.get("parent"), "parameters": record.get("parameters") or {},
        "scraps": record.get("scraps") or {}, "tags": record.get("tags") or {}, "digest": record["digest"],
    }


def index_insert(db: Connection, record: dict) -> None:
    """Add (or replace) a record's row in the runs index."""
    row = index_values(record)
    values = tuple(db.json(row[c]) if c in _JSON_COLUMNS else row[c] for c in _INDEX_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _INDEX_COLUMNS[1:])
    db.execute(
        f"INSERT INTO runs ({', '.join(_INDEX_COLUMNS)}) VALUES ({', '.join('?' * len(_INDEX_COLUMNS))}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}",
        values,
    )


def new_run_id(template: str, now: datetime | None = None) -> str:
    """``20261128T190552Z-drift-3f9a1c``: UTC time, template name, random suffix."""
    now = now or datetime.now(timezone.utc)
    slug = re.sub(r"[^a-z0-9]+", "-", template.lower()).strip("-") or "run"
    return f"{now:%Y%m%dT%H%M%SZ}-{slug}-{secrets.token_hex(3)}"


class Run:
    """A committed run.

    Attributes:
        id: the run id.
        record: the parsed ``record.json``.
        store: the store it is in.
        path: a local directory with the run's files — the run itself in a local store,
            a cache that :meth:`file` fills on demand for a team store.
    """

    def __init__(self, path: Path, record: dict, store: "Store | None" = None):
        self.path = path
        self.record = record
        self.store = store
        self.id: str = record["id"]

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.status}>"

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def succeeded(self) -> bool:
        return self.record["status"] == "succeeded"

    @property
    def template(self) -> str:
        return self.record["template"]["name"]

    @property
    def parameters(self) -> dict:
        return self.record["parameters"]

    @property
    def location(self) -> str:
        """Where the run is, as a user would name it (a directory, or a URL)."""
        return self.store.run_location(self.id) if self.store is not None else str(self.path)

    def file(self, rel: str) -> Path:
        """A local path of one of the run's files (``notebook.ipynb``, ``artifacts/x``)."""
        if self.store is None:
            return self.path / rel
        return self.store.run_file(self.id, rel)

    @property
    def scraps(self) -> dict:
        """Every glued value; DataFrame scraps are read back from their artifact."""
        return {name: self.scrap(name) for name in self.record["scraps"]}

    def scrap(self, name: str) -> Any:
        value = self.record["scraps"][name]
        if records.is_table(value):
            import pandas as pd

            return pd.read_parquet(self.file(f"{records.ARTIFACTS_DIR}/{value['$artifact']}"))
        return value

    def artifact(self, name: str) -> Path:
        """Local path of an artifact, by its path relative to ``artifacts/``."""
        for art in self.record["artifacts"]:
            if art["path"] == name:
                return self.file(f"{records.ARTIFACTS_DIR}/{name}")
        names = ", ".join(a["path"] for a in self.record["artifacts"]) or "none"
        raise KeyError(f"run {self.id} has no artifact {name!r}; it has: {names}")

    @property
    def notebook(self):
        """The executed notebook (an ``nbformat.NotebookNode``)."""
        import nbformat

        return nbformat.read(self.notebook_path, as_version=4)

    @property
    def notebook_path(self) -> Path:
        return self.file(records.NOTEBOOK_FILE)

    @property
    def html_path(self) -> Path:
        return self.file(records.HTML_FILE)


def as_store(store: "Store | str | os.PathLike | None") -> "Store":
    """``store`` itself when it is a :class:`Store`, else the store at that location (None:
    the default store)."""
    return store if isinstance(store, Store) else Store(store)


def _implementation(location: str) -> type["Store"]:
    """The store class for a location: fsspec URLs are team stores, the rest local."""
    if "://" in location and not location.startswith("file://"):
        from mlnb.store.team import TeamStore

        return TeamStore
    from mlnb.store.local import LocalStore

    return LocalStore


class Store(abc.ABC):
    """Committed runs, their index and the registry's database, behind one interface.

    ``Store(location)`` returns the implementation for ``location`` (None: the default
    store of :func:`mlnb.config.default_store`).
    """

    #: a user's name for the store: a directory, or a URL
    location: str
    database: Database

    def __new__(cls, location: str | os.PathLike | None = None, *args, **kwargs):
        if cls is Store:
            if location is None:
                from mlnb.config import default_store

                location = default_store()
                if os.environ.get("MLNB_DATABASE") and "://" not in str(location):
                    raise StoreError(
                        f"MLNB_DATABASE is set but the store is the local {str(location)!r}, whose database is "
                        "its own SQLite file; set MLNB_STORE=s3://BUCKET/PREFIX for a team store, or unset "
                        "MLNB_DATABASE")
            cls = _implementation(str(location))
        return super().__new__(cls)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Store) and (type(self), self.location) == (type(other), other.location)

    def __hash__(self) -> int:
        return hash((type(self), self.location))

    # -- layout ----------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def path(self) -> Path:
        """A local directory of the store: the store itself when local, its cache when not."""

    @property
    def data_dir(self) -> Path:
        """Where the pipeline keeps the reference and holdout tables it writes."""
        return self.path / DATA_DIR

    @property
    def shadow_dir(self) -> Path:
        """Where ``mlnb serve --shadow`` appends its comparison logs."""
        return self.path / SHADOW_DIR

    @property
    def predictions_dir(self) -> Path:
        """Where ``mlnb serve`` appends its prediction logs."""
        return self.path / PREDICTIONS_DIR

    # -- files every host of the store reads: derived tables, serving's logs --------------

    #: whether :attr:`path` is only this host's cache of a store that lives elsewhere, so
    #: that what is written there reaches other hosts only through :meth:`share_table` and
    #: :meth:`share_logs`
    remote = False

    def share_table(self, path: Path) -> None:
        """Make a derived table written into :attr:`data_dir` readable on every host of the
        store. A local store is one host's directory: nothing to do."""
        return None

    def fetch_table(self, name: str, sha256: str) -> Path | None:
        """A local copy of the derived table ``name`` (a file name of :attr:`data_dir`) whose
        content has ``sha256``, fetched from the store when it holds one; None when it holds
        none. A local store holds nothing beyond the paths its runs recorded: None.

        Raises:
            StoreError: the store's copy does not have that sha256.
        """
        return None

    def share_logs(self, paths: list[Path]) -> None:
        """Make the lines this host appended to log files under :attr:`path` readable on
        every host (in the order given). A local store: nothing to do."""
        return None

    def sync_logs(self, directory: Path) -> Path:
        """``directory`` (a log directory under :attr:`path`, or one holding such directories)
        with every host's log files in it, ready to read. A local store: as it is."""
        return directory

    def shadow_log(self, name: str) -> Path:
        """The file this host's ``mlnb serve --shadow`` appends the shadow log of served model
        ``name`` to (a name already validated)."""
        return self.shadow_dir / f"{name}.jsonl"

    @abc.abstractmethod
    def run_location(self, run_id: str) -> str:
        """Where a committed run's files are, as a user would name it."""

    @abc.abstractmethod
    def run_file(self, run_id: str, rel: str) -> Path:
        """A local path of a committed run's file; a team store fetches it (streamed) first.

        Raises:
            RecordError: ``rel`` leaves the run. FileNotFoundError: no such file (team store).
        """

    # -- database --------------------------------------------------------------------------

    @abc.abstractmethod
    def has_database(self) -> bool:
        """Whether the store has a database to read (False for a local store never written)."""

    @abc.abstractmethod
    def connect(self) -> Connection:
        """A new connection to the store's database, its index tables there; the caller closes it.

        Raises:
            StoreError: the database cannot be reached or opened, or holds no mlnb tables.
        """

    @property
    def read_only(self) -> bool:
        """Whether the store refuses writing (a local store on read-only media)."""
        return False

    # -- writing ---------------------------------------------------------------------------

    @abc.abstractmethod
    def ensure_writable(self) -> None:
        """Create the store if needed and check it can be written, or raise StoreError."""

    @abc.abstractmethod
    def staging(self, run_id: str) -> contextlib.AbstractContextManager[Path]:
        """A private local directory for a run being written; removed if the block raises."""

    @abc.abstractmethod
    def commit(self, staged: Path, record: dict) -> Run:
        """Write ``record.json`` with the staged files and make the run visible, all or nothing.

        Raises:
            StoreError: the run could not be committed (nothing of it is visible then).
        """

    # -- the ledger's files (see mlnb.ledger) -----------------------------------------------

    #: whether a ledger file a dead writer left beyond the head may be taken over (see
    #: :meth:`ledger_adopts`); False: the mirror's transaction is the commit, such a file is
    #: never a change that happened
    ledger_takes_over = False

    @abc.abstractmethod
    def ledger_files(self) -> dict[int, bytes]:
        """Every ledger entry file in the store, by the position its name gives."""

    @abc.abstractmethod
    def ledger_get(self, seq: int) -> bytes | None:
        """Entry ``seq``'s file, or None when the store has none."""

    @abc.abstractmethod
    def ledger_put(self, seq: int, data: bytes) -> None:
        """Write entry ``seq``'s file (over one a writer that died left)."""

    def ledger_adopts(self, entry: dict) -> bool:
        """Whether the change of an entry that a dead writer left beyond the head is there."""
        return False

    # -- reading ---------------------------------------------------------------------------

    @abc.abstractmethod
    def read_record(self, run_id: str) -> dict:
        """A committed run's record (full id) read from where its files are, schema unchecked.

        Raises:
            RecordError: it is missing or not JSON.
        """

    @abc.abstractmethod
    def run_ids(self) -> list[str]:
        """Ids of every committed run, from the run files (not the index), sorted."""

    def stored_run_ids(self) -> list[str]:
        """Ids of every run whose files are in the store, committed or not, sorted (what
        ``verify`` holds the ledger against)."""
        return self.run_ids()

    @abc.abstractmethod
    def sync_index(self, force: bool = False) -> int:
        """Bring the index in line with the committed runs; return rows changed."""

    @abc.abstractmethod
    def resolve_id(self, run_id: str) -> str:
        """A full run id from an id or a unique prefix of one.

        Raises:
            RunNotFound: no run, or a prefix that matches several.
        """

    @abc.abstractmethod
    def get(self, run_id: str) -> Run:
        """The run with this id (or unique id prefix), its record checked."""

    @abc.abstractmethod
    def verify(self, run_id: str | None = None, sealed: str | None = None) -> list[records.Problem]:
        """Recompute every hash of one run or every run; return what changed.

        ``sealed``: with ``run_id``, the record digest its ledger entry sealed (see
        :func:`mlnb.records.verify_files`)."""

    def _index_ready(self) -> bool:
        """Whether listing can read the index (False: an empty store, nothing to list)."""
        return True

    def list_runs(
        self,
        template: str | None = None,
        status: str | None = None,
        parent: str | None = None,
        limit: int | None = None,
        filter: str | None = None,
        details: bool = True,
    ) -> list[dict]:
        """Runs from the index, newest first, as dicts (parameters and scraps decoded).

        ``filter`` is an expression of :mod:`mlnb.filters` (``metrics.f1 > 0.8 and
        params.seed = 1``); a filter that does not parse raises FilterError. With
        ``details=False`` a dict holds only the id, template, status, times and parent
        (nothing to decode: a listing of 10,000 runs in a third of the time).
        """
        from mlnb.filters import compile_filter

        filter_sql, filter_args = compile_filter(filter, dialect=self.database.dialect)
        if not self._index_ready():
            return []
        text = self.database.as_text
        sql = "SELECT id, template, status, started, finished, duration_s, parent"
        sql += f", {text('parameters')}, {text('scraps')}, {text('tags')} FROM runs" if details else " FROM runs"
        where, args = [], []
        for column, value in (("template", template), ("status", status), ("parent", parent)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if filter_args or filter_sql not in ("1", "TRUE"):
            where.append(f"({filter_sql})")
            args.extend(filter_args)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with contextlib.closing(self.connect()) as db:
            rows = db.execute(sql, args).fetchall()
        keys = ("id", "template", "status", "started", "finished", "duration_s", "parent")
        if not details:
            return [dict(zip(keys, row)) for row in rows]
        out = []
        for row, (parameters, scraps, tags) in zip(rows, decode_json_columns(rows, 7)):
            item = dict(zip(keys, row[:7]))
            item["parameters"], item["scraps"], item["tags"] = parameters, scraps, tags
            out.append(item)
        return out

    def runs(self, template: str | None = None, status: str | None = None, filter: str | None = None) -> "pd.DataFrame":
        """Runs as a DataFrame, one row per run, newest first; scraps become columns.

        Scalar scraps get a column each (``scrap.<name>``) so values can be plotted across
        runs; tables stay in their run (``store.get(id).scrap(name)``). ``filter`` is an
        expression of :mod:`mlnb.filters`, as for :meth:`list_runs`.
        """
        import pandas as pd

        rows = []
        for item in self.list_runs(template=template, status=status, filter=filter):
            row = {k: item[k] for k in ("id", "template", "status", "started", "duration_s", "parent")}
            row["parameters"] = item["parameters"]
            for name, value in item["scraps"].items():
                if not isinstance(value, (dict, list)):
                    row[f"scrap.{name}"] = value
            rows.append(row)
        df = pd.DataFrame(rows, columns=None if rows else ["id", "template", "status", "started", "duration_s", "parent", "parameters"])
        if not df.empty:
            df["started"] = pd.to_datetime(df["started"])
        return df

    # -- maintenance -----------------------------------------------------------------------

    def init(self) -> None:
        """Create the store's tables (index and registry) where they are missing, and start
        its ledger over the runs and models already there (if it has none)."""
        from mlnb import ledger
        from mlnb.registry.schema import schema_sql

        self.ensure_writable()
        with contextlib.closing(self.connect()) as db:
            db.script(schema_sql(db.database))
        ledger.ensure_started(self)

    def gc(self, older_than_s: float) -> list[str]:
        """Remove what writers that died left behind, older than ``older_than_s``; return it."""
        return []

    @abc.abstractmethod
    def fetch_run(self, run_id: str) -> Run:
        """A run (full id) whose ``path`` holds every file its record lists, its record read
        without the schema check (``verify`` checks it): a team store downloads what its
        cache lacks first. For readers that need whole directories (pages, reports, exports).

        Raises:
            RunNotFound: no such run. RecordError: its record is not there or not JSON.
        """

    def clean_stale(self) -> list[Path]:
        """Remove the staging directories of this host's processes that are gone; return them."""
        return []

    def import_run(self, run: Run) -> Run:
        """Commit a run of another store here: the same id, files and record (so the same digest).

        Raises:
            StoreError: a run of that id is already here.
        """
        rels = sorted(set(run.record.get("files") or {})
                      | {f"{records.ARTIFACTS_DIR}/{a['path']}" for a in run.record.get("artifacts") or []})
        with self.staging(run.id) as staged:
            for rel in rels:
                target = staged / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run.file(rel), target)
            return self.commit(staged, run.record)

"""Where run records live: a directory of immutable runs plus a SQLite index.

Layout of a store::

    <store>/
      <run_id>/            one committed run (read-only files), see mlnb.records
      .staging/            runs being written; renamed into place when complete
      mlnb.sqlite          the index of runs (derived data) and the model registry

A run is written in ``.staging/<host>-<pid>-<run_id>`` and appears in the store with one
``rename``, so a reader never sees half a run. Staging directories of processes that died
are removed the next time a store is opened for writing. The ``runs`` table of the index
is rebuilt from the records whenever it disagrees with the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import threading
import sqlite3
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from mlnb import records
from mlnb.exceptions import RecordError, RunNotFound, StoreError

if TYPE_CHECKING:
    import pandas as pd

STAGING = ".staging"
DATABASE = "mlnb.sqlite"
DATA_DIR = "data"
SHADOW_DIR = "shadow"
PREDICTIONS_DIR = "predictions"
RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[a-z0-9-]+-[0-9a-f]{6}$")

_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    duration_s REAL,
    parent TEXT,
    parameters TEXT NOT NULL,
    scraps TEXT NOT NULL,
    tags TEXT NOT NULL,
    digest TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_template ON runs (template, started);
"""


def new_run_id(template: str, now: datetime | None = None) -> str:
    """``20261128T190552Z-drift-3f9a1c``: UTC time, template name, random suffix."""
    now = now or datetime.now(timezone.utc)
    slug = re.sub(r"[^a-z0-9]+", "-", template.lower()).strip("-") or "run"
    return f"{now:%Y%m%dT%H%M%SZ}-{slug}-{secrets.token_hex(3)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Run:
    """A committed run, read from its directory.

    Attributes:
        id: the run id.
        record: the parsed ``record.json``.
        path: the run's directory.
    """

    def __init__(self, path: Path, record: dict):
        self.path = path
        self.record = record
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
    def scraps(self) -> dict:
        """Every glued value; DataFrame scraps are read back from their artifact."""
        return {name: self.scrap(name) for name in self.record["scraps"]}

    def scrap(self, name: str) -> Any:
        value = self.record["scraps"][name]
        if records.is_table(value):
            import pandas as pd

            return pd.read_parquet(self.path / records.ARTIFACTS_DIR / value["$artifact"])
        return value

    def artifact(self, name: str) -> Path:
        """Path of an artifact, by its path relative to ``artifacts/``."""
        for art in self.record["artifacts"]:
            if art["path"] == name:
                return self.path / records.ARTIFACTS_DIR / name
        names = ", ".join(a["path"] for a in self.record["artifacts"]) or "none"
        raise KeyError(f"run {self.id} has no artifact {name!r}; it has: {names}")

    @property
    def notebook(self):
        """The executed notebook (an ``nbformat.NotebookNode``)."""
        import nbformat

        return nbformat.read(self.path / records.NOTEBOOK_FILE, as_version=4)

    @property
    def notebook_path(self) -> Path:
        return self.path / records.NOTEBOOK_FILE

    @property
    def html_path(self) -> Path:
        return self.path / records.HTML_FILE


def as_store(store: "Store | str | os.PathLike | None") -> "Store":
    """``store`` itself when it is a :class:`Store`, else the store at that path (None: the
    default store)."""
    return store if isinstance(store, Store) else Store(store)


class Store:
    """A directory of run records with a SQLite index.

    Args:
        path: the store directory. It is created on the first write.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        if path is None:
            from mlnb.config import default_store

            path = default_store()
        raw = str(path)
        if "://" in raw:
            raise StoreError(
                f"store {raw!r} is a URL: object storage is not supported as a store; give a "
                "directory with atomic rename that every worker mounts (docs/scale-out.md)"
            )
        # absolute: kernels run in their template's directory, not the caller's
        self.path = Path(raw).expanduser().absolute()
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store {str(self.path)!r} is a file; give a directory")
        self._synced = False

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- layout ----------------------------------------------------------------------------

    @property
    def database(self) -> Path:
        """The SQLite file that holds the index of runs and the model registry."""
        return self.path / DATABASE

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

    def run_path(self, run_id: str) -> Path:
        """The directory of a committed run (which may not exist)."""
        return self.path / run_id

    def has_database(self) -> bool:
        return self.database.is_file()

    def connect(self) -> sqlite3.Connection:
        """A new connection to the store's database (WAL, busy timeout, index tables made).

        The caller closes it. The registry keeps its own tables in the same database. A
        store on read-only media (a mounted archive, a CD of records) is opened read-only:
        it can be listed and verified, not written.

        Raises:
            StoreError: the database cannot be opened, or a read-only store has no index.
        """
        if self.read_only:
            if not self.has_database():
                raise StoreError(f"store {str(self.path)!r} is read-only and has no index ({DATABASE}); "
                                 "run 'mlnb runs reindex' on a writable copy")
            # WAL needs its -shm file written even to read: a read-only medium is immutable
            return sqlite3.connect(f"{self.database.as_uri()}?immutable=1", uri=True, isolation_level=None)
        try:
            db = sqlite3.connect(self.database, timeout=30, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 30000")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                with contextlib.suppress(sqlite3.OperationalError):
                    db.execute("PRAGMA journal_mode = WAL")
            db.executescript(_INDEX_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"store {str(self.path)!r}: cannot open its database {DATABASE}: {exc}") from exc
        return db

    @property
    def read_only(self) -> bool:
        """Whether the store exists on a medium or with permissions that refuse writing."""
        return self.path.is_dir() and not os.access(self.path, os.W_OK)

    # -- writing ---------------------------------------------------------------------------

    def ensure_writable(self) -> None:
        """Create the store if needed and check it is writable, or raise StoreError."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store {str(self.path)!r}: {exc.strerror}") from exc
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise StoreError(f"store {str(self.path)!r} is not writable")
        # root ignores permission bits: a real write settles it
        try:
            (self.path / STAGING).mkdir(exist_ok=True)
            # one name per thread: a pipeline's steps check the store at the same moment
            probe = self.path / STAGING / f".probe-{os.getpid()}-{threading.get_ident()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise StoreError(f"store {str(self.path)!r} is not writable: {exc.strerror}") from exc

    def clean_stale(self) -> list[Path]:
        """Remove staging directories of this host's processes that are gone."""
        removed = []
        host = socket.gethostname()
        staging = self.path / STAGING
        if not staging.is_dir():
            return removed
        for entry in staging.iterdir():
            # <host>-<pid>-<run_id>; other hosts' runs are theirs to clean
            m = re.match(rf"^{re.escape(host)}-(\d+)-", entry.name)
            if not m:
                continue
            if not _pid_alive(int(m.group(1))):
                _make_writable(entry)
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed

    @contextlib.contextmanager
    def staging(self, run_id: str) -> Iterator[Path]:
        """A private directory for a run being written; removed if the block raises."""
        self.ensure_writable()
        self.clean_stale()
        path = self.path / STAGING / f"{socket.gethostname()}-{os.getpid()}-{run_id}"
        path.mkdir()
        (path / records.ARTIFACTS_DIR).mkdir()
        try:
            yield path
        except BaseException:
            _make_writable(path)
            shutil.rmtree(path, ignore_errors=True)
            raise

    def commit(self, staged: Path, record: dict) -> Run:
        """Write ``record.json`` into ``staged``, make it read-only, move it into the store."""
        records.write_record(staged, record)
        _make_read_only(staged)
        target = self.path / record["id"]
        try:
            os.rename(staged, target)
        except OSError as exc:
            raise StoreError(f"cannot commit run {record['id']} to {str(target)!r}: {exc}") from exc
        # moving a directory to a new parent needs it writable: seal it once in place
        os.chmod(target, 0o555)
        run = Run(target, record)
        with contextlib.suppress(sqlite3.Error, StoreError):  # the record counts; the index follows
            with contextlib.closing(self.connect()) as db:
                _index_insert(db, record)
        return run

    # -- reading ---------------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        """Ids of every committed run, from the directory (not the index)."""
        if not self.path.is_dir():
            return []
        return sorted(e.name for e in os.scandir(self.path) if RUN_ID.match(e.name) and e.is_dir())

    def sync_index(self, force: bool = False) -> int:
        """Bring the index in line with the run directories; return rows changed."""
        if not self.path.is_dir():
            return 0
        on_disk = set(self.run_ids())
        changed = 0
        if self.read_only:
            with contextlib.closing(self.connect()) as db:
                try:
                    indexed = {row[0] for row in db.execute("SELECT id FROM runs")}
                except sqlite3.Error as exc:
                    raise StoreError(f"store {str(self.path)!r} is read-only and its index cannot be read: {exc}") from exc
            if force or indexed != on_disk:
                raise StoreError(f"store {str(self.path)!r} is read-only and its index does not match its runs "
                                 f"({len(on_disk)} runs, {len(indexed)} indexed); run 'mlnb runs reindex' on a "
                                 "writable copy")
            self._synced = True
            return 0
        with contextlib.closing(self.connect()) as db:
            if force:
                db.execute("DELETE FROM runs")
            indexed = {row[0] for row in db.execute("SELECT id FROM runs")}
            missing, gone = on_disk - indexed, indexed - on_disk
            if missing or gone:
                db.execute("BEGIN IMMEDIATE")
                for run_id in gone:
                    db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                for run_id in sorted(missing):
                    try:
                        _index_insert(db, records.read_record(self.path / run_id, validate=False))
                    except (RecordError, KeyError, TypeError):
                        continue  # unreadable records are reported by verify, not listed
                db.execute("COMMIT")
                changed = len(missing) + len(gone)
        self._synced = True
        return changed

    def list_runs(
        self,
        template: str | None = None,
        status: str | None = None,
        parent: str | None = None,
        limit: int | None = None,
        filter: str | None = None,
    ) -> list[dict]:
        """Runs from the index, newest first, as dicts (parameters and scraps decoded).

        ``filter`` is an expression of :mod:`mlnb.filters` (``metrics.f1 > 0.8 and
        params.seed = 1``); a filter that does not parse raises FilterError.
        """
        from mlnb.filters import compile_filter

        filter_sql, filter_args = compile_filter(filter)
        if not self.path.is_dir() or not (self.has_database() or self.run_ids()):
            return []  # an empty store: reading it creates no index
        if not self._synced:
            self.sync_index()
        sql = "SELECT id, template, status, started, finished, duration_s, parent, parameters, scraps, tags FROM runs"
        where, args = [], []
        for column, value in (("template", template), ("status", status), ("parent", parent)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if filter_sql != "1":
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
        out = []
        for row in rows:
            item = dict(zip(keys, row[:7]))
            item["parameters"] = json.loads(row[7])
            item["scraps"] = json.loads(row[8])
            item["tags"] = json.loads(row[9])
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

    def resolve_id(self, run_id: str) -> str:
        """A full run id from an id or a unique prefix of one."""
        if RUN_ID.match(run_id) and (self.path / run_id).is_dir():
            return run_id
        matches = [r for r in self.run_ids() if r.startswith(run_id)] if run_id else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RunNotFound(run_id, f"{self.path} (prefix matches {len(matches)} runs; give more)")
        raise RunNotFound(run_id, str(self.path))

    def get(self, run_id: str) -> Run:
        """The run with this id (or unique id prefix), its record checked."""
        full = self.resolve_id(run_id)
        return Run(self.path / full, records.read_record(self.path / full))

    def verify(self, run_id: str | None = None) -> list[records.Problem]:
        """Verify one run or every run; return what changed."""
        ids = [self.resolve_id(run_id)] if run_id else self.run_ids()
        problems = []
        for rid in ids:
            problems.extend(records.verify(self.path / rid))
        return problems


def _index_insert(db: sqlite3.Connection, record: dict) -> None:
    db.execute(
        "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            record["id"],
            record["template"]["name"],
            record["status"],
            record["started"],
            record.get("finished"),
            record.get("duration_s"),
            record.get("parent"),
            json.dumps(record.get("parameters") or {}),
            json.dumps(record.get("scraps") or {}),
            json.dumps(record.get("tags") or {}),
            record["digest"],
        ),
    )


def _make_read_only(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    for dirpath, dirnames, _ in os.walk(root, topdown=False):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o555)


def _make_writable(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, name), 0o644)

"""The team store: run files on an object store (fsspec, e.g. s3fs), index and registry in PostgreSQL.

Layout under the store URL (``s3://bucket/prefix``)::

    <run_id>/                       one committed run: the same files as in a local store
    .staging/<run_id>.<token>/      a run being uploaded; removed once committed
    data/<label>-<sha256[:16]>.csv  a table the pipeline derived (train, holdout): uploaded once, never changed
    predictions/<model>/<host>-<pid>[.<time>].jsonl   mlnb serve's prediction logs, one file per process
    shadow/<model>/<host>.jsonl     mlnb serve --shadow's log, one file per host

An object store has no rename, so a commit goes: every file uploaded under a staging
prefix; the run id claimed in the database (a primary key, so two writers can never commit
the same id); the files copied to the run's prefix (a server-side copy); then, in one transaction holding the
ledger's lock, the ledger entry and the index row written, ``record.json`` and the entry's
object uploaded, and the claim marked committed.
Readers go through the index, so they see a run only once its record and its row are
both there. A writer killed on the way leaves objects under ``.staging/`` (or, killed
while copying, a claim never committed), which :meth:`TeamStore.gc` removes.

Tables and logs are written into this host's cache first (:attr:`TeamStore.path`), as in a
local store, and reach the object store from there: a derived table as soon as it is
written (:meth:`TeamStore.share_table`), a log when the server uploads it — when it rotates
a file, every so many seconds, and at shutdown (:meth:`TeamStore.share_logs`). Readers on
any host fetch a table by its name and sha256 (:meth:`TeamStore.fetch_table`) and bring a
log directory up to date before reading it (:meth:`TeamStore.sync_logs`).

Endpoint, credentials and region come from where the object store's library looks
(``AWS_*`` variables, ``~/.aws``), ``MLNB_S3_ENDPOINT_URL``, or ``storage_options``; never
from a record. The database is ``MLNB_DATABASE`` (``postgresql://USER@HOST/DB``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import secrets
import shutil
import socket
import stat
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from mlnb import ledger, records
from mlnb.database import Connection, open_database, redact
from mlnb.exceptions import RecordError, RunNotFound, StoreError
from mlnb.store.base import DATA_DIR, RUN_ID, STAGING, Run, Store, index_insert, index_sql

INDEX_SCHEMA = "mlnb.index/1"
#: the key, in ``registry_meta`` beside the index schema, of the store the database belongs to
STORE_KEY = "store"
S3_TIMEOUT_S = 10
#: what to install for an fsspec protocol whose library is missing
_BACKENDS = {"s3": "pip install 'mlnb[team]' (s3fs)", "s3a": "pip install 'mlnb[team]' (s3fs)",
             "gs": "pip install gcsfs", "gcs": "pip install gcsfs", "abfs": "pip install adlfs", "az": "pip install adlfs"}

_CLAIMS = """
CREATE TABLE IF NOT EXISTS run_claims (
    id TEXT PRIMARY KEY,
    writer TEXT NOT NULL,
    claimed TEXT NOT NULL,
    committed TEXT
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cache_root() -> Path:
    """Where team stores keep local copies of the files they fetched (``MLNB_CACHE_DIR``)."""
    return Path(os.environ.get("MLNB_CACHE_DIR") or Path.home() / ".cache" / "mlnb").expanduser()


def check_backend(location: str) -> str:
    """The URL's scheme, once it is known to fsspec and its backend is installed — found
    without importing it (s3fs takes half a second to import; listing runs needs none of it).

    Raises:
        StoreError: a scheme fsspec does not know, or whose backend is not installed.
    """
    import importlib.util

    from fsspec.registry import known_implementations, registry

    protocol = location.split("://", 1)[0].lower()
    if protocol in registry:
        return protocol
    known = known_implementations.get(protocol)
    if known is None:
        raise StoreError(f"store {location!r}: {protocol}:// is not a file system fsspec knows; give a directory "
                         "or an object-store URL such as s3://bucket/prefix")
    module = known["class"].split(".", 1)[0]
    if importlib.util.find_spec(module) is None:
        hint = _BACKENDS.get(protocol, f"install the fsspec backend for {protocol}://")
        raise StoreError(f"store {location!r}: no installed backend for {protocol}:// URLs; {hint}")
    return protocol


def filesystem(location: str, storage_options: dict | None = None):
    """The fsspec file system of ``location``, with mlnb's endpoint and timeout defaults.

    Raises:
        StoreError: no fsspec backend is installed for the URL's scheme.
    """
    import fsspec

    protocol = check_backend(location)
    options = dict(storage_options or {})
    if protocol in ("s3", "s3a"):
        client = dict(options.pop("client_kwargs", {}) or {})
        endpoint = os.environ.get("MLNB_S3_ENDPOINT_URL")
        if endpoint and "endpoint_url" not in client:
            client["endpoint_url"] = endpoint
        options["client_kwargs"] = client
        config = {"connect_timeout": S3_TIMEOUT_S, "read_timeout": 60,
                  "retries": {"max_attempts": 3, "mode": "standard"}, "max_pool_connections": 50}
        config.update(options.pop("config_kwargs", {}) or {})
        options["config_kwargs"] = config
        options.setdefault("use_listings_cache", False)
        options.setdefault("skip_instance_cache", True)  # a session per store: no state shared between stores
    return fsspec.filesystem(protocol, **options)


class _RemoteFiles(records.RunFiles):
    """A committed run's files read from the object store, for :func:`records.verify_files`."""

    def __init__(self, fs, prefix: str):
        self.fs = fs
        self.prefix = prefix
        self._listing = {posixpath.relpath(p, prefix): info for p, info in fs.find(prefix, detail=True).items()}

    def record_bytes(self) -> bytes:
        if records.RECORD_FILE not in self._listing:
            raise FileNotFoundError(records.RECORD_FILE)
        return self.fs.cat_file(f"{self.prefix}/{records.RECORD_FILE}")

    def problem(self, rel: str) -> str | None:
        norm = posixpath.normpath(rel)
        if norm.startswith(("../", "/")) or norm == "..":
            return "path is outside the run"
        return None if norm in self._listing else "file is missing"

    def sha256(self, rel: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(f"{self.prefix}/{rel}", "rb", block_size=1 << 22) as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def present(self) -> set[str]:
        return {rel for rel in self._listing if rel != records.RECORD_FILE}


class TeamStore(Store):
    """Run files on an object store, the index and the registry in PostgreSQL.

    Args:
        location: the store URL, ``s3://bucket/prefix``.
        database: the database URL; ``MLNB_DATABASE`` by default.
        storage_options: fsspec options for the file system (endpoint, credentials, ...).
    """

    def __init__(self, location: str, database: str | None = None, storage_options: dict | None = None):
        self.location = str(location).rstrip("/")
        url = database or os.environ.get("MLNB_DATABASE")
        if not url:
            raise StoreError(f"store {self.location!r} is a team store and needs its database: set "
                             "MLNB_DATABASE=postgresql://USER@HOST/DB (it holds the index and the registry)")
        self.database = open_database(url)
        if self.database.dialect != "postgresql":
            raise StoreError(f"store {self.location!r}: a team store keeps its index in PostgreSQL; "
                             f"MLNB_DATABASE={redact(url)!r} is not a postgresql:// URL")
        check_backend(self.location)
        self._storage_options = storage_options
        self._fs = None
        self.root = self.location.split("://", 1)[1].strip("/")
        if not self.root:
            raise StoreError(f"store {self.location!r} names no bucket; give s3://BUCKET[/PREFIX]")
        key = hashlib.sha256(f"{self.location}\n{self.database.name}".encode()).hexdigest()[:16]
        self._cache = cache_root() / "stores" / key
        self._checked = False
        self._bound = False  # whether the database records the store it belongs to (this one)
        self._shared: dict[str, tuple[int, int]] = {}  # log key -> (size, mtime_ns) of the file last uploaded
        self._sharing = threading.Lock()

    @property
    def fs(self):
        """The object store's fsspec file system, made on first use."""
        if self._fs is None:
            self._fs = filesystem(self.location, self._storage_options)
        return self._fs

    # -- layout ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """This host's cache of the store: fetched run files, and what serving logs here."""
        return self._cache

    def run_location(self, run_id: str) -> str:
        return f"{self.location}/{run_id}"

    def _key(self, run_id: str, rel: str = "") -> str:
        return f"{self.root}/{run_id}" + (f"/{rel}" if rel else "")

    def run_file(self, run_id: str, rel: str) -> Path:
        norm = posixpath.normpath(rel)
        if norm.startswith(("../", "/")) or norm in ("..", ".") or not RUN_ID.match(run_id):
            raise RecordError(f"{rel!r} leaves run {run_id}")
        local = self._cache / "runs" / run_id / norm
        if not local.is_file():  # committed files never change: a copy fetched once stays right
            local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".fetch-")
            os.close(fd)
            try:
                self._call(self.fs.get_file, self._key(run_id, norm), tmp)
                os.replace(tmp, local)
            except FileNotFoundError:
                self.check_bucket()  # a bucket gone is named, not each file of it
                raise
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return local

    def _call(self, fn, *args, **kwargs) -> Any:
        """An object-store call, its errors as one line naming the store (FileNotFoundError kept)."""
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise StoreError(f"store {self.location!r}: access denied ({exc}); check the credentials "
                             "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws)") from exc
        except OSError as exc:
            raise StoreError(f"store {self.location!r}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # botocore's connection errors are not OSErrors
            if type(exc).__module__.split(".")[0] not in ("botocore", "aiobotocore", "aiohttp", "urllib3"):
                raise
            raise StoreError(f"store {self.location!r}: cannot reach the object store "
                             f"(timeout {S3_TIMEOUT_S} s): {exc}") from exc

    # -- derived tables and logs, shared by every host -----------------------------------------

    remote = True

    def _cache_key(self, path: Path) -> str | None:
        """The object key of a file or directory of this host's cache; None outside it."""
        try:
            rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(self._cache))
        except ValueError:
            return None
        return f"{self.root}/{rel.as_posix()}" if rel.parts else None

    def share_table(self, path: Path) -> None:
        """Upload a derived table of :attr:`data_dir` to ``<store>/data/<name>``, unless it is there:
        its name holds its content's hash, so an object of that name is that table."""
        key = f"{self.root}/{DATA_DIR}/{Path(path).name}"
        if not self._call(self.fs.exists, key):
            self._call(self.fs.put_file, str(path), key)

    def fetch_table(self, name: str, sha256: str) -> Path | None:
        """``<store>/data/<name>`` streamed into :attr:`data_dir` with its sha256 checked (a copy
        fetched before is used when it still has that sha256). None when the name is not the
        content-addressed name of a table of that sha256 (``<label>-<sha256[:16]>.csv``), or the
        store has no such object."""
        if "/" in name or name.startswith(".") or not name.endswith(f"-{sha256[:16]}.csv"):
            return None
        local = self.data_dir / name
        if local.is_file() and records.sha256_file(local) == sha256:
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".fetch-")
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                with self._call(self.fs.open, f"{self.root}/{DATA_DIR}/{name}", "rb", block_size=1 << 22) as f:
                    for chunk in iter(lambda: self._call(f.read, 1 << 22), b""):
                        digest.update(chunk)
                        out.write(chunk)
            if digest.hexdigest() != sha256:
                raise StoreError(f"store {self.location!r}: table {DATA_DIR}/{name} has sha256 "
                                 f"{digest.hexdigest()[:12]}…, not the recorded {sha256[:12]}…; it is not the table "
                                 "the run read, so it is not used")
            os.chmod(tmp, 0o444)
            os.replace(tmp, local)
        except FileNotFoundError:
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return local

    def share_logs(self, paths: list[Path]) -> None:
        """Upload each log file under this host's cache to the same key under the store URL,
        in the order given, unless it is unchanged since its last upload here (size and mtime).

        Each upload replaces the whole object (an object store has no append): a reader sees a
        file as it was at its last upload, up to a last line that was being written then, which
        reading skips. Files outside the cache (a log put elsewhere) and files gone are passed over.
        """
        with self._sharing:
            for path in paths:
                key = self._cache_key(path)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                if key is None or self._shared.get(key) == (st.st_size, st.st_mtime_ns):
                    continue
                self._call(self.fs.put_file, str(path), key)
                self._shared[key] = (st.st_size, st.st_mtime_ns)

    def sync_logs(self, directory: Path) -> Path:
        """Download into ``directory`` (under this host's cache) every ``.jsonl`` object of its
        prefix that is new, or changed (size or time) since it was downloaded here.

        Files this host writes are never replaced (a server may be appending to them): a
        downloaded copy is read-only, a file written here is not, and only copies are updated.
        """
        prefix = self._cache_key(directory)
        if prefix is None:
            return directory
        try:
            listing = self._call(self.fs.find, prefix, detail=True)
        except FileNotFoundError:
            return directory
        wanted = []
        for key, info in sorted(listing.items()):
            rel = posixpath.relpath(key, self.root)
            if not rel.endswith(".jsonl") or rel.startswith(("../", ".")) or "/." in rel:
                continue
            local = self._cache / rel
            try:
                st = local.stat()
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_mode & stat.S_IWUSR or (st.st_size == info.get("size")
                                                                   and int(st.st_mtime) == int(_mtime(info)))):
                continue
            wanted.append((key, local, _mtime(info)))
        if not wanted:
            return directory
        tmps = []
        try:
            for _, local, _ in wanted:
                local.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".fetch-")
                os.close(fd)
                tmps.append(tmp)
            self._call(self.fs.get, [k for k, _, _ in wanted], tmps)  # concurrent, each streamed to its file
            for (_, local, mtime), tmp in zip(wanted, tmps):
                os.chmod(tmp, 0o444)
                os.utime(tmp, (mtime, mtime))
                os.replace(tmp, local)
        finally:
            for tmp in tmps:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return directory

    def shadow_log(self, name: str) -> Path:
        """``<cache>/shadow/<name>/<host>.jsonl``: a file per host, so hosts never upload over
        each other's lines; readers read the directory."""
        return self.shadow_dir / name / f"{socket.gethostname()}.jsonl"

    # -- database --------------------------------------------------------------------------

    def has_database(self) -> bool:
        return True

    def connect(self) -> Connection:
        db = self.database.connect()
        if not self._checked:
            try:
                ready = db.has_table("runs") and db.has_table("registry_meta") and db.has_table("run_claims")
                # the schema and the store the database belongs to, in one round trip
                meta = dict(db.execute("SELECT key, value FROM registry_meta WHERE key IN ('index', ?)",
                                       (STORE_KEY,)).fetchall()) if ready else {}
            except self.database.errors as exc:
                db.close()
                raise StoreError(f"database {self.database.name}: cannot read mlnb's tables: {exc}") from exc
            schema = meta.get("index")
            if schema is None:
                db.close()
                raise StoreError(f"database {self.database.name} has no mlnb tables; run 'mlnb store init' "
                                 f"(MLNB_STORE={self.location})")
            if meta.get(STORE_KEY, self.location) != self.location:
                db.close()
                raise self._foreign(meta[STORE_KEY])
            if not db.has_table("ledger"):
                db.close()
                raise StoreError(f"database {self.database.name} has no ledger table yet (made before mlnb kept "
                                 f"one); run 'mlnb store init' (MLNB_STORE={self.location}) to add it and start "
                                 "the ledger over the runs there")
            if schema != INDEX_SCHEMA:
                db.close()
                raise StoreError(f"database {self.database.name} has index schema {schema!r}, newer than "
                                 f"this mlnb's {INDEX_SCHEMA!r}; upgrade mlnb")
            self._bound = STORE_KEY in meta
            self._checked = True
        return db

    def _foreign(self, owner: str) -> StoreError:
        return StoreError(f"database {self.database.name} belongs to store {owner!r}, not {self.location!r}; "
                          "give each store a database of its own (MLNB_DATABASE), and run 'mlnb store init' "
                          "for a new one")

    def _bind(self, db: Connection) -> None:
        """Record this store as the one the database belongs to, unless one is already recorded
        (a database of an mlnb that recorded none is adopted); refuse a database of another store."""
        db.execute("INSERT INTO registry_meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (STORE_KEY, self.location))
        owner = db.execute("SELECT value FROM registry_meta WHERE key = ?", (STORE_KEY,)).fetchone()[0]
        if owner != self.location:
            raise self._foreign(owner)
        self._bound = True

    def _adopt(self) -> None:
        """Before a write: the database is checked, and adopted if it belongs to no store yet."""
        if self._bound:
            return
        with contextlib.closing(self.connect()) as db:
            if not self._bound:
                self._bind(db)

    def init(self) -> None:
        """Create the index, claim, ledger and registry tables (idempotent); check the bucket is there;
        record this store as the one the database belongs to; start the ledger over the runs already
        there if it has none.

        Raises:
            StoreError: the bucket is not there, or the database belongs to another store (nothing written).
        """
        from mlnb.registry.schema import schema_sql

        self.check_bucket()
        with contextlib.closing(self.database.connect()) as db:
            with db.transaction(lock="mlnb.init"):
                if db.has_table("registry_meta"):  # refused before any table is made
                    row = db.execute("SELECT value FROM registry_meta WHERE key = ?", (STORE_KEY,)).fetchone()
                    if row is not None and row[0] != self.location:
                        raise self._foreign(row[0])
                db.script(index_sql(self.database) + _CLAIMS + schema_sql(self.database))
                db.execute("INSERT INTO registry_meta VALUES ('index', ?) ON CONFLICT (key) DO NOTHING",
                           (INDEX_SCHEMA,))
                self._bind(db)
        self._checked = False
        ledger.ensure_started(self)

    # -- writing ---------------------------------------------------------------------------

    def ensure_writable(self) -> None:
        """Check the bucket is there and the database belongs to this store (adopting one that
        belongs to none), before anything is written.

        Raises:
            StoreError: no such bucket, the database belongs to another store, or has no mlnb tables.
        """
        self.check_bucket()
        self._adopt()

    def check_bucket(self) -> None:
        """Raise StoreError naming the bucket when it does not exist (or these credentials cannot see it)."""
        bucket = self.root.split("/", 1)[0]
        head = getattr(self.fs, "call_s3", None)
        try:
            if head is not None:  # s3fs: a HEAD of the bucket tells none (404) from not allowed (403)
                self._call(head, "head_bucket", Bucket=bucket)
                exists = True
            else:
                exists = self._call(self.fs.exists, bucket)
        except FileNotFoundError:
            exists = False
        if not exists:
            raise StoreError(f"store {self.location!r}: bucket {bucket!r} does not exist (or these credentials "
                             "cannot see it); create it first")

    def clean_stale(self) -> list[Path]:
        """Remove this host's staged runs (``<pid>-<run id>-…`` in the cache) whose writer is gone."""
        from mlnb.store.local import _pid_alive

        removed = []
        base = self._cache / STAGING
        for entry in sorted(base.iterdir()) if base.is_dir() else []:
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed

    @contextlib.contextmanager
    def staging(self, run_id: str) -> Iterator[Path]:
        self.ensure_writable()
        self.clean_stale()
        base = self._cache / STAGING
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{run_id}-", dir=base))
        (path / records.ARTIFACTS_DIR).mkdir()
        try:
            yield path
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise

    def commit(self, staged: Path, record: dict) -> Run:
        run_id = record["id"]
        records.write_record(staged, record)
        files = sorted((p.relative_to(staged).as_posix(), p) for p in staged.rglob("*") if p.is_file())
        body = [(rel, p) for rel, p in files if rel != records.RECORD_FILE]
        staging_prefix = f"{self.root}/{STAGING}/{run_id}.{secrets.token_hex(4)}"
        try:
            if body:
                self._call(self.fs.put, [str(p) for _, p in body], [f"{staging_prefix}/{rel}" for rel, _ in body])
            self._claim(run_id)
            # from here a failure leaves a claim without an index row: invisible, and gc's to remove
            if body:
                self._call(self.fs.copy, [f"{staging_prefix}/{rel}" for rel, _ in body],
                           [self._key(run_id, rel) for rel, _ in body])
            with contextlib.closing(self.connect()) as db, db.transaction():
                seq, entry = ledger.append(self, db, *ledger.run_change(record), write=False)
                index_insert(db, record)
                db.execute("UPDATE run_claims SET committed = ? WHERE id = ?", (_now(), run_id))
                # the record and its ledger entry in one round of concurrent uploads, just before
                # the commit that makes the run visible
                db.before_commit(lambda: self._call(self.fs.pipe, {
                    self._key(run_id, records.RECORD_FILE): (staged / records.RECORD_FILE).read_bytes(),
                    self._ledger_key(seq): entry}))
        finally:
            with contextlib.suppress(StoreError, FileNotFoundError):
                self._call(self.fs.rm, staging_prefix, recursive=True)
        # the staged directory becomes this host's cached copy of the run
        cached = self._cache / "runs" / run_id
        cached.parent.mkdir(parents=True, exist_ok=True)
        if cached.exists():
            shutil.rmtree(cached, ignore_errors=True)
        os.replace(staged, cached)
        return Run(cached, record, self)

    # -- the ledger's objects ---------------------------------------------------------------

    def _ledger_key(self, seq: int) -> str:
        return f"{self.root}/{ledger.DIR}/{ledger.file_name(seq)}"

    def ledger_files(self) -> dict[int, bytes]:
        try:
            keys = self._call(self.fs.find, f"{self.root}/{ledger.DIR}")
        except FileNotFoundError:
            keys = []
        if not keys:
            self.check_bucket()  # no entries, or no bucket: verify must not read the second as the first
        named = {seq: key for key in keys if (seq := ledger.seq_of(key.rsplit("/", 1)[-1])) is not None}
        if not named:
            return {}
        fetched = self._call(self.fs.cat, list(named.values()), on_error="omit")  # concurrent GETs
        return {seq: fetched[key] for seq, key in named.items() if key in fetched}

    def ledger_get(self, seq: int) -> bytes | None:
        try:
            return self._call(self.fs.cat_file, self._ledger_key(seq))
        except FileNotFoundError:
            return None

    def ledger_put(self, seq: int, data: bytes) -> None:
        self._call(self.fs.pipe_file, self._ledger_key(seq), data)

    def _claim(self, run_id: str) -> None:
        writer = f"{os.uname().nodename}:{os.getpid()}"
        with contextlib.closing(self.connect()) as db:
            try:
                db.execute("INSERT INTO run_claims (id, writer, claimed) VALUES (?, ?, ?)", (run_id, writer, _now()))
            except self.database.integrity_errors as exc:
                raise StoreError(f"cannot commit run {run_id} to {self.location!r}: another writer already "
                                 "committed (or is committing) a run of that id") from exc

    # -- reading ---------------------------------------------------------------------------

    def run_ids(self) -> list[str]:
        """Ids of every committed run: those with an index row (a run is committed with it)."""
        with contextlib.closing(self.connect()) as db:
            return sorted(r[0] for r in db.execute("SELECT id FROM runs"))

    def stored_run_ids(self) -> list[str]:
        return self._listed_ids()

    def _listed_ids(self) -> list[str]:
        """Ids of every run prefix on the object store, committed or not."""
        try:
            names = self._call(self.fs.ls, self.root, detail=False)
        except FileNotFoundError:
            self.check_bucket()
            return []
        return sorted(n.rsplit("/", 1)[-1] for n in names if RUN_ID.match(n.rsplit("/", 1)[-1]))

    def sync_index(self, force: bool = False) -> int:
        """The index is written in each commit's transaction; ``force`` rebuilds it from the
        records on the object store (runs without a record are left out)."""
        if not force:
            return 0
        self._adopt()
        changed = 0
        with contextlib.closing(self.connect()) as db:
            indexed = {row[0] for row in db.execute("SELECT id FROM runs")}
            on_store = {}
            for run_id in self._listed_ids():
                try:
                    on_store[run_id] = self._read_record(run_id, validate=False)
                except (RecordError, FileNotFoundError):
                    continue  # a commit that never finished: gc's, and verify names it
            with db.transaction(lock="mlnb.index"):
                for run_id in indexed - set(on_store):
                    db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                    changed += 1
                for run_id, record in sorted(on_store.items()):
                    index_insert(db, record)
                    db.execute("INSERT INTO run_claims (id, writer, claimed, committed) VALUES (?, 'reindex', ?, ?) "
                               "ON CONFLICT (id) DO UPDATE SET committed = excluded.committed", (run_id, _now(), _now()))
                    changed += run_id not in indexed
        ledger.ensure_started(self)  # a database made anew: its mirror refilled from the store's entries
        return changed

    def read_record(self, run_id: str) -> dict:
        return self._read_record(run_id, validate=False)

    def _read_record(self, run_id: str, validate: bool = True) -> dict:
        import json

        where = f"{self.run_location(run_id)}/{records.RECORD_FILE}"
        try:
            record = json.loads(self._call(self.fs.cat_file, self._key(run_id, records.RECORD_FILE)))
        except FileNotFoundError as exc:
            self.check_bucket()
            raise RecordError(f"{where}: missing") from exc
        except ValueError as exc:
            raise RecordError(f"{where}: not JSON ({exc})") from exc
        if validate:
            records.check_schema(record, where=where)
        return record

    def resolve_id(self, run_id: str) -> str:
        with contextlib.closing(self.connect()) as db:
            if RUN_ID.match(run_id) and db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                return run_id
            matches = [r[0] for r in db.execute("SELECT id FROM runs WHERE substr(id, 1, ?) = ? LIMIT 2",
                                                (len(run_id), run_id))] if run_id else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RunNotFound(run_id, f"{self.location} (prefix matches several runs; give more)")
        raise RunNotFound(run_id, self.location)

    def get(self, run_id: str) -> Run:
        full = self.resolve_id(run_id)
        return Run(self._cache / "runs" / full, self._read_record(full), self)

    def fetch_run(self, run_id: str) -> Run:
        if not RUN_ID.match(run_id):
            raise RunNotFound(run_id, self.location)
        import json

        cached = self._cache / "runs" / run_id
        with contextlib.closing(self.connect()) as db:
            if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise RunNotFound(run_id, self.location)
        where = f"{self.run_location(run_id)}/{records.RECORD_FILE}"
        try:  # the cached copy of the record: pages show the badge of verify(), which reads the store
            record = json.loads(self.run_file(run_id, records.RECORD_FILE).read_bytes())
        except FileNotFoundError as exc:
            raise RecordError(f"{where}: missing") from exc
        except ValueError as exc:
            raise RecordError(f"{where}: not JSON ({exc})") from exc
        rels = sorted(set(record.get("files") or {})
                      | {f"{records.ARTIFACTS_DIR}/{a['path']}" for a in record.get("artifacts") or []})
        missing = [rel for rel in rels if not (cached / rel).is_file()]
        for rel in missing:
            with contextlib.suppress(FileNotFoundError, RecordError):  # verify names what is gone
                self.run_file(run_id, rel)
        return Run(cached, record, self)

    def verify(self, run_id: str | None = None, sealed: str | None = None) -> list[records.Problem]:
        """Recompute every hash from the object store (not the local cache)."""
        ids = [self.resolve_id(run_id)] if run_id else self.run_ids()
        problems = []
        for rid in ids:
            problems.extend(records.verify_files(rid, _RemoteFiles(self.fs, self._key(rid)), sealed if run_id else None))
        return problems

    # -- maintenance -----------------------------------------------------------------------

    def gc(self, older_than_s: float) -> list[str]:
        """Remove staging prefixes and never-committed claims (with their objects) older than
        ``older_than_s`` seconds; return what was removed, as store URLs."""
        self._adopt()  # the database is checked before anything is removed
        cutoff = time.time() - older_than_s
        removed = []
        try:
            entries = self._call(self.fs.ls, f"{self.root}/{STAGING}", detail=True)
        except FileNotFoundError:
            entries = []
        for entry in entries:
            name = entry["name"].rstrip("/")
            newest = max((_mtime(info) for info in self.fs.find(name, detail=True).values()), default=0.0)
            if newest < cutoff:
                self._call(self.fs.rm, name, recursive=True)
                removed.append(f"{self.location}/{STAGING}/{name.rsplit('/', 1)[-1]}")
        stamp = datetime.fromtimestamp(cutoff, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with contextlib.closing(self.connect()) as db:
            stale = [r[0] for r in db.execute(
                "SELECT id FROM run_claims WHERE committed IS NULL AND claimed < ? "
                "AND id NOT IN (SELECT id FROM runs)", (stamp,))]
            for run_id in stale:
                with contextlib.suppress(FileNotFoundError):
                    self._call(self.fs.rm, self._key(run_id), recursive=True)
                db.execute("DELETE FROM run_claims WHERE id = ? AND committed IS NULL", (run_id,))
                removed.append(self.run_location(run_id))
        return removed


def _mtime(info: dict) -> float:
    value = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return 0.0

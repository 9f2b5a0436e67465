"""The local store: a directory of immutable runs plus a SQLite index — the embedded default.

Layout of a store::

    <store>/
      <run_id>/            one committed run (read-only files), see mlnb.records
      .staging/            runs being written; renamed into place when complete
      mlnb.sqlite          the index of runs (derived data) and the model registry

A run is written in ``.staging/<host>-<pid>-<run_id>`` and appears in the store with one
``rename``, so a reader never sees half a run. Staging directories of processes that died
are removed the next time a store is opened for writing. The ``runs`` table of the index
is rebuilt from the records whenever it disagrees with the directory.

SQLite's WAL needs memory shared between the processes that open the database, which a
network file system does not give: a store on one (NFS, SMB, FUSE, …) is refused with the
team store named as the way (:mod:`mlnb.fstype`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import threading
from pathlib import Path
from typing import Iterator

from mlnb import records
from mlnb.database import Connection, SQLiteDatabase
from mlnb.exceptions import RecordError, RunNotFound, StoreError
from mlnb.store.base import RUN_ID, STAGING, Run, Store, index_insert, index_sql

DATABASE = "mlnb.sqlite"


#: bytes read from a segment's end to find its last line (an entry is about 500)
_TAIL = 16384


def _open_segment(path: str) -> int:
    """A segment file opened for reading and writing, made (with its folder) if missing."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.dirname(path))
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:  # a full segment is read-only; only a dead writer's line is replaced in one
        os.chmod(path, 0o644)
        return os.open(path, os.O_RDWR)


def _read_all(fd: int, size: int) -> bytes:
    return os.pread(fd, size, 0) if size else b""


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalStore(Store):
    """A directory of run records with a SQLite index.

    Args:
        path: the store directory. It is created on the first write.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        if path is None:
            from mlnb.config import default_store

            path = default_store()
        raw = str(path).removeprefix("file://")
        # absolute: kernels run in their template's directory, not the caller's
        self._path = Path(raw).expanduser().absolute()
        if self._path.exists() and not self._path.is_dir():
            raise StoreError(f"store {str(self._path)!r} is a file; give a directory")
        self.location = str(self._path)
        self._database: SQLiteDatabase | None = None
        self._synced = False

    # -- layout ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The store directory."""
        return self._path

    @property
    def database(self) -> SQLiteDatabase:
        """The SQLite file that holds the index of runs and the model registry."""
        if self._database is None or self._database.read_only != self.read_only:
            self._database = SQLiteDatabase(self.path / DATABASE, read_only=self.read_only)
        return self._database

    def run_path(self, run_id: str) -> Path:
        """The directory of a committed run (which may not exist)."""
        return self.path / run_id

    def run_location(self, run_id: str) -> str:
        return str(self.path / run_id)

    def run_file(self, run_id: str, rel: str) -> Path:
        root = (self.path / run_id).resolve()
        path = self.path / run_id / rel
        if not records.inside(path, root):
            raise RecordError(f"{rel!r} leaves run {run_id}")
        return path

    def has_database(self) -> bool:
        return self.database.exists()

    def connect(self) -> Connection:
        """A new connection to the store's database (WAL, busy timeout, index tables made).

        The caller closes it. The registry keeps its own tables in the same database. A
        store on read-only media (a mounted archive, a CD of records) is opened read-only:
        it can be listed and verified, not written.

        Raises:
            StoreError: the database cannot be opened, the store is on a network file
                system, or a read-only store has no index.
        """
        if self.read_only:
            if not self.has_database():
                raise StoreError(f"store {str(self.path)!r} is read-only and has no index ({DATABASE}); "
                                 "run 'mlnb runs reindex' on a writable copy")
            return self.database.connect()
        self._refuse_network_filesystem()
        database = self.database
        try:
            db = database.connect()
            db.script(index_sql(database))
        except (StoreError, *database.errors) as exc:
            reason = str(exc).split(": ", 1)[-1] if isinstance(exc, StoreError) else str(exc)
            raise StoreError(f"store {str(self.path)!r}: cannot open its database {DATABASE}: {reason}") from exc
        return db

    def _refuse_network_filesystem(self) -> None:
        from mlnb.fstype import network_filesystem

        kind = network_filesystem(self.path)
        if kind is not None:
            raise StoreError(
                f"store {str(self.path)!r} is on a network file system ({kind}), where SQLite's write-ahead log "
                "corrupts the index; use a team store (MLNB_STORE=s3://..., MLNB_DATABASE=postgresql://...; "
                "docs/team-store.md) or a local disk"
            )

    @property
    def read_only(self) -> bool:
        """Whether the store exists on a medium or with permissions that refuse writing."""
        return self.path.is_dir() and not os.access(self.path, os.W_OK)

    # -- writing ---------------------------------------------------------------------------

    def ensure_writable(self) -> None:
        """Create the store if needed and check it is writable, or raise StoreError."""
        self._refuse_network_filesystem()
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

    def gc(self, older_than_s: float) -> list[str]:
        """Remove staging directories (of any host) untouched for ``older_than_s`` seconds."""
        import time

        cutoff = time.time() - older_than_s
        removed = []
        staging = self.path / STAGING
        for entry in sorted(staging.iterdir()) if staging.is_dir() else []:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                _make_writable(entry)
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(str(entry))
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
        """Write ``record.json`` into ``staged``, make it read-only, move it into the store.

        In one write transaction: the ledger entry (its file written first), the index row,
        and the rename that makes the run visible — so a run is there iff its entry is.
        """
        from mlnb import ledger

        records.write_record(staged, record)
        _make_read_only(staged)
        target = self.path / record["id"]

        def place(seq: int) -> None:
            try:
                os.rename(staged, target)
            except OSError as exc:
                try:
                    self._ledger_drop(seq)  # under the lock: the entry is this writer's
                except OSError as drop:
                    exc = OSError(exc.errno, f"{exc.strerror}; and its ledger entry could not be taken back: {drop}")
                raise StoreError(f"cannot commit run {record['id']} to {str(target)!r}: {exc}") from exc

        try:
            with contextlib.closing(self.connect()) as db, db.transaction(lock=ledger.LOCK):
                if target.exists():
                    raise StoreError(f"cannot commit run {record['id']} to {str(target)!r}: a run of that id "
                                     "is already there")
                seq, _ = ledger.append(self, db, *ledger.run_change(record))
                index_insert(db, record)
                db.before_commit(lambda: place(seq))
        except self.database.errors as exc:
            raise StoreError(f"cannot commit run {record['id']} to {str(self.path)!r}: its database: {exc}") from exc
        # moving a directory to a new parent needs it writable: seal it once in place
        os.chmod(target, 0o555)
        return Run(target, record, self)

    # -- the ledger's files ----------------------------------------------------------------
    #
    # Entry N is line (N - 1) % SEGMENT of segment ``ledger/<first>.jsonl``. A store written
    # before segments has a file per entry (``<N>.json``): read as ever, and written so while
    # the segment of the next entry lacks the entries before it, so that such a store moves
    # to segments at the next segment's start.

    ledger_takes_over = True

    def _ledger_path(self, name: str) -> str:
        from mlnb import ledger

        # a string, not a Path: built in every commit, under the lock
        return os.path.join(self.location, ledger.DIR, name)

    #: (entry, its segment's size) when ledger_get found the entry's place at the end of its
    #: segment (size -1: no segment), for the ledger_put of the same entry, under the same lock
    _ends: tuple[int, int] | None = None

    def ledger_files(self) -> dict[int, bytes]:
        from mlnb import ledger

        folder = self._ledger_path("")
        if not os.path.isdir(folder):
            return {}
        files, lines, beyond = {}, {}, {}
        for entry in os.scandir(folder):
            if (seq := ledger.seq_of(entry.name)) is not None:
                with open(entry.path, "rb") as f:
                    files[seq] = f.read()
            elif (first := ledger.segment_start(entry.name)) is not None:
                with open(entry.path, "rb") as f:
                    for i, line in enumerate(ledger.lines(f.read())):
                        # a line past a segment's end was added behind the store's back: it
                        # takes the place it claims, so that verify names it
                        (beyond if i >= ledger.SEGMENT else lines)[first + i] = line
        return {**files, **lines, **beyond}

    def ledger_get(self, seq: int) -> bytes | None:
        from mlnb import ledger

        name, line = ledger.segment_of(seq)
        path = self._ledger_path(name)
        self._ends = None
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._ends = (seq, -1)
            return self._ledger_file(seq)
        try:
            size = os.fstat(fd).st_size
            if line and size:
                # every commit asks for the entry after the head, which is almost never there:
                # the segment's last line (its tail) says so when it is the entry before
                n = min(size, _TAIL)
                tail = os.pread(fd, n, size - n)
                last = tail.rfind(b"\n", 0, n - 1) + 1
                if tail.endswith(b"\n") and (last or n == size) and ledger.is_entry(tail[last:], seq - 1):
                    self._ends = (seq, size)
                    return self._ledger_file(seq)  # one access(): a file-per-entry writer's entry
            held = ledger.lines(_read_all(fd, size))
        finally:
            os.close(fd)
        if line < len(held):
            return held[line]
        if line == len(held) and (not held or held[-1].endswith(b"\n")):
            self._ends = (seq, size)
            return self._ledger_file(seq)
        return self._ledger_file(seq)

    def _ledger_file(self, seq: int) -> bytes | None:
        """Entry ``seq``'s own file (stores written before segments)."""
        from mlnb import ledger

        path = self._ledger_path(ledger.file_name(seq))
        # one access() says it is not there without raising
        if not os.access(path, os.F_OK):
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def ledger_put(self, seq: int, data: bytes) -> None:
        """Write entry ``seq`` as its segment's line, and drop what a writer that died left at
        or after it; as a file of its own while the segment lacks the entries before it."""
        from mlnb import ledger

        name, line = ledger.segment_of(seq)
        path = self._ledger_path(name)
        ends, self._ends = self._ends, None
        known = ends is not None and ends[0] == seq
        if line and (ends[1] < 0 if known else not os.access(path, os.F_OK)):
            self._put_file(seq, data)  # no segment, and it does not start here
            return
        fd = _open_segment(path)
        try:
            size = os.fstat(fd).st_size
            if known and max(ends[1], 0) == size:
                offset = size  # ledger_get found that the segment ends just before the entry
            else:
                before = ledger.lines(_read_all(fd, size))[:line]
                if len(before) < line or (before and not before[-1].endswith(b"\n")):
                    self._put_file(seq, data)  # the segment lacks the entries before it
                    return
                offset = sum(map(len, before))
            if offset != size:
                os.ftruncate(fd, offset)
            _write_all(fd, data, offset)
        finally:
            os.close(fd)
        if line == ledger.SEGMENT - 1:
            os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)

    def _put_file(self, seq: int, data: bytes) -> None:
        from mlnb import ledger

        path = self._ledger_path(ledger.file_name(seq))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:  # what a writer that died left: replaced whole
            folder, name = os.path.split(path)
            tmp = Path(folder) / f".{name}.{os.getpid()}"
            tmp.write_bytes(data)
            os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(tmp, path)
            return
        try:
            _write_all(fd, data, 0)
        finally:
            os.close(fd)

    def _ledger_drop(self, seq: int) -> None:
        """Take back entry ``seq``, this writer's own (under the lock), whose change failed."""
        from mlnb import ledger

        name, line = ledger.segment_of(seq)
        path = self._ledger_path(name)
        try:
            with open(path, "rb") as f:
                held = ledger.lines(f.read())
        except FileNotFoundError:
            held = []
        if line < len(held):
            if line == ledger.SEGMENT - 1:  # ledger_put made the full segment read-only; it is not full now
                os.chmod(path, 0o644)
            os.truncate(path, sum(map(len, held[:line])))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._ledger_path(ledger.file_name(seq)))

    def ledger_adopts(self, entry: dict) -> bool:
        """A run entry whose run was renamed into place before its writer died: taken over."""
        if entry.get("kind") != "run":
            return False
        change = entry.get("change") or {}
        try:
            return self.read_record(str(change.get("id")))["digest"] == change.get("record")
        except (RecordError, KeyError, TypeError):
            return False

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
                except self.database.errors as exc:
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
                with db.transaction(lock="mlnb.index"):
                    for run_id in gone:
                        db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                    for run_id in sorted(missing):
                        try:
                            index_insert(db, records.read_record(self.path / run_id, validate=False))
                        except (RecordError, KeyError, TypeError):
                            continue  # unreadable records are reported by verify, not listed
                changed = len(missing) + len(gone)
        if force:
            from mlnb import ledger

            ledger.ensure_started(self)  # an index made anew: its mirror refilled from the ledger's files
        self._synced = True
        return changed

    def _index_ready(self) -> bool:
        if not self.path.is_dir() or not (self.has_database() or self.run_ids()):
            return False  # an empty store: reading it creates no index
        if not self._synced:
            self.sync_index()
        return True

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

    def read_record(self, run_id: str) -> dict:
        if not RUN_ID.match(run_id):
            raise RecordError(f"{run_id!r} is not a run id")
        return records.read_record(self.path / run_id, validate=False)

    def get(self, run_id: str) -> Run:
        """The run with this id (or unique id prefix), its record checked."""
        full = self.resolve_id(run_id)
        return Run(self.path / full, records.read_record(self.path / full), self)

    def fetch_run(self, run_id: str) -> Run:
        if not RUN_ID.match(run_id) or not (self.path / run_id).is_dir():
            raise RunNotFound(run_id, str(self.path))
        return Run(self.path / run_id, records.read_record(self.path / run_id, validate=False), self)

    def verify(self, run_id: str | None = None, sealed: str | None = None) -> list[records.Problem]:
        """Verify one run or every run; return what changed."""
        ids = [self.resolve_id(run_id)] if run_id else self.run_ids()
        problems = []
        for rid in ids:
            problems.extend(records.verify(self.path / rid, sealed if run_id else None))
        return problems


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

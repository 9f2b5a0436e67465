"""What each page of ``mlnb ui`` shows, as plain data built from the store's index and registry.

:class:`Site` answers one method per page with ``(template, context)``; the FastAPI app
and the static export render those with the same Jinja2 templates. The pages are built in
``pages_runs`` (runs, run, compare), ``pages_models`` (models, model, version) and
``pages_monitor`` (monitoring); every SQL query they need is in ``queries``. This module
ties them to one store: its connections, the index kept up to date, and what is derived
from one run's files (its verify status, its tables), cached by the files' sizes and
modification times since runs are immutable.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from mlnb import records
from mlnb.exceptions import MlnbError, ModelNotFound, RunNotFound
from mlnb.store import RUN_ID, Store, as_store
from mlnb.ui import queries
from mlnb.ui.pages_models import ModelPages
from mlnb.ui.pages_monitor import MAX_BATCHES as MAX_BATCHES, MonitorPages
from mlnb.ui.pages_runs import MAX_COMPARE as MAX_COMPARE, PER_PAGE as PER_PAGE, SORTABLE as SORTABLE
from mlnb.ui.pages_runs import RunPages, summary as summary
from mlnb.ui.queries import NotFound
from mlnb.ui.values import flatten as flatten, model_of as model_of, text as text


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def get_or(self, key, make):
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)
        return value


class Site(RunPages, ModelPages, MonitorPages):
    """The pages of one store.

    Args:
        store: a Store or its path.
        write_enabled: show the promote and rollback forms (the app checks the token).
    """

    def __init__(self, store: Store | str | os.PathLike, write_enabled: bool = False):
        self.store = as_store(store)
        self.write_enabled = write_enabled
        self._synced_at = 0.0
        self._sync_lock = threading.Lock()
        self._verify = _LRU(20_000)
        self._tables = _LRU(2_000)
        self._reports = _LRU(64)
        self._local = threading.local()
        self._maps_key = None
        self._maps_checked = 0.0
        self._model_cache: dict[str, tuple] = {}
        self._maps: dict = {}
        self._maps_lock = threading.Lock()
        #: "inline": a request brings the index up to date (at most once a second);
        #: "background": a thread does (see :meth:`sync_forever`); "never": as of check().
        self.sync_mode = "inline"

    # -- access ------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise StoreError unless the store can be read (before a server starts)."""
        from mlnb.exceptions import StoreError
        from mlnb.store import LocalStore

        where = self.store.location
        if isinstance(self.store, LocalStore):
            path = self.store.path
            if not path.exists():
                raise StoreError(f"store {where!r} does not exist; give `store` PATH of a run store",
                                 parameters=("store",))
            if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
                raise StoreError(f"store {where!r} cannot be read as a directory")
        errors = self.store.database.errors
        try:
            self.sync(force=True)
            queries.count_runs(self.db())
            from mlnb.registry import Registry

            with Registry(self.store) as registry:
                registry.models()
        except errors as exc:
            raise StoreError(f"store {where!r}: cannot read its index ({self.store.database.name}): "
                             f"{str(exc).strip().splitlines()[0]}") from exc
        except StoreError as exc:
            if isinstance(exc.__cause__, errors):  # the store could not open its database
                raise StoreError(f"store {where!r}: cannot read its index ({self.store.database.name}): "
                                 f"{str(exc.__cause__).strip().splitlines()[0]}") from exc
            raise
        except OSError as exc:
            raise StoreError(f"store {where!r} cannot be read: {exc}") from exc

    def warm(self) -> None:
        """Import and compile what the first requests would otherwise wait for."""
        import pyarrow.parquet  # noqa: F401  (table scraps)

        from mlnb.ui.links import Links
        from mlnb.ui.render import environment

        for name in ("runs.html", "run.html", "compare.html", "models.html", "model.html", "version.html",
                     "monitor.html", "error.html"):
            environment().get_template(name)
        _, context = self.runs_page(links=Links())
        if context["items"]:  # and the record's JSON-schema validator that verify compiles
            with contextlib.suppress(MlnbError, OSError):
                self.run_page(context["items"][0]["id"], links=Links())

    def sync_forever(self, interval: float = 2.0) -> threading.Thread:
        """Keep the index up to date from a daemon thread, so no request waits for it."""
        self.sync_mode = "background"

        def loop():
            while True:
                time.sleep(interval)
                with contextlib.suppress(MlnbError, OSError, *self.store.database.errors):
                    self.sync(force=True)

        thread = threading.Thread(target=loop, name="mlnb-ui-sync", daemon=True)
        thread.start()
        return thread

    def sync(self, force: bool = False) -> None:
        """Bring the index up to date with the run directories, at most once a second."""
        if not force and self.sync_mode != "inline" and self._synced_at:
            return
        now = time.monotonic()
        if not force and now - self._synced_at < 1.0:
            return
        with self._sync_lock:
            if force or now - self._synced_at >= 1.0:
                self.store.sync_index()
                self._synced_at = time.monotonic()

    def db(self):
        """This thread's connection to the store's database (opened once per thread)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self.store.connect()
        return db

    def registry(self):
        from mlnb.registry import Registry

        return Registry(self.store)

    def index(self):
        """This thread's connection, the index first brought up to date (see :meth:`sync`)."""
        self.sync()
        return self.db()

    def maps(self) -> dict:
        """Who is whose child, which runs used or produced which version, which run moved
        which alias (:func:`mlnb.ui.queries.maps`), rebuilt when the index or registry grows."""
        db = self.db()
        now = time.monotonic()
        if self._maps_key is not None and (self.sync_mode == "never" or now - self._maps_checked < 1.0):
            return self._maps
        self._maps_checked = now
        key = queries.maps_key(db)
        if key == self._maps_key:
            return self._maps
        with self._maps_lock:
            self._maps = queries.maps(db)
            self._maps_key = key
        return self._maps

    def items(self, ids: list[str]) -> list[dict]:
        """Index rows of these runs, in the order given (unknown ids left out)."""
        if not ids:
            return []
        found = queries.runs_by_id(self.index(), ids)
        return [found[i] for i in ids if i in found]

    def children(self, run_id: str) -> list[dict]:
        return self.items(self.maps()["children"].get(run_id, []))

    def run_item(self, run_id: str) -> dict:
        if not RUN_ID.match(run_id):
            raise NotFound(f"no run {run_id!r} in this store")
        row = queries.run_row(self.index(), run_id)
        if row is None:
            raise NotFound(f"no run {run_id!r} in this store")
        return row

    def run(self, run_id: str):
        if not RUN_ID.match(run_id):
            raise NotFound(f"no run {run_id!r} in this store")
        try:
            # the schema is checked by verify(), whose result every page shows
            return self.store.fetch_run(run_id)
        except (RunNotFound, MlnbError, KeyError) as exc:
            raise NotFound(f"no run {run_id!r} in this store") from exc

    def run_dir(self, run_id: str) -> Path:
        """A local directory with the run's files (a team store's cache, filled first)."""
        from mlnb.store import LocalStore

        if isinstance(self.store, LocalStore):
            return self.store.path / run_id
        return self.run(run_id).path

    def _versions(self, name: str):
        """A model's versions and alias moves (NotFound for a model the store does not have)."""
        from mlnb.registry import validate_name

        try:
            validate_name(name)
        except MlnbError as exc:
            raise NotFound(f"no model {name!r} in this store") from exc
        cached = self._model_cache.get(name) if self.sync_mode == "never" else None
        if cached is not None:
            return cached
        with self.registry() as registry:
            try:
                versions = registry.versions(name)
                events = registry.history(name)
            except ModelNotFound as exc:
                raise NotFound(str(exc)) from exc
        if self.sync_mode == "never":  # an export: the registry as it was when it started
            self._model_cache[name] = (versions, events)
        return versions, events

    # -- derived from a run's files (cached) -------------------------------------------------

    def _signature(self, path: Path) -> tuple:
        sig = []
        for dirpath, _, names in os.walk(path):
            for name in names:
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(dirpath, name))
                    sig.append((dirpath, name, st.st_mtime_ns, st.st_size))
        return tuple(sorted(sig))

    def verify_key(self, run_id: str) -> tuple:
        """What a run's cached verify result is valid for: its files' sizes and times in a
        local store; a minute in a team store, whose objects are read again after it."""
        from mlnb.store import LocalStore

        if isinstance(self.store, LocalStore):
            return (run_id, self._signature(self.store.path / run_id))
        return (run_id, "remote", int(time.time() // 60))

    def verify(self, run_id: str) -> list[records.Problem]:
        """What :func:`mlnb.records.verify` finds for a run (a team store's run read from the
        object store, not the cache), cached by :meth:`verify_key`."""
        from mlnb.store import LocalStore

        if isinstance(self.store, LocalStore):
            path = self.store.path / run_id
            return self._verify.get_or(self.verify_key(run_id), lambda: records.verify(path))
        return self._verify.get_or(self.verify_key(run_id), lambda: self.store.verify(run_id))

    def table_rows(self, run_id: str, artifact: str) -> list[dict] | None:
        """A table scrap as a list of row dicts (pyarrow, no pandas; cached), or None."""
        path = self.run_dir(run_id) / records.ARTIFACTS_DIR / artifact

        def read():
            import pyarrow.parquet as pq

            try:
                return pq.read_table(path).to_pylist()
            except (OSError, ValueError):
                return None

        return self._tables.get_or((run_id, "rows", artifact, self._signature(path.parent)), read)

    def report(self, run_id: str) -> str:
        from mlnb.ui.report import report_html

        run = self.run(run_id)
        return self._reports.get_or((run_id, self._signature(run.path)), lambda: report_html(run.path))

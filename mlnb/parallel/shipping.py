"""Shipping a sweep's files to workers that share no file system with the client.

On a Dask cluster of other hosts the client's paths mean nothing there, and a team store
(run files on an object store, index in PostgreSQL) needs no shared directory either. So
when a sweep runs on a remote scheduler into a team store, :class:`Shipper` (on the client)
turns each task into one that carries its files as content: the template notebook and
every file its parameters name (what a run lists in its record's ``inputs``), each with its
sha256. A file of at most :data:`INLINE_MAX_BYTES` travels inside the task; a larger one is
uploaded once per sweep under the store's staging prefix (``.staging/sweep-<sweep id>/
<sha256>``), fetched once by each worker process, and removed when the sweep ends (what a
client that died leaves there, ``mlnb store gc`` removes).

:func:`execute_shipped` (on the worker) materialises the files in a private temporary
directory, refuses any whose sha256 differs, runs the template there, and commits the
record with an :class:`mlnb.execute.Origin`: the record names the client's template path,
input paths, parameter values and git state, and the same sha256 as the client's files, so
``mlnb runs show`` and ``mlnb runs reproduce`` work from the client.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb import records
from mlnb.exceptions import DataError, MlnbError
from mlnb.store import STAGING, Store

if TYPE_CHECKING:
    from mlnb.params import Template
    from mlnb.parallel.backends import Backend
    from mlnb.parallel.plan import RunTask

#: Files up to this size travel inside each task (through the scheduler); larger ones are
#: staged once in the object store, so the scheduler never carries a large graph.
INLINE_MAX_BYTES = 64 * 1024

#: A worker removes the inputs of other sweeps that no task used for this long.
IDLE_INPUTS_S = 600.0


class ShippingError(MlnbError, OSError):
    """A shipped file could not be materialised on a worker, or arrived changed."""


@dataclass(frozen=True)
class ShippedFile:
    """One file as content: where the worker puts it (relative to the template's directory
    there), its sha256 and size, the client's path, and its bytes or its object-store key."""

    name: str
    sha256: str
    size: int
    source: str
    content: bytes | None = None
    key: str | None = None


@dataclass(frozen=True)
class Shipment:
    """A task's files and what its record names instead of the worker's copies.

    Attributes:
        template: the template notebook (``name`` is its file name).
        files: the input files, ``name`` as the task's parameters give them.
        template_path: the template's path on the client.
        parameters: the client's values of the parameters rewritten to the shipped names.
        paths: shipped name → the client's path, for the record's ``inputs``.
        git: the client's git state of the template's directory.
    """

    template: ShippedFile
    files: tuple[ShippedFile, ...]
    template_path: str
    parameters: dict[str, Any]
    paths: dict[str, str]
    git: dict | None = None


def needed(store: Store, backend: Backend) -> bool:
    """Whether a sweep ships its files: the workers are elsewhere and the store needs no
    shared directory (a team store). A local store on a remote cluster needs the same
    paths on every worker (a shared file system), so its files are read there."""
    from mlnb.store.team import TeamStore

    return not backend.on_this_host and isinstance(store, TeamStore)


def _named_file(item: Any, template: Template) -> Path | None:
    """The file a parameter value names, as a run fingerprints it (relative to the template)."""
    if not isinstance(item, str) or not item or len(item) > 4096:
        return None
    path = Path(item) if os.path.isabs(item) else template.path.parent / item
    return path.resolve() if path.is_file() else None


class Shipper:
    """Turns a sweep's tasks into tasks that carry their files (on the client).

    Each distinct file is read and hashed once per sweep; files over ``inline_max`` bytes
    are uploaded once to the store's staging prefix. Use as a context manager: leaving it
    removes what it uploaded.
    """

    def __init__(self, store: Store, sweep_id: str, inline_max: int = INLINE_MAX_BYTES):
        self.store = store
        self.prefix = f"{store.root}/{STAGING}/sweep-{sweep_id}"
        self.inline_max = inline_max
        self._files: dict[str, tuple[str, int, bytes | None, str | None]] = {}
        self._git: dict[str, dict | None] = {}
        self._uploaded = False

    def __enter__(self) -> "Shipper":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _file(self, path: Path, name: str) -> ShippedFile:
        entry = self._files.get(str(path))
        if entry is None:
            size = path.stat().st_size
            if size <= self.inline_max:
                content = path.read_bytes()
                entry = (hashlib.sha256(content).hexdigest(), len(content), content, None)
            else:
                sha = records.sha256_file(path)
                key = f"{self.prefix}/{sha}"
                # a file that changes after this hash arrives with another: the worker refuses it
                self.store._call(self.store.fs.put_file, str(path), key)
                self._uploaded = True
                entry = (sha, size, None, key)
            self._files[str(path)] = entry
        sha, size, content, key = entry
        return ShippedFile(name=name, sha256=sha, size=size, source=str(path), content=content, key=key)

    def ship(self, task: RunTask, template: Template, final: dict[str, Any]) -> RunTask:
        """``task`` with its files as content (``final``: its parameters as this host sees
        them, from :func:`mlnb.inputs.prepare_parameters`).

        Raises:
            DataError: a parameter names a directory (only files are shipped).
        """
        from mlnb.execute import _git_state

        params = {name: final.get(name, value) for name, value in task.parameters.items()}
        for name in params:
            value = params[name]
            if isinstance(value, str) and os.path.isabs(value) and os.path.isdir(value):
                raise DataError(f"parameter {name!r} names the directory {value!r} on this host; a sweep on a "
                                "remote scheduler ships files to its workers, not directories: give a file")
        files: dict[str, ShippedFile] = {}
        client_values: dict[str, Any] = {}
        for name, value in final.items():
            items = value if isinstance(value, list) else [value]
            shipped = []
            for item in items:
                path = _named_file(item, template)
                if path is None:
                    shipped.append(item)
                    continue
                one = self._file(path, "")
                rel = f"inputs/{one.sha256[:16]}/{path.name}"
                files.setdefault(rel, dataclasses.replace(one, name=rel))
                shipped.append(rel)
            if shipped != items:
                params[name] = shipped if isinstance(value, list) else shipped[0]
                client_values[name] = value
        directory = str(template.path.parent)
        if directory not in self._git:
            self._git[directory] = _git_state(template.path.parent)
        tpl_path = Path(task.template)
        shipment = Shipment(
            template=self._file(tpl_path.resolve(), tpl_path.name),
            files=tuple(files.values()),
            template_path=str(tpl_path),
            parameters=client_values,
            paths={rel: f.source for rel, f in files.items()},
            git=self._git[directory],
        )
        return dataclasses.replace(task, parameters=params, paths_relative_to=None, shipment=shipment)

    def close(self) -> None:
        """Remove the files this sweep staged in the object store."""
        if self._uploaded:
            from mlnb.exceptions import StoreError

            with contextlib.suppress(StoreError, FileNotFoundError):  # gc removes what is left
                self.store._call(self.store.fs.rm, self.prefix, recursive=True)
            self._uploaded = False


# -- on the worker -------------------------------------------------------------------------------

_lock = threading.Lock()
_workdir: Path | None = None
_stores: dict[str, Store] = {}
_inputs_used: dict[Path, tuple[str, float]] = {}
_last_template_dir: Path | None = None


def workdir() -> Path:
    """This worker process's private directory for shipped files (mode 0700, under its
    TMPDIR), removed when the process exits; those of processes that are gone are removed."""
    global _workdir
    with _lock:
        if _workdir is None or not _workdir.is_dir():
            from mlnb.store.local import _pid_alive

            base = Path(tempfile.gettempdir())
            for entry in base.glob("mlnb-worker-*-*"):
                pid = entry.name.split("-")[2]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    shutil.rmtree(entry, ignore_errors=True)
            _workdir = Path(tempfile.mkdtemp(prefix=f"mlnb-worker-{os.getpid()}-", dir=base))
            atexit.register(shutil.rmtree, _workdir, True)
        return _workdir


def _store(location: str) -> Store:
    """The store of this location, opened once per worker process (a team store's file
    system and its database check are made once, for all its runs)."""
    with _lock:
        store = _stores.get(location)
        if store is None:
            store = _stores[location] = Store(location)
        return store


def _materialise(shipped: ShippedFile, target: Path, store: Store) -> None:
    """Write one shipped file at ``target`` (once), refusing content of another sha256."""
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".ship-")
    try:
        if shipped.content is not None:
            with os.fdopen(fd, "wb") as f:
                f.write(shipped.content)
        else:
            os.close(fd)
            try:
                store._call(store.fs.get_file, shipped.key, tmp)
            except FileNotFoundError as exc:
                raise ShippingError(f"{shipped.source!r} is not staged at {store.location}/{shipped.key.split('/', 1)[-1]}"
                                    " any more (removed by 'mlnb store gc'?); run the sweep again") from exc
        found = records.sha256_file(tmp)
        if found != shipped.sha256:
            raise ShippingError(f"{shipped.source!r} arrived with sha256 {found[:12]}…, the client sent "
                                f"{shipped.sha256[:12]}… (changed while the sweep started?)")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _evict(sweep_id: str, now: float) -> None:
    """Remove the inputs of other sweeps that no task used for :data:`IDLE_INPUTS_S`."""
    for path, (owner, used) in list(_inputs_used.items()):
        if owner != sweep_id and now - used > IDLE_INPUTS_S:
            shutil.rmtree(path.parent, ignore_errors=True)
            _inputs_used.pop(path, None)


def execute_shipped(task: RunTask) -> Any:
    """Materialise a shipped task's files, check their hashes, run it, commit it; return the run.

    The template goes to ``<workdir>/<its sha256>/`` (the kernel's directory, the same for
    every run of that template, so warm kernels started ahead are used), its inputs below it
    under the names the task's parameters give them.
    """
    global _last_template_dir
    from mlnb.execute import Origin, run_template
    from mlnb.kernels import close_process_pool, process_pool
    from mlnb.params import load_template

    shipment = task.shipment
    store = _store(task.store)
    template_dir = workdir() / shipment.template.sha256[:16]
    now = time.monotonic()
    _materialise(shipment.template, template_dir / shipment.template.name, store)
    for shipped in shipment.files:
        target = template_dir / shipped.name
        _materialise(shipped, target, store)
        _inputs_used[target] = (task.sweep_id, now)
    _evict(task.sweep_id, now)
    if task.warm and _last_template_dir not in (None, template_dir):
        close_process_pool()  # its kernel started ahead for another template would never be used
    _last_template_dir = template_dir
    tpl = load_template(template_dir / shipment.template.name, name=task.template_name)
    origin = Origin(
        template_path=shipment.template_path,
        parameters=dict(shipment.parameters),
        paths={str((template_dir / rel).resolve()): source for rel, source in shipment.paths.items()},
        git=shipment.git,
    )
    return run_template(
        tpl, task.parameters, store, kernel_name=task.kernel_name, timeout=task.timeout, parent=task.parent,
        tags=task.tags, run_id=task.run_id, paths_relative_to=template_dir,
        kernels=process_pool() if task.warm else None, origin=origin,
    )

"""The prediction log: every prediction a model made, so that labels arriving later can be joined to it.

``mlnb serve`` appends one JSON line per scored row (``"schema": "mlnb.prediction/1"``):
request id, row, time, model name and version, task and target, the prediction, the class
probabilities, the row's features (or only their sha256, ``inputs="hash"``) and that sha256.

- **Several workers, no locks.** Each process writes files of its own,
  ``<store>/predictions/<name>/<host>-<pid>.jsonl``, through one ``O_APPEND`` descriptor,
  one ``write`` per request. No two processes share a file, so lines never interleave and no
  ``flock`` is needed (which also makes the log safe on file systems where ``flock`` is not).
- **Rotation by size.** When a file would pass ``max_bytes`` it is renamed to
  ``<host>-<pid>.<time_ns>.jsonl`` and a new one is started. Only its own process renames a
  file, so rotation never races with a writer.
- **Team stores.** The files are written in this host's cache of the store, as above; the
  server uploads them (:meth:`PredictionLog.files`, see :mod:`mlnb.serve.share`), and
  readers on any host call :func:`synced_log_dir`, which downloads what other hosts uploaded.
- **One table.** :func:`read_log` reads every file of a log directory (or one file) into one
  table sorted by time: ``request_id, row, time, model_name, model_version, task, target,
  prediction, proba_<class>..., inputs_sha256`` and the feature columns. A torn last line
  (a crash during a write) is skipped and counted, never fatal.
- **Batch predictions** (``mlnb predict``, the ``predict`` template) become the same table
  with :func:`from_predict_run`: the request id is the input's ``request_id`` column when it
  kept one, else ``<run id>:<row>``; the time is the input's ``time`` column, else the
  run's start; the features come from the run's input file when it is unchanged.

pandas is imported inside the functions that build tables; the writer needs only the
standard library, so the server pays nothing for it at import.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mlnb.exceptions import DataError, ParameterError, StoreError
from mlnb import records
from mlnb.records import json_lines

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = records.PREDICTION
#: Size at which a process starts a new file (the old one is kept, renamed).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: What a log line holds of the request's inputs: the features and their sha256, or the sha256 only.
INPUT_MODES = ("features", "hash")
#: Columns every prediction table has, in this order (``proba_<class>`` and features follow).
COLUMNS = ("request_id", "row", "time", "model_name", "model_version", "task", "target", "prediction")


def log_dir(store: Any, name: str) -> Path:
    """``<store>/predictions/<name>``: where this host's server writes the prediction log of model ``name``."""
    from mlnb.registry import validate_name

    from mlnb.store import as_store

    store = as_store(store)
    return store.predictions_dir / validate_name(name)


def synced_log_dir(store: Any, name: str) -> Path:
    """:func:`log_dir`, holding every host's files of the log to read (a team store downloads
    what other hosts' servers uploaded and this host lacks; a local store has them all).

    Raises:
        StoreError: the object store cannot be read.
    """
    from mlnb.store import as_store

    store = as_store(store)
    return store.sync_logs(log_dir(store, name))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    item = getattr(value, "item", None)
    return item() if item is not None and type(value).__module__ == "numpy" else value


def inputs_sha256(row: dict, features: tuple[str, ...] | list[str]) -> str:
    """sha256 of one row's feature values as canonical JSON (features in the model's order).

    Two requests with the same feature values get the same hash, whatever else they held,
    so a log that keeps only hashes can still say which rows were the same input.
    """
    payload = json.dumps([row.get(f) for f in features], separators=(",", ":"), ensure_ascii=False,
                         allow_nan=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def entries(request_id: str, received: float, rows: list[dict], *, name: str, version: int, uri: str, task: str,
            target: str | None, features: tuple[str, ...] | list[str], predictions: list,
            probabilities: list | None, classes: list | None, inputs: str = "features") -> list[dict]:
    """The log lines of one answered request: one per row."""
    time_text = _iso(received)
    names = [str(c) for c in classes] if classes is not None else None
    out = []
    for i, row in enumerate(rows):
        entry = {
            "schema": SCHEMA, "request_id": request_id, "row": i, "time": time_text,
            "name": name, "version": version, "uri": uri, "task": task, "target": target,
            "prediction": _plain(predictions[i]),
            "probabilities": dict(zip(names, map(_plain, probabilities[i]))) if probabilities is not None and names
            else None,
            "inputs_sha256": inputs_sha256(row, features),
        }
        if inputs == "features":
            entry["features"] = {f: row.get(f) for f in features}
        out.append(entry)
    return out


class PredictionLog:
    """Appends prediction lines to this process's own file of a log directory.

    Args:
        directory: the log directory (``<store>/predictions/<name>``), created if needed.
        max_bytes: rotate this process's file before it would pass this size.
        inputs: ``"features"`` (the feature values and their sha256) or ``"hash"`` (the sha256 only).

    Raises:
        StoreError: the directory cannot be created or written.
        ParameterError: a bad ``inputs`` or ``max_bytes``.
    """

    def __init__(self, directory: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES, inputs: str = "features"):
        if inputs not in INPUT_MODES:
            raise ParameterError(f"log inputs == {inputs!r}; allowed: {', '.join(INPUT_MODES)}", name="log_inputs")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 4096:
            raise ParameterError(f"max bytes == {max_bytes!r}, must be a whole number >= 4096", name="max_bytes")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.inputs = inputs
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the prediction log {str(self.directory)!r}: {exc.strerror}") from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StoreError(f"cannot write the prediction log {str(self.directory)!r}: permission denied")
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None
        self._size = 0
        self._rotated: list[Path] = []
        self.path: Path | None = None  # this process's current file, once something was written
        #: called (under the writer's lock: keep it short) after a file was rotated
        self.on_rotate: Callable[[], None] | None = None

    def _open(self) -> None:
        # a file per process: opened lazily, so a parent that only checks settings writes nothing,
        # and again after a fork, so a worker never appends to its parent's file
        if self._pid != os.getpid():
            self._rotated = []
        self._pid = os.getpid()
        self.path = self.directory / f"{socket.gethostname()}-{self._pid}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = None
        rotated = self.path.with_name(f"{self.path.stem}.{time.time_ns()}.jsonl")
        os.rename(self.path, rotated)
        self._rotated.append(rotated)
        self._open()
        if self.on_rotate is not None:
            self.on_rotate()

    def files(self) -> list[Path]:
        """The files this process wrote: the current one first, then the rotated ones, newest
        first (uploaded in this order, a reader may miss lines for a moment, never read them twice)."""
        with self._lock:
            if self._pid != os.getpid() or self.path is None:
                return []
            return [self.path, *reversed(self._rotated)]

    def append(self, lines: list[dict]) -> int:
        """Write ``lines`` with one ``write``; return the bytes written."""
        if not lines:
            return 0
        if self.inputs == "hash":  # whatever the caller built, this log keeps no feature values
            lines = [{k: v for k, v in e.items() if k != "features"} for e in lines]
        payload = "".join(
            json.dumps(e, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str) + "\n"
            for e in lines
        ).encode("utf-8")
        with self._lock:
            if self._fd is None or self._pid != os.getpid():
                self._open()
            if self._size and self._size + len(payload) > self.max_bytes:
                self._rotate()
            view = memoryview(payload)
            while view:
                view = view[os.write(self._fd, view):]
            self._size += len(payload)
        return len(payload)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


# -- reading ----------------------------------------------------------------------------------


@dataclass
class PredictionTable:
    """A prediction log read as one table, and what was read to make it."""

    table: "pd.DataFrame"
    features: list[str]
    classes: list[str]
    skipped: int = 0
    files: list[dict] = field(default_factory=list)  # path, sha256, bytes, rows

    @property
    def fingerprint(self) -> dict:
        """One sha256 over every file's sha256 (sorted by path), with the row count."""
        digest = hashlib.sha256("".join(f"{f['path']}:{f['sha256']}\n" for f in self.files).encode()).hexdigest()
        return {"sha256": digest, "files": len(self.files), "rows": int(len(self.table)), "skipped": self.skipped}


def log_files(path: str | os.PathLike) -> list[Path]:
    """The ``.jsonl`` files of a log directory (or the one file ``path`` names), by name."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(q for q in p.glob("*.jsonl") if q.is_file())
    return []


def read_log(path: str | os.PathLike) -> PredictionTable:
    """Read a prediction log directory (or one of its files) into one table sorted by time.

    Each file is read once and hashed from the same bytes, so the fingerprints match what
    was read even while servers append. Lines that are not whole JSON objects of schema
    ``mlnb.prediction/1`` (a line cut by a crash) are skipped and counted.

    Raises:
        DataError: no log files at ``path``.
    """
    import pandas as pd

    files = log_files(path)
    if not files:
        raise DataError(f"no prediction log at {str(path)!r}: no .jsonl files there; 'mlnb serve NAME@ALIAS' writes it")
    flat, features, classes, skipped, read = [], [], [], 0, []
    for file in files:
        data = file.read_bytes()
        n = 0
        entries, torn = json_lines(data, SCHEMA)
        skipped += torn
        for e in entries:
            try:
                row = {"request_id": str(e["request_id"]), "row": int(e["row"]), "time": e["time"],
                       "model_name": e["name"], "model_version": e["version"], "task": e.get("task"),
                       "target": e.get("target"), "prediction": e["prediction"],
                       "inputs_sha256": e.get("inputs_sha256")}
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            for label, p in (e.get("probabilities") or {}).items():
                if label not in classes:
                    classes.append(label)
                row[f"proba_{label}"] = p
            for name, value in (e.get("features") or {}).items():
                if name not in features:
                    features.append(name)
                row[f"feature:{name}"] = value
            flat.append(row)
            n += 1
        read.append({"path": str(file.resolve()), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                     "rows": n})
    classes = sorted(classes)
    columns = [*COLUMNS, *[f"proba_{c}" for c in classes], "inputs_sha256", *[f"feature:{f}" for f in features]]
    table = pd.DataFrame(flat, columns=columns)
    table["time"] = pd.to_datetime(table["time"], utc=True, format="ISO8601")
    table = table.sort_values(["time", "request_id", "row"], kind="stable", ignore_index=True)
    clash = [f for f in features if f in columns]
    if not clash:  # features under their own names, as in the data they came from
        table = table.rename(columns={f"feature:{f}": f for f in features})
    return PredictionTable(table, features, classes, skipped, read)


def from_predict_run(run: Any, features: list[str] | None = None, target: str | None = None) -> PredictionTable:
    """A ``predict`` run's predictions as a prediction table (the shape :func:`read_log` gives).

    Request ids are the input's ``request_id`` column when the run kept it, else
    ``<run id>:<row>``; times are the input's ``time`` column when kept, else the run's start.
    Features (default: the model version's, from the registry of the run's store) come from
    the run's input file when its sha256 still matches the record; when the file is gone or
    changed the table has no feature columns (drift cannot be measured).

    Raises:
        DataError: the run is not a succeeded ``predict`` run.
    """
    import pandas as pd

    from mlnb import records
    from mlnb.data import read_table

    rec = run.record
    scraps = rec.get("scraps") or {}
    if rec["template"]["name"] != "predict" or not run.succeeded or "predictions_artifact" not in scraps:
        raise DataError(f"run {run.id} is not a succeeded run of the predict template; it has no predictions table")
    out = pd.read_parquet(run.artifact(scraps["predictions_artifact"])) if str(
        scraps["predictions_artifact"]).endswith((".parquet", ".pq")) else pd.read_csv(
        run.artifact(scraps["predictions_artifact"]))
    model = scraps.get("model") or {}
    if features is None and model.get("name") and model.get("version"):
        from mlnb.registry import Registry

        with Registry(run.path.parent) as registry:
            version = registry.get(f"{model['name']}/{model['version']}")
        features, target = list(version.features), target or version.target
    started = pd.Timestamp(rec["started"])
    table = pd.DataFrame({
        "request_id": out["request_id"].astype(str) if "request_id" in out else [f"{run.id}:{r}" for r in out["row"]],
        "row": 0 if "request_id" in out else out["row"].astype(int),
        "time": pd.to_datetime(out["time"], utc=True) if "time" in out else started,
        "model_name": out["model_name"].astype(str),
        "model_version": out["model_version"],
        "task": "classification" if any(c.startswith("proba_") for c in out.columns) else "regression",
        "target": target,
        "prediction": out["prediction"],
    })
    classes = [c[len("proba_"):] for c in out.columns if c.startswith("proba_")]
    for c in classes:
        table[f"proba_{c}"] = out[f"proba_{c}"].to_numpy()
    features = list(features or [])
    source = next((i for i in rec.get("inputs") or [] if i.get("parameter") == "data"), None)
    if features and source and Path(source["path"]).is_file() and records.sha256_file(source["path"]) == source["sha256"]:
        data = read_table(source["path"])
        for f in features:
            if f in data and f not in table:
                table[f] = data[f].to_numpy()[out["row"].to_numpy()]
    else:
        features = []
    if "request_id" in out:
        table["row"] = table.groupby("request_id").cumcount()
    table = table.sort_values(["time", "request_id", "row"], kind="stable", ignore_index=True)
    file = run.artifact(scraps["predictions_artifact"])
    return PredictionTable(table, features, sorted(classes), 0,
                           [{"path": str(file), **records.fingerprint(file), "rows": len(table)}])

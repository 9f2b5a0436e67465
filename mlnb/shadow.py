"""The shadow log: what a shadow model answered on the served model's requests, and its analysis.

Writing (the server): each answered request is queued as a :class:`ShadowJob`; a
:class:`ShadowScorer` thread scores the queued jobs in micro-batches (whatever arrived within
``shadow_wait`` seconds, so its CPU cost per request is small) and appends one JSON line per
row to ``<store>/shadow/<served-name>.jsonl`` (:class:`ShadowLog`, one ``O_APPEND`` write per
batch under ``flock``, so several workers never interleave lines). :func:`replay_shadow`
writes the same lines from two fitted models, without a server.

Reading (the ``shadow`` template): :func:`resolve_log` finds a log, :func:`read_shadow_log`
parses it, and :func:`agreement`, :func:`disagreements`, :func:`latency_summary`,
:func:`join_labels` and :func:`shadow_metrics` summarise it.

This module imports no web framework and not the server package (:mod:`mlnb.serve`); the
models it scores are :class:`~mlnb.served.ServedModel` objects, which :func:`replay_shadow`
loads itself. pandas, numpy and pydantic are imported inside the functions that use them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb import records
from mlnb.exceptions import DataError, RegistryError, StoreError

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.serve.metrics import ServeMetrics
    from mlnb.served import ModelSlot, ServedModel

log = logging.getLogger(__name__)

SHADOW_SCHEMA = records.SHADOW
#: Seconds the shadow scorer gathers requests before scoring them in one call.
DEFAULT_SHADOW_WAIT = 0.05
#: Requests waiting for the shadow model beyond this are dropped (and counted), never the
#: response delayed: a shadow that cannot keep up must not take the server's memory.
SHADOW_QUEUE = 10_000


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- writing the shadow log (the server) -----------------------------------------------------------


def shadow_log_path(store, name: str) -> Path:
    """Where this host's server appends the shadow log of served model ``name``:
    ``<store>/shadow/<name>.jsonl``, or for a team store ``<cache>/shadow/<name>/<host>.jsonl``
    (a file per host, uploaded to the object store by the server)."""
    from mlnb.registry import validate_name
    from mlnb.store import as_store

    return as_store(store).shadow_log(validate_name(name))


class ShadowLog:
    """An append-only JSON-lines file; each :meth:`append` is one ``write`` under ``flock``.

    ``O_APPEND`` puts every write at the end of the file, and the exclusive lock keeps the
    writes of several processes (uvicorn workers) whole, so lines never interleave.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        except OSError as exc:
            raise StoreError(f"cannot write the shadow log {str(self.path)!r}: {exc.strerror}") from exc

    def append(self, entries: list[dict]) -> None:
        if not entries:
            return
        lines = (json.dumps(e, separators=(",", ":"), ensure_ascii=False, allow_nan=False) for e in entries)
        payload = "".join(line + "\n" for line in lines).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)  # closing releases the lock


@dataclass
class ShadowJob:
    """One answered request, waiting for the shadow model."""

    request_id: str
    received: float  # epoch seconds
    rows: list[dict]  # validated rows, extra fields included
    primary: ServedModel
    predictions: list
    probabilities: list | None
    latency_ms: float


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    item = getattr(value, "item", None)
    return item() if item is not None and type(value).__module__ == "numpy" else value


def shadow_entries(job: ShadowJob, shadow: ServedModel | None, predictions: list | None,
                   probabilities: list | None, latency_ms: float | None, batch_rows: int,
                   error: str | None = None, batch: str | None = None) -> list[dict]:
    """The log lines of one job: one per row, with both models' answers and latencies.

    ``batch`` names the shadow scoring call (``<pid>-<n>``) that the row was part of.
    """
    primary = job.primary
    keep = list(primary.features) + [f for f in (shadow.features if shadow else ()) if f not in primary.features]
    classes = primary.scorer.classes
    shadow_classes = shadow.scorer.classes if shadow else None
    time_text = _iso(job.received)
    lines = []
    for i, row in enumerate(job.rows):
        entry = {
            "schema": SHADOW_SCHEMA,
            "request_id": job.request_id,
            "row": i,
            "time": time_text,
            "features": {f: row[f] for f in keep if f in row},
            "primary": {
                "name": primary.name, "version": primary.version, "uri": primary.uri, "target": primary.target,
                "task": primary.task, "prediction": _jsonable(job.predictions[i]),
                "probabilities": dict(zip(map(str, classes), map(_jsonable, job.probabilities[i])))
                if job.probabilities is not None else None,
                "latency_ms": round(job.latency_ms, 4), "rows": len(job.rows),
            },
            "shadow": {
                "name": shadow.name if shadow else None, "version": shadow.version if shadow else None,
                "uri": shadow.uri if shadow else None,
                "prediction": _jsonable(predictions[i]) if predictions is not None else None,
                "probabilities": dict(zip(map(str, shadow_classes), map(_jsonable, probabilities[i])))
                if probabilities is not None and shadow_classes else None,
                "latency_ms": round(latency_ms, 4) if latency_ms is not None else None,
                "batch": batch, "batch_rows": batch_rows, "error": error,
            },
        }
        lines.append(entry)
    return lines


class ShadowScorer(threading.Thread):
    """Scores answered requests with the shadow model, off the response path, and logs both.

    The thread takes the first waiting job, gathers whatever else arrives within ``wait``
    seconds (at most ``max_rows`` rows), checks each job's rows against the shadow version's
    features, scores the valid ones in one call, and appends one line per row.
    """

    def __init__(self, slot: ModelSlot, shadow_log: ShadowLog, metrics: ServeMetrics | None = None,
                 wait: float = DEFAULT_SHADOW_WAIT, max_rows: int = 1024, max_queue: int = SHADOW_QUEUE):
        super().__init__(name="mlnb-shadow", daemon=True)
        self.slot = slot
        self.log = shadow_log
        self.metrics = metrics
        self.wait = wait
        self.max_rows = max_rows
        self.queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._sentinel = object()
        self._calls = 0

    def submit(self, job: ShadowJob) -> bool:
        """Queue a job without waiting; False (and counted) when the queue is full."""
        try:
            self.queue.put_nowait(job)
            return True
        except queue.Full:
            if self.metrics:
                self.metrics.shadow_rows.labels("dropped").inc(len(job.rows))
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """Score what is queued, then end the thread."""
        self.queue.put(self._sentinel)
        self.join(timeout)

    def run(self) -> None:
        from mlnb.served import _limit_threads

        limiter = _limit_threads()  # OpenMP settings are per thread: this one needs its own
        try:
            self._loop()
        finally:
            limiter.restore_original_limits()

    def _loop(self) -> None:
        done = False
        while not done:
            first = self.queue.get()
            if first is self._sentinel:
                break
            jobs, rows = [first], len(first.rows)
            deadline = time.monotonic() + self.wait
            while rows < self.max_rows:
                remaining = deadline - time.monotonic()
                try:
                    job = self.queue.get(timeout=remaining) if remaining > 0 else self.queue.get_nowait()
                except queue.Empty:
                    break
                if job is self._sentinel:
                    done = True
                    break
                jobs.append(job)
                rows += len(job.rows)
            try:
                self.score(jobs)
            except Exception:  # the shadow must never take the server down; the log says why
                log.exception("shadow scoring failed for %d requests", len(jobs))

    def score(self, jobs: list[ShadowJob]) -> list[dict]:
        """Score jobs with the current shadow version and append their lines; return them."""
        from pydantic import ValidationError

        shadow = self.slot.current
        valid: list[ShadowJob] = []
        entries: list[dict] = []
        for job in jobs:
            try:  # the shadow version may need features, or types, that the served one does not
                shadow.request_model.model_validate({"rows": job.rows})
                valid.append(job)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"][1:]) or "row"
                entries += shadow_entries(job, shadow, None, None, None, 0, f"{where}: {first['msg']}")
        n_rows = sum(len(j.rows) for j in valid)
        if valid:
            self._calls += 1
            batch = f"{os.getpid()}-{self._calls}"
            frame = shadow.frame([row for job in valid for row in job.rows])
            t0 = time.perf_counter()
            try:
                scores = shadow.scorer(frame)
                error = None
            except Exception as exc:  # a model failure is the shadow's problem, logged per row
                scores, error = None, f"{type(exc).__name__}: {exc}"
            latency_ms = (time.perf_counter() - t0) * 1000
            start = 0
            for job in valid:
                end = start + len(job.rows)
                if scores is None:
                    entries += shadow_entries(job, shadow, None, None, latency_ms, n_rows, error, batch)
                else:
                    entries += shadow_entries(
                        job, shadow, scores.predictions[start:end].tolist(),
                        scores.probabilities[start:end].tolist() if scores.probabilities is not None else None,
                        latency_ms, n_rows, batch=batch,
                    )
                start = end
            if self.metrics:
                self.metrics.shadow_latency.observe(latency_ms / 1000)
        self.log.append(entries)
        if self.metrics:
            errors = sum(1 for e in entries if e["shadow"]["error"])
            self.metrics.shadow_rows.labels("scored").inc(len(entries) - errors)
            if errors:
                self.metrics.shadow_rows.labels("error").inc(errors)
        return entries


# -- reading the shadow log (the shadow template) ------------------------------------------------


def resolve_log(log: str, store=None) -> Path:
    """The shadow log a ``log`` parameter names: a path to a file, or a served model's name
    (for a team store: the directory of every host's file of it, downloaded first).

    Raises:
        DataError: naming where it looked.
    """
    candidate = Path(log).expanduser()
    if candidate.suffix == ".jsonl" or os.sep in log or candidate.is_file():
        if not candidate.is_file():
            raise DataError(f"no shadow log at {str(candidate)!r}")
        return candidate
    from mlnb.predlog import log_files
    from mlnb.store import as_store

    store = as_store(store)
    try:
        path = shadow_log_path(store, log)
    except RegistryError as exc:
        raise DataError(f"log {log!r} is neither a .jsonl file nor a model name: {exc}") from None
    if path.parent != store.shadow_dir:  # a file per host (team store): every host's files, read as one log
        path = store.sync_logs(path.parent)
    if not log_files(path):
        raise DataError(
            f"no shadow log for model {log!r} at {str(path)!r}; 'mlnb serve {log}@ALIAS --shadow URI' writes it"
        )
    return path


@dataclass
class ShadowRecords:
    """A parsed shadow log: one row per scored request row, and the lines that were skipped."""

    table: pd.DataFrame
    features: list[str]
    skipped: int
    sha256: str
    bytes: int


def read_shadow_log(path: str | os.PathLike) -> ShadowRecords:
    """Read a shadow log (a file, or a directory of files, one per host, read as one) into a
    table: request_id, row, time, ``feature.*`` columns, and for ``primary`` and ``shadow``:
    name, version, prediction, probabilities, latency_ms, plus primary_rows, shadow_batch
    (the scoring call), shadow_batch_rows and shadow_error.

    Each file is read once and hashed from the same bytes (the sha256 is over the files'
    bytes in name order), so the fingerprint matches what was analysed even while a server
    appends. Lines that are not whole JSON objects of schema ``mlnb.shadow/1`` (say, a last
    line cut by a crash) are skipped and counted.
    """
    import hashlib

    import pandas as pd

    from mlnb.predlog import log_files
    from mlnb.records import json_lines

    flat, features, entries, skipped, size = [], [], [], 0, 0
    digest = hashlib.sha256()
    files = log_files(path) if Path(path).is_dir() else [Path(path)]
    for file in files:
        data = file.read_bytes()  # FileNotFoundError for a file that is not there, as before
        digest.update(data)
        size += len(data)
        parsed, torn = json_lines(data, SHADOW_SCHEMA)  # file by file: a torn last line stays one line
        entries += parsed
        skipped += torn
    for entry in entries:
        try:
            p, s = entry["primary"], entry["shadow"]
        except KeyError:
            skipped += 1
            continue
        row = {"request_id": entry["request_id"], "row": entry["row"], "time": entry["time"]}
        for name, value in (entry.get("features") or {}).items():
            if name not in features:
                features.append(name)
            row[f"feature.{name}"] = value
        for role, part in (("primary", p), ("shadow", s)):
            for key in ("name", "version", "prediction", "probabilities", "latency_ms"):
                row[f"{role}_{key}"] = part.get(key)
        row.update(primary_rows=p.get("rows"), target=p.get("target"), task=p.get("task"),
                   shadow_batch=s.get("batch"), shadow_batch_rows=s.get("batch_rows"), shadow_error=s.get("error"))
        flat.append(row)
    columns = ["request_id", "row", "time", *[f"feature.{f}" for f in features],
               *[f"{r}_{k}" for r in ("primary", "shadow") for k in ("name", "version", "prediction", "probabilities",
                                                                      "latency_ms")],
               "primary_rows", "target", "task", "shadow_batch", "shadow_batch_rows", "shadow_error"]
    table = pd.DataFrame(flat, columns=columns)
    if len(table):
        table["time"] = pd.to_datetime(table["time"], utc=True)
    if len(files) > 1:  # several hosts' lines: in time order, as one file's are
        table = table.sort_values("time", kind="stable", ignore_index=True)
    return ShadowRecords(table, features, skipped, digest.hexdigest(), size)


def version_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Rows per (primary version, shadow version) pair, with first and last time seen."""
    import pandas as pd

    if table.empty:
        return pd.DataFrame(columns=["primary", "shadow", "rows", "first", "last"])
    keyed = table.assign(
        primary=table["primary_name"] + "/" + table["primary_version"].astype(str),
        shadow=table["shadow_name"].fillna("?") + "/" + table["shadow_version"].astype("Int64").astype(str),
    )
    grouped = keyed.groupby(["primary", "shadow"], sort=False)
    out = grouped.agg(rows=("row", "size"), first=("time", "min"), last=("time", "max")).reset_index()
    return out.sort_values("last", ignore_index=True)


def latest_pair(table: pd.DataFrame) -> pd.DataFrame:
    """The rows answered by the newest (primary version, shadow version) pair."""
    if table.empty:
        return table
    last = table.sort_values("time").iloc[-1]
    mask = (table["primary_name"] == last["primary_name"]) & (table["primary_version"] == last["primary_version"])
    mask &= (table["shadow_name"] == last["shadow_name"]) & (table["shadow_version"] == last["shadow_version"])
    return table[mask]


def _same(a, b, task: str, tolerance: float):
    import numpy as np

    if task == "regression":
        return np.abs(a.astype(float) - b.astype(float)) <= tolerance
    return a.astype(str) == b.astype(str)


def agreement(table: pd.DataFrame, tolerance: float = 0.0) -> dict:
    """How often the shadow model agreed with the served one, over rows both scored.

    Classifiers agree when they predict the same class; regressors when their predictions
    differ by at most ``tolerance``.

    Returns:
        ``{"rows", "compared", "shadow_errors", "agreement"}`` (agreement None when nothing
        was compared).
    """
    scored = table[table["shadow_error"].isna() & table["shadow_prediction"].notna()]
    task = table["task"].iloc[0] if len(table) else "classification"
    agree = _same(scored["primary_prediction"], scored["shadow_prediction"], task, tolerance) if len(scored) else []
    return {
        "rows": int(len(table)),
        "compared": int(len(scored)),
        "shadow_errors": int(table["shadow_error"].notna().sum()),
        "agreement": float(agree.mean()) if len(scored) else None,
    }


def disagreements(table: pd.DataFrame, features: list[str], n: int = 20, tolerance: float = 0.0) -> pd.DataFrame:
    """Up to ``n`` rows where the two models disagreed, newest first: features and both answers."""
    scored = table[table["shadow_error"].isna() & table["shadow_prediction"].notna()]
    if scored.empty:
        return scored[["request_id", "row"]]
    task = scored["task"].iloc[0]
    differ = scored[~_same(scored["primary_prediction"], scored["shadow_prediction"], task, tolerance)]
    cols = ["time", "request_id", "row", *[f"feature.{f}" for f in features], "primary_prediction", "shadow_prediction"]
    out = differ.sort_values("time", ascending=False).head(n)[cols]
    return out.rename(columns={f"feature.{f}": f for f in features}).reset_index(drop=True)


def latency_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Latency percentiles (ms) of each model's scoring calls, and rows per call.

    The served model is timed per request; the shadow model per micro-batch (one call for
    several requests), so its per-call figures cover ``rows per call`` rows: compare the
    per-row column too.
    """
    import numpy as np
    import pandas as pd

    rows = []
    for role, size in (("primary", "primary_rows"), ("shadow", "shadow_batch_rows")):
        calls = table.dropna(subset=[f"{role}_latency_ms"])
        if role == "primary":
            calls = calls.drop_duplicates("request_id")
        else:
            calls = calls.drop_duplicates("shadow_batch")
        ms = calls[f"{role}_latency_ms"].to_numpy(dtype=float)
        per_call = calls[size].to_numpy(dtype=float) if len(calls) else np.array([])
        q = np.percentile(ms, [50, 90, 99]) if len(ms) else [np.nan] * 3
        rows.append({
            "model": role, "calls": int(len(ms)), "p50_ms": q[0], "p90_ms": q[1], "p99_ms": q[2],
            "max_ms": float(ms.max()) if len(ms) else np.nan,
            "rows_per_call": float(per_call.mean()) if len(per_call) else np.nan,
            "p50_ms_per_row": float(np.percentile(ms / np.maximum(per_call, 1), 50)) if len(ms) else np.nan,
        })
    return pd.DataFrame(rows)


def join_labels(table: pd.DataFrame, labels: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Logged rows that have a label: ``labels`` holds ``request_id``, optionally ``row``
    (default 0), and ``label_column``.

    Raises:
        DataError: the labels lack ``request_id`` or the label column.
    """
    missing = [c for c in ("request_id", label_column) if c not in labels.columns]
    if missing:
        raise DataError(
            f"labels lack column(s) {', '.join(map(repr, missing))}; they need request_id, optionally row, "
            f"and the label column; they have: {', '.join(map(str, labels.columns))}"
        )
    keyed = labels[["request_id", label_column] + (["row"] if "row" in labels.columns else [])].copy()
    if "row" not in keyed.columns:
        keyed["row"] = 0
    keyed["request_id"] = keyed["request_id"].astype(str)
    keyed = keyed.rename(columns={label_column: "label"}).drop_duplicates(["request_id", "row"], keep="last")
    return table.merge(keyed, on=["request_id", "row"], how="inner")


def shadow_metrics(labelled: pd.DataFrame) -> dict:
    """Each model's metrics on the labelled rows it scored: ``{"primary": {...}, "shadow": {...}}``.

    Classifiers get accuracy, macro precision/recall/F1 and ROC AUC (from the logged
    probabilities) where defined; regressors r2, mae and rmse. Each model's dict also says
    which version(s) and how many rows.
    """
    import numpy as np

    from mlnb import metrics as m

    out = {}
    if labelled.empty:
        return out
    task = labelled["task"].iloc[0]
    for role in ("primary", "shadow"):
        rows = labelled[labelled[f"{role}_prediction"].notna()]
        if role == "shadow":
            rows = rows[rows["shadow_error"].isna()]
        if rows.empty:
            continue
        y = rows["label"]
        pred = rows[f"{role}_prediction"]
        if task == "regression":
            scores = m.regression_metrics(y.astype(float), pred.astype(float))
        else:
            proba = rows[f"{role}_probabilities"]
            classes = sorted(proba.iloc[0]) if proba.notna().all() and len(proba) else None
            matrix = np.array([[p[c] for c in classes] for p in proba]) if classes else None
            scores = m.classification_metrics(y.astype(str), pred.astype(str), matrix, classes)
        versions = sorted({f"{n}/{v}" for n, v in zip(rows[f"{role}_name"], rows[f"{role}_version"])})
        out[role] = {"model": ", ".join(versions), "rows": int(len(rows)), **scores}
    return out

def replay_shadow(primary_model, shadow_model, df: pd.DataFrame, features: list[str], path: str | os.PathLike, *,
                  primary_name: str = "primary", shadow_name: str = "shadow", target: str | None = None,
                  start: float | None = None) -> Path:
    """Write a shadow log by scoring ``df`` one row per request with two fitted models.

    The lines are built by the same code as the server's, with the same timings (the
    primary per request, the shadow per call); request ids are ``replay-<row>``; an
    existing file at ``path`` is replaced. The
    ``shadow`` template uses it to show its report on example data when no server has
    written a log yet.
    """
    from mlnb.metrics import task_of
    from mlnb.predict import Scorer, feature_kinds
    from mlnb.served import ModelSlot, ServedModel, _limit_threads, request_model

    def served(model, name):
        kinds = feature_kinds(model, features)
        return ServedModel(uri=f"{name}/1", name=name, version=1, run_id="replay", sha256="", task=task_of(model),
                           target=target, features=tuple(features), kinds=kinds, scorer=Scorer(model),
                           request_model=request_model(name, 1, features, kinds))

    first, second = served(primary_model, primary_name), served(shadow_model, shadow_name)
    Path(path).unlink(missing_ok=True)  # a replay is a log of its own, not appended to another
    out = ShadowLog(path)
    slot = ModelSlot("shadow", second)
    shadow = ShadowScorer(slot, out, wait=0)
    t = time.time() if start is None else start
    requests = df[features].to_dict("records")
    with _limit_threads():
        for i, row in enumerate(requests):
            X = first.frame([row])
            t0 = time.perf_counter()
            scores = first.scorer(X)
            ms = (time.perf_counter() - t0) * 1000
            job = ShadowJob(f"replay-{i}", t + i, [row], first, scores.predictions.tolist(),
                            scores.probabilities.tolist() if scores.probabilities is not None else None, ms)
            shadow.score([job])
    return Path(path)

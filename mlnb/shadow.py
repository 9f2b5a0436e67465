"""Online serving: a FastAPI app that scores JSON rows with a registered model.

``mlnb serve NAME@ALIAS`` runs :func:`create_app` with uvicorn (:func:`serve`):

- ``POST /predict`` takes ``{"rows": [{feature: value, ...}, ...]}``. The request schema is
  built from the served version's features (numeric → number, categorical → text; every
  feature required, ``null`` refused), so a missing or mistyped field is a 422 whose
  ``loc`` names it. Fields that are not features are **ignored**, not refused: clients may
  send whole records (ids, dates), and a promotion to a version that uses fewer features
  must not break them. Every response names the version that answered (body and
  ``X-Model-Version``) and a request id (``X-Request-Id``, the client's if it sent one).
- ``GET /health`` says which versions serve and when the registry was last read;
  ``GET /metrics`` is Prometheus text; ``/openapi.json`` and ``/docs`` describe the API with
  the served version's request schema.
- **Registry following**: a :class:`RegistryFollower` thread reads the registry every
  ``poll_interval`` seconds (two indexed SQLite reads). When the served alias points at
  another version it loads that version (sha256 checked, skops with trusted types only)
  off the request path and replaces the slot's :class:`ServedModel` in one assignment.
  A request reads the slot once, so it is scored, validated and labelled by one version
  from start to end: no request in flight fails or mixes versions. A version that fails to
  load is logged and counted, and the previous one keeps serving.
- **Shadow**: with a shadow URI, each request's rows are queued after the response is
  computed; a :class:`ShadowScorer` thread scores them in micro-batches (whatever arrived
  within ``shadow_wait`` seconds, so its CPU cost per request is small) and appends one
  JSON line per row to ``<store>/shadow/<served-name>.jsonl`` (:class:`ShadowLog`, one
  ``O_APPEND`` write per batch under ``flock``, so several workers never interleave
  lines). The ``shadow`` template reads the log (:func:`read_shadow_log` and the summaries
  below it).

fastapi, pydantic, prometheus_client and uvicorn are imported inside the functions that use
them, so the ``shadow`` template can import this module for the log functions cheaply. (No
``from __future__ import annotations`` here: FastAPI reads the handlers' annotations.)
"""

import contextlib
import fcntl
import json
import logging
import math
import os
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mlnb import records
from mlnb.exceptions import DataError, MlnbError, ParameterError, RegistryError, StoreError

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.predict import Scorer

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Seconds between two reads of the registry's alias table.
DEFAULT_POLL_INTERVAL = 1.0
#: Most rows one request may hold (a larger request is a 422).
DEFAULT_MAX_ROWS = 10_000
#: Seconds the shadow scorer gathers requests before scoring them in one call.
DEFAULT_SHADOW_WAIT = 0.05
#: Requests of at most this many rows are scored on the event loop (a thread hop costs more
#: than scoring them); larger ones in the thread pool, so /health stays responsive.
INLINE_ROWS = 64
#: Requests waiting for the shadow model beyond this are dropped (and counted), never the
#: response delayed: a shadow that cannot keep up must not take the server's memory.
SHADOW_QUEUE = 10_000
#: Seconds before a version that failed to load (a tampered artifact) is tried again.
RETRY_FAILED_LOAD = 30.0
SHADOW_SCHEMA = records.SHADOW
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Environment variables that configure :func:`app_from_env` (uvicorn/gunicorn workers).
ENV = {
    "uri": "MLNB_SERVE_MODEL",
    "shadow": "MLNB_SERVE_SHADOW",
    "store": "MLNB_STORE",
    "poll_interval": "MLNB_SERVE_POLL_INTERVAL",
    "max_rows": "MLNB_SERVE_MAX_ROWS",
    "shadow_log": "MLNB_SERVE_SHADOW_LOG",
    "shadow_wait": "MLNB_SERVE_SHADOW_WAIT",
    "prediction_log": "MLNB_SERVE_PREDICTION_LOG",
    "log_inputs": "MLNB_SERVE_LOG_INPUTS",
}
#: ``prediction_log`` value that turns the prediction log off.
NO_PREDICTION_LOG = "off"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the served model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """One loaded version, with what serving it needs. Never mutated: a move replaces it."""

    uri: str  # as asked: weather@production
    name: str
    version: int
    run_id: str
    sha256: str
    task: str
    target: str | None
    features: tuple[str, ...]
    kinds: dict
    scorer: "Scorer"
    request_model: Any  # pydantic model of the request body, built from the features
    loaded_at: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"

    def info(self) -> dict:
        """What responses and /health say about this version."""
        return {"uri": self.uri, "name": self.name, "version": self.version, "run_id": self.run_id}

    def frame(self, rows: list) -> "pd.DataFrame":
        """The feature table of validated rows (pydantic objects or dicts keyed by feature)."""
        import pandas as pd

        if rows and isinstance(rows[0], dict):
            columns = {f: [r[f] for r in rows] for f in self.features}
        else:
            columns = {f: [getattr(r, f"f{i}") for r in rows] for i, f in enumerate(self.features)}
        return pd.DataFrame(columns, columns=list(self.features))


_KIND_HELP = {
    "numeric": "a number",
    "categorical": "a text value",
    "boolean": "true or false",
    "any": "a number, text or boolean",
}


def request_model(name: str, version: int, features: list[str], kinds: dict, max_rows: int = DEFAULT_MAX_ROWS):
    """The pydantic model of ``{"rows": [...]}`` for one version's features.

    Fields are strict (``"1.5"`` is not a number, ``1`` is not a text), required and not
    nullable; numbers must be finite. Field names are the features themselves (aliases, so
    any column name works), so validation errors name them. Extra fields are allowed and
    ignored by the model (they are kept for the shadow model, which may need them).
    """
    from pydantic import ConfigDict, Field, StrictBool, StrictFloat, StrictStr, create_model

    types = {
        "numeric": float,
        "categorical": StrictStr,
        "boolean": StrictBool,
        "any": StrictFloat | StrictStr | StrictBool,
    }
    fields = {
        f"f{i}": (types[kinds[f]], Field(alias=f, description=f"{_KIND_HELP[kinds[f]]} ({kinds[f]} feature)"))
        for i, f in enumerate(features)
    }
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "model"
    row = create_model(
        f"Row_{slug}_v{version}",
        __config__=ConfigDict(extra="allow", strict=True, allow_inf_nan=False, populate_by_name=False),
        **fields,
    )
    row.__doc__ = f"One row of features for {name}/{version}; fields that are not features are ignored."
    body = create_model(
        f"PredictRequest_{slug}_v{version}",
        __config__=ConfigDict(extra="ignore"),
        rows=(list[row], Field(min_length=1, max_length=max_rows, description="rows to score, at most " f"{max_rows}")),
    )
    body.__doc__ = f"Rows to score with {name}/{version}."
    return body


def load_served(registry, uri: str, version: int | None = None, max_rows: int = DEFAULT_MAX_ROWS) -> ServedModel:
    """Load what ``uri`` points at now (or its ``version``): verified, typed, ready to score.

    Raises:
        ModelNotFound, RegistryError, ArtifactTampered, UntrustedModel: as the registry does.
    """
    from mlnb.metrics import task_of
    from mlnb.predict import Scorer, feature_kinds

    mv = registry.get(uri if version is None else f"{registry_name(uri)}/{version}")
    model = registry.load_version(mv)
    features = list(mv.features)
    if not features:
        raise RegistryError(f"{mv.uri} lists no features; mlnb serve needs them to check requests")
    kinds = feature_kinds(model, features)
    task = mv.task or task_of(model)
    scorer = Scorer(model, task)
    warm_up(scorer, features)
    return ServedModel(
        uri=uri, name=mv.name, version=mv.version, run_id=mv.run_id, sha256=mv.sha256, task=task,
        target=mv.target, features=tuple(features), kinds=kinds, scorer=scorer,
        request_model=request_model(mv.name, mv.version, features, kinds, max_rows),
    )


def warm_up(scorer: "Scorer", features: list[str]) -> None:
    """Score one row of missing values, so the first request does not pay for lazy imports
    and first-call set-up (hundreds of milliseconds). mlnb's pipelines impute every missing
    value; a model that refuses the row is simply not warmed up."""
    import pandas as pd

    try:
        scorer(pd.DataFrame({f: [None] for f in features}, dtype=object))
    except Exception as exc:  # only an optimisation: any failure here is harmless
        log.debug("warm-up of %s skipped: %s", features, exc)


def registry_name(uri: str) -> str:
    from mlnb.registry import parse_uri

    return parse_uri(uri).name


class ModelSlot:
    """The version that one URI serves now. ``current`` is replaced whole, never mutated."""

    def __init__(self, role: str, served: ServedModel):
        self.role = role
        self.uri = served.uri
        self.current = served
        self.failed_version: int | None = None  # the version that failed to load (retried now and then)
        self.failed_at = 0.0
        self.unreadable = False  # the registry could not be read at the last poll


# -- following the registry -----------------------------------------------------------------------


class RegistryFollower(threading.Thread):
    """Polls the registry and swaps a slot's model when its URI points at another version.

    Args:
        store: the store whose registry to read (the thread opens its own connection).
        slots: the slots to keep current.
        interval: seconds between polls.
        on_switch: called with ``(slot, old, new)`` after a swap.
        on_error: called with ``(slot, version, exception)`` when a version fails to load.
        max_rows: passed to :func:`load_served`.
    """

    def __init__(self, store, slots: list[ModelSlot], interval: float = DEFAULT_POLL_INTERVAL,
                 on_switch: Callable | None = None, on_error: Callable | None = None,
                 max_rows: int = DEFAULT_MAX_ROWS):
        super().__init__(name="mlnb-registry-follower", daemon=True)
        self.store = store
        self.slots = slots
        self.interval = interval
        self.on_switch = on_switch
        self.on_error = on_error
        self.max_rows = max_rows
        self.last_check: float | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        from mlnb.registry import Registry

        with Registry(self.store) as registry:
            while not self._stop_event.wait(self.interval):
                self.check(registry)

    def check(self, registry) -> list[tuple[ModelSlot, ServedModel, ServedModel]]:
        """Read every slot's URI once; load and swap the ones that moved. Returns the swaps."""
        import sqlite3

        switched = []
        for slot in self.slots:
            try:
                _, version = registry.resolve(slot.uri)
            except (MlnbError, sqlite3.Error) as exc:
                if not slot.unreadable:  # once per outage, not once per poll
                    log.warning("cannot read %s from the registry (%s); still serving %s", slot.uri, exc,
                                slot.current.label)
                slot.unreadable = True
                continue
            if slot.unreadable:
                log.info("%s is readable in the registry again", slot.uri)
                slot.unreadable = False
            if version == slot.current.version:
                slot.failed_version = None
                continue
            old = slot.current
            if version == slot.failed_version and time.monotonic() - slot.failed_at < RETRY_FAILED_LOAD:
                continue
            try:
                new = load_served(registry, slot.uri, version, self.max_rows)
            except (MlnbError, OSError, sqlite3.Error) as exc:
                if slot.failed_version != version:
                    log.error("%s now points at version %d, which cannot be loaded: %s; still serving %s",
                              slot.uri, version, exc, old.label)
                    if self.on_error:
                        self.on_error(slot, version, exc)
                slot.failed_version, slot.failed_at = version, time.monotonic()
                continue
            slot.current = new  # one assignment: requests already running keep `old`
            slot.failed_version = None
            log.info("%s %s moved: now serving %s (was %s)", slot.role, slot.uri, new.label, old.label)
            if self.on_switch:
                self.on_switch(slot, old, new)
            switched.append((slot, old, new))
        self.last_check = time.time()
        return switched


# -- metrics ---------------------------------------------------------------------------------------

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServeMetrics:
    """Prometheus metrics of one app, in a registry of its own.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (several workers), prometheus_client keeps the
    values in files of that directory and :meth:`exposition` merges every worker's.
    """

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mlnb_predict_requests", "POST /predict requests by HTTP status.", ["code"], registry=r)
        self.errors = Counter("mlnb_predict_errors",
                              "Failed /predict requests: invalid_input (422) or server_error (500).", ["kind"],
                              registry=r)
        self.latency = Histogram("mlnb_predict_latency_seconds", "Time to answer POST /predict (validation, scoring, "
                                 "encoding), seconds.", registry=r, buckets=_LATENCY_BUCKETS)
        self.rows = Counter("mlnb_predicted_rows", "Rows scored by the served model.", ["name", "version"], registry=r)
        self.predictions = Counter("mlnb_predictions", "Predictions by class (regressors: class=\"-\").",
                                   ["name", "version", "class"], registry=r)
        self.version = Gauge("mlnb_served_version", "Version each role serves (primary, shadow).",
                             ["role", "uri", "name"], registry=r, multiprocess_mode="all")
        self.switches = Counter("mlnb_model_switches", "Times a followed alias moved and the new version took over.",
                                ["role"], registry=r)
        self.load_errors = Counter("mlnb_model_load_errors", "Versions that could not be loaded after a move.",
                                   ["role"], registry=r)
        self.shadow_rows = Counter("mlnb_shadow_rows", "Rows handled by the shadow model: scored, error, dropped.",
                                   ["outcome"], registry=r)
        self.shadow_latency = Histogram("mlnb_shadow_latency_seconds",
                                        "Time of one shadow scoring call (a micro-batch).", registry=r,
                                        buckets=_LATENCY_BUCKETS)
        self.logged = Counter("mlnb_prediction_log_rows", "Rows written to the prediction log: written, error.",
                              ["outcome"], registry=r)
        if not self.multiprocess:
            r.register(ClassShares(self.predictions.collect))
        self.extra: list = []  # collectors added to every exposition (the monitor's gauges)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            files = multiprocess.MultiProcessCollector(merged)
            merged.register(ClassShares(files.collect))
            for collector in self.extra:
                merged.register(collector)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        if not self.extra:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        combined = CollectorRegistry(auto_describe=False)
        for collector in (self.registry, *self.extra):
            combined.register(collector)
        return generate_latest(combined), CONTENT_TYPE_LATEST

    def served(self, role: str, served: ServedModel) -> None:
        self.version.labels(role, served.uri, served.name).set(served.version)


class ClassShares:
    """``mlnb_class_share{name, version, class}``: each class's share of a version's predictions.

    Computed at scrape time from ``mlnb_predictions_total`` (read through ``source``, the
    counter's own ``collect`` or the multiprocess collector's), so it needs no state of its
    own and covers every worker. Shares since the server started; for a recent window,
    divide rates in PromQL (the Grafana dashboard does).
    """

    def __init__(self, source: Callable):
        self.source = source

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        counts: dict[tuple[str, str], dict[str, float]] = {}
        for family in self.source():
            if family.name != "mlnb_predictions":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["name"], sample.labels["version"])
                    per_class = counts.setdefault(key, {})
                    per_class[sample.labels["class"]] = per_class.get(sample.labels["class"], 0.0) + sample.value
        share = GaugeMetricFamily("mlnb_class_share", "Share of each class in a version's predictions since start.",
                                  labels=["name", "version", "class"])
        for (name, version), per_class in counts.items():
            total = sum(per_class.values())
            for label, n in per_class.items():
                if total > 0:
                    share.add_metric([name, version, label], n / total)
        yield share


# -- the shadow log --------------------------------------------------------------------------------


def shadow_log_path(store, name: str) -> Path:
    """``<store>/shadow/<name>.jsonl``: where the shadow log of served model ``name`` goes."""
    from mlnb.registry import validate_name

    from mlnb.store import as_store

    store = as_store(store)
    return store.shadow_dir / f"{validate_name(name)}.jsonl"


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


# -- the app ---------------------------------------------------------------------------------------


@dataclass
class ServeSettings:
    """Everything :func:`create_app` needs; also read from the environment (:data:`ENV`)."""

    uri: str
    shadow: str | None = None
    store: str | None = None
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_rows: int = DEFAULT_MAX_ROWS
    shadow_log: str | None = None
    shadow_wait: float = DEFAULT_SHADOW_WAIT
    prediction_log: str | None = None  # a directory; None: <store>/predictions/<name>; "off": no log
    log_inputs: str = "features"  # what the prediction log keeps of the inputs: "features" or "hash"

    def __post_init__(self):
        if not (isinstance(self.poll_interval, (int, float)) and self.poll_interval > 0):
            raise ParameterError(f"poll interval == {self.poll_interval!r}, must be > 0 seconds", name="poll_interval")
        if not (isinstance(self.max_rows, int) and self.max_rows >= 1):
            raise ParameterError(f"max rows == {self.max_rows!r}, must be a whole number >= 1", name="max_rows")
        if not (isinstance(self.shadow_wait, (int, float)) and self.shadow_wait >= 0):
            raise ParameterError(f"shadow wait == {self.shadow_wait!r}, must be >= 0 seconds", name="shadow_wait")
        from mlnb.predlog import INPUT_MODES

        if self.log_inputs not in INPUT_MODES:
            raise ParameterError(f"log inputs == {self.log_inputs!r}; allowed: {', '.join(INPUT_MODES)}",
                                 name="log_inputs")

    def to_env(self) -> dict[str, str]:
        out = {}
        for key, var in ENV.items():
            value = getattr(self, key)
            if value is not None:
                out[var] = str(value)
        return out

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "ServeSettings":
        env = os.environ if environ is None else environ
        if not env.get(ENV["uri"]):
            raise ParameterError(f"{ENV['uri']} is not set; set it to the model URI to serve (weather@production)",
                                 name="uri")
        kwargs: dict[str, Any] = {}
        casts = {"poll_interval": float, "max_rows": int, "shadow_wait": float}
        for key, var in ENV.items():
            text = env.get(var)
            if text:
                try:
                    kwargs[key] = casts.get(key, str)(text)
                except ValueError:
                    raise ParameterError(f"{var}={text!r} is not a {casts[key].__name__}", name=key) from None
        return cls(**kwargs)


def _limit_threads() -> Any:
    """One OpenMP thread for the calling thread: single requests gain nothing from more, and
    the threads would fight the shadow thread and other workers for the cores."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().limit(limits=1, user_api="openmp")


def _safe_errors(errors: list[dict]) -> list[dict]:
    """Validation errors as JSON: ``loc`` under ``body``; inputs only when they are plain JSON."""
    out = []
    for e in errors:
        item = {"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]}
        value = e.get("input")
        if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
            item["input"] = value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
        out.append(item)
    return out


def _non_finite_rows(scores) -> list[int]:
    """Rows whose prediction or probabilities are NaN or infinite (JSON cannot carry them)."""
    import numpy as np

    bad = np.zeros(len(scores.predictions), dtype=bool)
    if scores.predictions.dtype.kind == "f":
        bad |= ~np.isfinite(scores.predictions)
    if scores.probabilities is not None:
        bad |= ~np.isfinite(scores.probabilities).all(axis=1)
    return np.flatnonzero(bad).tolist()


def create_app(settings: ServeSettings | str, **options):
    """The FastAPI app serving ``settings.uri`` (and a shadow), loaded and ready.

    Args:
        settings: a :class:`ServeSettings`, or the URI (then ``options`` are its fields).

    The models are loaded here, so a bad URI or artifact raises before any server starts;
    the registry follower and the shadow scorer start with the app (its lifespan).

    Raises:
        ModelNotFound, RegistryError, ArtifactTampered, UntrustedModel, StoreError, ParameterError.
    """
    from fastapi import FastAPI, Request
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse, Response
    from pydantic import ValidationError
    from fastapi.concurrency import run_in_threadpool

    from mlnb.registry import Registry
    from mlnb.store import Store

    if isinstance(settings, str):
        settings = ServeSettings(settings, **options)
    store = Store(settings.store)
    with Registry(store) as registry:
        primary = ModelSlot("primary", load_served(registry, settings.uri, max_rows=settings.max_rows))
        shadow = (
            ModelSlot("shadow", load_served(registry, settings.shadow, max_rows=settings.max_rows))
            if settings.shadow else None
        )
    metrics = ServeMetrics()
    metrics.served("primary", primary.current)
    scorer_thread: ShadowScorer | None = None
    shadow_path = None
    if shadow is not None:
        metrics.served("shadow", shadow.current)
        shadow_path = Path(settings.shadow_log) if settings.shadow_log else shadow_log_path(store, primary.current.name)
        scorer_thread = ShadowScorer(shadow, ShadowLog(shadow_path), metrics, wait=settings.shadow_wait)

    prediction_log = None
    if settings.prediction_log != NO_PREDICTION_LOG:
        from mlnb.monitor import MonitorCollector
        from mlnb.predlog import PredictionLog, log_dir

        prediction_log = PredictionLog(settings.prediction_log or log_dir(store, primary.current.name),
                                       inputs=settings.log_inputs)
        metrics.extra.append(MonitorCollector(store.path, primary.current.name))

    def on_switch(slot, old, new):
        metrics.switches.labels(slot.role).inc()
        metrics.served(slot.role, new)

    follower = RegistryFollower(
        store, [s for s in (primary, shadow) if s is not None], settings.poll_interval, on_switch,
        lambda slot, version, exc: metrics.load_errors.labels(slot.role).inc(), settings.max_rows,
    )
    started = time.time()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        limiter = _limit_threads()
        follower.start()
        if scorer_thread is not None:
            scorer_thread.start()
        log.info("serving %s (%s)%s; following the registry every %.3g s", primary.current.label, settings.uri,
                 f", shadow {shadow.current.label} ({settings.shadow}) logged to {shadow_path}" if shadow else "",
                 settings.poll_interval)
        try:
            yield
        finally:
            follower.stop()
            if scorer_thread is not None:
                scorer_thread.stop()
            if prediction_log is not None:
                prediction_log.close()
            limiter.restore_original_limits()
            if metrics.multiprocess:
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(
        title="mlnb model server",
        version="1",
        description=(
            "Scores rows with a model from the mlnb registry. Every answer names the model version "
            "that produced it; the served alias is followed, so a promotion or rollback takes effect "
            "within seconds, without a restart."
        ),
        lifespan=lifespan,
    )
    app.state.primary, app.state.shadow, app.state.metrics = primary, shadow, metrics
    app.state.follower, app.state.shadow_scorer, app.state.settings = follower, scorer_thread, settings
    app.state.prediction_log = prediction_log

    from pydantic import BaseModel, Field

    class ModelInfo(BaseModel):
        uri: str = Field(description="the URI the server was asked to serve")
        name: str
        version: int = Field(description="the version that produced these predictions")
        run_id: str = Field(description="the training run of that version")

    class Prediction(BaseModel):
        prediction: Any = Field(description="model.predict for the row: a class label or a number")
        probabilities: dict[str, float] | None = Field(None, description="classifiers: probability of each class")

    class PredictResponse(BaseModel):
        model: ModelInfo
        request_id: str
        predictions: list[Prediction] = Field(description="one per row, in the order of the rows")

    class HealthResponse(BaseModel):
        status: str
        model: ModelInfo
        shadow: ModelInfo | None
        registry_checked_s_ago: float | None
        poll_interval_s: float
        uptime_s: float
        pid: int

    def respond(content: dict, status: int, served: ServedModel | None, request_id: str) -> Response:
        headers = {"X-Request-Id": request_id}
        if served is not None:
            headers["X-Model-Name"] = served.name
            headers["X-Model-Version"] = str(served.version)
        return JSONResponse(content, status_code=status, headers=headers)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        summary="Score rows with the served model version",
        responses={422: {"description": "A row lacks a feature or has a value of the wrong type; `loc` names it."}},
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
    )
    async def predict(request: Request):
        t0 = time.perf_counter()
        served = primary.current  # read once: this request is answered by this version only
        given = request.headers.get("x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        body = await request.body()
        try:
            parsed = served.request_model.model_validate_json(body)
        except ValidationError as exc:
            metrics.requests.labels("422").inc()
            metrics.errors.labels("invalid_input").inc()
            metrics.latency.observe(time.perf_counter() - t0)
            return respond({"detail": _safe_errors(exc.errors(include_url=False))}, 422, served, request_id)
        rows = parsed.rows
        try:
            frame = served.frame(rows)
            s0 = time.perf_counter()
            scores = served.scorer(frame) if len(rows) <= INLINE_ROWS else await run_in_threadpool(served.scorer, frame)
            score_ms = (time.perf_counter() - s0) * 1000
            unusable = _non_finite_rows(scores)
            if unusable:  # e.g. 1e308 overflowing a linear model: the client's values, named by row
                metrics.requests.labels("422").inc()
                metrics.errors.labels("invalid_input").inc()
                metrics.latency.observe(time.perf_counter() - t0)
                detail = [{"type": "value_out_of_range", "loc": ["body", "rows", i],
                           "msg": f"{served.label} gives no finite answer for this row: a value is outside "
                                  "the range the model can handle"} for i in unusable[:20]]
                return respond({"detail": detail}, 422, served, request_id)
            predictions = scores.predictions.tolist()
            probabilities = scores.probabilities.tolist() if scores.probabilities is not None else None
        except Exception as exc:  # a model that fails on valid input: a 500 that says so, counted
            log.exception("%s failed on request %s", served.label, request_id)
            metrics.requests.labels("500").inc()
            metrics.errors.labels("server_error").inc()
            metrics.latency.observe(time.perf_counter() - t0)
            return respond({"detail": f"{served.label} failed to score the rows: {type(exc).__name__}: {exc}"},
                           500, served, request_id)
        if probabilities is not None:
            classes = [str(c) for c in scores.classes]
            out = [{"prediction": p, "probabilities": dict(zip(classes, pr))}
                   for p, pr in zip(predictions, probabilities)]
        else:
            out = [{"prediction": p} for p in predictions]
        response = respond({"model": served.info(), "request_id": request_id, "predictions": out}, 200, served,
                           request_id)
        received = time.time()
        dumped = [r.model_dump(by_alias=True) for r in rows] if scorer_thread is not None or prediction_log is not None else None
        if prediction_log is not None:
            write_prediction_log(prediction_log, metrics, request_id, received, dumped, served, predictions,
                                 probabilities)
        if scorer_thread is not None:
            scorer_thread.submit(ShadowJob(request_id, received, dumped, served, predictions, probabilities, score_ms))
        version = str(served.version)
        metrics.rows.labels(served.name, version).inc(len(rows))
        if served.task == "classification":
            counts: dict = {}
            for p in predictions:
                counts[p] = counts.get(p, 0) + 1
            for label, n in counts.items():
                metrics.predictions.labels(served.name, version, str(label)).inc(n)
        else:
            metrics.predictions.labels(served.name, version, "-").inc(len(predictions))
        metrics.requests.labels("200").inc()
        metrics.latency.observe(time.perf_counter() - t0)
        return response

    @app.get("/health", response_model=HealthResponse, summary="Which versions serve, and how fresh that is")
    def health():
        checked = follower.last_check
        return {
            "status": "ok",
            "model": primary.current.info(),
            "shadow": shadow.current.info() if shadow else None,
            "registry_checked_s_ago": round(time.time() - checked, 3) if checked else None,
            "poll_interval_s": settings.poll_interval,
            "uptime_s": round(time.time() - started, 3),
            "pid": os.getpid(),
        }

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    def prometheus_metrics():
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    schema_cache: dict = {}

    def openapi() -> dict:
        served = primary.current
        if served.label not in schema_cache:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            body = served.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components[body["title"]] = body
            request_body = schema["paths"]["/predict"]["post"]["requestBody"]
            request_body["content"]["application/json"]["schema"] = {"$ref": f"#/components/schemas/{body['title']}"}
            request_body["description"] = (
                f"Rows of {served.label}'s features ({', '.join(served.features)}); numbers for numeric features, "
                "text for categorical ones. Every feature is required; other fields are ignored."
            )
            schema_cache.clear()
            schema_cache[served.label] = schema
        return schema_cache[served.label]

    app.openapi = openapi
    return app


def write_prediction_log(prediction_log, metrics: ServeMetrics, request_id: str, received: float, rows: list[dict],
                         served: ServedModel, predictions: list, probabilities: list | None) -> None:
    """Append one answered request to the prediction log; a failing disk is counted, never a failed answer."""
    from mlnb.predlog import entries

    try:
        lines = entries(request_id, received, rows, name=served.name, version=served.version, uri=served.uri,
                        task=served.task, target=served.target, features=served.features, predictions=predictions,
                        probabilities=probabilities, classes=served.scorer.classes, inputs=prediction_log.inputs)
        prediction_log.append(lines)
        metrics.logged.labels("written").inc(len(lines))
    except (OSError, ValueError, TypeError) as exc:
        metrics.logged.labels("error").inc(len(rows))
        log.error("cannot write request %s to the prediction log %s: %s", request_id, prediction_log.directory, exc)


def app_from_env():
    """The app configured by environment variables (:data:`ENV`), for uvicorn/gunicorn workers.

    ``uvicorn --factory mlnb.serve:app_from_env`` and ``gunicorn 'mlnb.serve:app_from_env()'``
    start it; ``mlnb serve --workers N`` does the same for you.
    """
    return create_app(ServeSettings.from_env())


def log_config(level: str = "info") -> dict:
    """uvicorn's logging configuration with mlnb's own messages (model switches) added."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlnb"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def serve(
    uri: str,
    *,
    shadow: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    store: str | os.PathLike | None = None,
    workers: int = 1,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    max_rows: int = DEFAULT_MAX_ROWS,
    shadow_log: str | os.PathLike | None = None,
    shadow_wait: float = DEFAULT_SHADOW_WAIT,
    prediction_log: str | os.PathLike | None = None,
    log_inputs: str | None = None,
    access_log: bool = True,
    log_level: str = "info",
) -> None:
    """Serve ``uri`` over HTTP with uvicorn until interrupted (``mlnb serve``).

    The models are loaded first, in this process, so a bad URI or a tampered artifact is an
    error before anything listens. With ``workers`` > 1, uvicorn starts that many processes
    (each loads the models, follows the registry and appends to the same shadow log); their
    metrics are merged through prometheus_client's multiprocess mode, in
    ``PROMETHEUS_MULTIPROC_DIR`` or a temporary directory removed at exit. Every answered
    row goes to the prediction log (``prediction_log``, default ``<store>/predictions/<name>``,
    ``"off"`` for none; ``log_inputs`` ``"features"`` or ``"hash"``; also read from
    ``MLNB_SERVE_PREDICTION_LOG`` and ``MLNB_SERVE_LOG_INPUTS``).

    Raises:
        ModelNotFound, RegistryError, ArtifactTampered, StoreError, ParameterError: before serving.
    """
    import shutil
    import tempfile

    import uvicorn

    if not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers == {workers!r}, must be a whole number >= 1", name="workers")
    # One OpenMP thread per thread of every worker, unless the user says otherwise: set before
    # scikit-learn loads OpenMP, it holds for the shadow thread and the thread pool too. On a
    # busy machine OpenMP's spinning threads made one single-row request 20 times slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from mlnb.store import Store

    store_path = str(Store(store).path.resolve())
    prediction_log = prediction_log or os.environ.get(ENV["prediction_log"]) or None
    settings = ServeSettings(uri, shadow, store_path, poll_interval, max_rows,
                             str(shadow_log) if shadow_log else None, shadow_wait,
                             str(prediction_log) if prediction_log else None,
                             log_inputs or os.environ.get(ENV["log_inputs"]) or "features")
    options = {"host": host, "port": port, "access_log": access_log, "log_config": log_config(log_level),
               "log_level": log_level}
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    create_app(settings)  # check the URIs and artifacts here, before any worker starts
    os.environ.update(settings.to_env())
    temporary = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        temporary = tempfile.mkdtemp(prefix="mlnb-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = temporary
    try:
        uvicorn.run("mlnb.serve:app_from_env", factory=True, workers=workers, **options)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


# -- reading the shadow log (the shadow template) ------------------------------------------------


def resolve_log(log: str, store=None) -> Path:
    """The shadow log a ``log`` parameter names: a path to a file, or a served model's name.

    Raises:
        DataError: naming where it looked.
    """
    candidate = Path(log).expanduser()
    if candidate.suffix == ".jsonl" or os.sep in log or candidate.is_file():
        if not candidate.is_file():
            raise DataError(f"no shadow log at {str(candidate)!r}")
        return candidate
    try:
        path = shadow_log_path(store, log)
    except RegistryError as exc:
        raise DataError(f"log {log!r} is neither a .jsonl file nor a model name: {exc}") from None
    if not path.is_file():
        raise DataError(
            f"no shadow log for model {log!r} at {str(path)!r}; 'mlnb serve {log}@ALIAS --shadow URI' writes it"
        )
    return path


@dataclass
class ShadowRecords:
    """A parsed shadow log: one row per scored request row, and the lines that were skipped."""

    table: "pd.DataFrame"
    features: list[str]
    skipped: int
    sha256: str
    bytes: int


def read_shadow_log(path: str | os.PathLike) -> ShadowRecords:
    """Read a shadow log into a table: request_id, row, time, ``feature.*`` columns, and for
    ``primary`` and ``shadow``: name, version, prediction, probabilities, latency_ms, plus
    primary_rows, shadow_batch (the scoring call), shadow_batch_rows and shadow_error.

    The file is read once and hashed from the same bytes, so the fingerprint matches what
    was analysed even while a server appends. Lines that are not whole JSON objects of
    schema ``mlnb.shadow/1`` (say, a last line cut by a crash) are skipped and counted.
    """
    from mlnb.records import json_lines, sha256_bytes

    import pandas as pd

    data = Path(path).read_bytes()
    flat, features = [], []
    entries, skipped = json_lines(data, SHADOW_SCHEMA)
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
    return ShadowRecords(table, features, skipped, sha256_bytes(data), len(data))


def version_pairs(table: "pd.DataFrame") -> "pd.DataFrame":
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


def latest_pair(table: "pd.DataFrame") -> "pd.DataFrame":
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


def agreement(table: "pd.DataFrame", tolerance: float = 0.0) -> dict:
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


def disagreements(table: "pd.DataFrame", features: list[str], n: int = 20, tolerance: float = 0.0) -> "pd.DataFrame":
    """Up to ``n`` rows where the two models disagreed, newest first: features and both answers."""
    scored = table[table["shadow_error"].isna() & table["shadow_prediction"].notna()]
    if scored.empty:
        return scored[["request_id", "row"]]
    task = scored["task"].iloc[0]
    differ = scored[~_same(scored["primary_prediction"], scored["shadow_prediction"], task, tolerance)]
    cols = ["time", "request_id", "row", *[f"feature.{f}" for f in features], "primary_prediction", "shadow_prediction"]
    out = differ.sort_values("time", ascending=False).head(n)[cols]
    return out.rename(columns={f"feature.{f}": f for f in features}).reset_index(drop=True)


def latency_summary(table: "pd.DataFrame") -> "pd.DataFrame":
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


def join_labels(table: "pd.DataFrame", labels: "pd.DataFrame", label_column: str) -> "pd.DataFrame":
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


def shadow_metrics(labelled: "pd.DataFrame") -> dict:
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


def replay_shadow(primary_model, shadow_model, df: "pd.DataFrame", features: list[str], path: str | os.PathLike, *,
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
    records = df[features].to_dict("records")
    with _limit_threads():
        for i, row in enumerate(records):
            X = first.frame([row])
            t0 = time.perf_counter()
            scores = first.scorer(X)
            ms = (time.perf_counter() - t0) * 1000
            job = ShadowJob(f"replay-{i}", t + i, [row], first, scores.predictions.tolist(),
                            scores.probabilities.tolist() if scores.probabilities is not None else None, ms)
            shadow.score([job])
    return Path(path)

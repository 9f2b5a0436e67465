"""The FastAPI app: ``POST /predict``, ``GET /health``, ``GET /metrics`` and ``/openapi.json``.

:func:`create_app` loads the served version (and a shadow) into :class:`Serving`, the state
every handler reads from ``app.state.serving``; the registry follower and the shadow scorer
start and stop with the app (its lifespan). A request reads the primary slot once, so one
version validates, scores and labels it. Every answer, whatever its status, is counted once
(:meth:`~mlnb.serve.metrics.ServeMetrics.answered`).

This module imports fastapi and pydantic at its top: :mod:`mlnb.serve` loads it only when
an app is built. (No ``from __future__ import annotations`` here: FastAPI reads the
handlers' annotations.)
"""

import contextlib
import logging
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from mlnb.guard import RequestGuard, read_token
from mlnb.serve.follow import RegistryFollower
from mlnb.serve.metrics import ServeMetrics
from mlnb.served import ModelSlot, ServedModel, _limit_threads, load_served
from mlnb.serve.process import NO_PREDICTION_LOG, ServeSettings
from mlnb.shadow import ShadowJob, ShadowLog, ShadowScorer, shadow_log_path

log = logging.getLogger(__name__)

#: Requests of at most this many rows are scored on the event loop (a thread hop costs more
#: than scoring them); larger ones in the thread pool, so /health stays responsive.
INLINE_ROWS = 64
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DESCRIPTION = (
    "Scores rows with a model from the mlnb registry. Every answer names the model version "
    "that produced it; the served alias is followed, so a promotion or rollback takes effect "
    "within seconds, without a restart."
)


# -- response models (the OpenAPI document) ---------------------------------------------------------


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


# -- what an app serves with --------------------------------------------------------------------------


@dataclass
class Serving:
    """One app's state: its slots, the threads that keep them current and log, its metrics."""

    settings: ServeSettings
    primary: ModelSlot
    shadow: ModelSlot | None
    metrics: ServeMetrics
    follower: RegistryFollower
    shadow_scorer: ShadowScorer | None
    shadow_path: Path | None
    prediction_log: Any  # a mlnb.predlog.PredictionLog, or None
    log_sharer: Any = None  # a team store's mlnb.serve.share.LogSharer, or None
    started: float = field(default_factory=time.time)


def _load_slots(registry, settings: ServeSettings) -> tuple[ModelSlot, ModelSlot | None]:
    primary = ModelSlot("primary", load_served(registry, settings.uri, max_rows=settings.max_rows))
    if not settings.shadow:
        return primary, None
    return primary, ModelSlot("shadow", load_served(registry, settings.shadow, max_rows=settings.max_rows))


def _prediction_log(store, settings: ServeSettings, name: str, metrics: ServeMetrics):
    """The prediction log of served model ``name`` (None when turned off); its monitor's gauges join /metrics."""
    if settings.prediction_log == NO_PREDICTION_LOG:
        return None
    from mlnb.monitor import MonitorCollector
    from mlnb.predlog import PredictionLog, log_dir

    prediction_log = PredictionLog(settings.prediction_log or log_dir(store, name), inputs=settings.log_inputs)
    metrics.extra.append(MonitorCollector(store.path, name))
    return prediction_log


def _serving(settings: ServeSettings) -> Serving:
    """Load the models and set up the threads and logs (nothing starts yet)."""
    from mlnb.registry import Registry
    from mlnb.store import Store

    store = Store(settings.store)
    with Registry(store) as registry:
        primary, shadow = _load_slots(registry, settings)
    metrics = ServeMetrics()
    metrics.served("primary", primary.current)
    scorer_thread, shadow_path = None, None
    if shadow is not None:
        metrics.served("shadow", shadow.current)
        shadow_path = Path(settings.shadow_log) if settings.shadow_log else shadow_log_path(store, primary.current.name)
        scorer_thread = ShadowScorer(shadow, ShadowLog(shadow_path), metrics, wait=settings.shadow_wait)
    prediction_log = _prediction_log(store, settings, primary.current.name, metrics)
    sharer = _log_sharer(store, settings, prediction_log, shadow_path)

    def on_switch(slot, old, new):
        metrics.switches.labels(slot.role).inc()
        metrics.served(slot.role, new)

    follower = RegistryFollower(
        store, [s for s in (primary, shadow) if s is not None], settings.poll_interval, on_switch,
        lambda slot, version, exc: metrics.load_errors.labels(slot.role).inc(), settings.max_rows,
    )
    return Serving(settings, primary, shadow, metrics, follower, scorer_thread, shadow_path, prediction_log, sharer)


def _log_sharer(store, settings: ServeSettings, prediction_log, shadow_path: Path | None):
    """For a team store, the thread that uploads this process's logs (None for a local store:
    its logs are where every reader looks already)."""
    sources = [prediction_log.files] if prediction_log is not None else []
    if shadow_path is not None:
        sources.append(lambda: [shadow_path])
    if not store.remote or not sources:
        return None
    from mlnb.serve.share import LogSharer

    sharer = LogSharer(store, sources, settings.log_share_interval)
    if prediction_log is not None:
        prediction_log.on_rotate = sharer.wake
    return sharer


@contextlib.asynccontextmanager
async def _lifespan(app):
    """Follow the registry and score the shadow while the app runs; close the logs after."""
    serving: Serving = app.state.serving
    primary, shadow, settings = serving.primary, serving.shadow, serving.settings
    limiter = _limit_threads()
    serving.follower.start()
    if serving.shadow_scorer is not None:
        serving.shadow_scorer.start()
    if serving.log_sharer is not None:
        serving.log_sharer.start()
    log.info("serving %s (%s)%s; following the registry every %.3g s", primary.current.label, settings.uri,
             f", shadow {shadow.current.label} ({settings.shadow}) logged to {serving.shadow_path}" if shadow else "",
             settings.poll_interval)
    try:
        yield
    finally:
        serving.follower.stop()
        if serving.shadow_scorer is not None:
            serving.shadow_scorer.stop()
        if serving.prediction_log is not None:
            serving.prediction_log.close()
        if serving.log_sharer is not None:  # after the writers stopped: their last lines go too
            serving.log_sharer.stop()
        limiter.restore_original_limits()
        if serving.metrics.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


# -- POST /predict -----------------------------------------------------------------------------------


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


def _respond(content: dict, status: int, served: ServedModel | None, request_id: str) -> Response:
    headers = {"X-Request-Id": request_id}
    if served is not None:
        headers["X-Model-Name"] = served.name
        headers["X-Model-Version"] = str(served.version)
    return JSONResponse(content, status_code=status, headers=headers)


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


def _after_answer(serving: Serving, request_id: str, served: ServedModel, rows: list, predictions: list,
                  probabilities: list | None, score_ms: float) -> None:
    """What follows a 200: the prediction log, the shadow queue, the prediction counters."""
    received = time.time()
    logged = serving.shadow_scorer is not None or serving.prediction_log is not None
    dumped = [r.model_dump(by_alias=True) for r in rows] if logged else None
    if serving.prediction_log is not None:
        write_prediction_log(serving.prediction_log, serving.metrics, request_id, received, dumped, served,
                             predictions, probabilities)
    if serving.shadow_scorer is not None:
        serving.shadow_scorer.submit(ShadowJob(request_id, received, dumped, served, predictions, probabilities,
                                               score_ms))
    serving.metrics.predicted(served, predictions)


async def _answer(serving: Serving, request: Request) -> Response:
    """Validate, score and answer one request with the version the slot holds now."""
    served = serving.primary.current  # read once: this request is answered by this version only
    given = request.headers.get("x-request-id")
    request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
    body = await request.body()
    try:
        parsed = served.request_model.model_validate_json(body)
    except ValidationError as exc:
        return _respond({"detail": _safe_errors(exc.errors(include_url=False))}, 422, served, request_id)
    rows = parsed.rows
    try:
        frame = served.frame(rows)
        s0 = time.perf_counter()
        scores = served.scorer(frame) if len(rows) <= INLINE_ROWS else await run_in_threadpool(served.scorer, frame)
        score_ms = (time.perf_counter() - s0) * 1000
        unusable = _non_finite_rows(scores)
        if unusable:  # e.g. 1e308 overflowing a linear model: the client's values, named by row
            detail = [{"type": "value_out_of_range", "loc": ["body", "rows", i],
                       "msg": f"{served.label} gives no finite answer for this row: a value is outside "
                              "the range the model can handle"} for i in unusable[:20]]
            return _respond({"detail": detail}, 422, served, request_id)
        predictions = scores.predictions.tolist()
        probabilities = scores.probabilities.tolist() if scores.probabilities is not None else None
    except Exception as exc:  # a model that fails on valid input: a 500 that says so, counted
        log.exception("%s failed on request %s", served.label, request_id)
        return _respond({"detail": f"{served.label} failed to score the rows: {type(exc).__name__}: {exc}"},
                        500, served, request_id)
    if probabilities is not None:
        classes = [str(c) for c in scores.classes]
        out = [{"prediction": p, "probabilities": dict(zip(classes, pr))} for p, pr in zip(predictions, probabilities)]
    else:
        out = [{"prediction": p} for p in predictions]
    response = _respond({"model": served.info(), "request_id": request_id, "predictions": out}, 200, served,
                        request_id)
    _after_answer(serving, request_id, served, rows, predictions, probabilities, score_ms)
    return response


# -- the routes ---------------------------------------------------------------------------------------

routes = APIRouter()


@routes.post(
    "/predict",
    response_model=PredictResponse,
    summary="Score rows with the served model version",
    responses={422: {"description": "A row lacks a feature or has a value of the wrong type; `loc` names it."}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
async def predict(request: Request):
    t0 = time.perf_counter()
    serving: Serving = request.app.state.serving
    response = await _answer(serving, request)
    serving.metrics.answered(response.status_code, t0)
    return response


@routes.get("/health", response_model=HealthResponse, summary="Which versions serve, and how fresh that is")
def health(request: Request):
    serving: Serving = request.app.state.serving
    checked = serving.follower.last_check
    return {
        "status": "ok",
        "model": serving.primary.current.info(),
        "shadow": serving.shadow.current.info() if serving.shadow else None,
        "registry_checked_s_ago": round(time.time() - checked, 3) if checked else None,
        "poll_interval_s": serving.settings.poll_interval,
        "uptime_s": round(time.time() - serving.started, 3),
        "pid": os.getpid(),
    }


@routes.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def prometheus_metrics(request: Request):
    body, content_type = request.app.state.serving.metrics.exposition()
    return Response(body, media_type=content_type)


def _openapi(app: FastAPI) -> Callable[[], dict]:
    """``app.openapi``: the document with the request schema of the version served now (cached per version)."""
    cache: dict = {}

    def openapi() -> dict:
        served = app.state.serving.primary.current
        if served.label not in cache:
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
            cache.clear()
            cache[served.label] = schema
        return cache[served.label]

    return openapi


def create_app(settings: ServeSettings | str, **options) -> FastAPI:
    """The FastAPI app serving ``settings.uri`` (and a shadow), loaded and ready.

    Args:
        settings: a :class:`ServeSettings`, or the URI (then ``options`` are its fields).

    The models are loaded here, so a bad URI or artifact raises before any server starts;
    the registry follower and the shadow scorer start with the app (its lifespan).

    Raises:
        ModelNotFound, RegistryError, ArtifactTampered, UntrustedModel, StoreError, ParameterError.
    """
    if isinstance(settings, str):
        settings = ServeSettings(settings, **options)
    token = read_token(settings.token_file)  # a bad token file is refused before the models load
    serving = _serving(settings)
    app = FastAPI(title="mlnb model server", version="1", description=DESCRIPTION, lifespan=_lifespan)
    app.state.serving = serving
    app.state.primary, app.state.shadow, app.state.metrics = serving.primary, serving.shadow, serving.metrics
    app.state.follower, app.state.shadow_scorer, app.state.settings = serving.follower, serving.shadow_scorer, settings
    app.state.prediction_log = serving.prediction_log
    app.include_router(routes)
    app.openapi = _openapi(app)
    # outermost of the app's own layers: a body too large or a request without the token is
    # answered before any handler reads it; /health stays open for load balancers' probes
    app.add_middleware(RequestGuard, max_bytes=settings.max_request_bytes,
                       token=token, open_paths=("/health",))
    return app

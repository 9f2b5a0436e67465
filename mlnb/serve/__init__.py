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
- **Registry following** (:mod:`mlnb.serve.follow`): a promotion or rollback swaps the
  served version within ``poll_interval`` seconds, and no request in flight fails or
  mixes versions.
- **Shadow**: with a shadow URI, each request's rows are scored by the shadow model off the
  response path and logged (:mod:`mlnb.shadow`, which the ``shadow`` template reads).

Modules: :mod:`~mlnb.served` (the served model, request schema),
:mod:`~mlnb.serve.follow` (following the registry), :mod:`~mlnb.serve.metrics`
(Prometheus), :mod:`~mlnb.serve.app` (the FastAPI app), :mod:`~mlnb.serve.process`
(settings, uvicorn workers). Importing this package imports neither fastapi nor pydantic:
:mod:`mlnb.serve.app` loads when one of its names is first used. The shadow log's names are
re-exported here for older imports; new code imports them from :mod:`mlnb.shadow`.
"""

from mlnb.serve.follow import DEFAULT_POLL_INTERVAL, RETRY_FAILED_LOAD, RegistryFollower
from mlnb.serve.metrics import ClassShares, ServeMetrics
from mlnb.served import DEFAULT_MAX_ROWS, ModelSlot, ServedModel, load_served, registry_name, request_model, warm_up
from mlnb.serve.process import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ENV,
    NO_PREDICTION_LOG,
    ServeSettings,
    app_from_env,
    log_config,
    serve,
)
from mlnb.shadow import (
    DEFAULT_SHADOW_WAIT,
    SHADOW_QUEUE,
    SHADOW_SCHEMA,
    ShadowJob,
    ShadowLog,
    ShadowRecords,
    ShadowScorer,
    agreement,
    disagreements,
    join_labels,
    latency_summary,
    latest_pair,
    read_shadow_log,
    replay_shadow,
    resolve_log,
    shadow_entries,
    shadow_log_path,
    shadow_metrics,
    version_pairs,
)

#: Names of :mod:`mlnb.serve.app`, imported on first use (it imports fastapi and pydantic).
_APP_NAMES = ("create_app", "write_prediction_log", "Serving", "INLINE_ROWS")

__all__ = [
    "DEFAULT_HOST", "DEFAULT_MAX_ROWS", "DEFAULT_POLL_INTERVAL", "DEFAULT_PORT", "DEFAULT_SHADOW_WAIT", "ENV",
    "NO_PREDICTION_LOG", "RETRY_FAILED_LOAD", "SHADOW_QUEUE", "SHADOW_SCHEMA", "ClassShares", "ModelSlot",
    "RegistryFollower", "ServeMetrics", "ServeSettings", "ServedModel", "ShadowJob", "ShadowLog", "ShadowRecords",
    "ShadowScorer", "agreement", "app_from_env", "disagreements", "join_labels", "latency_summary", "latest_pair",
    "load_served", "log_config", "read_shadow_log", "registry_name", "replay_shadow", "request_model", "resolve_log",
    "serve", "shadow_entries", "shadow_log_path", "shadow_metrics", "version_pairs", "warm_up", *_APP_NAMES,
]


def __getattr__(name: str):
    if name in _APP_NAMES:
        from mlnb.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'mlnb.serve' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_APP_NAMES))

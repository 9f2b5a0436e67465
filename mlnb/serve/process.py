"""The server process: settings (also from the environment), uvicorn workers, logging.

:func:`serve` (``mlnb serve``) loads the models once to check them, then runs uvicorn with
one app or ``workers`` processes; each worker builds its app with :func:`app_from_env` from
the :data:`ENV` variables. uvicorn is imported inside the functions that use it.
"""

import os
from dataclasses import dataclass
from typing import Any

from mlnb.exceptions import ParameterError
from mlnb.guard import DEFAULT_SERVE_MAX_REQUEST_BYTES, check_max_bytes, project_max_request_bytes
from mlnb.serve.follow import DEFAULT_POLL_INTERVAL
from mlnb.serve.share import DEFAULT_SHARE_INTERVAL
from mlnb.served import DEFAULT_MAX_ROWS
from mlnb.shadow import DEFAULT_SHADOW_WAIT

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
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
    "max_request_bytes": "MLNB_SERVE_MAX_REQUEST_BYTES",
    "token_file": "MLNB_SERVE_TOKEN_FILE",
    "log_share_interval": "MLNB_SERVE_LOG_SHARE_INTERVAL",
}
#: ``prediction_log`` value that turns the prediction log off.
NO_PREDICTION_LOG = "off"


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
    max_request_bytes: int = DEFAULT_SERVE_MAX_REQUEST_BYTES  # a larger body is answered 413
    token_file: str | None = None  # when set, every request but GET /health needs its token
    log_share_interval: float = DEFAULT_SHARE_INTERVAL  # team store: seconds between uploads of the logs

    def __post_init__(self):
        check_max_bytes(self.max_request_bytes)
        if not (isinstance(self.poll_interval, (int, float)) and self.poll_interval > 0):
            raise ParameterError(f"poll interval == {self.poll_interval!r}, must be > 0 seconds", name="poll_interval")
        if not (isinstance(self.max_rows, int) and self.max_rows >= 1):
            raise ParameterError(f"max rows == {self.max_rows!r}, must be a whole number >= 1", name="max_rows")
        if not (isinstance(self.shadow_wait, (int, float)) and self.shadow_wait >= 0):
            raise ParameterError(f"shadow wait == {self.shadow_wait!r}, must be >= 0 seconds", name="shadow_wait")
        if not (isinstance(self.log_share_interval, (int, float)) and self.log_share_interval > 0):
            raise ParameterError(f"log share interval == {self.log_share_interval!r}, must be > 0 seconds",
                                 name="log_share_interval")
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
        casts = {"poll_interval": float, "max_rows": int, "shadow_wait": float, "max_request_bytes": int,
                 "log_share_interval": float}
        for key, var in ENV.items():
            text = env.get(var)
            if text:
                try:
                    kwargs[key] = casts.get(key, str)(text)
                except ValueError:
                    raise ParameterError(f"{var}={text!r} is not a {casts[key].__name__}", name=key) from None
        return cls(**kwargs)


def app_from_env():
    """The app configured by environment variables (:data:`ENV`), for uvicorn/gunicorn workers.

    ``uvicorn --factory mlnb.serve:app_from_env`` and ``gunicorn 'mlnb.serve:app_from_env()'``
    start it; ``mlnb serve --workers N`` does the same for you.
    """
    from mlnb.serve.app import create_app

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
    max_request_bytes: int | None = None,
    token_file: str | os.PathLike | None = None,
    log_share_interval: float = DEFAULT_SHARE_INTERVAL,
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
    ``MLNB_SERVE_PREDICTION_LOG`` and ``MLNB_SERVE_LOG_INPUTS``). A request body over
    ``max_request_bytes`` (default: ``http.max_request_bytes`` of the project's
    ``mlnb.yaml``, else 10 MiB) is answered 413; with ``token_file``, every request but
    ``GET /health`` needs ``Authorization: Bearer TOKEN`` (401 otherwise). For a team store
    the logs are written in this host's cache and uploaded every ``log_share_interval``
    seconds, when a file rotates, and at shutdown (:mod:`mlnb.serve.share`).

    Raises:
        ModelNotFound, RegistryError, ArtifactTampered, StoreError, ParameterError: before serving.
    """
    import shutil
    import tempfile

    import uvicorn

    from mlnb.serve.app import create_app

    if not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers == {workers!r}, must be a whole number >= 1", name="workers")
    # One OpenMP thread per thread of every worker, unless the user says otherwise: set before
    # scikit-learn loads OpenMP, it holds for the shadow thread and the thread pool too. On a
    # busy machine OpenMP's spinning threads made one single-row request 20 times slower.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from mlnb.store import Store

    chosen = Store(store)  # a team store is named by its URL: its path is only this host's cache
    store_path = chosen.location if chosen.remote else str(chosen.path.resolve())
    prediction_log = prediction_log or os.environ.get(ENV["prediction_log"]) or None
    settings = ServeSettings(uri, shadow, store_path, poll_interval, max_rows,
                             str(shadow_log) if shadow_log else None, shadow_wait,
                             str(prediction_log) if prediction_log else None,
                             log_inputs or os.environ.get(ENV["log_inputs"]) or "features",
                             max_request_bytes or project_max_request_bytes(DEFAULT_SERVE_MAX_REQUEST_BYTES),
                             str(token_file) if token_file else None, log_share_interval)
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

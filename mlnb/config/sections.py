"""The sections of ``mlnb.yaml`` as pydantic models, and the one-line wording of their errors.

Every mistake is reported as one line naming the key path, the value and what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlnb.exceptions import ConfigError, MlnbError
from mlnb.metrics import DEFAULT_ESTIMATOR, DEFAULT_METRIC, higher_is_better, metrics_for

from mlnb.config import CONFIG_FILE, MODEL_NAME


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Section):
    name: str
    task: Literal["classification", "regression"] = "classification"
    target: str
    features: list[str] | None = None
    estimator: str | None = None  # None: gradient boosting for the task
    hyperparameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not MODEL_NAME.match(v):
            raise ValueError("must match [a-z0-9][a-z0-9._-]* (lower case, no slashes)")
        return v

    @field_validator("estimator")
    @classmethod
    def _estimator(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+$", v):
            raise ValueError("must be a scikit-learn import path such as sklearn.ensemble.HistGradientBoostingClassifier")
        return v

    @field_validator("features")
    @classmethod
    def _features(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("must name at least one column, or be null for every column but the target")
        return v

    @model_validator(mode="after")
    def _default_estimator(self) -> "ModelConfig":
        if self.estimator is None:
            self.estimator = DEFAULT_ESTIMATOR[self.task]
        return self


class TrainingConfig(_Section):
    policy: Literal["all", "window"] = "all"
    window: int = Field(4, ge=1, description="batches kept by the window policy")
    holdout: float = Field(0.3, gt=0, lt=1, description="newest share of the batch kept for comparison")
    seed: int = 0


class DataConfig(_Section):
    reference: str
    current: str


#: What makes the pipeline reject a batch (``validation.reject_on``).
REJECT_ON = ("schema", "any", "none")


class ValidationConfig(_Section):
    schema_: str | None = Field(None, alias="schema")
    # schema: broken data (missing columns, types, nulls where the reference had none,
    # unseen categories, values far outside the reference) rejects the batch, expectations
    # only warn; any: expectations reject too; none: report, never reject
    reject_on: Literal["schema", "any", "none"] = "schema"
    slack: float = Field(0.25, ge=0, description="share of a numeric range an expectation allows beyond it")
    range_factor: float = Field(3.0, gt=0, description="widths of the reference range beyond which values are broken")


class DriftConfig(_Section):
    method: str = "auto"
    drift_share: float = Field(0.5, gt=0, le=1)
    columns: list[str] | None = None
    exclude: list[str] | Literal["auto"] = "auto"


class PerformanceTrigger(_Section):
    metric: str | None = None  # None: the task's default metric
    min: float | None = None
    max: float | None = None
    max_drop: float | None = Field(None, ge=0)
    max_rise: float | None = Field(None, ge=0)


class EstimatedPerformanceTrigger(_Section):
    """Fires on performance estimated from the served model's prediction log (no labels needed)."""

    metric: str | None = None  # None: the task's default metric
    min: float | None = None
    max: float | None = None
    chunk: str = "auto"
    min_rows: int = Field(100, ge=1)

    @field_validator("chunk")
    @classmethod
    def _chunk(cls, v: str) -> str:
        from mlnb.monitor import parse_chunk

        try:
            parse_chunk(v)
        except MlnbError as exc:
            raise ValueError(str(exc)) from None
        return v


class ScheduleTrigger(_Section):
    max_age_days: float | None = Field(None, gt=0)


class TriggersConfig(_Section):
    drift: bool = True
    performance: PerformanceTrigger = Field(default_factory=PerformanceTrigger)
    estimated_performance: EstimatedPerformanceTrigger = Field(default_factory=EstimatedPerformanceTrigger)
    schedule: ScheduleTrigger = Field(default_factory=ScheduleTrigger)


class PromotionConfig(_Section):
    metric: str | None = None  # None: the task's default metric
    min_gain: float = 0.0
    require_validation: bool = True
    alias: str = "production"


class AlertsConfig(_Section):
    webhook: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(2, ge=0, le=10)

    @field_validator("webhook")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://", v):
            raise ValueError("must be an http:// or https:// URL, or null")
        return v


class KernelsConfig(_Section):
    """How commands that run several notebooks prepare kernels (see :mod:`mlnb.kernels`)."""

    warm: bool = True  # false: every run's kernel starts from nothing, as with --cold
    preload: list[str] | None = None  # None: mlnb.kernels.DEFAULT_PRELOAD
    pool_size: int | None = Field(None, ge=1, description="kernels held ready (default: the cores)")
    fork: bool = True  # false: each warm kernel imports its modules itself, not forked from one that did

    @field_validator("preload")
    @classmethod
    def _modules(cls, v: list[str] | None) -> list[str] | None:
        bad = [m for m in v or [] if not all(part.isidentifier() for part in m.split("."))]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a module name (dotted identifiers, such as sklearn.ensemble)")
        return v


class HttpConfig(_Section):
    """What ``mlnb serve`` and ``mlnb ui`` accept (their flags win)."""

    max_request_bytes: int | None = Field(None, ge=1, description="largest request body read; a larger one is 413")


#: Keys whose values are paths, relative to the directory of ``mlnb.yaml``.
PATH_KEYS = ("data.reference", "data.current", "validation.schema", "store")
#: Keys that do not change what the pipeline decides on a batch (left out of its fingerprint).
_NOT_DECIDING = ("alerts", "store", "kernels", "http")


class Config(_Section):
    """The whole ``mlnb.yaml``; :attr:`root` is the directory paths are relative to."""

    model: ModelConfig
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    kernels: KernelsConfig = Field(default_factory=KernelsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    store: str = "runs"
    root: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> "Config":
        task = self.model.task
        allowed = metrics_for(task)
        perf = self.triggers.performance
        for where, section in (("triggers.performance", perf), ("promotion", self.promotion)):
            if section.metric is None:
                section.metric = DEFAULT_METRIC[task]
            elif section.metric not in allowed:
                raise ValueError(
                    f"{where}.metric: {section.metric!r} is not a {task} metric; allowed: {', '.join(allowed)}"
                )
        _check_direction("triggers.performance", perf)
        estimated = self.triggers.estimated_performance
        if estimated.min is not None or estimated.max is not None:
            from mlnb.monitor import ESTIMATED

            if estimated.metric is None:
                estimated.metric = DEFAULT_METRIC[task]
            if estimated.metric not in ESTIMATED[task]:
                raise ValueError(f"triggers.estimated_performance.metric: {estimated.metric!r} is not estimated for "
                                 f"{task}; allowed: {', '.join(ESTIMATED[task])}")
            _check_direction("triggers.estimated_performance", estimated)
        return self

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    def value(self, key: str) -> Any:
        """The value of a dotted key (``validation.slack``); paths come back absolute.

        ``model.uri`` is the project's deployed model, ``NAME@ALIAS`` of ``model.name``
        and ``promotion.alias``.
        """
        if key == "model.uri":
            return f"{self.model.name}@{self.promotion.alias}"
        node: Any = self.model_dump(by_alias=True)
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{CONFIG_FILE} has no key {key!r}")
            node = node[part]
        if key in PATH_KEYS and isinstance(node, str):
            return str(self.path(node).resolve())
        return node

    def fingerprint(self) -> str:
        """sha256 of what decides the pipeline's outcome on a batch: every key but alerts
        and store, and the content of the reference and the schema file."""
        import hashlib
        import json

        from mlnb import records

        decided = {k: v for k, v in self.model_dump(by_alias=True).items() if k not in _NOT_DECIDING}
        for key in ("data.reference", "validation.schema"):
            value = self.value(key)
            if value and Path(value).is_file():
                decided[f"sha256:{key}"] = records.sha256_file(value)
        return hashlib.sha256(json.dumps(decided, sort_keys=True, default=str).encode()).hexdigest()


def _check_direction(where: str, section: Any) -> None:
    """Refuse limits that read the wrong way for the metric: a ``min`` on a loss, say."""
    metric = section.metric
    if higher_is_better(metric):
        wrong, direction = {"max": "min", "max_rise": "max_drop"}, "higher is better"
    else:
        wrong, direction = {"min": "max", "max_drop": "max_rise"}, "lower is better"
    for key, instead in wrong.items():
        if getattr(section, key, None) is not None:
            raise ValueError(f"{where}.{key}: {metric} is a metric where {direction}; use {instead} instead")


def _allowed_keys(loc: tuple) -> str:
    """The keys allowed where ``loc`` points (its last part is the unknown key)."""
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    names = [f.alias or n for n, f in model.model_fields.items() if n != "root"]
    return ", ".join(names)


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(tuple(error["loc"]))
        return f"{where}: unknown key" + (f"; allowed: {allowed}" if allowed else "")
    if kind == "literal_error":
        return f"{where}: {error['input']!r} is not allowed; {msg.lower().replace('input should be', 'allowed:')}"
    msg = msg.removeprefix("Value error, ")
    if not error["loc"]:  # a check across sections: its message names its own key
        return msg
    return f"{where}: {msg} (got {error.get('input')!r})"


def parse_config(data: Any, where: str = CONFIG_FILE, root: Path | None = None) -> Config:
    """Build a :class:`Config` from parsed YAML, or raise ConfigError naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of sections (model, data, ...)")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # an unknown key first: a misspelt section is also a "missing" one, and the typo is the news
        first = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {_describe(first)}{more}") from None
    config.root = root or Path(".")
    return config

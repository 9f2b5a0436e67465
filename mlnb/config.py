"""``mlnb.yaml``: the project file that drives the retraining pipeline.

Parsed with pydantic, so every mistake is reported as one line naming the key path, the
value and what is allowed. Paths are relative to the file's directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlnb.exceptions import ConfigError

CONFIG_FILE = "mlnb.yaml"
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Section):
    name: str
    task: Literal["classification", "regression"] = "classification"
    target: str
    features: list[str] | None = None
    estimator: str = "sklearn.ensemble.HistGradientBoostingClassifier"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not MODEL_NAME.match(v):
            raise ValueError("must match [a-z0-9][a-z0-9._-]* (lower case, no slashes)")
        return v

    @field_validator("estimator")
    @classmethod
    def _estimator(cls, v: str) -> str:
        if not re.match(r"^sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+$", v):
            raise ValueError("must be a scikit-learn import path such as sklearn.ensemble.HistGradientBoostingClassifier")
        return v


class TrainingConfig(_Section):
    policy: Literal["all", "window"] = "all"
    window: int = Field(4, ge=1, description="batches kept by the window policy")
    holdout: float = Field(0.3, gt=0, lt=1, description="newest share of the batch kept for comparison")
    seed: int = 0


class DataConfig(_Section):
    reference: str
    current: str


class ValidationConfig(_Section):
    schema_: str | None = Field(None, alias="schema")
    stop_on_failure: bool = True


class DriftConfig(_Section):
    method: str = "auto"
    drift_share: float = Field(0.5, gt=0, le=1)
    columns: list[str] | None = None


class PerformanceTrigger(_Section):
    metric: str = "f1"
    min: float | None = None
    max_drop: float | None = Field(None, ge=0)


class ScheduleTrigger(_Section):
    max_age_days: float | None = Field(None, gt=0)


class TriggersConfig(_Section):
    drift: bool = True
    performance: PerformanceTrigger = Field(default_factory=PerformanceTrigger)
    schedule: ScheduleTrigger = Field(default_factory=ScheduleTrigger)


class PromotionConfig(_Section):
    metric: str = "f1"
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
    store: str = "runs"
    root: Path = Field(default=Path("."), exclude=True)

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.root / p


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "literal_error":
        return f"{where}: {error['input']!r} is not allowed; {msg.lower().replace('input should be', 'allowed:')}"
    msg = msg.removeprefix("Value error, ")
    return f"{where}: {msg} (got {error.get('input')!r})"


def parse_config(data: Any, where: str = CONFIG_FILE, root: Path | None = None) -> Config:
    """Build a :class:`Config` from parsed YAML, or raise ConfigError naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of sections (model, data, ...)")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {_describe(first)}{more}") from None
    config.root = root or Path(".")
    return config


def load_config(path: str | Path = CONFIG_FILE) -> Config:
    """Read and check ``mlnb.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or a key is missing, unknown or wrong.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; create one with 'mlnb init'") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{path}: not YAML{f' (line {mark.line + 1})' if mark else ''}") from None
    return parse_config(data, where=str(path), root=path.resolve().parent)

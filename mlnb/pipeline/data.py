"""The pipeline's data: the batches to process, the preflight checks of ``mlnb.yaml``'s
columns and estimator, and the derived tables it writes into ``<store>/data/`` (for a team
store: this host's cache, and the object store's ``data/``).

Which batches earlier pipeline runs processed is read from the store's pipeline records;
the training and holdout tables are written under their content hash, so they never change.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlnb import records
from mlnb.exceptions import ConfigError, MlnbError

if TYPE_CHECKING:
    from mlnb.config import Config
    from mlnb.store import Store


def batches(config: Config) -> list[Path]:
    """Batch files named by ``data.current`` (a path or a glob), oldest name first."""
    pattern = str(config.path(config.data.current))
    found = sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
    return [p for p in found if p.is_file()]


def check_columns(config: Config, reference: Path, batch: Path) -> None:
    """The columns ``mlnb.yaml`` names exist: target and features in the reference, drift
    columns in the reference or the batch.

    Raises:
        ConfigError: naming the key, the column and the columns that exist.
    """
    from mlnb.data import table_columns

    ref = table_columns(reference)
    cur = table_columns(batch)
    listed = ", ".join(ref)
    if config.model.target not in ref:
        raise ConfigError(f"model.target: {config.model.target!r} is not a column of the reference; columns: {listed}")
    missing = [f for f in config.model.features or () if f not in ref]
    if missing:
        raise ConfigError(f"model.features: {', '.join(map(repr, missing))} not in the reference; columns: {listed}")
    if config.model.target in (config.model.features or ()):
        raise ConfigError(f"model.features: the target {config.model.target!r} cannot be a feature")
    exclude = config.drift.exclude if isinstance(config.drift.exclude, list) else []
    for key, names in (("drift.columns", config.drift.columns or []), ("drift.exclude", exclude)):
        unknown = [c for c in names if c not in ref and c not in cur]
        if unknown:
            raise ConfigError(f"{key}: {', '.join(map(repr, unknown))} in neither the reference nor the batch; "
                              f"columns: {', '.join(dict.fromkeys([*ref, *cur]))}")


def check_estimator(config: Config) -> None:
    """``model.estimator`` imports, fits ``model.task`` and takes ``model.hyperparameters``;
    ``drift.method`` is a method mlnb has.

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """
    from mlnb.metrics import import_estimator, task_of

    m = config.model
    try:
        cls = import_estimator(m.estimator)
    except MlnbError as exc:
        raise ConfigError(f"model.estimator: {exc}") from None
    task = task_of(cls)
    if task != m.task:
        raise ConfigError(f"model.estimator: {m.estimator} is a {'classifier' if task == 'classification' else 'regressor'} "
                          f"but model.task is {m.task!r}; give a {m.task} estimator or change model.task")
    allowed = cls().get_params(deep=False)
    unknown = [k for k in m.hyperparameters if k not in allowed]
    if unknown:
        raise ConfigError(f"model.hyperparameters: {', '.join(map(repr, unknown))} not taken by {cls.__name__}; "
                          f"allowed: {', '.join(sorted(allowed))}")
    try:
        cls(**m.hyperparameters)._validate_params()  # scikit-learn's own check of each value
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model.hyperparameters: {str(exc).splitlines()[0]}") from None
    if config.drift.method != "auto":
        from mlnb.drift import METHODS  # scipy.stats: the host imports it only for a named method

        if config.drift.method not in METHODS:
            raise ConfigError(f"drift.method: {config.drift.method!r} is not a method; allowed: auto, "
                              f"{', '.join(METHODS)}")


def processed_batches(store: Store) -> dict[str, list[dict]]:
    """``{batch sha256: [{"run": id, "config": sha256 or None, "outcome": ...}, ...]}``:
    the succeeded pipeline runs that processed each batch, oldest first."""
    seen: dict[str, list[dict]] = {}
    for item in reversed(store.list_runs(template="pipeline")):
        decision = (item.get("scraps") or {}).get("decision") or {}
        batch = decision.get("batch") or {}
        if batch.get("sha256") and item["status"] == "succeeded" and decision.get("outcome") != "skipped":
            seen.setdefault(batch["sha256"], []).append(
                {"run": item["id"], "config": batch.get("config_sha256"), "outcome": decision.get("outcome")}
            )
    return seen


def write_dataset(store: Store, frame, label: str) -> Path:
    """Write a derived table into ``<store>/data/`` under its content hash (immutable); a team
    store also uploads it, so the runs that read it can be reproduced on any host."""
    directory = store.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".csv", dir=directory)
    os.close(fd)
    frame.to_csv(tmp, index=False)
    digest = records.sha256_file(tmp)
    target = directory / f"{label}-{digest[:16]}.csv"
    if target.exists():
        os.unlink(tmp)
    else:
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    store.share_table(target)
    return target


def split_batch(frame, holdout: float, order_by: str | None = None):
    """The newest ``holdout`` share of a batch (by ``order_by`` or row order) and the rest."""
    if order_by and order_by in frame.columns:
        frame = frame.sort_values(order_by, kind="stable")
    n_holdout = max(1, int(round(len(frame) * holdout)))
    return frame.iloc[:-n_holdout], frame.iloc[-n_holdout:]


def history_frames(store: Store, name: str):
    """Tables for the report: model versions with metrics, and drift share per batch."""
    import pandas as pd

    from mlnb.registry import Registry

    if name:
        with Registry(store) as registry:
            versions = pd.DataFrame(registry.versions_table(name))
    else:
        versions = pd.DataFrame()
    drift = store.runs(template="drift", status="succeeded")
    if not drift.empty:
        drift["batch"] = [Path(p.get("current") or "").name for p in drift["parameters"]]
        keep = [c for c in ("started", "batch", "scrap.drift_share", "scrap.dataset_drift", "id") if c in drift]
        drift = drift[keep].sort_values("started")
    return versions, drift

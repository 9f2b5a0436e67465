"""Training a model: the seeded train/holdout split, the fit, and what the run records of it.

:func:`train` selects the features, builds the pipeline (:mod:`mlnb.model.build`), fits it
on the training part of a seeded :func:`split` and scores it on the holdout
(:func:`mlnb.metrics.evaluate`); the ``train`` template shows the :class:`TrainResult`.

scikit-learn is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError, ParameterError
from mlnb.model.build import _threads_for, build_pipeline, import_estimator, select_features, task_of

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.metrics import Evaluation


@dataclass
class TrainResult:
    """What :func:`train` produced: the fitted pipeline, the split and the holdout scores."""

    model: Any
    task: str
    target: str
    features: list[str]
    estimator: str
    hyperparameters: dict
    X_train: "pd.DataFrame"
    X_holdout: "pd.DataFrame"
    y_train: "pd.Series"
    y_holdout: "pd.Series"
    evaluation: Evaluation
    stratified: bool = False
    params: dict = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return self.evaluation.metrics


def split(X, y, task: str, test_size: float = 0.25, seed: int = 0):
    """A seeded train/holdout split, stratified for classification when every class allows it.

    Returns:
        ``(X_train, X_holdout, y_train, y_holdout, stratified)``.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ParameterError(f"test_size == {test_size!r}, must be between 0 and 1 (exclusive)", name="test_size")
    stratify = None
    if task == "classification":
        counts = y.value_counts()
        n_holdout = math.ceil(test_size * len(y))
        if counts.min() >= 2 and n_holdout >= len(counts) and len(y) - n_holdout >= len(counts):
            stratify = y
    parts = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=stratify)
    return (*parts, stratify is not None)


def train(
    df: "pd.DataFrame",
    target: str,
    features: list[str] | None = None,
    estimator: str = "sklearn.ensemble.HistGradientBoostingClassifier",
    hyperparameters: dict | None = None,
    test_size: float = 0.25,
    seed: int = 0,
) -> TrainResult:
    """Select features, split, fit the pipeline and score it on the holdout.

    Rows whose target is missing are dropped (they can be neither learnt nor scored).

    Raises:
        DataError, ParameterError: bad columns, estimator or hyperparameters.
    """
    # imported here: mlnb.metrics imports this module to re-export its names
    from mlnb.metrics import evaluate

    chosen = select_features(df, target, features)
    cls = import_estimator(estimator)
    task = task_of(cls)
    labelled = df[df[target].notna()]
    if len(labelled) < 4:
        raise DataError(f"only {len(labelled)} rows have a target value; training needs at least 4")
    X, y = labelled[chosen], labelled[target]
    if task == "classification" and y.nunique() < 2:
        raise DataError(f"target {target!r} has a single class {y.iloc[0]!r}; a classifier needs two or more")
    X_train, X_holdout, y_train, y_holdout, stratified = split(X, y, task, test_size, seed)
    model = build_pipeline(estimator, hyperparameters, X_train, seed=seed)
    with _threads_for(len(X_train)):
        model.fit(X_train, y_train)
    return TrainResult(
        model=model,
        task=task,
        target=target,
        features=chosen,
        estimator=estimator,
        hyperparameters=dict(hyperparameters or {}),
        X_train=X_train,
        X_holdout=X_holdout,
        y_train=y_train,
        y_holdout=y_holdout,
        evaluation=evaluate(model, X_holdout, y_holdout, task),
        stratified=stratified,
        params=jsonable_params(model.named_steps["model"]),
    )


def jsonable_params(estimator) -> dict:
    """The estimator's own parameters that are JSON values (for the record)."""
    out = {}
    for name, value in estimator.get_params(deep=False).items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = repr(value)
        out[name] = value
    return out

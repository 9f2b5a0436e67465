"""Metrics: what mlnb computes to compare models, which direction is better, and a model's scores.

- :data:`METRICS` lists every metric with its task and direction; triggers and the
  promotion rule read :func:`higher_is_better` and :func:`improvement` from it, and
  :data:`DEFAULT_METRIC` is the one they use when ``mlnb.yaml`` names none.
- :func:`classification_metrics` and :func:`regression_metrics` compute them with
  :mod:`sklearn.metrics`; :func:`evaluate` scores a fitted model on labelled data (with the
  confusion and per-class tables for classifiers) and :func:`feature_importances` ranks its
  features by permutation importance.

Building, training and persisting the model live in :mod:`mlnb.model`; their names stay
importable from here (``from mlnb.metrics import train`` and the templates'
``metrics.train`` keep working).

scikit-learn is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError, ParameterError, UntrustedModel  # noqa: F401  (importable from here)
from mlnb.model.build import (  # noqa: F401  (names that moved to mlnb.model, importable from here)
    DEFAULT_ESTIMATOR,
    SINGLE_THREAD_ROWS,
    SUPPORTED_ESTIMATORS,
    TASKS,
    _threads_for,
    baseline_estimator,
    build_pipeline,
    import_estimator,
    infer_task,
    is_date_like,
    is_id_like,
    select_features,
    task_of,
)
from mlnb.model.features import column_kinds  # noqa: F401
from mlnb.model.persist import (  # noqa: F401
    TRUSTED_TYPES,
    dump_model,
    load_model_bytes,
    qualified_name,
    untrusted_types,
)
from mlnb.model.train import TrainResult, jsonable_params, split, train  # noqa: F401

if TYPE_CHECKING:
    import pandas as pd


#: Every metric mlnb computes, with the task it belongs to and whether higher is better.
#: Triggers and the promotion rule read the direction from here; a metric that is not
#: listed for a task does not exist for it.
METRICS = {
    "accuracy": ("classification", "higher"),
    "precision": ("classification", "higher"),
    "recall": ("classification", "higher"),
    "f1": ("classification", "higher"),
    "roc_auc": ("classification", "higher"),
    "r2": ("regression", "higher"),
    "mae": ("regression", "lower"),
    "rmse": ("regression", "lower"),
}

#: The metric triggers and promotion use when ``mlnb.yaml`` names none. Accuracy, not
#: macro F1, for classifiers: with rare classes, macro F1 on a small holdout swings by 0.2
#: from one batch to the next. RMSE for regressors: in the target's own unit.
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}


def metrics_for(task: str) -> list[str]:
    """The metrics that exist for ``task``, in a stable order."""
    return [name for name, (t, _) in METRICS.items() if t == task]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better.

    Raises:
        ParameterError: ``metric`` is not one mlnb computes (the message lists them).
    """
    if metric not in METRICS:
        raise ParameterError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}", name="metric")
    return METRICS[metric][1] == "higher"


def improvement(metric: str, new: float, old: float) -> float:
    """How much better ``new`` is than ``old`` in the metric's direction (negative: worse)."""
    return new - old if higher_is_better(metric) else old - new


# -- scores ---------------------------------------------------------------------------------


def _finite(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def roc_auc(y_true, proba, classes) -> float | None:
    """Macro one-vs-rest ROC AUC over the classes present in ``y_true``; None when undefined.

    Equals ``roc_auc_score(..., multi_class="ovr", average="macro")`` when every class of the
    model occurs in ``y_true``; unlike it, still defined when a batch lacks a class.
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if proba is None or classes is None:
        return None
    y = np.asarray(y_true)
    proba = np.asarray(proba)
    if len(classes) == 2:
        positive = y == classes[1]
        if positive.all() or not positive.any():
            return None
        return float(roc_auc_score(positive, proba[:, 1]))
    scores = []
    for index, label in enumerate(classes):
        positive = y == label
        if positive.any() and not positive.all():
            scores.append(roc_auc_score(positive, proba[:, index]))
    return float(np.mean(scores)) if scores else None


def classification_metrics(y_true, y_pred, proba=None, classes=None) -> dict[str, float]:
    """accuracy and macro precision, recall and F1; ``roc_auc`` where it is defined.

    Args:
        y_true, y_pred: labels.
        proba: ``predict_proba`` output (columns in the order of ``classes``), optional.
        classes: the model's ``classes_``.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    return _finite({
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y_true, proba, classes),
    })


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """r2, mae and rmse (non-finite values, such as r2 of one row, are left out)."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    r2 = r2_score(y_true, y_pred) if len(y_true) > 1 else None
    return _finite({
        "r2": r2,
        "mae": mean_absolute_error(y_true, y_pred),
        "rmse": root_mean_squared_error(y_true, y_pred),
    })


def _labels(y_true, y_pred, classes=None) -> list:
    seen = list(classes) if classes is not None else []
    for value in (*y_true, *y_pred):
        if value not in seen:
            seen.append(value)
    try:
        return sorted(seen)
    except TypeError:
        return seen


def confusion_table(y_true, y_pred, classes=None) -> "pd.DataFrame":
    """The confusion matrix as a table: one row per true label, one column per predicted one."""
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    labels = _labels(y_true, y_pred, classes)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    table = pd.DataFrame(matrix, columns=[str(label) for label in labels])
    table.insert(0, "true", [str(label) for label in labels])
    return table


def per_class_table(y_true, y_pred, classes=None) -> "pd.DataFrame":
    """Precision, recall, F1 and support for every class."""
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    labels = _labels(y_true, y_pred, classes)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return pd.DataFrame({"class": [str(x) for x in labels], "precision": p, "recall": r, "f1": f, "support": s})


@dataclass
class Evaluation:
    """A model scored on labelled data: metrics, predictions and, for classifiers, tables."""

    task: str
    metrics: dict[str, float]
    predictions: Any
    confusion: "pd.DataFrame | None" = None
    per_class: "pd.DataFrame | None" = None


def evaluate(model, X: "pd.DataFrame", y, task: str | None = None) -> Evaluation:
    """Score a fitted model on ``X``/``y`` with the metrics of its task.

    Args:
        task: ``"classification"``, ``"regression"``, or None to infer it from the model.
    """
    task = task or task_of(model)
    if task not in TASKS:
        raise ParameterError(f"task {task!r} is not one of {', '.join(TASKS)}", name="task")
    with _threads_for(len(X)):
        predictions = model.predict(X)
        proba = model.predict_proba(X) if task == "classification" and hasattr(model, "predict_proba") else None
    if task == "regression":
        return Evaluation(task, regression_metrics(y, predictions), predictions)
    classes = list(getattr(model, "classes_", [])) or None
    return Evaluation(
        task,
        classification_metrics(y, predictions, proba, classes),
        predictions,
        confusion=confusion_table(y, predictions, classes),
        per_class=per_class_table(y, predictions, classes),
    )


def feature_importances(model, X: "pd.DataFrame", y, seed: int = 0, repeats: int = 5) -> "pd.DataFrame":
    """Permutation importance of each raw feature on (holdout) data, largest first.

    Permutation importance is used for every estimator: it exists for all of them, is
    measured on data the model did not see, and is not biased towards many-valued features
    as impurity-based importances are.
    """
    import pandas as pd
    from sklearn.inspection import permutation_importance

    with _threads_for(len(X)):
        result = permutation_importance(model, X, y, n_repeats=repeats, random_state=seed)
    table = pd.DataFrame({
        "feature": [str(c) for c in X.columns],
        "importance": result.importances_mean,
        "std": result.importances_std,
    })
    return table.sort_values("importance", ascending=False, ignore_index=True)


"""Building, evaluating and persisting the models that the ``train`` and ``evaluate`` templates make.

The templates show and explain; the decisions live here, where they are tested:

- :func:`select_features` picks the feature columns (all but the target, ids and dates
  unless the user names them) and :func:`build_pipeline` wraps a scikit-learn estimator,
  named by import path, in a ``Pipeline`` that imputes missing values and encodes
  categorical columns, so the saved model takes the raw feature columns as they come.
- :func:`classification_metrics` and :func:`regression_metrics` compute the metrics the
  registry and the retraining pipeline compare, with :mod:`sklearn.metrics`.
- :func:`dump_model` and :func:`load_model_bytes` persist models with skops and refuse any
  type outside :data:`TRUSTED_TYPES`, an explicit list: loading never unpickles an arbitrary
  object. :data:`SUPPORTED_ESTIMATORS` are the estimators whose fitted pipelines consist of
  trusted types only.

Date columns are not features: a date column is left out when ``features`` is None and
refused when named, because a model trained on one period's dates extrapolates badly and
the saved pipeline could only use them through custom code (which skops would refuse to
load). Derive numeric columns (day of year, month) in the data instead.

scikit-learn and skops are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError, ParameterError, UntrustedModel

if TYPE_CHECKING:
    import pandas as pd


#: Estimators the ``train`` template accepts: their fitted pipelines load back with only
#: :data:`TRUSTED_TYPES`. Adding one means adding the types its pipeline pickles to
#: :data:`TRUSTED_TYPES` (``tests/test_metrics.py`` round-trips every entry).
SUPPORTED_ESTIMATORS = (
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble.ExtraTreesClassifier",
    "sklearn.ensemble.ExtraTreesRegressor",
    "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.HistGradientBoostingRegressor",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.ensemble.RandomForestRegressor",
    "sklearn.linear_model.LinearRegression",
    "sklearn.linear_model.LogisticRegression",
    "sklearn.linear_model.Ridge",
    "sklearn.neighbors.KNeighborsClassifier",
    "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.tree.DecisionTreeClassifier",
    "sklearn.tree.DecisionTreeRegressor",
)

#: Every type a registry model may contain, fully qualified as skops names them. This is
#: the whole list: anything else in a model file is refused before skops loads it. It was
#: compiled by fitting each of :data:`SUPPORTED_ESTIMATORS` in mlnb's pipeline (numeric and
#: categorical columns, binary, multiclass and regression targets) and listing the types
#: of the skops file; ``functools.partial`` and ``check_array`` are how ``ColumnTransformer``
#: stores its input validation.
TRUSTED_TYPES = (
    "builtins.bool",
    "builtins.dict",
    "builtins.float",
    "builtins.int",
    "builtins.list",
    "builtins.slice",
    "builtins.str",
    "builtins.tuple",
    "functools.partial",
    "numpy.bool_",
    "numpy.dtype",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    "numpy.uint64",
    "numpy.uint8",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
)
_TRUSTED = frozenset(TRUSTED_TYPES)

TASKS = ("classification", "regression")

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

#: The estimator a task gets when ``mlnb.yaml`` or the train template names none.
DEFAULT_ESTIMATOR = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}


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


def infer_task(y: "pd.Series") -> tuple[str, str]:
    """``(task, why)`` for a target column: classes or a continuous quantity.

    Classification for booleans, text and categories, and for whole numbers with at most
    20 distinct values; regression for numbers with fractions or more distinct values.
    """
    import pandas as pd

    values = y.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classification", f"the target holds {values.nunique()} distinct labels"
    distinct = int(values.nunique())
    if bool((values % 1 != 0).any()):
        return "regression", f"the target is numeric with fractional values ({distinct} distinct)"
    if distinct > 20:
        return "regression", f"the target is numeric with {distinct} distinct whole values (more than 20)"
    return "classification", f"the target holds {distinct} distinct whole numbers (at most 20: classes)"
_ESTIMATOR_PATH = re.compile(r"^sklearn(\.[A-Za-z][A-Za-z0-9_]*)+$")
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_ID_NAMES = {"id", "uuid", "index", "key", "row", "row_id", "unnamed: 0"}
# Estimators that need scaled inputs (distances, penalties, gradient steps).
_SCALED_MODULES = ("sklearn.linear_model", "sklearn.svm", "sklearn.neighbors", "sklearn.neural_network")


# -- choosing the estimator and the features -------------------------------------------------


def import_estimator(path: str) -> type:
    """The scikit-learn estimator class named by ``path`` (``sklearn.ensemble.X``).

    Only import paths under ``sklearn.`` are imported, so a parameter cannot load arbitrary
    code, and only :data:`SUPPORTED_ESTIMATORS` are accepted, so every trained model can be
    loaded back with :data:`TRUSTED_TYPES`.

    Raises:
        ParameterError: the path is not under ``sklearn.``, does not name a classifier or
            regressor, or names one whose pipeline mlnb cannot load back safely.
    """
    example = "e.g. 'sklearn.ensemble.HistGradientBoostingClassifier'"
    if not isinstance(path, str) or not _ESTIMATOR_PATH.match(path):
        raise ParameterError(
            f"estimator {path!r} is not a scikit-learn import path; give one under 'sklearn.', {example}",
            name="estimator",
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ParameterError(f"estimator {path!r}: no module {module_name!r} in scikit-learn; {example}", name="estimator") from exc
    cls = getattr(module, class_name, None)
    from sklearn.base import BaseEstimator

    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)) or task_of(cls) is None:
        raise ParameterError(
            f"estimator {path!r} is not a scikit-learn classifier or regressor; {example}", name="estimator"
        )
    if qualified_name(cls) not in _TRUSTED:
        raise ParameterError(
            f"estimator {path!r} cannot be saved and loaded back with mlnb's trusted types; "
            f"supported: {', '.join(SUPPORTED_ESTIMATORS)}",
            name="estimator",
        )
    return cls


def qualified_name(cls: type) -> str:
    """``module.Class`` as skops names a type."""
    return f"{cls.__module__}.{cls.__qualname__}"


def task_of(estimator: Any) -> str | None:
    """``"classification"`` or ``"regression"`` for an estimator, its class, or a Pipeline."""
    from sklearn.base import is_classifier, is_regressor

    if isinstance(estimator, type):
        try:
            estimator = estimator()
        except TypeError:
            return None
    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    return None


def is_date_like(series: "pd.Series") -> bool:
    """A datetime column, or text whose values are ISO dates (``2012-01-31``, with time)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    sample = series.dropna().head(50)
    return len(sample) > 0 and all(isinstance(v, str) and _DATE_TEXT.match(v) for v in sample)


def is_id_like(name: str, series: "pd.Series") -> bool:
    """A column named like an id (``id``, ``*_id``), or text with a distinct value on more
    than half of its rows (names of people or products): not a feature, nothing to drift."""
    import pandas as pd

    lowered = str(name).lower()
    if lowered in _ID_NAMES or lowered.endswith("_id"):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    # text that names nearly every row apart (car models, people): each batch brings new ones
    return len(series) > 20 and series.nunique(dropna=False) > 0.5 * len(series)


def select_features(df: "pd.DataFrame", target: str, features: list[str] | None = None) -> list[str]:
    """The feature columns: ``features`` as given (checked), else all but target, ids and dates.

    Raises:
        DataError: the target or a named feature is not a column of the data.
        ParameterError: the target is among the features, or a named feature holds dates.
    """
    columns = [str(c) for c in df.columns]
    if target not in columns:
        raise DataError(f"target column {target!r} is not in the data; columns: {', '.join(columns)}")
    if features is None:
        chosen = [c for c in columns if c != target and not is_id_like(c, df[c]) and not is_date_like(df[c])]
        if not chosen:
            raise DataError(f"no feature columns left besides target {target!r} (ids and dates are left out); name them with 'features'")
        return chosen
    if not isinstance(features, (list, tuple)) or not features or not all(isinstance(f, str) for f in features):
        raise ParameterError(f"features must be a non-empty list of column names or None, got {features!r}", name="features")
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(f"feature column(s) {', '.join(map(repr, missing))} not in the data; columns: {', '.join(columns)}")
    if target in features:
        raise ParameterError(f"target {target!r} is also listed as a feature; remove it from features", name="features")
    dates = [f for f in features if is_date_like(df[f])]
    if dates:
        raise ParameterError(
            f"feature(s) {', '.join(map(repr, dates))} hold dates, which mlnb does not use as features; "
            "derive numeric columns (day of year, month) in the data instead",
            name="features",
        )
    return list(dict.fromkeys(features))


def baseline_estimator(y: "pd.Series") -> str:
    """A sensible default estimator for a target: gradient boosting, classifier or regressor.

    The task is :func:`infer_task`'s: regression for numbers with fractions or more than 20
    distinct values, classification otherwise.
    """
    return DEFAULT_ESTIMATOR[infer_task(y)[0]]


def column_kinds(X: "pd.DataFrame") -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` column names; booleans and text are categorical."""
    import pandas as pd

    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    return numeric, categorical


# -- the pipeline ---------------------------------------------------------------------------


def build_pipeline(
    estimator_path: str, hyperparameters: dict | None, X: "pd.DataFrame", seed: int | None = None
):
    """An unfitted ``Pipeline(prepare, model)`` for the columns of ``X``.

    ``prepare`` imputes numeric columns with their median (and scales them for linear and
    distance-based models) and categorical columns with their most frequent value, then
    encodes them: ordinal codes that ``HistGradientBoosting*`` treats as categories natively
    (unknown values become missing), one-hot columns for every other estimator (unknown
    values are ignored). ``seed`` becomes the estimator's ``random_state`` unless the
    hyperparameters set it.

    Raises:
        ParameterError: a bad estimator path, or a hyperparameter the estimator does not have.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    cls = import_estimator(estimator_path)
    params = dict(hyperparameters or {})
    valid = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ParameterError(
            f"hyperparameter(s) {', '.join(map(repr, unknown))} not accepted by {cls.__name__}; "
            f"valid: {', '.join(sorted(valid))}",
            name="hyperparameters",
        )
    if seed is not None and "random_state" in valid and "random_state" not in params:
        params["random_state"] = seed
    numeric, categorical = column_kinds(X)
    native_categories = cls.__name__.startswith("HistGradientBoosting")
    numeric_steps = [("impute", SimpleImputer(strategy="median"))]
    if cls.__module__.startswith(_SCALED_MODULES):
        numeric_steps.append(("scale", StandardScaler()))
    if native_categories:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, max_categories=params.get("max_bins", 255)
        )
    else:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        categorical_steps = [("impute", SimpleImputer(strategy="most_frequent")), ("encode", encoder)]
        transformers.append(("categorical", Pipeline(categorical_steps), categorical))
    if native_categories and categorical and "categorical_features" not in params:
        params["categorical_features"] = list(range(len(numeric), len(numeric) + len(categorical)))
    prepare = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("prepare", prepare), ("model", cls(**params))])


# -- metrics --------------------------------------------------------------------------------

#: Below this many rows, fits, predictions and permutation importances use one OpenMP
#: thread: on small tables threads cost more than they gain, and inside a Jupyter kernel on
#: a busy 2-core machine OpenMP's waiting threads made a HistGradientBoosting fit of 274
#: rows take 13 s instead of 0.5 s.
SINGLE_THREAD_ROWS = 50_000


def _threads_for(n_rows: int):
    """A context that limits OpenMP to one thread for small data, else does nothing."""
    import contextlib

    if n_rows >= SINGLE_THREAD_ROWS:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


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


# -- training -------------------------------------------------------------------------------



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


# -- persistence ----------------------------------------------------------------------------


def _schema_types(data: bytes) -> set[str]:
    """Every type named in a skops file's schema (``module.Class``)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UntrustedModel(f"not a skops model file ({exc})") from exc
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__')}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def untrusted_types(data: bytes) -> list[str]:
    """Types in a skops file (its bytes) that are not in :data:`TRUSTED_TYPES`.

    Both the types skops itself would not trust and every type the file's schema names are
    checked, so the answer does not depend on skops's own default list.
    """
    import skops.io as sio

    found = _schema_types(data)
    try:
        found |= set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises many kinds on a malformed file
        raise UntrustedModel(f"not a readable skops model file ({type(exc).__name__}: {exc})") from exc
    return sorted(t for t in found if t not in _TRUSTED)


def load_model_bytes(data: bytes, where: str = "model"):
    """Load a skops model from its bytes, refusing any type outside :data:`TRUSTED_TYPES`.

    Raises:
        UntrustedModel: naming the types that are not trusted.
    """
    import skops.io as sio

    bad = untrusted_types(data)
    if bad:
        raise UntrustedModel(
            f"{where}: refusing to load a model holding types outside mlnb's trusted list: "
            f"{', '.join(bad)}",
            types=bad,
        )
    return sio.loads(data, trusted=list(TRUSTED_TYPES))


def dump_model(model, path) -> dict:
    """Save ``model`` with skops and check it loads back with the trusted types only.

    Returns:
        ``{"sha256", "bytes"}`` of the file.

    Raises:
        UntrustedModel: the model holds a type mlnb would refuse to load (nothing is written).
    """
    from mlnb.records import sha256_bytes
    from pathlib import Path

    import skops.io as sio

    path = Path(path)
    data = sio.dumps(model)
    bad = untrusted_types(data)
    if bad:
        raise UntrustedModel(
            f"model holds types outside mlnb's trusted list, so the registry could not load it: {', '.join(bad)}",
            types=bad,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"sha256": sha256_bytes(data), "bytes": len(data)}

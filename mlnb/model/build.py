"""Choosing the estimator and the features, and building the unfitted scikit-learn pipeline.

- :func:`import_estimator` turns an import path (``sklearn.ensemble.X``) into an estimator
  class, accepting only :data:`SUPPORTED_ESTIMATORS`; :func:`task_of` says whether an
  estimator is a classifier or a regressor, :func:`infer_task` what a target column asks for.
- :func:`select_features` picks the feature columns (all but the target, ids and dates
  unless the user names them) and :func:`build_pipeline` wraps the estimator in a
  ``Pipeline`` that imputes missing values and encodes categorical columns, so the saved
  model takes the raw feature columns as they come.

Date columns are not features: a date column is left out when ``features`` is None and
refused when named, because a model trained on one period's dates extrapolates badly and
the saved pipeline could only use them through custom code (which skops would refuse to
load). Derive numeric columns (day of year, month) in the data instead.

scikit-learn is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError, ParameterError
from mlnb.model.features import column_kinds
from mlnb.model.persist import _TRUSTED, qualified_name

if TYPE_CHECKING:
    import pandas as pd


#: Estimators the ``train`` template accepts: their fitted pipelines load back with only
#: :data:`~mlnb.model.persist.TRUSTED_TYPES`. Adding one means adding the types its pipeline
#: pickles to that list (``tests/test_metrics.py`` round-trips every entry).
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

TASKS = ("classification", "regression")

#: The estimator a task gets when ``mlnb.yaml`` or the train template names none.
DEFAULT_ESTIMATOR = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}

_ESTIMATOR_PATH = re.compile(r"^sklearn(\.[A-Za-z][A-Za-z0-9_]*)+$")
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_ID_NAMES = {"id", "uuid", "index", "key", "row", "row_id", "unnamed: 0"}
# Estimators that need scaled inputs (distances, penalties, gradient steps).
_SCALED_MODULES = ("sklearn.linear_model", "sklearn.svm", "sklearn.neighbors", "sklearn.neural_network")

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


# -- the task -------------------------------------------------------------------------------


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


# -- choosing the estimator and the features -------------------------------------------------


def import_estimator(path: str) -> type:
    """The scikit-learn estimator class named by ``path`` (``sklearn.ensemble.X``).

    Only import paths under ``sklearn.`` are imported, so a parameter cannot load arbitrary
    code, and only :data:`SUPPORTED_ESTIMATORS` are accepted, so every trained model can be
    loaded back with :data:`~mlnb.model.persist.TRUSTED_TYPES`.

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


def baseline_estimator(y: "pd.Series") -> str:
    """A sensible default estimator for a target: gradient boosting, classifier or regressor.

    The task is :func:`infer_task`'s: regression for numbers with fractions or more than 20
    distinct values, classification otherwise.
    """
    return DEFAULT_ESTIMATOR[infer_task(y)[0]]


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

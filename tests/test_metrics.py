"""Model building, metrics and safe persistence (mlnb.metrics), on the real weather data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlnb import metrics
from mlnb.exceptions import DataError, ParameterError
from mlnb.metrics import UntrustedModel

from .conftest import ROOT

HGB = "sklearn.ensemble.HistGradientBoostingClassifier"


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data/reference.csv")


@pytest.fixture(scope="module")
def messy(weather) -> pd.DataFrame:
    """The weather data with missing values, a text column with gaps, and an id column."""
    df = weather.copy()
    df["id"] = [f"row-{i}" for i in range(len(df))]
    df["sky"] = np.where(df["wind"] > 3.5, "windy", "calm").astype(object)
    df.loc[::11, "sky"] = np.nan
    df.loc[::7, "temp_max"] = np.nan
    return df


# -- estimator and features -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("os.system", "is not a scikit-learn import path"),
        ("sklearnx.ensemble.X", "is not a scikit-learn import path"),
        ("sklearn.ensemble._gb.GradientBoostingClassifier", "is not a scikit-learn import path"),
        ("sklearn.nope.Model", "no module 'sklearn.nope'"),
        ("sklearn.preprocessing.StandardScaler", "is not a scikit-learn classifier or regressor"),
        ("sklearn.ensemble.NoSuchModel", "is not a scikit-learn classifier or regressor"),
        ("sklearn.svm.SVC", "cannot be saved and loaded back with mlnb's trusted types; supported:"),
        (None, "is not a scikit-learn import path"),
    ],
)
def test_import_estimator_refuses_anything_but_supported_sklearn_estimators(path, fragment):
    with pytest.raises(ParameterError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as info:
        metrics.import_estimator(path)
    assert info.value.name == "estimator"


def test_every_supported_estimator_imports_with_its_task():
    for path in metrics.SUPPORTED_ESTIMATORS:
        cls = metrics.import_estimator(path)
        expected = "classification" if path.endswith("Classifier") or "Logistic" in path else "regression"
        assert metrics.task_of(cls) == expected, path


def test_default_features_leave_out_target_ids_and_dates(messy):
    assert metrics.select_features(messy, "weather") == ["precipitation", "temp_max", "temp_min", "wind", "sky"]


@pytest.mark.parametrize(
    "features, error, fragment",
    [
        (["date", "wind"], ParameterError, "feature(s) 'date' hold dates"),
        (["wind", "nope"], DataError, "feature column(s) 'nope' not in the data; columns: date, precipitation"),
        (["wind", "weather"], ParameterError, "target 'weather' is also listed as a feature"),
        ([], ParameterError, "features must be a non-empty list"),
        ("wind", ParameterError, "features must be a non-empty list"),
    ],
)
def test_named_features_are_checked(weather, features, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        metrics.select_features(weather, "weather", features)


def test_unknown_target_names_the_columns(weather):
    with pytest.raises(DataError, match="target column 'rain' is not in the data; columns: date, precipitation"):
        metrics.select_features(weather, "rain")


def test_pipeline_for_gradient_boosting_uses_native_categories(messy):
    X = messy[["precipitation", "temp_max", "sky"]]
    pipe = metrics.build_pipeline(HGB, {"max_iter": 10}, X, seed=3)
    model = pipe.named_steps["model"]
    assert model.categorical_features == [2]
    assert model.random_state == 3 and model.max_iter == 10
    encoder = pipe.named_steps["prepare"].transformers[1][1].named_steps["encode"]
    assert type(encoder).__name__ == "OrdinalEncoder"


def test_pipeline_for_linear_models_scales_and_one_hot_encodes(messy):
    X = messy[["precipitation", "temp_max", "sky"]]
    pipe = metrics.build_pipeline("sklearn.linear_model.LogisticRegression", {"C": 0.5}, X, seed=0)
    numeric, categorical = (t[1] for t in pipe.named_steps["prepare"].transformers)
    assert list(numeric.named_steps) == ["impute", "scale"]
    assert type(categorical.named_steps["encode"]).__name__ == "OneHotEncoder"
    assert pipe.named_steps["model"].C == 0.5


def test_unknown_hyperparameter_lists_the_valid_ones(weather):
    with pytest.raises(ParameterError, match=r"hyperparameter\(s\) 'n_estimators' not accepted by HistGradientBoostingClassifier; valid: .*max_iter"):
        metrics.build_pipeline(HGB, {"n_estimators": 5}, weather[["wind"]])


def test_train_handles_missing_values_and_unseen_categories(messy):
    result = metrics.train(messy, "weather", hyperparameters={"max_iter": 20}, seed=1)
    assert result.task == "classification" and result.stratified
    assert len(result.X_train) + len(result.X_holdout) == len(messy)
    unseen = result.X_holdout.head(3).copy()
    unseen["sky"] = ["stormy", None, "calm"]
    unseen["temp_max"] = np.nan
    assert len(result.model.predict(unseen)) == 3
    assert set(result.metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}


def test_the_split_is_reproducible_with_the_seed(weather):
    a = metrics.train(weather, "weather", hyperparameters={"max_iter": 5}, seed=7)
    b = metrics.train(weather, "weather", hyperparameters={"max_iter": 5}, seed=7)
    c = metrics.train(weather, "weather", hyperparameters={"max_iter": 5}, seed=8)
    assert list(a.X_holdout.index) == list(b.X_holdout.index)
    assert list(a.X_holdout.index) != list(c.X_holdout.index)
    assert a.metrics == b.metrics


def test_regression_training(weather):
    result = metrics.train(weather, "temp_max", ["temp_min", "precipitation", "weather"],
                           "sklearn.linear_model.Ridge", {}, 0.3, 0)
    assert result.task == "regression"
    assert set(result.metrics) == {"r2", "mae", "rmse"}
    assert result.metrics["r2"] > 0.5  # temp_min explains most of temp_max
    assert result.evaluation.confusion is None


@pytest.mark.parametrize(
    "target, expected",
    [("weather", HGB), ("temp_max", "sklearn.ensemble.HistGradientBoostingRegressor")],
)
def test_baseline_estimator_follows_the_target(weather, target, expected):
    assert metrics.baseline_estimator(weather[target]) == expected


# -- metrics ----------------------------------------------------------------------------------


def test_classification_metrics_are_sklearns_macro_averages():
    y = ["a", "b", "c", "a", "b", "c", "a"]
    p = ["a", "b", "b", "a", "c", "c", "b"]
    proba = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .5, .4], [.6, .3, .1], [.2, .3, .5], [.1, .2, .7], [.3, .4, .3]])
    got = metrics.classification_metrics(y, p, proba, ["a", "b", "c"])
    assert got["accuracy"] == pytest.approx(4 / 7)
    assert got["recall"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=["a", "b", "c"]))
    assert all(type(v) is float for v in got.values())


def test_roc_auc_is_defined_without_a_class_and_left_out_with_one():
    proba = np.array([[.8, .1, .1], [.2, .7, .1], [.6, .3, .1], [.2, .6, .2]])
    two_present = metrics.classification_metrics(["a", "b", "a", "b"], ["a", "b", "a", "b"], proba, ["a", "b", "c"])
    assert two_present["roc_auc"] == 1.0
    one_present = metrics.classification_metrics(["a"] * 4, ["a", "b", "a", "b"], proba, ["a", "b", "c"])
    assert "roc_auc" not in one_present


def test_regression_metrics():
    got = metrics.regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert got == pytest.approx({"r2": 1 - 4 / 2, "mae": 2 / 3, "rmse": (4 / 3) ** 0.5})
    assert set(metrics.regression_metrics([1.0], [2.0])) == {"mae", "rmse"}  # r2 of one row is undefined


def test_confusion_and_per_class_tables_include_classes_missing_from_a_batch():
    table = metrics.confusion_table(["a", "a", "b"], ["a", "b", "b"], classes=["a", "b", "c"])
    assert list(table.columns) == ["true", "a", "b", "c"]
    assert table.set_index("true").loc["a"].tolist() == [1, 1, 0]
    per_class = metrics.per_class_table(["a", "a", "b"], ["a", "b", "b"], classes=["a", "b", "c"])
    assert per_class.set_index("class").loc["c", "support"] == 0


def test_feature_importances_rank_the_informative_feature_first(weather):
    result = metrics.train(weather, "temp_max", ["temp_min", "wind"], "sklearn.linear_model.Ridge")
    table = metrics.feature_importances(result.model, result.X_holdout, result.y_holdout)
    assert table["feature"].tolist()[0] == "temp_min"


# -- persistence ------------------------------------------------------------------------------


def _small(path: str) -> dict:
    if "HistGradient" in path:
        return {"max_iter": 5}
    if any(k in path for k in ("Forest", "Trees", ".GradientBoosting")):
        return {"n_estimators": 5}
    return {}


@pytest.mark.parametrize("path", metrics.SUPPORTED_ESTIMATORS)
def test_every_supported_estimator_loads_back_with_trusted_types_only(messy, tmp_path, path):
    target = "temp_min" if metrics.task_of(metrics.import_estimator(path)) == "regression" else "weather"
    result = metrics.train(messy, target, ["precipitation", "temp_max", "wind", "sky"], path, _small(path))
    saved = metrics.dump_model(result.model, tmp_path / "model.skops")
    data = (tmp_path / "model.skops").read_bytes()
    assert saved["bytes"] == len(data)
    assert metrics.untrusted_types(data) == []
    loaded = metrics.load_model_bytes(data)
    np.testing.assert_array_equal(loaded.predict(result.X_holdout), result.model.predict(result.X_holdout))


def _evil_model(weather) -> Pipeline:
    return Pipeline([("evil", FunctionTransformer(func=eval, validate=False))]).fit(weather[["wind"]])


def test_a_model_holding_an_untrusted_function_is_refused(weather, tmp_path):
    data = sio.dumps(_evil_model(weather))
    with pytest.raises(UntrustedModel, match="refusing to load a model holding types outside mlnb's trusted list: builtins.eval") as info:
        metrics.load_model_bytes(data)
    assert info.value.types == ["builtins.eval"]
    with pytest.raises(UntrustedModel, match="builtins.eval"):
        metrics.dump_model(_evil_model(weather), tmp_path / "evil.skops")
    assert not (tmp_path / "evil.skops").exists()


@pytest.mark.parametrize("data", [b"", b"not a zip file", b"PK\x03\x04broken"])
def test_bytes_that_are_not_a_skops_file_are_refused(data):
    with pytest.raises(UntrustedModel, match="not a .*skops model file"):
        metrics.load_model_bytes(data)

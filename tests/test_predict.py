"""Batch prediction: mlnb.predict, the predict template and ``mlnb predict``.

Uses the trained and registered store of tests/test_serve.py (``weather/1`` gradient
boosting, ``weather/2`` logistic regression = ``production``), made once per session.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlnb import metrics, records
from mlnb.exceptions import DataError, ParameterError
from mlnb.predict import Scorer, feature_kinds, missing_features, predict_table
from mlnb.registry import Registry
from mlnb.store import Store

from .conftest import ROOT
from .test_serve import BATCH, FEATURES, REFERENCE, copy_store, shared_trained_store

pytestmark = pytest.mark.xdist_group("predict")


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, worker_id):
    return shared_trained_store(tmp_path_factory, worker_id)


@pytest.fixture
def store(trained_store, tmp_path) -> Store:
    return Store(copy_store(trained_store, tmp_path / "store"))


@pytest.fixture(scope="session")
def production(trained_store):
    with Registry(trained_store) as registry:
        return registry.load("weather@production")


@pytest.fixture
def batch_with_gaps() -> pd.DataFrame:
    """The 2013-q1 batch with three rows lacking feature values."""
    df = pd.read_csv(BATCH)
    df.loc[3, "wind"] = np.nan
    df.loc[7, ["temp_max", "temp_min"]] = np.nan
    df.loc[11, "precipitation"] = np.nan
    return df


# -- the library ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])  # gradient boosting (one pass over the trees), logistic regression
def test_scorer_equals_predict_and_predict_proba(trained_store, version):
    with Registry(trained_store) as registry:
        model = registry.load(f"weather/{version}")
    X = pd.read_csv(REFERENCE)[FEATURES]
    scorer = Scorer(model)
    assert scorer._one_pass == (version == 1)
    scores = scorer(X)
    np.testing.assert_array_equal(scores.predictions, model.predict(X))
    np.testing.assert_array_equal(scores.probabilities, model.predict_proba(X))
    assert scores.classes == list(model.classes_)
    binary = pd.read_csv(REFERENCE).assign(rain=lambda d: d["weather"] == "rain")
    two = metrics.train(binary, "rain", FEATURES, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20},
                        0.25, 0).model
    np.testing.assert_array_equal(Scorer(two)(X).predictions, two.predict(X))
    np.testing.assert_array_equal(Scorer(two)(X).probabilities, two.predict_proba(X))


def test_feature_kinds_follow_the_training_data():
    df = pd.DataFrame({
        "size": np.arange(40, dtype=float), "colour": ["red", "blue"] * 20, "flag": [True, False, False, True] * 10,
        "label": ["a", "b"] * 20,
    })
    for estimator in ("sklearn.ensemble.HistGradientBoostingClassifier", "sklearn.linear_model.LogisticRegression"):
        model = metrics.train(df, "label", None, estimator, {}, 0.25, 0).model
        assert feature_kinds(model, ["size", "colour", "flag"]) == {
            "size": "numeric", "colour": "categorical", "flag": "boolean",
        }
    assert feature_kinds(object(), ["x"]) == {"x": "any"}


def test_rows_with_missing_features_are_reported_not_dropped(production, batch_with_gaps):
    df = batch_with_gaps
    result = predict_table(production, df, FEATURES, name="weather", version=2)
    table = result.table
    assert len(table) == len(df) and table["row"].tolist() == list(range(len(df)))
    assert result.n_missing == 3 and result.n_scored == len(df) - 3
    assert table.loc[[3, 7, 11], "missing"].tolist() == ["wind", "temp_max, temp_min", "precipitation"]
    assert table.loc[[3, 7, 11], "prediction"].isna().all()
    assert table.loc[[3, 7, 11], [c for c in table if c.startswith("proba_")]].isna().all().all()
    complete = df.drop(index=[3, 7, 11])
    assert table.loc[complete.index, "prediction"].tolist() == production.predict(complete[FEATURES]).tolist()
    assert table.loc[complete.index, "missing"].isna().all()
    assert list(table.columns) == ["row", "date", "weather", "prediction", *[f"proba_{c}" for c in production.classes_],
                                   "missing", "model_name", "model_version"]
    assert (table["model_name"] == "weather").all() and (table["model_version"] == 2).all()
    assert result.missing.set_index("feature")["rows_missing"].to_dict() == {
        "precipitation": 1, "temp_max": 1, "temp_min": 1, "wind": 1,
    }
    # imputing: every row scored, exactly as model.predict does, and still reported
    imputed = predict_table(production, df, FEATURES, name="weather", version=2, impute_missing=True, keep=[])
    assert imputed.n_scored == len(df) and imputed.n_missing == 3
    assert imputed.table["prediction"].tolist() == production.predict(df[FEATURES]).tolist()
    assert imputed.table.loc[7, "missing"] == "temp_max, temp_min"


def test_predict_table_refuses_bad_columns(production):
    df = pd.read_csv(BATCH)
    with pytest.raises(DataError, match=r"lacks the model's feature column\(s\) 'wind'"):
        predict_table(production, df.drop(columns="wind"), FEATURES, name="weather", version=2)
    with pytest.raises(ParameterError, match="keep: column.*'id' not in the data"):
        predict_table(production, df, FEATURES, name="weather", version=2, keep=["id"])
    with pytest.raises(ParameterError, match="clash with the output's own columns"):
        predict_table(production, df.rename(columns={"weather": "prediction"}), FEATURES, name="weather", version=2)


def test_missing_features_text():
    df = pd.DataFrame({"a": [1.0, None, None], "b": ["x", "y", None]})
    assert missing_features(df, ["a", "b"]).tolist() == [None, "a", "a, b"]


# -- the template and the command ---------------------------------------------------------------------


def test_mlnb_predict_scores_a_file_records_the_run_and_copies_the_artifact(store, cli, tmp_path, production,
                                                                            batch_with_gaps):
    source = tmp_path / "batch.csv"
    batch_with_gaps.to_csv(source, index=False)
    output = tmp_path / "out" / "predictions.parquet"
    output.parent.mkdir()
    result = cli("predict", "weather@production", "--input", str(source), "--output", str(output),
                 "--store", str(store.path))
    assert result.returncode == 0, result.stderr
    assert "3 rows lack a feature value (left without a prediction)" in result.stderr
    assert f"{len(batch_with_gaps) - 3:,} of {len(batch_with_gaps):,} rows scored" in result.stdout
    runs = [store.get(i) for i in store.run_ids() if "-predict-" in i]
    assert len(runs) == 1
    run = runs[0]
    assert run.succeeded and not store.verify(run.id)
    scraps = run.record["scraps"]
    assert scraps["model"]["name"] == "weather" and scraps["model"]["version"] == 2 and not scraps["model"]["demo"]
    assert scraps["n_rows"] == len(batch_with_gaps) and scraps["n_missing"] == 3
    assert [i["sha256"] for i in run.record["inputs"] if i["parameter"] == "data"] == [records.sha256_file(source)]
    artifact = run.artifact(scraps["predictions_artifact"])
    assert output.read_bytes() == artifact.read_bytes()
    table = pd.read_parquet(output)
    assert (table["model_name"] == "weather").all() and (table["model_version"] == 2).all()
    complete = batch_with_gaps.dropna(subset=FEATURES)
    assert table.loc[complete.index, "prediction"].tolist() == production.predict(complete[FEATURES]).tolist()
    meta = json.loads(pq.read_schema(output).metadata[b"mlnb"])
    assert meta["uri"] == "weather@production" and meta["version"] == 2 and meta["run_id"] == scraps["model"]["run_id"]


def test_predict_template_with_a_version_csv_output_and_imputation(store, production, batch_with_gaps, tmp_path):
    from mlnb.execute import run_template

    source = tmp_path / "batch.parquet"
    batch_with_gaps.to_parquet(source)
    run = run_template("predict", {"model": "weather/1", "data": str(source), "output_format": "csv",
                                   "keep": ["date"], "impute_missing": True}, store)
    assert run.succeeded, run.record["error"]
    table = pd.read_csv(run.artifact("predictions.csv"))
    with Registry(store) as registry:
        first = registry.load("weather/1")
    assert table["prediction"].tolist() == first.predict(batch_with_gaps[FEATURES]).tolist()
    assert list(table.columns[:2]) == ["row", "date"] and (table["model_version"] == 1).all()
    assert run.record["scraps"]["n_scored"] == len(batch_with_gaps)
    assert sum(run.record["scraps"]["class_counts"].values()) == len(batch_with_gaps)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["weather@staging"], "has no alias 'staging'"),
        (["nosuch/1"], "no model named 'nosuch'"),
        (["weather@production", "--output-name", "x.txt"], "unknown extension '.txt'"),
        (["weather@production", "--drop", "wind"], "lacks the model's feature column(s) 'wind'"),
        (["weather@production", "--output-name", "missing-dir/x.csv"], "does not exist"),
        (["weather@production", "--keep", "nosuch"], "keep: column(s) 'nosuch' not in the data"),
        (["weather@production", "--add", "prediction"], "keep: column(s) 'prediction' would clash"),
    ],
)
def test_mlnb_predict_refuses_bad_input_before_running(store, cli, tmp_path, args, fragment):
    df = pd.read_csv(BATCH)
    uri, *rest = args
    output = "out.csv"
    if "--output-name" in rest:
        output = rest[rest.index("--output-name") + 1]
    if "--drop" in rest:
        df = df.drop(columns=rest[rest.index("--drop") + 1])
    if "--add" in rest:
        df[rest[rest.index("--add") + 1]] = "x"
    df.to_csv(tmp_path / "in.csv", index=False)
    before = store.run_ids()
    keep = ["--keep", rest[rest.index("--keep") + 1]] if "--keep" in rest else []
    result = cli("predict", uri, "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / output),
                 "--store", str(store.path), *keep)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlnb: error: ") and fragment in lines[0], lines
    assert store.run_ids() == before and not (tmp_path / output).exists()


def test_templates_ship_and_declare_their_inputs():
    from mlnb.execute import find_template

    predict, shadow = find_template("predict"), find_template("shadow")
    assert {"model", "data"} <= set(predict.parameters) and predict.inputs == {"model": "model", "data": "table"}
    assert {"log", "labels"} <= set(shadow.parameters) and shadow.inputs == {"log": "shadow_log", "labels": "table"}
    assert (ROOT / "templates" / "predict.ipynb").is_file()

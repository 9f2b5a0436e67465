"""A user's own table, by hand: nothing of the bundled example gets into the run.

Every command runs in a directory outside any project (no mlnb.yaml), on real tables that
are not the example: scikit-learn's wine (three classes) and diabetes (a regression).
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from .conftest import run_cli


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    from sklearn.datasets import load_diabetes, load_wine

    base = tmp_path_factory.mktemp("own")
    wine = load_wine(as_frame=True).frame
    reference = wine.sample(frac=0.5, random_state=0)
    reference.to_csv(base / "wine_ref.csv", index=False)
    wine.drop(reference.index).to_csv(base / "wine_new.csv", index=False)
    load_diabetes(as_frame=True, scaled=False).frame.to_csv(base / "diabetes.csv", index=False)
    return base


def _one_line(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _listing(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_drift_by_hand_on_a_table_without_a_date(tables, tmp_path):
    store = tmp_path / "store"
    result = run_cli("run", "drift", "-p", "reference", str(tables / "wine_ref.csv"), "-p", "current",
                     str(tables / "wine_new.csv"), "--store", str(store), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["parameters"]["exclude"] == "auto"
    shown = run_cli("run", "drift", "-p", "reference", str(tables / "wine_ref.csv"), "-p", "current",
                    str(tables / "wine_new.csv"), "--store", str(store), cwd=tmp_path)
    assert "dataset_drift: False" in shown.stdout and "drift_share:" in shown.stdout  # the result, not only paths
    assert record["scraps"]["dataset_drift"] is False
    assert record["scraps"]["excluded"] == {}


def test_validate_refuses_the_examples_reference_for_your_data(tables, tmp_path):
    store = tmp_path / "store"
    result = run_cli("run", "validate", "-p", "data", str(tables / "wine_new.csv"), "--store", str(store), cwd=tmp_path)
    _one_line(result, 2, "parameter 'reference' was left at its default", "'data' is yours")
    assert not store.exists()


def test_validate_with_your_reference_accepts_a_batch_of_the_same_population(tables, tmp_path):
    result = run_cli("run", "validate", "-p", "data", str(tables / "wine_new.csv"), "-p", "reference",
                     str(tables / "wine_ref.csv"), "--store", str(tmp_path / "store"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scraps = json.loads(result.stdout)["scraps"]
    assert scraps["passed"] is True and scraps["accepted"] is True


@pytest.mark.parametrize(
    "model, fragments",
    [
        ("segmnt@production", ["parameter 'model': no model named 'segmnt'", "registered models: none"]),
        ("segment/7", ["parameter 'model': no model named 'segment'"]),
        (None, ["parameter 'model' is not given and demo mode runs on the bundled example data only"]),
    ],
)
@pytest.mark.parametrize("template", ["evaluate", "predict"])
def test_a_model_that_does_not_resolve_is_exit_2_before_a_kernel_starts(tables, tmp_path, template, model, fragments):
    store = tmp_path / "store"
    args = ["run", template, "-p", "data", str(tables / "wine_new.csv"), "--store", str(store)]
    if model is not None:
        args += ["-p", "model", model]
    _one_line(run_cli(*args, cwd=tmp_path), 2, *fragments)
    assert _listing(store) == []


def test_shadow_log_that_does_not_exist_is_exit_2(tmp_path):
    store = tmp_path / "store"
    result = run_cli("run", "shadow", "-p", "log", "segmnt", "--store", str(store), cwd=tmp_path)
    _one_line(result, 2, "parameter 'log': no shadow log for model 'segmnt'")
    assert _listing(store) == []


def test_train_needs_the_target_of_your_data(tables, tmp_path):
    store = tmp_path / "store"
    result = run_cli("run", "train", "-p", "data", str(tables / "diabetes.csv"), "--store", str(store), cwd=tmp_path)
    _one_line(result, 2, "parameter 'target' is required", "columns: age, sex, bmi")
    result = run_cli("run", "train", "-p", "data", str(tables / "diabetes.csv"), "-p", "target", "progression",
                     "--store", str(store), cwd=tmp_path)
    _one_line(result, 2, "parameter 'target': 'progression' is not a column", "columns: age, sex, bmi")
    assert _listing(store) == []


def test_train_picks_a_regressor_for_a_numeric_target(tables, tmp_path):
    result = run_cli("run", "train", "-p", "data", str(tables / "diabetes.csv"), "-p", "target", "target",
                     "--store", str(tmp_path / "store"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scraps = json.loads(result.stdout)["scraps"]
    assert scraps["task"] == "regression"
    assert scraps["estimator"] == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert {"r2", "mae", "rmse"} <= set(scraps["metrics"])


def test_init_refuses_a_target_that_is_not_a_column(tables, tmp_path):
    result = run_cli("init", "proj", "--data", str(tables / "diabetes.csv"), "--target", "progresion", cwd=tmp_path)
    _one_line(result, 2, "--target 'progresion' is not a column of the data; columns: age, sex, bmi")
    assert not (tmp_path / "proj").exists()


def test_init_writes_a_regression_project(tables, tmp_path):
    result = run_cli("init", "proj", "--data", str(tables / "diabetes.csv"), "--target", "target", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    from mlnb.config import load_config

    config = load_config(tmp_path / "proj" / "mlnb.yaml")
    assert (config.model.task, config.promotion.metric) == ("regression", "rmse")
    assert config.triggers.performance.max_rise is not None and config.triggers.performance.min is None
    assert config.model.features == [c for c in pd.read_csv(tables / "diabetes.csv").columns if c != "target"]
    assert os.path.isdir(tmp_path / "proj" / "data" / "batches")
    assert "task: regression  # the target is numeric" in (tmp_path / "proj" / "mlnb.yaml").read_text()


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"model": {"hyperparameters": {"max_iterr": 5}}}, ["model.hyperparameters: 'max_iterr' not taken by HistGradientBoostingClassifier; allowed:"]),
        ({"model": {"target": "klass"}}, ["model.target: 'klass' is not a column of the reference; columns: alcohol"]),
        ({"model": {"hyperparameters": {"max_iter": -1}}}, ["model.hyperparameters: The 'max_iter' parameter of "
                                                             "HistGradientBoostingClassifier must be"]),
        ({"model": {"estimator": "sklearn.ensemble.RandomForestRegressor"}}, ["model.estimator: sklearn.ensemble.RandomForestRegressor is a regressor but model.task is 'classification'"]),
        ({"drift": {"columns": ["alcohool"]}}, ["drift.columns: 'alcohool' in neither the reference nor the batch"]),
        ({"drift": {"method": "kss"}}, ["drift.method: 'kss' is not a method; allowed: auto, "]),
        ({"promotion": {"metric": "rmse"}}, ["promotion.metric: 'rmse' is not a classification metric"]),
    ],
)
def test_a_pipeline_that_cannot_start_writes_nothing(tables, tmp_path, change, fragments):
    import yaml

    root = tmp_path / "wine"
    assert run_cli("init", str(root), "--data", str(tables / "wine_ref.csv"), "--target", "target").returncode == 0
    config = yaml.safe_load((root / "mlnb.yaml").read_text())
    for section, values in change.items():
        config[section].update(values)
    (root / "mlnb.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("pipeline", "run", "--current", str(tables / "wine_new.csv"), cwd=root)
    _one_line(result, 2, *fragments)
    assert _listing(root / "runs") == []


@pytest.fixture(scope="module")
def wine_project(tables, tmp_path_factory):
    """A project made by ``mlnb init`` for wine, with strict validation: any warning rejects."""
    import yaml

    root = tmp_path_factory.mktemp("wine-strict") / "wine"
    assert run_cli("init", str(root), "--data", str(tables / "wine_ref.csv"), "--target", "target").returncode == 0
    config = yaml.safe_load((root / "mlnb.yaml").read_text())
    config["validation"].update(reject_on="any", slack=0.0)
    (root / "mlnb.yaml").write_text(yaml.safe_dump(config))
    return root


def test_validate_by_hand_agrees_with_the_pipeline_and_a_new_configuration_reprocesses(tables, wine_project):
    batch = str(tables / "wine_new.csv")
    by_hand = run_cli("run", "validate", "-p", "data", batch, "--json", cwd=wine_project)
    assert by_hand.returncode == 1  # rejected under the project's rule, as the pipeline rejects it
    record = json.loads(by_hand.stdout)
    assert record["parameters"]["reference"] == str(wine_project / "data" / "reference.csv")
    assert (record["parameters"]["slack"], record["parameters"]["reject_on"]) == (0.0, "any")
    assert "parameters from" in by_hand.stderr and "reject_on=any" in by_hand.stderr
    piped = run_cli("pipeline", "run", "--current", batch, cwd=wine_project)
    assert piped.returncode == 5, piped.stdout + piped.stderr
    assert record["error"]["evalue"] in piped.stdout  # the same verdict, word for word

    # the batch is processed once per configuration: fix the rule, and it is processed again
    import yaml

    again = run_cli("pipeline", "run", "--current", batch, cwd=wine_project)
    assert again.returncode == 0 and "already processed under this configuration" in again.stdout
    config = yaml.safe_load((wine_project / "mlnb.yaml").read_text())
    config["validation"].update(reject_on="schema", slack=0.25)
    (wine_project / "mlnb.yaml").write_text(yaml.safe_dump(config))
    fixed = run_cli("pipeline", "run", "--current", batch, cwd=wine_project)
    assert fixed.returncode == 3, fixed.stdout + fixed.stderr  # accepted now: a first model is promoted
    assert "under another configuration" in fixed.stdout and "the configuration changed since" in fixed.stdout


def test_a_given_model_does_not_go_with_the_examples_data(tmp_path):
    store = tmp_path / "store"
    result = run_cli("run", "evaluate", "-p", "model", "segment@production", "--store", str(store), cwd=tmp_path)
    _one_line(result, 2, "parameter 'data' was left at its default", "'model' is yours; give data")
    assert _listing(store) == []


def test_relative_paths_are_taken_from_where_mlnb_runs(tmp_path):
    result = run_cli("run", "validate", "-p", "data", "nothere.csv", "-p", "reference", "nothere.csv",
                     "--store", str(tmp_path / "store"), cwd=tmp_path)
    _one_line(result, 2, f"cannot read '{tmp_path / 'nothere.csv'}': no such file")


def test_your_reference_wins_over_the_projects_schema(tables, tmp_path):
    from mlnb.config import parse_config
    from mlnb.execute import find_template, prepare_parameters
    from mlnb.validation import infer

    schema = tmp_path / "schema.yaml"
    infer(pd.read_csv(tables / "diabetes.csv")).to_yaml(schema)
    config = parse_config({"model": {"name": "w", "target": "target"},
                           "data": {"reference": str(tables / "wine_ref.csv"), "current": "c"},
                           "validation": {"schema": str(schema)}}, root=tmp_path)
    template = find_template("validate")
    final = prepare_parameters(template, {"data": str(tables / "wine_new.csv")}, tmp_path, tmp_path / "s", config)
    assert final["schema"] == str(schema)  # the project's schema, when the user says nothing
    final = prepare_parameters(template, {"data": str(tables / "wine_new.csv"), "reference": str(tables / "wine_ref.csv")},
                               tmp_path, tmp_path / "s", config)
    assert final["schema"] is None and final["reference"] == str(tables / "wine_ref.csv")
    assert final["target"] == "target"  # the label may be missing from a batch

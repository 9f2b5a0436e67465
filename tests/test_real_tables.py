"""The whole pipeline on real tables that are not the bundled example.

Three tables that ship in installed packages — a binary classification (scikit-learn's
breast cancer), a multi-class one with nulls, text and a date column (vega_datasets' cars,
predicting the origin; Europe and Japan are the rare classes) and a regression (scikit-learn's
diabetes progression) — each split into a reference (a random half), an in-distribution
batch drawn from the other half, a drifted batch (the other half's rows in the upper part of
one feature: a region of the same table) and a broken batch (a column missing). Each project
is made with ``mlnb init --data --target`` as a user would, and every decision is asserted:
in-distribution → accepted, no dataset drift, a first model promoted; drifted → drift
fires and a challenger is trained and compared by the metric's direction; broken →
rejected, naming the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mlnb.config import load_config
from mlnb.pipeline import OUTCOME_EXIT
from mlnb.pipeline.backfill import run_backfill
from mlnb.project import init_project
from mlnb.registry import Registry
from mlnb.store import Store


@dataclass(frozen=True)
class Table:
    name: str
    target: str
    task: str
    metric: str
    region_by: str  # the feature whose upper part is the drifted region
    broken_column: str  # the column the broken batch lacks

    def frame(self) -> pd.DataFrame:
        if self.name == "breast_cancer":
            from sklearn.datasets import load_breast_cancer

            df = load_breast_cancer(as_frame=True).frame
            df.columns = [c.replace(" ", "_") for c in df.columns]
            return df
        if self.name == "diabetes":
            from sklearn.datasets import load_diabetes

            return load_diabetes(as_frame=True, scaled=False).frame
        from vega_datasets import local_data

        df = local_data.cars()
        df["Year"] = df["Year"].dt.strftime("%Y-%m-%d")
        return df


TABLES = [
    Table("breast_cancer", "target", "classification", "accuracy", "mean_radius", "mean_area"),
    Table("cars", "Origin", "classification", "accuracy", "Weight_in_lbs", "Horsepower"),
    Table("diabetes", "target", "regression", "rmse", "bmi", "s5"),
]


@dataclass
class Outcome:
    table: Table
    root: Path
    decisions: dict


_OUTCOMES: dict[str, Outcome] = {}


# The three pipeline runs of a table take about two minutes and must happen once: one
# worker runs this whole file, and it keeps each table's outcome (pytest sets a parametrized
# module fixture up again whenever the items of one param are not adjacent).
pytestmark = pytest.mark.xdist_group("real-tables")


@pytest.fixture(scope="module", params=[pytest.param(t, id=t.name) for t in TABLES])
def pipeline_runs(request, tmp_path_factory) -> Outcome:
    table: Table = request.param
    if table.name not in _OUTCOMES:
        _OUTCOMES[table.name] = _run_table(table, tmp_path_factory)
    return _OUTCOMES[table.name]


def _run_table(table: Table, tmp_path_factory) -> Outcome:
    base = tmp_path_factory.mktemp(table.name)
    df = table.frame()
    reference = df.sample(frac=0.5, random_state=0)
    rest = df.drop(reference.index)
    reference.to_csv(base / "reference.csv", index=False)
    batches = {
        "in_distribution": rest.sample(min(100, len(rest) // 2), random_state=1),
        "drifted": rest[rest[table.region_by] >= rest[table.region_by].quantile(0.6)],
        "broken": rest.sample(60, random_state=2).drop(columns=[table.broken_column]),
    }
    root = base / "project"
    init_project(root, data=base / "reference.csv", target=table.target)
    files = {}
    for i, (name, batch) in enumerate(batches.items(), start=1):
        files[name] = root / "data" / "batches" / f"{i}-{name}.csv"  # the names give the order
        batch.to_csv(files[name], index=False)
    config = load_config(root / "mlnb.yaml")
    # one backfill runs the three batches in name order, as three pipeline runs
    done = run_backfill(config, str(root / "data" / "batches" / "*.csv"))
    assert [path for path, _, _ in done.done] == list(files.values()) and not done.seen
    assert all(record.succeeded for _, _, record in done.done), [r.record["error"] for _, _, r in done.done]
    assert done.worst == "rejected" and done.exit_code == OUTCOME_EXIT["rejected"]
    decisions = {name: decision for name, (_, decision, _) in zip(files, done.done)}
    return Outcome(table, root, decisions)


def _child_scraps(root: Path, decision, step: str) -> dict:
    return Store(root / "runs").get(decision.children[step]).record["scraps"]


def test_init_writes_a_config_for_the_table(pipeline_runs):
    table = pipeline_runs.table
    config = load_config(pipeline_runs.root / "mlnb.yaml")
    assert config.model.task == table.task
    assert config.model.target == table.target and table.target not in config.model.features
    assert config.promotion.metric == table.metric == config.triggers.performance.metric
    assert config.model.estimator.endswith("Classifier" if table.task == "classification" else "Regressor")
    if table.name == "cars":  # the date and the free-text name are not features
        assert "Year" not in config.model.features


def test_in_distribution_batch_is_accepted_without_drift_and_bootstraps(pipeline_runs):
    decision = pipeline_runs.decisions["in_distribution"]
    drift = _child_scraps(pipeline_runs.root, decision, "drift")
    assert decision.outcome == "promoted", decision.reasons
    assert drift["dataset_drift"] is False, drift["drift_share"]
    assert _child_scraps(pipeline_runs.root, decision, "validate")["passed"] is True
    assert [t["name"] for t in decision.triggers if t["fired"]] == ["bootstrap"]


def test_cars_leaves_the_date_out_of_drift_by_rule(pipeline_runs):
    if pipeline_runs.table.name != "cars":
        pytest.skip("only the cars table has a date column")
    drift = _child_scraps(pipeline_runs.root, pipeline_runs.decisions["in_distribution"], "drift")
    assert "Year" in drift["excluded"] and "dates" in drift["excluded"]["Year"]


def test_drifted_region_is_drift_not_invalid_data_and_retrains(pipeline_runs):
    decision = pipeline_runs.decisions["drifted"]
    assert decision.outcome in ("promoted", "not_promoted"), decision.reasons
    assert _child_scraps(pipeline_runs.root, decision, "validate")["passed"] is True
    fired = {t["name"] for t in decision.triggers if t["fired"]}
    assert "drift" in fired, decision.triggers
    assert {"train", "evaluate_challenger", "evaluate_champion"} <= set(decision.children)


def test_promotion_follows_the_metrics_direction(pipeline_runs):
    decision = pipeline_runs.decisions["drifted"]
    comparison = decision.comparison
    metric = pipeline_runs.table.metric
    assert comparison["metric"] == metric
    challenger, champion = comparison["challenger"], comparison["champion"]
    better = challenger < champion if metric == "rmse" else challenger > champion  # rmse: lower is better
    assert comparison["promote"] == better, comparison
    aliases = Registry(Store(pipeline_runs.root / "runs")).aliases()
    expected = 2 if comparison["promote"] else 1
    assert aliases[(load_config(pipeline_runs.root / "mlnb.yaml").model.name, "production")] == expected


def test_broken_batch_is_rejected_naming_the_column(pipeline_runs):
    decision = pipeline_runs.decisions["broken"]
    column = pipeline_runs.table.broken_column
    assert decision.outcome == "rejected"
    assert f"{column} column_present" in decision.reasons[-1]
    assert set(decision.children) == {"validate"}
    # drift and scoring ran beside validation and were discarded, not committed
    store = Store(pipeline_runs.root / "runs")
    parent = store.get(decision.children["validate"]).record["parent"]
    assert [r["id"] for r in store.list_runs(parent=parent)] == [decision.children["validate"]]
    assert not any((store.path / ".staging").iterdir())


def test_a_second_backfill_processes_nothing_and_every_run_had_a_warm_kernel(pipeline_runs):
    config = load_config(pipeline_runs.root / "mlnb.yaml")
    store = Store(pipeline_runs.root / "runs")
    before = store.run_ids()
    again = run_backfill(config, str(pipeline_runs.root / "data" / "batches" / "*.csv"))
    assert again.done == [] and len(again.seen) == 3 and again.worst == "skipped"
    assert store.run_ids() == before
    preparations = [store.get(run_id).record["environment"]["kernel_preparation"] for run_id in before]
    from mlnb.forkserver import available

    assert {p["mode"] for p in preparations} == {"forked" if available() else "warm"}
    assert all(p["preloaded"] for p in preparations)

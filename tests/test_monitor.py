"""Realized and estimated performance: chunks, CBPE, DLE, thresholds, the trigger and the monitor template.

Estimates are checked on real tables that ship with scikit-learn, not the weather example:
handwritten digits (10 classes) and breast cancer (2 classes) for CBPE, diabetes
progression for DLE; each in distribution and under a simulated covariate shift. The shift
samples rows with weights that grow along the direction of feature space where the model
erred on its reference (a function of the features only, so the relation between features
and labels is unchanged: the case CBPE and DLE are built for).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest

from mlnb import metrics, monitor
from mlnb.exceptions import ConfigError, DataError, ParameterError
from mlnb.registry import Registry
from mlnb.store import Store

from .test_predlog import labelled_store

T0 = pd.Timestamp("2026-01-05", tz="UTC")


def _setup(frame: pd.DataFrame, target: str, estimator: str, hyperparameters: dict, shares=(0.35, 0.65)):
    """Train on one part, score a reference and an analysis pool with the model."""
    features = [c for c in frame.columns if c != target]
    order = np.random.default_rng(1).permutation(len(frame))
    a, b = int(len(frame) * shares[0]), int(len(frame) * shares[1])
    train, ref, pool = frame.iloc[order[:a]], frame.iloc[order[a:b]], frame.iloc[order[b:]]
    result = metrics.train(train, target, features, estimator, hyperparameters, 0.01, 0)
    reference = monitor.score_reference(result.model, ref, features, target)
    analysis = monitor.score_reference(result.model, pool, features, target)
    return result, features, reference, analysis


def _shifted_chunks(reference, analysis, features, task, size, n_chunks=16, strength=0.5, seed=2):
    """``n_chunks`` chunks of ``size`` rows; the second half sampled ever more towards hard rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(reference[features])
    if task == "classification":
        hard = (reference["prediction"].astype(str) != reference["label"].astype(str)).astype(int)
    else:
        error = np.abs(reference["label"] - reference["prediction"])
        hard = (error > error.median()).astype(int)
    probe = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(
        scaler.transform(reference[features]), hard)
    z = probe.decision_function(scaler.transform(analysis[features]))
    z = (z - z.mean()) / z.std()
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(n_chunks):
        a = 0.0 if c < n_chunks // 2 else (c - n_chunks // 2 + 1) * strength
        w = np.exp(a * z)
        picked.append(analysis.iloc[rng.choice(len(analysis), size, replace=False, p=w / w.sum())])
    out = pd.concat(picked, ignore_index=True)
    out["time"] = T0 + pd.to_timedelta(np.arange(len(out)), unit="min")
    return out


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    frame["target"] = frame["target"].astype(str)
    result, features, reference, analysis = _setup(frame, "target", "sklearn.linear_model.LogisticRegression",
                                                   {"max_iter": 3000})
    chunks = _shifted_chunks(reference, analysis, features, "classification", 150)
    est = monitor.estimate(chunks, reference, task="classification", features=features, chunk="150", min_rows=50)
    return est, est.table[est.table["metric"] == "accuracy"].reset_index(drop=True)


def test_cbpe_follows_realized_accuracy_of_ten_classes_in_distribution_and_under_shift(digits):
    est, acc = digits
    assert est.method == "cbpe" and len(acc) == 16
    assert (acc["estimated"] - acc["realized"]).abs().mean() <= 0.03
    before, after = acc.iloc[:8], acc.iloc[8:]
    assert after["realized"].mean() < before["realized"].mean() - 0.03  # the shift hurts
    assert (after["estimated"] < before["estimated"].mean()).mean() >= 0.9  # and the estimate says so
    assert not before["alert"].any()
    assert after["alert"].sum() >= 4
    covered = (acc["realized"] >= acc["lower"]) & (acc["realized"] <= acc["upper"])
    assert covered.mean() >= 0.8
    assert acc.loc[8:, "drift_share"].mean() > acc.loc[:7, "drift_share"].mean()


def test_binary_cbpe_on_breast_cancer_stays_close_to_the_truth():
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = np.where(frame["target"] == 1, "benign", "malignant")
    _, features, reference, analysis = _setup(frame, "target", "sklearn.linear_model.LogisticRegression",
                                              {"max_iter": 5000})
    chunks = _shifted_chunks(reference, analysis, features, "classification", 90, n_chunks=10, strength=0.8)
    table = monitor.estimate(chunks, reference, task="classification", features=features, chunk="90",
                             min_rows=50, drift=False).table
    acc = table[table["metric"] == "accuracy"]
    assert (acc["estimated"] - acc["realized"]).abs().mean() <= 0.04
    assert acc["estimated"].iloc[5:].mean() < acc["estimated"].iloc[:5].mean()
    f1 = table[table["metric"] == "f1"]
    assert (f1["estimated"] - f1["realized"]).abs().mean() <= 0.05


def test_dle_estimates_the_error_of_a_regressor_and_sees_it_grow_under_shift():
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    _, features, reference, analysis = _setup(frame, "target", "sklearn.linear_model.Ridge", {}, shares=(0.3, 0.65))
    chunks = _shifted_chunks(reference, analysis, features, "regression", 60, n_chunks=8, strength=0.8)
    est = monitor.estimate(chunks, reference, task="regression", features=features, chunk="60", min_rows=30,
                           drift=False)
    assert est.method == "dle"
    mae = est.table[est.table["metric"] == "mae"]
    assert (mae["estimated"] - mae["realized"]).abs().mean() / mae["realized"].mean() <= 0.2
    assert mae["estimated"].iloc[4:].mean() > mae["estimated"].iloc[:4].mean()
    assert mae["realized"].iloc[4:].mean() > mae["realized"].iloc[:4].mean()
    assert set(est.table["metric"]) == {"mae", "rmse"}


def test_chunks_by_time_merge_small_ones_and_say_so():
    times = pd.Series(pd.to_datetime(
        ["2026-01-01 10:00"] * 5 + ["2026-01-02 09:00"] * 2 + ["2026-01-03 12:00"] * 6 + ["2026-01-05 08:00"] * 5,
        utc=True))
    chunks = monitor.chunk_rows(times, "1d", min_rows=4)
    assert chunks.table["chunk"].tolist() == ["2026-01-01", "2026-01-03", "2026-01-05"]
    assert chunks.table["rows"].tolist() == [7, 6, 5]
    assert chunks.merged == ["chunk 2026-01-02 has 2 rows (fewer than 4): merged into the previous chunk"]
    assert chunks.index.tolist() == [0] * 7 + [1] * 6 + [2] * 5
    counted = monitor.chunk_rows(times, "8", min_rows=4)
    assert counted.table["rows"].tolist() == [8, 10]  # the last 2 rows join the chunk before
    assert "merged into the previous chunk" in counted.merged[0]


@pytest.mark.parametrize("spec", ["7 days", "0d", "-5", "weekly", 1.5, True])
def test_a_bad_chunk_names_the_forms_allowed(spec):
    with pytest.raises(ParameterError, match=r"chunk == .*allowed: a period such as '7d'"):
        monitor.parse_chunk(spec)


def test_too_few_labels_give_no_realized_value(digits):
    est, _ = digits
    partial = est.table  # every chunk fully labelled: realized everywhere
    assert partial["realized"].notna().all()
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    _, features, reference, analysis = _setup(frame, "target", "sklearn.linear_model.LogisticRegression",
                                              {"max_iter": 5000})
    analysis = analysis.assign(time=T0 + pd.to_timedelta(np.arange(len(analysis)), unit="h"))
    analysis.loc[10:, "label"] = None  # 10 labels only
    table = monitor.estimate(analysis, reference, task="classification", chunk="auto", min_rows=50).table
    assert table["realized"].isna().all() and (table["alert_on"] == "estimated").all()
    assert table.groupby("chunk")["labelled"].first().sum() == 10


def test_a_calibration_round_trips_through_json(digits):
    est, _ = digits
    stored = monitor.Calibration.from_dict(json.loads(json.dumps(est.calibration.to_dict())))
    proba = np.random.default_rng(0).dirichlet(np.ones(10), size=50)
    assert np.array_equal(stored.apply(proba), est.calibration.apply(proba))
    assert np.allclose(stored.apply(proba).sum(axis=1), 1)


# -- the trigger -------------------------------------------------------------------------------


LATEST = {"latest": {"accuracy": {"chunk": "2026-11-24", "rows": 412, "estimated": 0.712, "lower": 0.668,
                                  "upper": 0.756, "realized": None},
                     "mae": {"chunk": "rows 0–99", "rows": 100, "estimated": 3.2, "lower": 2.9, "upper": 3.5,
                             "realized": 3.1}}}


@pytest.mark.parametrize("metric, limits, fired, reason", [
    ("accuracy", {"minimum": 0.8}, True, "estimated accuracy 0.712 (band 0.668–0.756) in chunk 2026-11-24 "
                                         "(412 rows) is below the minimum 0.8; the whole band is past it"),
    ("accuracy", {"minimum": 0.7}, False, "estimated accuracy 0.712 (band 0.668–0.756) in chunk 2026-11-24 "
                                          "(412 rows) is at or above the minimum 0.7"),
    ("accuracy", {"minimum": 0.73}, True, "is below the minimum 0.73; the band still reaches it"),
    ("mae", {"maximum": 3.0}, True, "estimated mae 3.200 (band 2.900–3.500) in chunk rows 0–99 (100 rows) is "
                                    "above the maximum 3; the band still reaches it (realized on its labels: 3.100)"),
])
def test_the_trigger_fires_past_the_limit_and_names_the_estimate_and_its_band(metric, limits, fired, reason):
    result = monitor.estimated_performance_trigger(LATEST, metric, **limits)
    assert result.fired is fired and reason in result.reason
    assert result.band == (LATEST["latest"][metric]["lower"], LATEST["latest"][metric]["upper"])


@pytest.mark.parametrize("metric, limits, message", [
    ("accuracy", {"maximum": 0.9}, "accuracy is higher is better, so it takes 'min'"),
    ("mae", {"minimum": 1.0}, "mae is lower is better, so it takes 'max'"),
    ("accuracy", {}, "give 'min' for accuracy"),
    ("roc_auc", {"minimum": 0.8}, "metric 'roc_auc' is not estimated; allowed: accuracy, f1, mae, precision"),
])
def test_the_trigger_refuses_a_limit_on_the_wrong_side(metric, limits, message):
    with pytest.raises(ConfigError, match=message):
        monitor.estimated_performance_trigger(LATEST, metric, **limits)


def test_the_trigger_reads_a_chunks_table_too(digits):
    est, acc = digits
    result = monitor.estimated_performance_trigger(est.table, "accuracy", minimum=0.99)
    assert result.fired and result.value == pytest.approx(acc["estimated"].iloc[-1])
    with pytest.raises(DataError, match="no estimate of f1"):
        monitor.estimated_performance_trigger(est.table[est.table["metric"] == "accuracy"], "f1", minimum=0.5)


# -- the template, end to end ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitor_runs(tmp_path_factory):
    from mlnb.execute import run_template

    info = labelled_store(tmp_path_factory.getbasetemp() / "monitor-e2e")
    params = {"model": "cancer@production", "chunk": "60", "min_rows": 50}
    first = run_template("monitor", params, info["store"])
    second = run_template("monitor", params, info["store"])
    return info, first, second


@pytest.mark.xdist_group("monitor")
def test_monitor_template_reports_realized_and_estimated_accuracy_per_chunk(monitor_runs):
    _, run, _ = monitor_runs
    assert run.succeeded, run.record["error"]
    scraps = run.scraps
    assert scraps["method"] == "cbpe" and scraps["demo"] is False and scraps["metric"] == "accuracy"
    assert scraps["model"]["name"] == "cancer" and scraps["model"]["version"] == 1
    assert scraps["labelled"] == {"rows": 242, "labelled": 150}
    acc = scraps["chunks"][scraps["chunks"]["metric"] == "accuracy"].reset_index(drop=True)
    assert acc["rows"].tolist() == [60, 60, 60, 62]  # the 2-row remainder merged
    assert scraps["merged"] == ["chunk rows 240–241 has 2 rows (fewer than 50): merged into the previous chunk"]
    assert acc["labelled"].tolist() == [60, 60, 30, 0]
    assert acc["realized"].notna().tolist() == [True, True, False, False]  # 30 labels are too few
    assert ((acc["estimated"] - acc["realized"]).abs().dropna() < 0.08).all()
    assert scraps["latest"]["accuracy"]["realized"] is None and "realized" not in scraps
    assert scraps["reference"]["info"]["source"].startswith("holdout of training run")


@pytest.mark.xdist_group("monitor")
def test_the_calibration_is_stored_with_the_model_version_and_reused(monitor_runs):
    info, first, second = monitor_runs
    with Registry(info["store"]) as registry:
        tag = registry.get("cancer/1").tags[monitor.CALIBRATION_TAG]
    assert tag.startswith(f"{first.id}:")
    assert first.scraps["calibration"]["reused_from"] is None
    assert second.scraps["calibration"]["reused_from"] == first.id
    assert second.scrap("chunks").equals(first.scrap("chunks"))


@pytest.mark.xdist_group("monitor")
def test_a_monitor_run_feeds_the_trigger_and_prometheus(monitor_runs):
    info, _, run = monitor_runs
    result = monitor.estimated_performance_trigger(Store(info["store"]).get(run.id), "accuracy", minimum=0.999)
    assert result.fired and "estimated accuracy" in result.reason and "band" in result.reason
    registry = CollectorRegistry(auto_describe=False)
    registry.register(monitor.MonitorCollector(info["store"], "cancer"))
    text = generate_latest(registry).decode()
    value = run.scraps["latest"]["accuracy"]["estimated"]
    assert f'mlnb_monitor_estimated_performance{{metric="accuracy",name="cancer",version="1"}} {value}' in text
    assert 'mlnb_monitor_threshold{bound="lower",metric="accuracy",name="cancer",version="1"}' in text


@pytest.mark.xdist_group("monitor")
def test_monitor_of_an_unknown_model_is_exit_2_naming_what_exists(monitor_runs, cli):
    info, _, _ = monitor_runs
    before = Store(info["store"]).run_ids()
    result = cli("run", "monitor", "-p", "model", "cancre@production", "--store", info["store"])
    assert result.returncode == 2
    assert "cancre" in result.stderr and "cancer" in result.stderr
    assert Store(info["store"]).run_ids() == before


# -- the pipeline's estimated_performance trigger -------------------------------------------------


@pytest.mark.xdist_group("monitor")
def test_the_pipeline_fires_on_estimated_performance_before_labels_arrive(monitor_runs, tmp_path):
    import shutil

    import yaml

    from mlnb.config import load_config
    from mlnb.pipeline import run_pipeline

    from .test_predlog import FEATURES

    info, _, _ = monitor_runs
    root = tmp_path / "project"
    shutil.copytree(info["store"], root / "runs")  # the served model, its prediction log and its labels
    served = pd.DataFrame(info["served"])
    batch = root / "batch.csv"
    served[FEATURES].to_csv(batch, index=False)  # the requests, before any label arrives
    reference = root / "reference.csv"
    pd.read_csv(info["train"])[FEATURES + ["diagnosis"]].to_csv(reference, index=False)
    (root / "mlnb.yaml").write_text(yaml.safe_dump({
        "model": {"name": "cancer", "target": "diagnosis", "features": FEATURES,
                  "estimator": "sklearn.linear_model.LogisticRegression", "hyperparameters": {"max_iter": 2000}},
        "data": {"reference": "reference.csv", "current": "batch.csv"},
        "triggers": {"drift": False, "performance": {"min": None},
                     "estimated_performance": {"metric": "accuracy", "min": 0.999, "chunk": "60", "min_rows": 50}},
    }))
    decision, record = run_pipeline(load_config(root / "mlnb.yaml"), current=str(batch))
    assert record.succeeded, record.record["error"]
    assert decision.outcome != "rejected", decision.reasons
    (estimated,) = [t for t in decision.triggers if t["name"] == "estimated_performance"]
    assert estimated["fired"] and estimated["threshold"] == 0.999
    assert "estimated accuracy" in estimated["reason"] and "band" in estimated["reason"]
    monitor_run = Store(root / "runs").get(decision.children["monitor"])
    assert monitor_run.parameters["model"] == "cancer@production" and monitor_run.record["parent"] == record.id
    # no label yet: nothing to retrain on, and the decision says so
    assert decision.outcome == "nothing_needed" and "train" not in decision.children
    assert "cannot retrain: the batch has no labels in 'diagnosis'" in decision.reasons
    assert decision.alerts[-1]["event"] == "no_labels"


def test_estimated_performance_keys_read_in_the_metrics_direction():
    from mlnb.config import parse_config

    base = {"model": {"name": "h", "target": "y", "task": "regression"}, "data": {"reference": "r", "current": "c"}}
    with pytest.raises(ConfigError, match="triggers.estimated_performance.min: rmse is a metric where lower is "
                                          "better; use max instead"):
        parse_config({**base, "triggers": {"estimated_performance": {"metric": "rmse", "min": 3.0}}})
    with pytest.raises(ConfigError, match="'r2' is not estimated for regression; allowed: mae, rmse"):
        parse_config({**base, "triggers": {"estimated_performance": {"metric": "r2", "min": 0.5}}})
    with pytest.raises(ConfigError, match="triggers.estimated_performance.chunk"):
        parse_config({**base, "triggers": {"estimated_performance": {"max": 3.0, "chunk": "fortnightly"}}})
    config = parse_config({**base, "triggers": {"estimated_performance": {"max": 3.0}}})
    assert config.triggers.estimated_performance.metric == "rmse"


@pytest.mark.xdist_group("monitor")
def test_a_bare_model_name_is_its_production_version_and_a_typo_is_exit_2(monitor_runs, cli, tmp_path):
    import shutil

    info, _, _ = monitor_runs
    store = tmp_path / "store"
    shutil.copytree(info["store"], store)  # the shared store stays as the other tests expect it
    result = cli("run", "monitor", "-p", "model", "cancer", "-p", "chunk", "60", "-p", "min_rows", "50",
                 "--store", str(store), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scraps"]["model"]["version"] == 1
    typo = cli("run", "monitor", "-p", "model", "cancr", "--store", str(store))
    assert typo.returncode == 2 and "no model named 'cancr'" in typo.stderr and "did you mean 'cancer'" in typo.stderr

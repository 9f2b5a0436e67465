"""The prediction log: per-process files, rotation, one table; and what mlnb serve writes to it.

The served model is a classifier of scikit-learn's breast-cancer table (not the weather
example), trained by the train template and registered as ``cancer``. :func:`served_store`
builds that store once per test session (shared by test_labels and test_monitor): it
serves the requests in-process through the app and keeps the prediction log they wrote.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlnb import predlog
from mlnb.exceptions import DataError, ParameterError
from mlnb.registry import Registry

pytestmark = pytest.mark.xdist_group("monitor")

N_SERVED = 240  # requests sent; the rest of the table is the training data


def cancer_table() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    df = data.frame.copy()
    df["diagnosis"] = np.where(data.target == 0, "malignant", "benign")
    return df.drop(columns=["target"]).sample(frac=1.0, random_state=0).reset_index(drop=True)


FEATURES = ["mean radius", "mean texture", "mean smoothness", "mean concavity", "worst area", "worst symmetry"]


def served_store(base: Path) -> dict:
    """A store with ``cancer`` registered (production), N_SERVED requests served and logged.

    Returns the store path, the served rows (with their request ids and true labels), the
    answers, and the /metrics text after serving. Built once under ``base`` (a lock keeps
    concurrent builders out).
    """
    from mlnb.execute import run_template
    from mlnb.serve import ServeSettings, create_app

    base.mkdir(parents=True, exist_ok=True)
    done = base / "served.json"
    with open(base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return json.loads(done.read_text())
        df = cancer_table()
        train_path = base / "cancer-train.csv"
        df.iloc[N_SERVED:].to_csv(train_path, index=False)
        store = base / "store"
        run = run_template("train", {"data": str(train_path), "target": "diagnosis", "features": FEATURES,
                                     "estimator": "sklearn.linear_model.LogisticRegression",
                                     "hyperparameters": {"max_iter": 2000}, "test_size": 0.4}, store)
        assert run.succeeded, run.record["error"]
        with Registry(store) as registry:
            registry.register(run.id, "cancer")
            registry.promote("cancer", 1)
        served = df.iloc[:N_SERVED].reset_index(drop=True)
        served["request_id"] = [f"req-{i:04d}" for i in range(len(served))]
        app = create_app(ServeSettings("cancer@production", store=str(store)))
        answers = []
        with TestClient(app) as client:
            for i, row in served.iterrows():
                body = {"rows": [{**{f: float(row[f]) for f in FEATURES}, "patient": f"p{i}"}]}
                response = client.post("/predict", json=body, headers={"X-Request-Id": row["request_id"]})
                assert response.status_code == 200, response.text
                answers.append(response.json()["predictions"][0])
            two = {"rows": [{f: float(served.loc[0, f]) for f in FEATURES}, {f: float(served.loc[1, f])
                                                                             for f in FEATURES}]}
            assert client.post("/predict", json=two, headers={"X-Request-Id": "pair"}).status_code == 200
            assert client.post("/predict", json={"rows": [{}]}).status_code == 422
            metrics_text = client.get("/metrics").text
        info = {"store": str(store), "served": served[["request_id", "diagnosis", *FEATURES]].to_dict("list"),
                "answers": answers, "metrics": metrics_text, "train": str(train_path)}
        done.write_text(json.dumps(info))
        return info


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    return served_store(tmp_path_factory.getbasetemp() / "monitor-e2e")


# -- what the server logged ------------------------------------------------------------------------


def test_every_answered_row_is_logged_with_its_request_id_version_and_probabilities(served):
    logged = predlog.read_log(predlog.log_dir(served["store"], "cancer"))
    table = logged.table
    assert logged.skipped == 0 and logged.classes == ["benign", "malignant"]
    assert len(table) == N_SERVED + 2  # the 422 is not a prediction
    pair = table[table["request_id"] == "pair"]
    assert pair["row"].tolist() == [0, 1]
    one = table.set_index("request_id").loc[served["served"]["request_id"]]
    answers = served["answers"]
    assert one["prediction"].tolist() == [a["prediction"] for a in answers]
    assert np.allclose(one["proba_malignant"], [a["probabilities"]["malignant"] for a in answers])
    assert set(one["model_name"]) == {"cancer"} and set(one["model_version"]) == {1}
    assert np.allclose(one["mean radius"], served["served"]["mean radius"])
    assert "patient" not in table.columns  # fields that are not features are not logged
    assert table["time"].is_monotonic_increasing
    assert one["inputs_sha256"].nunique() == N_SERVED


def test_metrics_count_predictions_and_class_shares_per_version(served):
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(served["metrics"]) for s in family.samples}
    answers = [a["prediction"] for a in served["answers"]]
    total = 0
    for label in ("benign", "malignant"):
        key = (("class", label), ("name", "cancer"), ("version", "1"))
        count = samples[("mlnb_predictions_total", key)]
        total += count
        assert count >= answers.count(label)
    for label in ("benign", "malignant"):
        key = (("class", label), ("name", "cancer"), ("version", "1"))
        assert samples[("mlnb_class_share", key)] == pytest.approx(samples[("mlnb_predictions_total", key)] / total)
    assert samples[("mlnb_prediction_log_rows_total", (("outcome", "written"),))] == N_SERVED + 2


def test_a_log_that_keeps_only_hashes_has_no_feature_values(tmp_path):
    out = predlog.PredictionLog(tmp_path, inputs="hash")
    row = {"a": 1.5, "b": "x"}
    out.append(predlog.entries("r1", 0.0, [row], name="m", version=3, uri="m@production", task="regression",
                               target="y", features=("a", "b"), predictions=[2.0], probabilities=None, classes=None))
    table = predlog.read_log(tmp_path).table
    assert "a" not in table.columns and table.loc[0, "inputs_sha256"] == predlog.inputs_sha256(row, ("a", "b"))
    assert table.loc[0, "prediction"] == 2.0 and table.loc[0, "model_version"] == 3


# -- the writer ------------------------------------------------------------------------------------


def _line(i: int) -> dict:
    return predlog.entries(f"w{os.getpid()}-{i}", 1_700_000_000 + i, [{"x": float(i)}, {"x": -float(i)}], name="m",
                           version=1, uri="m/1", task="classification", target="y", features=("x",),
                           predictions=["a", "b"], probabilities=[[0.9, 0.1], [0.2, 0.8]], classes=["a", "b"])


def _append_many(directory: str, n: int) -> None:
    out = predlog.PredictionLog(directory, max_bytes=16_384)
    for i in range(n):
        out.append(_line(i))


def test_several_processes_append_whole_lines_to_files_of_their_own_and_rotate(tmp_path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), 150)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    files = predlog.log_files(tmp_path)
    assert len(files) > 4  # 150 requests of ~900 bytes pass 16 kB: every process rotated
    assert all(f.stat().st_size <= 16_384 for f in files)
    logged = predlog.read_log(tmp_path)
    assert logged.skipped == 0 and len(logged.table) == 4 * 150 * 2
    for pid in {p.pid for p in procs}:
        mine = logged.table[logged.table["request_id"].str.startswith(f"w{pid}-")]
        assert len(mine) == 300
        assert mine["request_id"].str.split("-").str[1].astype(int).tolist() == sorted(
            mine["request_id"].str.split("-").str[1].astype(int).tolist())


def test_a_torn_last_line_is_skipped_and_counted(tmp_path):
    out = predlog.PredictionLog(tmp_path)
    out.append(_line(1))
    with open(out.path, "ab") as f:
        f.write(b'{"schema": "mlnb.prediction/1", "request_id": "cut')
    logged = predlog.read_log(tmp_path)
    assert len(logged.table) == 2 and logged.skipped == 1
    assert logged.files[0]["rows"] == 2 and logged.fingerprint["skipped"] == 1


def test_no_log_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no prediction log at .*mlnb serve"):
        predlog.read_log(tmp_path / "nothing")
    with pytest.raises(ParameterError, match="allowed: features, hash"):
        predlog.PredictionLog(tmp_path, inputs="all")


def labelled_store(base: Path) -> dict:
    """A copy of :func:`served_store`'s store plus one ``labels`` run: the true diagnosis of the
    first 150 requests (a copy, so that tests of the served store alone never see these labels)."""
    from mlnb.labels import add_file

    info = served_store(base)
    done = base / "labelled.json"
    with open(base / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return json.loads(done.read_text())
        store = base / "labelled-store"
        shutil.copytree(info["store"], store, ignore=shutil.ignore_patterns(".staging"))
        served = pd.DataFrame(info["served"])
        path = base / "outcomes.csv"
        served.iloc[:150][["request_id", "diagnosis"]].to_csv(path, index=False)
        outcome = add_file(path, str(store), "cancer")
        assert outcome.run.succeeded, outcome.run.record["error"]
        info = {**info, "store": str(store), "labels_run": outcome.run.id, "labels_file": str(path)}
        done.write_text(json.dumps(info))
        return info


def test_the_grafana_dashboard_parses_and_queries_only_exported_metrics(served):
    import re

    import yaml

    root = Path(__file__).resolve().parent.parent / "grafana"
    dashboard = json.loads((root / "dashboards" / "mlnb.json").read_text())
    exported = {family.name for family in text_string_to_metric_families(served["metrics"])}
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["definition"] for v in dashboard["templating"]["list"]]
    assert len(dashboard["panels"]) >= 8 and all(p["targets"] for p in dashboard["panels"])
    for query in queries:
        names = re.findall(r"\bmlnb_[a-z_]+", query)
        assert names, query
        for name in names:
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert base in exported or name in exported, f"{name} in {query!r} is not exported by mlnb serve"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("prediction rate", "latency", "class shares", "estimated and realized", "drift"):
        assert topic in titles
    datasource = yaml.safe_load((root / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} <= uids
    provider = yaml.safe_load((root / "provisioning" / "dashboards" / "mlnb.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"


def test_batch_predictions_read_as_the_same_kind_of_table(served, tmp_path):
    from mlnb.predict import predict_file
    from mlnb.store import Store

    batch = pd.DataFrame(served["served"]).iloc[:30]
    path = tmp_path / "batch.csv"
    batch.drop(columns=["diagnosis"]).to_csv(path, index=False)
    store = Store(tmp_path / "store")
    shutil.copytree(served["store"], store.path, ignore=shutil.ignore_patterns(".staging", "predictions"))
    for name in os.listdir(store.path):
        if name.startswith("mlnb.sqlite"):
            os.chmod(store.path / name, 0o644)
    outcome = predict_file("cancer@production", path, tmp_path / "out.parquet", store)
    assert outcome.run.succeeded, outcome.run.record["error"]
    batch_table = predlog.from_predict_run(outcome.run)
    logged = predlog.read_log(predlog.log_dir(served["store"], "cancer"))
    assert list(batch_table.table.columns[:8]) == list(logged.table.columns[:8])
    assert batch_table.classes == logged.classes and batch_table.features == FEATURES
    joined = batch_table.table.merge(logged.table, on=["request_id", "row"], suffixes=("", "_served"))
    assert len(joined) == 30  # the kept request ids are the served ones
    assert (joined["prediction"] == joined["prediction_served"]).all()
    assert np.allclose(joined["proba_benign"], joined["proba_benign_served"])
    assert np.allclose(joined["worst area"], joined["worst area_served"])


def test_mlnb_serve_passes_the_prediction_log_options(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import mlnb.serve
    from mlnb.cli import main

    seen = {}
    monkeypatch.setattr(mlnb.serve, "serve", lambda uri, **kwargs: seen.update(uri=uri, **kwargs))
    result = CliRunner().invoke(main, ["serve", "cancer@production", "--prediction-log", str(tmp_path / "log"),
                                       "--log-inputs", "hash", "--log-share-interval", "5", "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (seen["uri"], seen["prediction_log"], seen["log_inputs"]) == ("cancer@production", str(tmp_path / "log"), "hash")
    assert seen["log_share_interval"] == 5.0
    bad = CliRunner().invoke(main, ["serve", "cancer@production", "--log-inputs", "everything"])
    assert bad.exit_code == 2 and "'everything' is not one of 'features', 'hash'" in bad.output

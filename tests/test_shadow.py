"""The shadow log (mlnb.shadow): appends from several processes, and the template's functions on a replayed log.

Uses the trained and registered store of tests/test_serve.py (``weather/1`` gradient
boosting, ``weather/2`` logistic regression = ``production``), made once per session. The
log a running server writes is tested in tests/test_serve.py.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mlnb import shadow
from mlnb.exceptions import DataError
from mlnb.registry import Registry

from .test_serve import BATCH, FEATURES, shared_trained_store

pytestmark = pytest.mark.xdist_group("serve")


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, worker_id):
    return shared_trained_store(tmp_path_factory, worker_id)


@pytest.fixture(scope="session")
def models(trained_store):
    with Registry(trained_store) as registry:
        return {1: registry.load("weather/1"), 2: registry.load("weather/2")}


@pytest.fixture(scope="session")
def rows() -> pd.DataFrame:
    return pd.read_csv(BATCH)[FEATURES]


def test_the_shadow_module_imports_no_web_framework_nor_the_server():
    code = ("import sys, mlnb.shadow; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette') or m.split('.')[:2] == ['mlnb', 'serve']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- writing ----------------------------------------------------------------------------------------


def _append_many(path: str, worker: int, n: int) -> None:
    log = shadow.ShadowLog(path)
    for i in range(n):
        log.append([{"worker": worker, "i": i, "j": k, "pad": "x" * 3000} for k in range(3)])


def test_shadow_log_appends_from_several_processes_never_interleave(tmp_path):
    path = tmp_path / "shadow.jsonl"
    ctx = multiprocessing.get_context("fork")  # cheap: only mlnb.shadow's ShadowLog runs in the children
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 100)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 * 100 * 3
    entries = [json.loads(line) for line in lines]  # every line is whole
    for w in range(4):
        mine = [(e["i"], e["j"]) for e in entries if e["worker"] == w]
        assert mine == [(i, j) for i in range(100) for j in range(3)]  # each append stays together, in order


def test_shadow_template_functions_on_a_replayed_log(models, rows, tmp_path):
    path = shadow.replay_shadow(models[2], models[1], rows.head(40), FEATURES, tmp_path / "log.jsonl",
                                primary_name="weather", shadow_name="challenger", target="weather")
    with open(path, "a") as f:
        f.write('{"schema": "mlnb.shadow/1", "request_id": "cut')  # a line cut by a crash
    parsed = shadow.read_shadow_log(path)
    assert parsed.skipped == 1 and len(parsed.table) == 40 and parsed.features == FEATURES
    table = parsed.table
    agreed = shadow.agreement(table)
    expected = float(np.mean(models[2].predict(rows.head(40)) == models[1].predict(rows.head(40))))
    assert agreed == {"rows": 40, "compared": 40, "shadow_errors": 0, "agreement": pytest.approx(expected)}
    examples = shadow.disagreements(table, FEATURES, n=100)
    assert len(examples) == round((1 - expected) * 40)
    assert (examples["primary_prediction"] != examples["shadow_prediction"]).all()
    latency = shadow.latency_summary(table).set_index("model")
    assert latency.loc["primary", "calls"] == 40 and latency.loc["shadow", "calls"] == 40
    assert (latency["p50_ms"] > 0).all()
    labels = pd.DataFrame({"request_id": [f"replay-{i}" for i in range(0, 40, 2)],
                           "weather": pd.read_csv(BATCH)["weather"].head(40)[::2].to_numpy()})
    labelled = shadow.join_labels(table, labels, "weather")
    assert len(labelled) == 20
    scores = shadow.shadow_metrics(labelled)
    y = labels["weather"].to_numpy()
    assert scores["primary"]["accuracy"] == pytest.approx(np.mean(models[2].predict(rows.head(40))[::2] == y))
    assert scores["shadow"]["accuracy"] == pytest.approx(np.mean(models[1].predict(rows.head(40))[::2] == y))
    assert scores["primary"]["model"] == "weather/1" and scores["primary"]["rows"] == 20
    with pytest.raises(DataError, match="labels lack column"):
        shadow.join_labels(table, labels.drop(columns="request_id"), "weather")

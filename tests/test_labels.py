"""mlnb labels add: labels stored as a recorded run and joined to the served model's prediction log.

The store is test_predlog's (scikit-learn's breast-cancer table served as model ``cancer``);
the command runs on a private copy so the other tests see only their own labels.
"""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from mlnb import labels
from mlnb.exceptions import DataError
from mlnb.store import Store

from .test_predlog import served_store

pytestmark = pytest.mark.xdist_group("monitor")


@pytest.fixture(scope="module")
def store_copy(tmp_path_factory):
    info = served_store(tmp_path_factory.getbasetemp() / "monitor-e2e")
    target = tmp_path_factory.mktemp("labels") / "store"
    shutil.copytree(info["store"], target, ignore=shutil.ignore_patterns(".staging"))
    for name in os.listdir(target):
        if name.startswith("mlnb.sqlite"):
            os.chmod(target / name, 0o644)
    return target, pd.DataFrame(info["served"])


def test_labels_add_records_the_file_and_counts_unknown_ids_and_duplicates(store_copy, tmp_path, cli):
    store, served = store_copy
    good = served.iloc[:100][["request_id", "diagnosis"]].rename(columns={"diagnosis": "outcome"})
    extra = pd.DataFrame({"request_id": ["req-0003", "req-0003", "nobody-asked"],
                          "outcome": ["benign", "malignant", "benign"]})
    path = tmp_path / "outcomes.csv"
    pd.concat([good, extra]).to_csv(path, index=False)
    result = cli("labels", "add", str(path), "--model", "cancer", "--label-column", "outcome", "--store", str(store),
                 "-q")
    assert result.returncode == 0, result.stderr
    assert "103 read, 100 matched" in result.stdout
    assert "1 labels name a request id" in result.stderr and "2 rows label a request already labelled" in result.stderr
    run = Store(store).runs(template="labels").iloc[0]
    record = Store(store).get(run["id"]).record
    assert record["inputs"][0]["path"] == str(path) and len(record["inputs"][0]["sha256"]) == 64
    counts = record["scraps"]["counts"]
    assert counts == {"labels": 103, "matched": 100, "unknown": 1, "duplicates": 2, "conflicting": 1,
                      "logged": 242}
    stored, info = labels.stored_labels(store, "cancer")
    assert len(stored) == 101 and info["runs"] == [run["id"]]
    # the last of the duplicates counts
    assert stored.set_index("request_id").loc["req-0003", "label"] == "malignant"


@pytest.mark.parametrize("rows, option, message", [
    ({"id": ["req-0001"], "label": ["benign"]}, (), "no request id column 'request_id'; columns: id, label"),
    ({"request_id": ["req-0001"], "label": ["maybe"]}, (), "label(s) 'maybe' in column 'label' are not classes of "
                                                          "the model; allowed: benign, malignant"),
    ({"request_id": ["req-0001"], "outcome": ["benign"]}, (), "no label column ('label' or the model's target "
                                                             "'diagnosis')"),
    ({"request_id": ["req-0001"], "label": ["benign"]}, ("--model", "other"), "model 'other' has no prediction log"),
])
def test_bad_labels_are_refused_with_exit_2_and_nothing_written(store_copy, tmp_path, cli, rows, option, message):
    store, _ = store_copy
    before = Store(store).run_ids()
    path = tmp_path / "bad.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    result = cli("labels", "add", str(path), "--store", str(store), *option)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert Store(store).run_ids() == before


def test_regressor_labels_must_be_numbers(tmp_path):
    path = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["a", "b"], "label": [1.5, "lots"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="label 'lots' in column 'label' is not a number; the model is a regressor"):
        labels.read_labels(path, task="regression")

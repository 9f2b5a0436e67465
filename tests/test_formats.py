"""Every format mlnb writes has one tag and one JSON Schema, and what mlnb writes matches it."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlnb import records


@pytest.mark.parametrize("tag", sorted(records.FORMATS))
def test_each_format_has_a_schema_named_by_its_tag(tag):
    from importlib.resources import files

    schema = json.loads(files("mlnb.schemas").joinpath(records.FORMATS[tag]).read_text())
    assert schema["$id"] == tag
    assert schema["properties"]["schema"] == {"const": tag}


def test_prediction_log_lines_match_their_schema(tmp_path):
    from mlnb import predlog

    rows = [{"mean radius": 14.1, "mean texture": 19.3}, {"mean radius": 20.6, "mean texture": 29.3}]
    lines = predlog.entries("req-1", time.time(), rows, name="cancer", version=2, uri="cancer@production",
                            task="classification", target="target", features=["mean radius", "mean texture"],
                            predictions=[1, 0], probabilities=[[0.1, 0.9], [0.8, 0.2]], classes=[0, 1])
    hashed = predlog.entries("req-2", time.time(), rows[:1], name="cancer", version=2, uri="cancer@2",
                             task="regression", target=None, features=["mean radius"], predictions=[3.5],
                             probabilities=None, classes=None, inputs="hash")
    for line in [*lines, *hashed]:
        assert records.format_errors(json.loads(json.dumps(line)), records.PREDICTION) == []
    broken = dict(lines[0], version="two")
    assert records.format_errors(broken, records.PREDICTION) == ["field version: 'two' is not of type 'integer'"]


def test_a_drift_profile_and_a_calibration_match_their_schemas(tmp_path):
    import mlnb.drift

    frame = load_breast_cancer(as_frame=True).frame
    path = mlnb.drift.profile(frame).save(tmp_path / "reference.npz")
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
    assert records.format_errors(meta, records.DRIFT_PROFILE) == []

    from mlnb.monitor import fit_calibration

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    proba = np.clip(np.column_stack([1 - y * 0.7, y * 0.7]) + rng.uniform(0, 0.3, (400, 2)), 0, 1)
    proba = proba / proba.sum(axis=1, keepdims=True)
    calibration = fit_calibration(pd.Series(y), proba, [0, 1]).to_dict()
    assert records.format_errors(json.loads(json.dumps(calibration)), records.CALIBRATION) == []


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown format 'mlnb.nothing/1'; formats: mlnb.run/1"):
        records.format_errors({}, "mlnb.nothing/1")

"""The tables the monitor compares: the reference (the training run's holdout) and the labelled log.

The reference is labelled rows the model did not train on, scored by the same model
version (:func:`score_reference`): by default the holdout of the version's training run
(:func:`holdout_of`), fingerprinted by :func:`frame_sha256` so a stored calibration is
reused only on the same rows. The analysis is the prediction log with the labels that
have arrived joined on (:func:`attach_labels`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd


def holdout_of(store: Any, version: Any) -> "pd.DataFrame":
    """The holdout rows of the training run behind a model version: its features and target.

    The run's data file is read again (on another host of a team store, the store's copy of
    it), checked against the sha256 in its record, and split
    with the run's own ``test_size`` and ``seed``, as the train template split it.

    Raises:
        DataError: the training data is gone or changed (give ``reference`` instead).
    """
    from mlnb import records
    from mlnb.data import read_table
    from mlnb.metrics import split

    from mlnb.store import as_store

    store = as_store(store)
    run = store.get(version.run_id)
    params = run.parameters
    source = next((i for i in run.record.get("inputs") or [] if i.get("parameter") == "data"), None)
    hint = "pass reference=PATH (labelled rows the model did not train on)"
    if source is None or not params.get("target") or "test_size" not in params:
        raise DataError(f"training run {run.id} of {version.uri} does not say how it split its data; {hint}")
    from pathlib import Path

    path = Path(source["path"])
    if not path.is_file():  # on another host of a team store: the store's copy of a table the pipeline derived
        path = store.fetch_table(path.name, source["sha256"])
        if path is None:
            raise DataError(f"the training data of {version.uri} ({source['path']}) is gone; {hint}")
    elif records.sha256_file(path) != source["sha256"]:
        raise DataError(f"the training data of {version.uri} ({source['path']}) changed since run {run.id}; {hint}")
    df = read_table(path)
    target = params["target"]
    labelled = df[df[target].notna()]
    X, y = labelled[list(version.features)], labelled[target]
    _, X_holdout, _, y_holdout, _ = split(X, y, version.task or "classification", params["test_size"],
                                          params.get("seed", 0))
    out = X_holdout.copy()
    out[target] = y_holdout
    return out.reset_index(drop=True)


def score_reference(model: Any, reference: "pd.DataFrame", features: list[str], target: str,
                    task: str | None = None) -> "pd.DataFrame":
    """The reference as a prediction table: the features, ``prediction``, ``proba_<class>``, ``label``."""
    from mlnb.predict import predict_table

    scored = predict_table(model, reference, features, name="reference", version=None, task=task, keep=[],
                           impute_missing=True).table
    out = reference[features].reset_index(drop=True).copy()
    out["prediction"] = scored["prediction"].to_numpy()
    for c in scored.columns:
        if c.startswith("proba_"):
            out[c] = scored[c].to_numpy()
    out["label"] = reference[target].to_numpy()
    return out


def frame_sha256(df: "pd.DataFrame") -> str:
    """sha256 of a table's values (a fingerprint of a reference that is not a file)."""
    import hashlib

    import pandas as pd

    return hashlib.sha256(pd.util.hash_pandas_object(df.reset_index(drop=True), index=False).to_numpy().tobytes()
                          + json.dumps([str(c) for c in df.columns]).encode()).hexdigest()


# -- joining labels ---------------------------------------------------------------------------


def attach_labels(predictions: "pd.DataFrame", labels: "pd.DataFrame | None") -> "pd.DataFrame":
    """``predictions`` with a ``label`` column joined on (request_id, row); None where none arrived."""
    import pandas as pd

    out = predictions.drop(columns=["label"], errors="ignore")
    if labels is None or labels.empty:
        return out.assign(label=pd.Series([None] * len(out), dtype=object))
    keyed = labels[["request_id", "row", "label"]].drop_duplicates(["request_id", "row"], keep="last")
    keyed = keyed.astype({"request_id": str, "row": int})
    return out.merge(keyed, on=["request_id", "row"], how="left")

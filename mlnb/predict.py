"""Scoring tables with registered models: what the ``predict`` template, ``mlnb predict`` and ``mlnb serve`` share.

- :class:`Scorer` calls ``predict`` (and ``predict_proba`` for classifiers) on a table,
  running the pipeline's preparation once for both: the predictions are exactly what
  ``model.predict`` returns on the same rows.
- :func:`predict_table` scores a whole table for the ``predict`` template: rows with a
  missing feature value are **reported, not dropped**: they stay in the output, with no
  prediction unless ``impute_missing`` is set, and the ``missing`` column names the features
  they lack. Every output row carries the model name and version.
- :func:`predict_file` is ``mlnb predict``: it checks the URI, the input's columns and the
  output path first (exit 2, nothing written), runs the ``predict`` template so the
  predictions are a recorded run, and copies the run's predictions artifact to the output.

Which features a model reads as numbers or categories is :mod:`mlnb.model.features`
(:func:`feature_kinds` stays importable from here).

pandas and scikit-learn are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.data import table_columns
from mlnb.exceptions import DataError, ParameterError
from mlnb.model.build import _threads_for, task_of
from mlnb.model.features import KINDS, feature_kinds  # noqa: F401  (importable from here)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlnb.store import Run

#: Formats of the predictions artifact, by file extension.
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
#: Columns every predictions table has (probability columns ``proba_<class>`` come in between).
OUTPUT_COLUMNS = ("row", "prediction", "missing", "model_name", "model_version")


# -- the input's feature columns -------------------------------------------------------------


def check_columns(columns: list[str], features: list[str], where: str = "the data") -> None:
    """Raise DataError naming every feature the columns lack (and the columns there are)."""
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(
            f"{where} lacks the model's feature column(s) {', '.join(map(repr, missing))}; "
            f"it has: {', '.join(map(str, columns)) or 'no columns'}"
        )


def missing_features(df: "pd.DataFrame", features: list[str]) -> "pd.Series":
    """For each row, the features it lacks as text (``"temp_max, wind"``), or None."""
    import numpy as np
    import pandas as pd

    mask = df[features].isna().to_numpy()
    out = pd.Series([None] * len(df), index=df.index, dtype=object)
    incomplete = np.flatnonzero(mask.any(axis=1))
    if len(incomplete):
        names = np.asarray(features, dtype=object)
        out.iloc[incomplete] = [", ".join(names[row]) for row in mask[incomplete]]
    return out


def missing_summary(missing_mask: "pd.DataFrame") -> "pd.DataFrame":
    """Rows lacking each feature: ``feature, rows_missing, share``."""
    import pandas as pd

    counts = missing_mask.sum()
    return pd.DataFrame({
        "feature": [str(c) for c in counts.index],
        "rows_missing": counts.to_numpy().astype(int),
        "share": (counts / max(len(missing_mask), 1)).to_numpy(),
    })


# -- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """What a model said about some rows: predictions and, for classifiers, probabilities."""

    predictions: "np.ndarray"
    probabilities: "np.ndarray | None" = None
    classes: list | None = None


class Scorer:
    """Calls a fitted model's ``predict`` and, for classifiers, ``predict_proba``.

    For a scikit-learn ``Pipeline`` the preparation steps run once and the final estimator
    is asked twice, which is what ``Pipeline.predict`` and ``Pipeline.predict_proba`` do
    step by step: the results are the same, for half the preparation cost.

    ``HistGradientBoostingClassifier`` (the train template's default) computes both answers
    from one pass over its trees: its ``predict`` and ``predict_proba`` each start with
    ``_raw_predict`` and then take the argmax (``> 0`` for two classes) or the loss's
    probabilities; this does the same from one ``_raw_predict``, halving the cost. The tests
    compare the results with ``predict`` and ``predict_proba`` exactly, so a change in
    scikit-learn shows there.
    """

    def __init__(self, model: Any, task: str | None = None):
        self.model = model
        self.task = task or task_of(model)
        steps = getattr(model, "steps", None)
        if steps and len(steps) > 1:
            self._prepare = model[:-1]
            self._estimator = model[-1]
        else:
            self._prepare = None
            self._estimator = model
        self.classes = (
            list(getattr(model, "classes_", []))
            if self.task == "classification" and hasattr(model, "predict_proba")
            else None
        )
        estimator = self._estimator
        self._one_pass = (
            type(estimator).__name__ == "HistGradientBoostingClassifier"
            and hasattr(estimator, "_raw_predict") and hasattr(getattr(estimator, "_loss", None), "predict_proba")
        )

    def __call__(self, X: "pd.DataFrame") -> Scores:
        Xt = self._prepare.transform(X) if self._prepare is not None else X
        if self._one_pass:
            import numpy as np

            raw = self._estimator._raw_predict(Xt)
            encoded = (raw.ravel() > 0).astype(int) if raw.shape[1] == 1 else np.argmax(raw, axis=1)
            return Scores(self._estimator.classes_[encoded], self._estimator._loss.predict_proba(raw), self.classes)
        predictions = self._estimator.predict(Xt)
        if self.classes is None:
            return Scores(predictions)
        return Scores(predictions, self._estimator.predict_proba(Xt), self.classes)


def proba_column(label: Any) -> str:
    return f"proba_{label}"


@dataclass
class BatchPrediction:
    """A scored table (:func:`predict_table`) and what the report shows about it."""

    table: "pd.DataFrame"
    n_rows: int
    n_scored: int
    n_missing: int
    missing: "pd.DataFrame"  # feature, rows_missing, share
    classes: list | None = None
    class_counts: dict = field(default_factory=dict)


def predict_table(
    model: Any,
    df: "pd.DataFrame",
    features: list[str],
    *,
    name: str,
    version: int | None,
    task: str | None = None,
    keep: list[str] | None = None,
    impute_missing: bool = False,
) -> BatchPrediction:
    """Score every row of ``df`` and return the output table.

    The output has, in order: ``row`` (the row's position in the input), the ``keep``
    columns (default: every input column that is not a feature), ``prediction``, one
    ``proba_<class>`` column per class for classifiers, ``missing`` (the features a row
    lacks, or empty), ``model_name`` and ``model_version``.

    Args:
        impute_missing: also score rows with missing feature values (the pipeline imputes
            them); by default they get no prediction. Either way they are reported.

    Raises:
        DataError: the data lacks a feature column.
        ParameterError: a ``keep`` column is not in the data or clashes with an output column.
    """
    import numpy as np
    import pandas as pd

    columns = [str(c) for c in df.columns]
    check_columns(columns, features)
    scorer = Scorer(model, task)
    keep = check_keep(columns, features, keep, {proba_column(c) for c in scorer.classes or []})
    mask = df[features].isna()
    incomplete = mask.to_numpy().any(axis=1)
    n_missing = int(incomplete.sum())
    score_rows = np.ones(len(df), dtype=bool) if impute_missing else ~incomplete

    out = pd.DataFrame({"row": np.arange(len(df), dtype=np.int64)})
    for column in keep:
        out[column] = df[column].to_numpy()
    X = df.loc[score_rows, features] if not score_rows.all() else df[features]
    if len(X):
        with _threads_for(len(X)):
            scores = scorer(X)
    else:
        empty_proba = np.zeros((0, len(scorer.classes))) if scorer.classes else None
        scores = Scores(np.array([]), empty_proba, scorer.classes)
    if score_rows.all():
        out["prediction"] = scores.predictions
    else:  # rows left unscored have no prediction (None for labels, NaN for numbers)
        labels = scorer.task == "classification"
        prediction = np.full(len(df), None if labels else np.nan, dtype=object if labels else float)
        prediction[score_rows] = scores.predictions
        out["prediction"] = prediction
    if scores.probabilities is not None:
        for index, label in enumerate(scores.classes):
            column = np.full(len(df), np.nan)
            column[score_rows] = scores.probabilities[:, index]
            out[proba_column(label)] = column
    out["missing"] = missing_features(df, features).to_numpy() if n_missing else None
    out["model_name"] = pd.Categorical.from_codes(np.zeros(len(df), dtype=np.int8), categories=[name])
    out["model_version"] = pd.array(
        np.full(len(df), version, dtype=np.int64) if version is not None else [pd.NA] * len(df), dtype="Int64"
    )
    counts: dict = {}
    if scorer.task == "classification" and len(X):
        labels, n = np.unique(scores.predictions, return_counts=True)
        counts = {str(label): int(k) for label, k in zip(labels, n)}
    return BatchPrediction(
        table=out,
        n_rows=len(df),
        n_scored=int(score_rows.sum()),
        n_missing=n_missing,
        missing=missing_summary(mask),
        classes=scorer.classes,
        class_counts=counts,
    )


def write_predictions(table: "pd.DataFrame", path: str | os.PathLike, fmt: str, model_info: dict | None = None) -> dict:
    """Write a predictions table as ``parquet`` or ``csv``; return its ``{"sha256", "bytes"}``.

    Parquet files also carry ``model_info`` (URI, name, version, run id, sha256) in their
    schema metadata under ``mlnb``; both formats carry the name and version in every row.
    """
    import json

    from mlnb import records

    if fmt not in ("parquet", "csv"):
        raise ParameterError(f"output format {fmt!r} is not allowed; use 'parquet' or 'csv'", name="output_format")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        table.to_csv(path, index=False)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrow = pa.Table.from_pandas(table, preserve_index=False)
        if model_info:
            meta = dict(arrow.schema.metadata or {})
            meta[b"mlnb"] = json.dumps(model_info, sort_keys=True).encode()
            arrow = arrow.replace_schema_metadata(meta)
        pq.write_table(arrow, path)
    return records.fingerprint(path)


def output_format(path: str | os.PathLike) -> str:
    """``parquet`` or ``csv`` from an output file's extension.

    Raises:
        ParameterError: another extension.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ParameterError(
            f"output {str(path)!r}: unknown extension {suffix!r}; allowed: {', '.join(sorted(OUTPUT_FORMATS))}",
            name="output",
        )
    return OUTPUT_FORMATS[suffix]


# -- mlnb predict -----------------------------------------------------------------------------


@dataclass
class PredictOutcome:
    """What :func:`predict_file` did: the recorded run and, when it succeeded, the output."""

    run: "Run"
    output: Path | None
    model: dict = field(default_factory=dict)
    n_rows: int = 0
    n_scored: int = 0
    n_missing: int = 0


def check_keep(columns: list[str], features: list[str], keep: list[str] | None, extra_reserved=()) -> list[str]:
    """The input columns copied to the output: ``keep``, or every non-feature column.

    Raises:
        ParameterError: a kept column that is not in the data, or one named like a column
            the output writes itself (``row``, ``prediction``, ``proba_<class>``...).
    """
    if keep is None:
        keep = [c for c in columns if c not in features]
    unknown = [c for c in keep if c not in columns]
    if unknown:
        raise ParameterError(
            f"keep: column(s) {', '.join(map(repr, unknown))} not in the data; columns: {', '.join(columns)}",
            name="keep",
        )
    reserved = set(OUTPUT_COLUMNS) | set(extra_reserved)
    clash = [c for c in keep if c in reserved]
    if clash:
        raise ParameterError(
            f"keep: column(s) {', '.join(map(repr, clash))} would clash with the output's own columns; "
            f"leave them out of keep (reserved: {', '.join(sorted(reserved))})",
            name="keep",
        )
    return keep


def predict_file(
    uri: str,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    store: Any = None,
    *,
    keep: list[str] | None = None,
    impute_missing: bool = False,
    timeout: float | None = None,
    progress: bool = False,
) -> PredictOutcome:
    """Score a file with a registered model through the ``predict`` template (``mlnb predict``).

    Everything a user can get wrong is checked before the run, so that nothing is written
    then: the URI must resolve in the store's registry, the input must be a readable table
    holding every feature of that version, the output must end in ``.csv``, ``.parquet`` or
    ``.pq`` and its directory must exist. The template never enters its demo mode here.

    Returns:
        The outcome; ``outcome.run.succeeded`` is False when the notebook failed (its record
        exists and ``output`` is None).

    Raises:
        ModelNotFound, RegistryError, DataError, ParameterError, StoreError: before the run.
    """
    from mlnb.execute import run_template
    from mlnb.registry import Registry

    from mlnb.store import as_store

    store = as_store(store)
    fmt = output_format(output_path)
    output = Path(output_path).expanduser().resolve()
    if not output.parent.is_dir():
        raise ParameterError(
            f"output {str(output_path)!r}: directory {str(output.parent)!r} does not exist", name="output"
        )
    if output.is_dir():
        raise ParameterError(
            f"output {str(output_path)!r} is a directory; give a file name ending in .csv or .parquet", name="output"
        )
    with Registry(store) as registry:
        version = registry.get(uri)
    columns = table_columns(input_path)
    check_columns(columns, version.features, where=f"input {str(input_path)!r}")
    # the proba_<class> names need the model itself: the run checks those
    check_keep(columns, version.features, list(keep) if keep is not None else None)
    store.ensure_writable()
    parameters = {
        "model": uri,
        "data": str(Path(input_path).expanduser().resolve()),
        "output_format": fmt,
        "impute_missing": bool(impute_missing),
        "store": store.location,
        "demo": False,
    }
    if keep is not None:
        parameters["keep"] = list(keep)
    run = run_template("predict", parameters, store, timeout=timeout, progress=progress)
    if not run.succeeded:
        return PredictOutcome(run, None)
    scraps = run.record["scraps"]
    source = run.artifact(scraps["predictions_artifact"])
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)  # a copy, not the run's read-only file
    os.replace(tmp, output)
    return PredictOutcome(run, output, scraps.get("model") or {}, scraps.get("n_rows", 0), scraps.get("n_scored", 0),
                          scraps.get("n_missing", 0))

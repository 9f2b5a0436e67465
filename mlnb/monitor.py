"""Performance of a served model while labels are late: realized where they exist, estimated where not.

What the ``monitor`` template computes, as pure functions:

- **Chunks** (:func:`chunk_rows`): by time (``"7d"``, ``"12h"``, ``"1w"``) or by count
  (``"500"``); ``"auto"`` makes about ten count chunks. A chunk with fewer than
  ``min_rows`` rows is **merged** into its neighbour and the merge is reported: a metric of
  three rows is never shown as if it meant something.
- **CBPE** for classifiers (:class:`Calibration`, :func:`cbpe`): as NannyML does it, the
  model's probabilities are calibrated on a labelled reference (the training run's holdout
  by default) with isotonic regression, one class against the rest, kept for a class only
  when it lowers the expected calibration error in a 10-split cross-validation, then
  renormalised. The expected confusion matrix of a chunk (the calibrated probability of
  each true class, summed over the rows predicted as each class) gives the estimated
  accuracy, macro precision, recall and F1.
- **DLE** for regressors (:class:`LossModel`): a gradient-boosting model of the absolute
  (MAE) and squared (RMSE) error, fitted on the reference's features and predictions;
  a chunk's estimate is the mean predicted loss (the square root of it for RMSE). Its
  estimates on the reference itself are cross-fitted, so the thresholds are not fitted to
  rows the loss model saw.
- **Bands and thresholds**: a band is the estimate ± 3 standard errors, the standard error
  being the reference's per-row standard deviation over √n for accuracy and MAE, else a
  bootstrap of the reference scaled by √(m/n). Thresholds come from the reference cut
  into chunks of the analysis chunks' size: mean ± 3 standard deviations of their realized
  values (NannyML's default), the deviation never below one chunk's standard error (a few
  reference chunks can agree by chance), or ± 3 standard errors when the reference makes
  fewer than three chunks; both are clipped to the metric's range.
- **The trigger** :func:`estimated_performance_trigger`: from a monitor run (or its
  chunks table), a metric and a minimum or maximum by the metric's direction: fired or
  not, the value, its band and a sentence that says so.
- :class:`MonitorCollector` exports the newest monitor run of the served model to
  Prometheus (``mlnb serve``'s ``/metrics``).

numpy, pandas and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlnb import records
from mlnb.exceptions import ConfigError, DataError, ParameterError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Metrics CBPE and DLE estimate, by task.
ESTIMATED = {"classification": ("accuracy", "precision", "recall", "f1"), "regression": ("mae", "rmse")}
#: Standard errors on each side of an estimate that its band covers (NannyML's SAMPLING_ERROR_RANGE).
BAND = 3.0
#: Standard deviations of the reference chunks on each side of their mean that thresholds allow.
THRESHOLD_STD = 3.0
#: Chunks smaller than this are merged into a neighbour, and realized metrics need this many labels.
DEFAULT_MIN_ROWS = 100
CALIBRATION_SCHEMA = records.CALIBRATION
_SPAN = re.compile(r"^\s*(\d+)\s*(min|h|d|w)\s*$")
_COUNT = re.compile(r"^\s*(\d+)\s*(rows)?\s*$")
_UNITS = {"min": "min", "h": "h", "d": "D", "w": "W"}


# -- chunks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkSpec:
    """A parsed ``chunk`` parameter: ``kind`` is ``time``, ``count`` or ``auto``."""

    kind: str
    size: Any = None  # a pandas Timedelta for time, a row count for count
    text: str = "auto"


def parse_chunk(spec: Any) -> ChunkSpec:
    """Parse ``"7d"``, ``"12h"``, ``"30min"``, ``"2w"`` (time), ``"500"`` or 500 (rows), or ``"auto"``.

    Raises:
        ParameterError: anything else, naming the forms allowed.
    """
    import pandas as pd

    allowed = "allowed: a period such as '7d', '12h', '30min', '1w', a row count such as '500', or 'auto'"
    if isinstance(spec, bool):
        raise ParameterError(f"chunk == {spec!r}; {allowed}", name="chunk")
    if isinstance(spec, int):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ParameterError(f"chunk == {spec!r}; {allowed}", name="chunk")
    if spec.strip() == "auto":
        return ChunkSpec("auto")
    found = _SPAN.match(spec)
    if found and int(found.group(1)) > 0:
        return ChunkSpec("time", pd.Timedelta(int(found.group(1)), unit=_UNITS[found.group(2)]), spec.strip())
    found = _COUNT.match(spec)
    if found and int(found.group(1)) > 0:
        return ChunkSpec("count", int(found.group(1)), spec.strip())
    raise ParameterError(f"chunk == {spec!r}; {allowed}", name="chunk")


@dataclass
class Chunks:
    """Which chunk each row belongs to, the chunks themselves, and what was merged.

    Attributes:
        index: per row, the position of its chunk in ``table``.
        table: ``chunk`` (a readable key), ``start``, ``end``, ``rows``.
        merged: one sentence per merge.
    """

    index: "np.ndarray"
    table: "pd.DataFrame"
    merged: list[str] = field(default_factory=list)


def chunk_rows(times: "pd.Series", spec: Any = "auto", min_rows: int = DEFAULT_MIN_ROWS) -> Chunks:
    """Cut rows (sorted by ``times``) into chunks, merging any chunk under ``min_rows`` rows.

    A time chunk starts at the first row's day (midnight UTC) plus a whole number of periods;
    periods without rows are not chunks. Count chunks hold ``size`` consecutive rows. A
    chunk under ``min_rows`` rows joins the previous chunk (the first one joins the next),
    and ``merged`` says so; with fewer than ``min_rows`` rows in all there is one chunk.

    Raises:
        ParameterError: a bad spec or ``min_rows``.
        DataError: no rows.
    """
    import numpy as np
    import pandas as pd

    chunk = parse_chunk(spec)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise ParameterError(f"min_rows == {min_rows!r}, must be a whole number >= 1", name="min_rows")
    n = len(times)
    if n == 0:
        raise DataError("no predictions to cut into chunks")
    times = pd.to_datetime(pd.Series(times).reset_index(drop=True), utc=True)
    if chunk.kind == "auto":
        chunk = ChunkSpec("count", max(min_rows, math.ceil(n / 10)), "auto")
    if chunk.kind == "time":
        origin = times.min().floor("D")
        raw = ((times - origin) // chunk.size).to_numpy(dtype=np.int64)
        keys = [origin + k * chunk.size for k in range(int(raw.max()) + 1)]
    else:
        raw = np.arange(n) // chunk.size
        keys = None
    # groups in order, each a list of raw ids; merge the small ones
    ids, counts = np.unique(raw, return_counts=True)
    groups = [[int(i)] for i in ids]
    sizes = [int(c) for c in counts]
    merged: list[str] = []

    def label(g):
        if keys is not None:
            return keys[g[0]].strftime("%Y-%m-%d %H:%M") if chunk.size < pd.Timedelta(1, "D") else keys[g[0]].strftime(
                "%Y-%m-%d")
        return f"rows {g[0] * chunk.size}–{min(n, (g[-1] + 1) * chunk.size) - 1}"

    i = 0
    while len(groups) > 1 and i < len(groups):
        if sizes[i] >= min_rows:
            i += 1
            continue
        into = i - 1 if i > 0 else i + 1
        merged.append(f"chunk {label(groups[i])} has {sizes[i]} rows (fewer than {min_rows}): merged into "
                      f"the {'previous' if into < i else 'next'} chunk")
        lo, hi = sorted((i, into))
        groups[lo:hi + 1] = [groups[lo] + groups[hi]]
        sizes[lo:hi + 1] = [sizes[lo] + sizes[hi]]
        i = lo
    position = {raw_id: k for k, g in enumerate(groups) for raw_id in g}
    index = np.array([position[int(r)] for r in raw], dtype=np.int64) if n else np.array([], dtype=np.int64)
    starts = pd.Series(times).groupby(index).min()
    ends = pd.Series(times).groupby(index).max()
    table = pd.DataFrame({
        "chunk": [label(g) for g in groups],
        "start": starts.to_numpy(),
        "end": ends.to_numpy(),
        "rows": np.bincount(index, minlength=len(groups)),
    })
    if sizes and min(sizes) < min_rows:
        merged.append(f"only {n} rows in all (fewer than {min_rows}): one chunk, and its metrics are uncertain")
    return Chunks(index, table, merged)


def reference_chunks(n_reference: int, size: int, min_rows: int = DEFAULT_MIN_ROWS) -> "np.ndarray":
    """Chunk positions of reference rows cut by count (``size`` rows, the last small one merged)."""
    import numpy as np

    size = max(int(size), 1)
    index = np.arange(n_reference) // size
    n_chunks = int(index.max()) + 1 if n_reference else 0
    if n_chunks > 1 and (n_reference - (n_chunks - 1) * size) < min(min_rows, size):
        index[index == n_chunks - 1] = n_chunks - 2
    return index


# -- calibration (CBPE) ---------------------------------------------------------------------


def _isotonic(scores, hits):
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(out_of_bounds="clip", increasing=True, y_min=0.0, y_max=1.0)
    model.fit(scores, hits)
    return model.X_thresholds_.astype(float), model.y_thresholds_.astype(float)


def _ece(hits, scores, bins: int = 10) -> float:
    """Expected calibration error over equal-count bins of sorted scores (NannyML's)."""
    import numpy as np

    order = np.argsort(scores, kind="stable")
    s, h = np.asarray(scores)[order], np.asarray(hits)[order]
    bins = min(bins, max(len(s) // 2, 1))
    edges = np.linspace(0, len(s), bins + 1).astype(int)
    return float(sum((b - a) / len(s) * abs(s[a:b].mean() - h[a:b].mean()) for a, b in zip(edges[:-1], edges[1:])
                     if b > a))


def needs_calibration(hits, scores, splits: int = 10, seed: int = 42) -> bool:
    """Whether isotonic calibration lowers the expected calibration error on held-out rows.

    As NannyML decides: no when one class only or the scores separate the classes almost
    perfectly (ROC AUC > 0.999); else calibrate on 90 % and measure on 10 % of the rows,
    ``splits`` times (stratified), and compare the ECE of the pooled held-out scores.
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    hits, scores = np.asarray(hits, dtype=int), np.asarray(scores, dtype=float)
    if len(np.unique(hits)) < 2 or np.bincount(hits).min() < 2:
        return False
    if roc_auc_score(hits, scores) > 0.999:
        return False
    before, after, truth = [], [], []
    for fit, test in StratifiedShuffleSplit(n_splits=splits, test_size=0.1, random_state=seed).split(scores, hits):
        x, y = _isotonic(scores[fit], hits[fit])
        before.append(scores[test])
        after.append(np.interp(scores[test], x, y))
        truth.append(hits[test])
    truth = np.concatenate(truth)
    return _ece(truth, np.concatenate(before)) > _ece(truth, np.concatenate(after))


@dataclass
class Calibration:
    """Isotonic maps of a classifier's probabilities, one class against the rest, fitted on a reference.

    ``maps[cls]`` is ``(x, y)``: the isotonic fit's thresholds (applied with linear
    interpolation, clipped at the ends, as scikit-learn's ``IsotonicRegression`` predicts),
    or None where calibration did not lower the calibration error. Binary models have one
    map, for ``classes[1]``; the other class's probability is its complement. It is plain
    JSON (:meth:`to_dict`), so it is stored as a run artifact and reused, never pickled.
    """

    classes: list[str]
    maps: dict[str, tuple[list[float], list[float]] | None]
    reference: dict = field(default_factory=dict)  # rows, sha256 of what it was fitted on

    def apply(self, proba: "np.ndarray") -> "np.ndarray":
        """Calibrated probabilities (rows sum to 1), columns in the order of ``classes``."""
        import numpy as np

        proba = np.asarray(proba, dtype=float)
        if len(self.classes) == 2:
            m = self.maps.get(self.classes[1])
            p1 = np.interp(proba[:, 1], *m) if m else proba[:, 1]
            return np.column_stack([1 - p1, p1])
        out = np.column_stack([
            np.interp(proba[:, k], *self.maps[c]) if self.maps.get(c) else proba[:, k]
            for k, c in enumerate(self.classes)
        ])
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1 / len(self.classes))
        return np.divide(out, total, out=uniform, where=total > 0)

    def to_dict(self) -> dict:
        return {"schema": CALIBRATION_SCHEMA, "classes": self.classes, "reference": self.reference,
                "maps": {c: (None if m is None else {"x": list(map(float, m[0])), "y": list(map(float, m[1]))})
                         for c, m in self.maps.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        if not isinstance(data, dict) or data.get("schema") != CALIBRATION_SCHEMA:
            raise DataError(f"not a calibration of schema {CALIBRATION_SCHEMA}")
        maps = {c: (None if m is None else (m["x"], m["y"])) for c, m in data["maps"].items()}
        return cls(list(data["classes"]), maps, dict(data.get("reference") or {}))


def fit_calibration(y_true, proba, classes: list, reference: dict | None = None) -> Calibration:
    """Fit a :class:`Calibration` on labelled reference rows.

    Raises:
        DataError: the labels hold classes the model does not know, or too few rows.
    """
    import numpy as np

    names = [str(c) for c in classes]
    y = np.asarray(y_true).astype(str)
    unknown = sorted(set(y) - set(names))
    if unknown:
        raise DataError(f"reference labels {', '.join(map(repr, unknown[:5]))} are not classes of the model "
                        f"({', '.join(names)})")
    if len(y) < 20:
        raise DataError(f"the reference has {len(y)} labelled rows; calibration needs at least 20")
    proba = np.asarray(proba, dtype=float)
    targets = names[1:] if len(names) == 2 else names
    maps = {}
    for c in targets:
        k = names.index(c)
        hits = (y == c).astype(int)
        maps[c] = _isotonic(proba[:, k], hits) if needs_calibration(hits, proba[:, k]) else None
        if maps[c] is not None:
            maps[c] = (maps[c][0].tolist(), maps[c][1].tolist())
    return Calibration(names, maps, dict(reference or {}, rows=int(len(y))))


# -- metrics from confusion matrices ------------------------------------------------------------


def expected_confusion(calibrated: "np.ndarray", predicted: "np.ndarray", k: int) -> "np.ndarray":
    """``C[i, j]``: expected rows of true class i predicted as j (sum of calibrated p_i over rows predicted j)."""
    import numpy as np

    onehot = np.zeros((len(predicted), k))
    onehot[np.arange(len(predicted)), predicted] = 1.0
    return calibrated.T @ onehot


def realized_confusion(truth: "np.ndarray", predicted: "np.ndarray", k: int) -> "np.ndarray":
    import numpy as np

    matrix = np.zeros((k, k))
    np.add.at(matrix, (truth, predicted), 1.0)
    return matrix


def confusion_metrics(matrix: "np.ndarray") -> dict[str, float]:
    """accuracy and macro precision, recall, F1 of a (possibly expected) confusion matrix.

    Macro averages run over the classes that occur as truth or prediction (as scikit-learn's
    do over the labels present); 0/0 counts as 0, as with ``zero_division=0``.
    """
    import numpy as np

    total = matrix.sum()
    if total <= 0:
        return {m: math.nan for m in ESTIMATED["classification"]}
    tp = np.diag(matrix)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    present = (predicted + actual) > 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)
    return {"accuracy": float(tp.sum() / total), "precision": float(precision[present].mean()),
            "recall": float(recall[present].mean()), "f1": float(f1[present].mean())}


def _encode(values, classes: list[str]) -> "np.ndarray":
    import numpy as np

    from mlnb.labels import _class_text

    lookup = {c: i for i, c in enumerate(classes)}
    text = np.array([_class_text(v) for v in values], dtype=object)  # 1.0 (a label column with gaps) is "1"
    out = np.array([lookup.get(v, -1) for v in text], dtype=np.int64)
    if (out < 0).any():
        bad = sorted(set(text[out < 0]))[:5]
        raise DataError(f"value(s) {', '.join(map(repr, bad))} are not classes of the model ({', '.join(classes)})")
    return out


# -- DLE -------------------------------------------------------------------------------------


class LossModel:
    """Direct loss estimation: gradient boosting of a regressor's absolute and squared error.

    The loss model is kept shallow (depth 2, leaves of at least a tenth of the reference,
    L2-regularised): a reference of a few hundred rows is noisy, and a deep model of its
    losses overstates the error of every unusual row.

    Fitted on reference rows (features, the model's prediction, the true value); predicts
    each row's expected loss from its features and prediction alone. Estimates for the
    reference rows themselves are cross-fitted (``folds``), never in-sample.
    """

    def __init__(self, features: list[str], seed: int = 0, folds: int = 5):
        self.features = list(features)
        self.seed = seed
        self.folds = folds
        self.models: dict[str, Any] = {}
        self.reference_estimates: dict[str, "np.ndarray"] = {}

    def _frame(self, X: "pd.DataFrame", prediction) -> "pd.DataFrame":
        frame = X[self.features].reset_index(drop=True).copy()
        frame["__prediction__"] = list(prediction)
        return frame

    def _pipeline(self, frame):
        from mlnb.metrics import build_pipeline

        return build_pipeline("sklearn.ensemble.HistGradientBoostingRegressor",
                              {"max_iter": 100, "learning_rate": 0.03, "max_depth": 2,
                               "min_samples_leaf": max(20, len(frame) // 10), "l2_regularization": 1.0}, frame, seed=self.seed)

    def fit(self, X: "pd.DataFrame", prediction, y_true) -> "LossModel":
        import numpy as np
        from sklearn.model_selection import KFold

        from mlnb.metrics import _threads_for

        frame = self._frame(X, prediction)
        error = np.asarray(y_true, dtype=float) - np.asarray(prediction, dtype=float)
        targets = {"mae": np.abs(error), "rmse": error ** 2}
        with _threads_for(len(frame)):
            for metric, target in targets.items():
                self.models[metric] = self._pipeline(frame).fit(frame, target)
                out = np.zeros(len(frame))
                folds = KFold(n_splits=min(self.folds, len(frame)), shuffle=True, random_state=self.seed)
                for fit, held in folds.split(frame):
                    part = self._pipeline(frame.iloc[fit]).fit(frame.iloc[fit], target[fit])
                    out[held] = part.predict(frame.iloc[held])
                self.reference_estimates[metric] = np.clip(out, 0, None)
        return self

    def row_losses(self, X: "pd.DataFrame", prediction) -> dict[str, "np.ndarray"]:
        import numpy as np

        from mlnb.metrics import _threads_for

        frame = self._frame(X, prediction)
        with _threads_for(len(frame)):
            return {m: np.clip(model.predict(frame), 0, None) for m, model in self.models.items()}


def loss_metric(metric: str, losses: "np.ndarray") -> float:
    import numpy as np

    mean = float(np.mean(losses)) if len(losses) else math.nan
    return math.sqrt(mean) if metric == "rmse" else mean


def realized_regression(metric: str, y_true, prediction) -> float:
    import numpy as np

    error = np.asarray(y_true, dtype=float) - np.asarray(prediction, dtype=float)
    return float(np.mean(np.abs(error))) if metric == "mae" else float(np.sqrt(np.mean(error ** 2)))


# -- estimating chunk by chunk ---------------------------------------------------------------


@dataclass
class Estimate:
    """What :func:`estimate` found, per chunk and per metric.

    Attributes:
        table: one row per (chunk, metric): chunk, start, end, rows, labelled, metric,
            estimated, lower, upper (the band), realized (None under ``min_rows`` labels),
            threshold_lower, threshold_upper, alert, alert_on (``realized`` where there
            are enough labels, else ``estimated``), and drift_share when drift was measured.
        reference: per metric: the reference's realized value, the thresholds, how they
            were made, and the standard error's per-row scale.
        method: ``cbpe`` or ``dle``.
    """

    table: "pd.DataFrame"
    reference: dict
    method: str
    merged: list[str]
    calibration: Calibration | None = None

    def latest(self) -> dict:
        """The last chunk's row per metric, as plain JSON (what the trigger and /metrics read)."""
        out = {}
        for metric, rows in self.table.groupby("metric", sort=False):
            last = rows.iloc[-1]
            out[metric] = {k: _json(last[k]) for k in ("chunk", "rows", "labelled", "estimated", "lower", "upper",
                                                       "realized", "threshold_lower", "threshold_upper", "alert",
                                                       "alert_on")}
            out[metric]["end"] = str(last["end"])
        return out


def _json(value):
    if value is None:
        return None
    item = getattr(value, "item", None)
    value = item() if item is not None and not isinstance(value, (str, bytes)) else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _bounds(metric: str) -> tuple[float, float]:
    return (0.0, 1.0) if metric in ESTIMATED["classification"] else (0.0, math.inf)


def _clip(value: float, metric: str) -> float:
    lo, hi = _bounds(metric)
    return float(min(max(value, lo), hi))


def _bootstrap_sd(values_fn, n: int, size: int, seed: int = 0, rounds: int = 60) -> float:
    """Standard deviation of a metric over bootstrap samples of ``size`` of ``n`` reference rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = [values_fn(rng.integers(0, n, size)) for _ in range(rounds)]
    values = [v for v in values if math.isfinite(v)]
    return float(np.std(values, ddof=1)) if len(values) > 2 else math.nan


def estimate(
    analysis: "pd.DataFrame",
    reference: "pd.DataFrame",
    *,
    task: str,
    classes: list | None = None,
    features: list[str] | None = None,
    chunk: Any = "auto",
    min_rows: int = DEFAULT_MIN_ROWS,
    metrics: list[str] | None = None,
    calibration: Calibration | None = None,
    loss_model: LossModel | None = None,
    drift: bool = True,
    seed: int = 0,
) -> Estimate:
    """Realized and estimated performance per chunk of ``analysis``, with bands and thresholds.

    Args:
        analysis: the prediction table (:func:`mlnb.predlog.read_log`), sorted by time:
            ``time``, ``prediction``, ``proba_<class>`` for classifiers, the features, and
            ``label`` where a label has arrived (NaN/None elsewhere).
        reference: labelled rows scored by the same model version: ``prediction``,
            ``proba_<class>``, the features and ``label``.
        task: ``classification`` (CBPE) or ``regression`` (DLE; needs ``features``).
        classes: the model's classes (default: the ``proba_`` columns, sorted).
        chunk, min_rows: see :func:`chunk_rows`.
        metrics: what to estimate (default every metric of :data:`ESTIMATED` for the task).
        calibration: a stored :class:`Calibration` to reuse (default: fitted on ``reference``).
        loss_model: a fitted :class:`LossModel` to reuse (default: fitted on ``reference``).
        drift: also measure drift of the features per chunk against the reference.

    Raises:
        DataError, ParameterError: missing columns, unknown classes, a metric not estimated.
    """
    import numpy as np
    import pandas as pd

    if task not in ESTIMATED:
        raise ParameterError(f"task == {task!r}; allowed: {', '.join(ESTIMATED)}", name="task")
    metrics = list(metrics or ESTIMATED[task])
    bad = [m for m in metrics if m not in ESTIMATED[task]]
    if bad:
        raise ParameterError(f"metric(s) {', '.join(map(repr, bad))} cannot be estimated for {task}; "
                             f"allowed: {', '.join(ESTIMATED[task])}", name="metrics")
    for name, frame in (("analysis", analysis), ("reference", reference)):
        need = ["prediction"] + (["label"] if name == "reference" else []) + (["time"] if name == "analysis" else [])
        lacking = [c for c in need if c not in frame.columns]
        if lacking:
            raise DataError(f"the {name} table lacks column(s) {', '.join(lacking)}")
    reference = reference[reference["label"].notna()].reset_index(drop=True)
    if len(reference) < 20:
        raise DataError(f"the reference has {len(reference)} labelled rows; estimation needs at least 20")
    analysis = analysis.reset_index(drop=True)
    chunks = chunk_rows(analysis["time"], chunk, min_rows)
    labels = analysis["label"] if "label" in analysis else pd.Series([None] * len(analysis))
    labelled = labels.notna().to_numpy()
    typical = int(np.median(chunks.table["rows"]))
    ref_index = reference_chunks(len(reference), typical, min_rows)
    n_ref_chunks = int(ref_index.max()) + 1

    per_row: dict[str, Any] = {}
    if task == "classification":
        classes = [str(c) for c in (classes or sorted(c[len("proba_"):] for c in analysis.columns
                                                      if c.startswith("proba_")))]
        columns = [f"proba_{c}" for c in classes]
        for name, frame in (("analysis", analysis), ("reference", reference)):
            lacking = [c for c in columns if c not in frame.columns]
            if lacking:
                raise DataError(f"the {name} table lacks probability column(s) {', '.join(lacking)}")
        k = len(classes)
        if calibration is None:
            calibration = fit_calibration(reference["label"], reference[columns].to_numpy(), classes)
        ref_cal = calibration.apply(reference[columns].to_numpy())
        ref_pred = _encode(reference["prediction"], classes)
        ref_true = _encode(reference["label"], classes)
        ana_cal = calibration.apply(analysis[columns].to_numpy())
        ana_pred = _encode(analysis["prediction"], classes)
        ana_true = np.full(len(analysis), -1)
        if labelled.any():
            ana_true[labelled] = _encode(labels[labelled], classes)

        def est(rows):
            return confusion_metrics(expected_confusion(ana_cal[rows], ana_pred[rows], k))

        def real(rows):
            return confusion_metrics(realized_confusion(ana_true[rows], ana_pred[rows], k))

        def ref_real(rows):
            return confusion_metrics(realized_confusion(ref_true[rows], ref_pred[rows], k))

        def ref_est(rows):
            return confusion_metrics(expected_confusion(ref_cal[rows], ref_pred[rows], k))

        ref_correct = (ref_true == ref_pred).astype(float)
        per_row["accuracy"] = float(np.std(ref_correct))
        method = "cbpe"
    else:
        features = list(features or [])
        if not features:
            raise DataError("DLE needs the features of the predictions; the log holds none (logged with inputs='hash'?)")
        for name, frame in (("analysis", analysis), ("reference", reference)):
            lacking = [f for f in features if f not in frame.columns]
            if lacking:
                raise DataError(f"the {name} table lacks feature column(s) {', '.join(lacking)}")
        if loss_model is None:
            loss_model = LossModel(features, seed=seed).fit(reference, reference["prediction"], reference["label"])
        losses = loss_model.row_losses(analysis, analysis["prediction"])
        ref_losses = loss_model.reference_estimates

        def ref_est(rows):
            return {m: loss_metric(m, ref_losses[m][rows]) for m in metrics}
        y_ana = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float)
        p_ana = analysis["prediction"].to_numpy(dtype=float)
        y_ref, p_ref = reference["label"].to_numpy(dtype=float), reference["prediction"].to_numpy(dtype=float)

        def est(rows):
            return {m: loss_metric(m, losses[m][rows]) for m in metrics}

        def real(rows):
            return {m: realized_regression(m, y_ana[rows], p_ana[rows]) for m in metrics}

        def ref_real(rows):
            return {m: realized_regression(m, y_ref[rows], p_ref[rows]) for m in metrics}

        per_row["mae"] = float(np.std(np.abs(y_ref - p_ref)))
        method = "dle"

    # reference: realized per reference chunk, thresholds, standard errors
    ref_all = ref_real(np.arange(len(reference)))
    ref_all_estimated = ref_est(np.arange(len(reference)))
    ref_chunk_values = [ref_real(np.flatnonzero(ref_index == c)) for c in range(n_ref_chunks)]
    summary: dict[str, dict] = {}
    boot_size = min(len(reference), max(typical, 50))
    for m in metrics:
        if m in per_row:
            scale, how = per_row[m], "per-row standard deviation of the reference / sqrt(rows)"
        else:
            sd = _bootstrap_sd(lambda rows, m=m: ref_real(rows)[m], len(reference), boot_size, seed)
            scale, how = sd * math.sqrt(boot_size), f"bootstrap of {boot_size} reference rows, scaled by sqrt({boot_size}/rows)"
        values = np.array([v[m] for v in ref_chunk_values], dtype=float)
        if n_ref_chunks >= 3:
            # a few reference chunks can agree by chance: the spread is never taken below the
            # standard error of a chunk of that size, which sampling alone produces
            mean, sd = float(np.nanmean(values)), float(np.nanstd(values, ddof=1))
            floor = scale / math.sqrt(typical) if math.isfinite(scale) else 0.0
            spread = max(sd, floor)
            lower, upper = mean - THRESHOLD_STD * spread, mean + THRESHOLD_STD * spread
            thresholds = (f"mean ± {THRESHOLD_STD:g} sd of {n_ref_chunks} reference chunks of ~{typical} rows"
                          + (" (sd raised to the standard error of one chunk)" if floor > sd else ""))
        else:
            se = scale / math.sqrt(typical)
            lower, upper = ref_all[m] - BAND * se, ref_all[m] + BAND * se
            thresholds = (f"reference value ± {BAND:g} standard errors for {typical} rows (the reference makes only "
                          f"{n_ref_chunks} chunk{'s' if n_ref_chunks != 1 else ''} of that size)")
        summary[m] = {"realized": _json(ref_all[m]), "estimated": _json(ref_all_estimated[m]), "threshold_lower": _clip(lower, m),
                      "threshold_upper": _clip(upper, m), "thresholds": thresholds, "standard_error": how,
                      "se_per_row": _json(scale), "reference_chunks": [_json(v) for v in values],
                      "reference_rows": int(len(reference))}

    profile = None
    drift_features = [f for f in (features or []) if f in analysis.columns and f in reference.columns]
    if drift and drift_features:
        from mlnb import drift as drift_mod

        profile = drift_mod.profile(reference[drift_features])

    rows_out = []
    for c, info in chunks.table.iterrows():
        rows = np.flatnonzero(chunks.index == c)
        have = rows[labelled[rows]]
        e = est(rows)
        r = real(have) if len(have) >= min_rows else {}
        drift_share = None
        if profile is not None:
            drift_share = float(drift_mod.compare(profile, analysis.loc[rows, drift_features]).drift_share)
        for m in metrics:
            se = summary[m]["se_per_row"] / math.sqrt(len(rows)) if summary[m]["se_per_row"] is not None else math.nan
            value = e[m]
            realized = r.get(m)
            judged, on = (realized, "realized") if realized is not None else (value, "estimated")
            alert = bool(judged < summary[m]["threshold_lower"] or judged > summary[m]["threshold_upper"])
            rows_out.append({
                "chunk": info["chunk"], "start": info["start"], "end": info["end"], "rows": int(len(rows)),
                "labelled": int(len(have)), "metric": m, "estimated": value,
                "lower": _clip(value - BAND * se, m), "upper": _clip(value + BAND * se, m),
                "realized": realized if realized is not None else math.nan,
                "threshold_lower": summary[m]["threshold_lower"], "threshold_upper": summary[m]["threshold_upper"],
                "alert": alert, "alert_on": on, "drift_share": drift_share,
            })
    table = pd.DataFrame(rows_out)
    return Estimate(table, summary, method, chunks.merged, calibration if task == "classification" else None)


# -- the reference: the training run's holdout ------------------------------------------------------


def holdout_of(store: Any, version: Any) -> "pd.DataFrame":
    """The holdout rows of the training run behind a model version: its features and target.

    The run's data file is read again, checked against the sha256 in its record, and split
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

    if not Path(source["path"]).is_file():
        raise DataError(f"the training data of {version.uri} ({source['path']}) is gone; {hint}")
    if records.sha256_file(source["path"]) != source["sha256"]:
        raise DataError(f"the training data of {version.uri} ({source['path']}) changed since run {run.id}; {hint}")
    df = read_table(source["path"])
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


# -- the pipeline trigger -------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerResult:
    """The verdict of :func:`estimated_performance_trigger`."""

    fired: bool
    metric: str
    value: float | None
    band: tuple[float, float] | None
    reason: str
    chunk: str | None = None
    realized: float | None = None

    def to_dict(self) -> dict:
        return {"fired": self.fired, "metric": self.metric, "value": self.value,
                "band": list(self.band) if self.band else None, "reason": self.reason, "chunk": self.chunk,
                "realized": self.realized}


def _latest_from(source: Any, metric: str) -> dict | None:
    import pandas as pd

    if isinstance(source, Estimate):
        return source.latest().get(metric)
    if isinstance(source, pd.DataFrame):
        rows = source[source["metric"] == metric] if "metric" in source else source.iloc[0:0]
        if rows.empty:
            return None
        last = rows.iloc[-1]
        return {k: _json(last.get(k)) for k in ("chunk", "rows", "estimated", "lower", "upper", "realized")}
    scraps = source.record["scraps"] if hasattr(source, "record") else source
    if not isinstance(scraps, dict):
        raise ParameterError(f"the trigger reads a monitor run, its scraps or its chunks table, not {type(source).__name__}",
                             name="source")
    latest = scraps.get("latest")
    if not isinstance(latest, dict):
        raise DataError("these scraps hold no 'latest' estimate: are they a monitor run's?")
    return latest.get(metric)


def estimated_performance_trigger(source: Any, metric: str, minimum: float | None = None,
                                  maximum: float | None = None) -> TriggerResult:
    """Whether the estimated ``metric`` of the newest chunk is past its limit.

    Higher-is-better metrics (accuracy, f1...) take a ``minimum`` and fire below it;
    lower-is-better ones (mae, rmse) take a ``maximum`` and fire above it. The estimate
    exists before any label does, so this can fire before the performance trigger can.

    Args:
        source: a monitor run, its scraps (``latest`` is read), an :class:`Estimate`, or
            its chunks table.
        metric: a metric the monitor estimates.

    Raises:
        ConfigError: an unknown metric, a limit on the wrong side for its direction, none
            or both limits.
        DataError: the source holds no estimate of that metric.
    """
    from mlnb.metrics import METRICS

    estimated = sorted({m for ms in ESTIMATED.values() for m in ms})
    if metric not in estimated:
        raise ConfigError(f"estimated_performance: metric {metric!r} is not estimated; allowed: {', '.join(estimated)}")
    direction = METRICS[metric][1]
    need, other = ("min", "max") if direction == "higher" else ("max", "min")
    limit = minimum if direction == "higher" else maximum
    wrong = maximum if direction == "higher" else minimum
    if wrong is not None or limit is None:
        raise ConfigError(f"estimated_performance: {metric} is {direction} is better, so it takes '{need}' "
                          f"(fires past it), not '{other}'" if wrong is not None else
                          f"estimated_performance: give '{need}' for {metric} ({direction} is better)")
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit):
        raise ConfigError(f"estimated_performance: {need} == {limit!r}, must be a number")
    latest = _latest_from(source, metric)
    if latest is None or latest.get("estimated") is None:
        raise DataError(f"the monitor run holds no estimate of {metric}")
    value = float(latest["estimated"])
    band = (float(latest["lower"]), float(latest["upper"])) if latest.get("lower") is not None else None
    realized = latest.get("realized")
    band_text = f"band {band[0]:.3f}–{band[1]:.3f}" if band else "no band"
    where = f" in chunk {latest['chunk']} ({latest.get('rows')} rows)" if latest.get("chunk") is not None else ""
    past = value < limit if direction == "higher" else value > limit
    if past:
        whole = band is not None and (band[1] < limit if direction == "higher" else band[0] > limit)
        side = "below the minimum" if direction == "higher" else "above the maximum"
        reason = (f"estimated {metric} {value:.3f} ({band_text}){where} is {side} {limit:g}"
                  f"{'; the whole band is past it' if whole else '; the band still reaches it'}")
    else:
        side = "at or above the minimum" if direction == "higher" else "at or below the maximum"
        reason = f"estimated {metric} {value:.3f} ({band_text}){where} is {side} {limit:g}"
    if realized is not None:
        reason += f" (realized on its labels: {float(realized):.3f})"
    return TriggerResult(bool(past), metric, value, band, reason, latest.get("chunk"),
                         float(realized) if realized is not None else None)


# -- Prometheus ---------------------------------------------------------------------------------


class MonitorCollector:
    """Prometheus gauges from the newest succeeded monitor run of one model in a store.

    Read from the store's index at most every ``refresh`` seconds, at scrape time, so the
    server's request path never touches it: ``mlnb_monitor_estimated_performance``,
    ``..._lower``, ``..._upper``, ``mlnb_monitor_realized_performance``,
    ``mlnb_monitor_threshold`` (``bound``), ``mlnb_monitor_drift_share`` and
    ``mlnb_monitor_run_timestamp_seconds``, labelled by name, version and metric.
    """

    def __init__(self, store: Any, name: str, refresh: float = 30.0):
        self.store_path = store
        self.name = name
        self.refresh = refresh
        self._at = -math.inf
        self._scraps: dict | None = None
        self._started: str | None = None

    def _newest(self) -> None:
        from mlnb.store import Store

        if time.monotonic() - self._at < self.refresh:
            return
        self._at = time.monotonic()
        try:
            for item in Store(self.store_path).list_runs(template="monitor", status="succeeded", limit=50):
                model = (item["scraps"] or {}).get("model") or {}
                if model.get("name") == self.name and not (item["scraps"] or {}).get("demo"):
                    self._scraps, self._started = item["scraps"], item["started"]
                    return
        except Exception:  # a scrape must not fail because the store is briefly unreadable
            import logging

            logging.getLogger(__name__).warning("cannot read monitor runs of %s from %s", self.name, self.store_path)

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        self._newest()
        labels = ["name", "version", "metric"]
        fam = {
            "estimated": GaugeMetricFamily("mlnb_monitor_estimated_performance",
                                           "Estimated performance (CBPE/DLE) of the newest chunk.", labels=labels),
            "lower": GaugeMetricFamily("mlnb_monitor_estimated_performance_lower", "Lower end of the estimate's band.",
                                       labels=labels),
            "upper": GaugeMetricFamily("mlnb_monitor_estimated_performance_upper", "Upper end of the estimate's band.",
                                       labels=labels),
            "realized": GaugeMetricFamily("mlnb_monitor_realized_performance",
                                          "Realized performance of the newest chunk (where labels arrived).",
                                          labels=labels),
        }
        threshold = GaugeMetricFamily("mlnb_monitor_threshold", "Alert thresholds from the reference chunks.",
                                      labels=[*labels, "bound"])
        drift = GaugeMetricFamily("mlnb_monitor_drift_share", "Share of drifted features in the newest chunk.",
                                  labels=["name", "version"])
        stamp = GaugeMetricFamily("mlnb_monitor_run_timestamp_seconds", "Start of the newest monitor run.",
                                  labels=["name", "version"])
        scraps = self._scraps or {}
        version = str((scraps.get("model") or {}).get("version", ""))
        for metric, row in (scraps.get("latest") or {}).items():
            for key, family in fam.items():
                if row.get(key) is not None:
                    family.add_metric([self.name, version, metric], float(row[key]))
            for bound in ("lower", "upper"):
                if row.get(f"threshold_{bound}") is not None:
                    threshold.add_metric([self.name, version, metric, bound], float(row[f"threshold_{bound}"]))
        if scraps.get("drift_share") is not None:
            drift.add_metric([self.name, version], float(scraps["drift_share"]))
        if self._started:
            import pandas as pd

            stamp.add_metric([self.name, version], pd.Timestamp(self._started).timestamp())
        yield from (*fam.values(), threshold, drift, stamp)


# -- calibration stored with the model version -----------------------------------------------------

#: Tag on a model version naming the monitor run whose artifact holds its CBPE calibration.
CALIBRATION_TAG = "monitor.calibration"


def stored_calibration(store: Any, version: Any, reference_sha256: str) -> tuple[Calibration, str] | None:
    """The calibration stored with ``version`` for this reference, and the run holding it, or None.

    The version's :data:`CALIBRATION_TAG` names ``<run id>:<reference sha256>``; the run's
    ``calibration.json`` artifact must exist, match its recorded sha256 and the reference.
    """
    from mlnb import records
    from mlnb.exceptions import RunNotFound

    tag = (version.tags or {}).get(CALIBRATION_TAG)
    if not tag or ":" not in tag:
        return None
    run_id, sha = tag.split(":", 1)
    if sha != reference_sha256:
        return None
    from mlnb.store import as_store

    store = as_store(store)
    try:
        run = store.get(run_id)
        path = run.artifact("calibration.json")
    except (RunNotFound, KeyError):
        return None
    entry = next(a for a in run.record["artifacts"] if a["path"] == "calibration.json")
    if not run.succeeded or records.sha256_file(path) != entry["sha256"]:
        return None
    return Calibration.from_dict(json.loads(path.read_text())), run.id


def frame_sha256(df: "pd.DataFrame") -> str:
    """sha256 of a table's values (a fingerprint of a reference that is not a file)."""
    import hashlib

    import pandas as pd

    return hashlib.sha256(pd.util.hash_pandas_object(df.reset_index(drop=True), index=False).to_numpy().tobytes()
                          + json.dumps([str(c) for c in df.columns]).encode()).hexdigest()


# -- the demo: a model and a prediction log made from the bundled example --------------------------


@dataclass
class DemoInputs:
    """What the templates' demo mode runs on (never on the user's data): see :func:`demo_inputs`."""

    result: Any  # the demo model's TrainResult
    log: Any  # the simulated prediction log's directory
    requests: "pd.DataFrame"  # the requests: request_id, date, the features, the true label
    labels: "pd.DataFrame"  # request_id, row, label of the requests whose labels "arrived"


def demo_inputs(directory: Any, labelled_until: str = "2015-01-01") -> DemoInputs:
    """Fit a model on the bundled example's 2012 and log its answers to 2013–2015, one request a day.

    The log is written with the server's own code (:func:`mlnb.predlog.entries`), each day's
    request timed at noon of that day; the labels of the days before ``labelled_until`` have
    "arrived", the later ones not yet.
    """
    from pathlib import Path

    import pandas as pd

    from mlnb import metrics, predlog
    from mlnb.data import seattle_weather
    from mlnb.predict import Scorer

    df = seattle_weather()
    reference = df[df["date"] < "2013-01-01"].drop(columns=["date"])
    result = metrics.train(reference, "weather", None, "sklearn.ensemble.HistGradientBoostingClassifier",
                           {"max_iter": 100}, 0.25, 0)
    later = df[df["date"] >= "2013-01-01"].reset_index(drop=True)
    later["request_id"] = [f"demo-{d:%Y%m%d}" for d in later["date"]]
    scores = Scorer(result.model)(later[result.features])
    directory = Path(directory)
    for old in predlog.log_files(directory):
        old.unlink()
    out = predlog.PredictionLog(directory)
    rows = later[result.features].to_dict("records")
    for i, row in enumerate(rows):
        when = (later["date"].iloc[i] + pd.Timedelta(hours=12)).timestamp()
        out.append(predlog.entries(later["request_id"].iloc[i], when, [row], name="demo", version=1, uri="demo/1",
                                   task="classification", target="weather", features=result.features,
                                   predictions=[scores.predictions[i]], probabilities=[scores.probabilities[i]],
                                   classes=scores.classes))
    out.close()
    arrived = later[later["date"] < labelled_until]
    labels = pd.DataFrame({"request_id": arrived["request_id"], "row": 0, "label": arrived["weather"].astype(str)})
    return DemoInputs(result, directory, later, labels.reset_index(drop=True))

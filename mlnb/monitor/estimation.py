"""Estimating chunk by chunk: realized performance where labels exist, estimated where not.

:func:`estimate` cuts the analysis into chunks (:mod:`.chunks`), estimates each chunk's
metrics with CBPE for classifiers (:mod:`.cbpe`, :mod:`.confusion`) or DLE for regressors
(:mod:`.dle`), and judges them against thresholds made from the reference:

- **Bands**: a band is the estimate ± 3 standard errors, the standard error being the
  reference's per-row standard deviation over √n for accuracy and MAE, else a bootstrap
  of the reference scaled by √(m/n).
- **Thresholds** come from the reference cut into chunks of the analysis chunks' size:
  mean ± 3 standard deviations of their realized values (NannyML's default), the
  deviation never below one chunk's standard error (a few reference chunks can agree by
  chance), or ± 3 standard errors when the reference makes fewer than three chunks; both
  are clipped to the metric's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError, ParameterError
from mlnb.monitor.cbpe import Calibration, fit_calibration
from mlnb.monitor.chunks import DEFAULT_MIN_ROWS, chunk_rows, reference_chunks
from mlnb.monitor.confusion import (CLASSIFICATION_METRICS, confusion_metrics, encode_classes, expected_confusion,
                                    realized_confusion)
from mlnb.monitor.dle import REGRESSION_METRICS, LossModel, loss_metric, realized_regression

if TYPE_CHECKING:
    import pandas as pd

#: Metrics CBPE and DLE estimate, by task.
ESTIMATED = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}
#: Standard errors on each side of an estimate that its band covers (NannyML's SAMPLING_ERROR_RANGE).
BAND = 3.0
#: Standard deviations of the reference chunks on each side of their mean that thresholds allow.
THRESHOLD_STD = 3.0


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
            out[metric] = {k: json_value(last[k]) for k in ("chunk", "rows", "labelled", "estimated", "lower",
                                                            "upper", "realized", "threshold_lower",
                                                            "threshold_upper", "alert", "alert_on")}
            out[metric]["end"] = str(last["end"])
        return out


def json_value(value):
    """``value`` as plain JSON: numpy scalars as Python ones, NaN and infinities as None."""
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
        ref_pred = encode_classes(reference["prediction"], classes)
        ref_true = encode_classes(reference["label"], classes)
        ana_cal = calibration.apply(analysis[columns].to_numpy())
        ana_pred = encode_classes(analysis["prediction"], classes)
        ana_true = np.full(len(analysis), -1)
        if labelled.any():
            ana_true[labelled] = encode_classes(labels[labelled], classes)

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
        summary[m] = {"realized": json_value(ref_all[m]), "estimated": json_value(ref_all_estimated[m]),
                      "threshold_lower": _clip(lower, m),
                      "threshold_upper": _clip(upper, m), "thresholds": thresholds, "standard_error": how,
                      "se_per_row": json_value(scale), "reference_chunks": [json_value(v) for v in values],
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

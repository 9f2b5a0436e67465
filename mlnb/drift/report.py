"""The report: the verdict per column after multiple-testing correction, and for the dataset.

:func:`_finalize` turns the per-column results into a :class:`DriftReport` (the table of
:data:`REPORT_COLUMNS`, the share of drifted columns and the dataset verdict);
:func:`correct_p_values` is the correction it applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlnb.drift.column import _Result
from mlnb.drift.methods import METHODS, Method
from mlnb.exceptions import DriftError

CORRECTIONS = ("none", "bonferroni", "fdr")

#: Columns of :attr:`DriftReport.columns`, in order.
REPORT_COLUMNS = (
    "column",
    "kind",
    "method",
    "statistic",
    "p_value",
    "p_value_adjusted",
    "threshold",
    "drifted",
    "severity",
    "n_reference",
    "n_current",
    "n_missing_reference",
    "n_missing_current",
    "max_error",
    "compared",
    "detail",
)


@dataclass(frozen=True)
class DriftReport:
    """The result of :func:`compare`.

    Attributes:
        columns: one row per column (see :data:`REPORT_COLUMNS`): ``kind``, ``method``,
            ``statistic``, ``p_value`` (NaN for distances), ``p_value_adjusted`` (after the
            multiple-testing correction; the verdict uses it), ``threshold``, ``drifted``,
            ``severity`` (how far past the threshold: >= 1 means drift; distance /
            threshold, or log p / log threshold), row and missing-value counts,
            ``max_error`` (bound on the statistic's error when the reference is a sketched
            profile, 0 when exact), ``compared`` and a one-line ``detail``.
        drift_share: share of compared columns that drifted.
        dataset_drift: whether ``drift_share`` reached ``drift_share_threshold``.
    """

    columns: pd.DataFrame
    drift_share: float
    dataset_drift: bool
    drift_share_threshold: float
    correction: str
    n_reference: int
    n_current: int
    #: columns left out by ``exclude="auto"``, with the rule that left each out
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def excluded_table(self) -> pd.DataFrame:
        """The columns left out by rule: ``column, reason``."""
        return pd.DataFrame({"column": list(self.excluded), "reason": list(self.excluded.values())},
                            columns=["column", "reason"])

    @property
    def n_compared(self) -> int:
        return int(self.columns["compared"].sum())

    @property
    def n_drifted(self) -> int:
        return int(self.columns["drifted"].sum())

    def by_severity(self) -> pd.DataFrame:
        """The table with drifted columns first, most severe first."""
        return self.columns.sort_values(
            ["drifted", "compared", "severity"], ascending=False, na_position="last", kind="stable"
        ).reset_index(drop=True)

    def summary(self) -> str:
        """One sentence: how many columns drifted and the dataset verdict."""
        if self.n_compared == 0:
            return "No column could be compared: dataset drift not detected."
        verdict = "detected" if self.dataset_drift else "not detected"
        return (
            f"{self.n_drifted} of {self.n_compared} columns drifted ({self.drift_share:.0%}; "
            f"dataset drift when >= {self.drift_share_threshold:.0%}): dataset drift {verdict}."
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON data (NaN and infinities become None)."""
        rows = []
        for row in self.columns.to_dict(orient="records"):
            rows.append({k: _json_value(v) for k, v in row.items()})
        return {
            "dataset_drift": bool(self.dataset_drift),
            "drift_share": float(self.drift_share),
            "drift_share_threshold": float(self.drift_share_threshold),
            "n_columns": self.n_compared,
            "n_drifted": self.n_drifted,
            "correction": self.correction,
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "excluded": dict(self.excluded),
            "columns": rows,
        }

    def __repr__(self) -> str:
        return f"<DriftReport: {self.summary()}>"


def _json_value(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v if isinstance(v, str) else str(v)


def _finalize(results: list[_Result], correction: str, drift_share: float, n_ref: int, n_cur: int) -> DriftReport:
    tested = [r for r in results if r.compared and r.forced is None and r.method is not None]
    pvals = [r for r in tested if METHODS[r.method].has_p_value]
    adjusted = correct_p_values([r.p_value for r in pvals], correction)
    adjusted_by_id = {id(r): a for r, a in zip(pvals, adjusted)}
    rows = []
    for r in results:
        p_adj = adjusted_by_id.get(id(r), math.nan)
        drifted = False
        severity = math.nan
        if r.forced is not None:
            drifted = r.forced
        elif r.compared and r.method is not None:
            spec = METHODS[r.method]
            score = p_adj if spec.has_p_value else r.statistic
            drifted = spec.drifted(score, r.threshold)
            if spec.has_p_value:
                severity = math.log(max(p_adj, 1e-300)) / math.log(r.threshold)
            else:
                severity = r.statistic / r.threshold
            rows_detail = _verdict_text(r, spec, p_adj, drifted, correction)
            r.notes.insert(0, rows_detail)
        rows.append(
            {
                "column": r.column,
                "kind": r.kind,
                "method": r.method,
                "statistic": r.statistic,
                "p_value": r.p_value,
                "p_value_adjusted": p_adj,
                "threshold": r.threshold,
                "drifted": drifted,
                "severity": severity,
                "n_reference": r.n_reference,
                "n_current": r.n_current,
                "n_missing_reference": r.n_missing_reference,
                "n_missing_current": r.n_missing_current,
                "max_error": r.max_error,
                "compared": r.compared,
                "detail": "; ".join(r.notes),
            }
        )
    table = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    table = table.astype({"drifted": bool, "compared": bool})
    n_compared = int(table["compared"].sum())
    share = float(table["drifted"].sum() / n_compared) if n_compared else 0.0
    return DriftReport(
        columns=table,
        drift_share=share,
        dataset_drift=bool(n_compared and share >= drift_share),
        drift_share_threshold=drift_share,
        correction=correction,
        n_reference=n_ref,
        n_current=n_cur,
    )


def _verdict_text(r: _Result, spec: Method, p_adj: float, drifted: bool, correction: str) -> str:
    if spec.has_p_value:
        op = ("<=" if spec.inclusive else "<") if drifted else (">" if spec.inclusive else ">=")
        adj = f" ({correction}-adjusted from {r.p_value:.3g})" if correction != "none" else ""
        return f"{spec.label} {p_adj:.3g}{adj} {op} {r.threshold:g} (statistic {r.statistic:.4g})"
    op = ">=" if drifted else "<"
    return f"{spec.label} {r.statistic:.4g} {op} {r.threshold:g}"


def correct_p_values(p_values: Sequence[float], correction: str) -> list[float]:
    """Adjust p-values for testing many columns at once.

    Args:
        p_values: one p-value per tested column.
        correction: "none", "bonferroni" (p * m, at most 1) or "fdr" (Benjamini-Hochberg,
            :func:`scipy.stats.false_discovery_control`).
    """
    if correction not in CORRECTIONS:
        raise DriftError(f"unknown correction {correction!r}; allowed: {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=np.float64)
    if correction == "none" or p.size == 0:
        return p.tolist()
    if correction == "bonferroni":
        return np.minimum(p * p.size, 1.0).tolist()
    return stats.false_discovery_control(p, method="bh").tolist()

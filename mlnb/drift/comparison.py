"""Comparing a batch with its reference: :func:`compare`, column by column, into a report.

Reads both sides, checks the options against the columns, summarises and tests every column
(on threads for large inputs) and hands the results to :mod:`mlnb.drift.report` for the
verdicts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from mlnb.drift.column import _test_column
from mlnb.drift.inputs import (
    KINDS,
    _check_method,
    _check_not_empty,
    _map_columns,
    _names,
    _per_column,
    _resolve_columns,
    auto_exclude,
)
from mlnb.drift.methods import METHODS
from mlnb.drift.profiles import ReferenceProfile, load_reference
from mlnb.drift.report import CORRECTIONS, DriftReport, _finalize
from mlnb.drift.summaries import summarize
from mlnb.exceptions import DriftError


def _load_current(source: Any) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, ReferenceProfile):
        raise DriftError("current must be data (a DataFrame or a CSV/Parquet path), not a profile")
    if isinstance(source, (str, os.PathLike)):
        from mlnb.data import read_table

        return read_table(source)
    raise DriftError(f"current must be a DataFrame or a path, not {type(source).__name__}")


def compare(
    reference: Any,
    current: Any,
    *,
    columns: Sequence[Any] | None = None,
    exclude: Sequence[Any] | str | None = "auto",
    method: str | Mapping[str, str] = "auto",
    threshold: float | Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    correction: str = "none",
    kinds: Mapping[str, str] | None = None,
    n_jobs: int | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column and decide drift.

    Args:
        reference: a DataFrame, a :class:`ReferenceProfile`, or a path to a CSV/Parquet
            file or a saved profile (``.npz``).
        current: a DataFrame or a CSV/Parquet path.
        columns: columns to report; None = every column of either side (the ones on one
            side only are reported, not compared).
        exclude: columns to leave out: ``"auto"`` (default) leaves out dates and identifiers
            by rule (:func:`auto_exclude`; the report's ``excluded`` says which and why),
            a list names them, None or ``[]`` leaves none out. The rule does not apply to
            columns named in ``columns``.
        method: "auto" (Evidently's choice, see :mod:`mlnb.drift`), a method name for
            every column, or ``{column: method}`` (others "auto"). Methods: ks,
            wasserstein, jensenshannon, psi, chisquare, chi2_contingency, z.
        threshold: None (each method's default: 0.05 for p-values, 0.1 for distances), one
            number for every column, or ``{column or method name: number}``.
        drift_share: the dataset drifts when at least this share of compared columns drift.
        correction: "none", "bonferroni" or "fdr" (Benjamini-Hochberg) for p-value methods.
        kinds: ``{column: "numerical" | "categorical"}`` to override the detected kind.
        n_jobs: threads for large inputs (default 1). More threads help only on idle cores:
            on the 2-core reference machine under load, 2 threads were slower than 1,
            because each thread's malloc arena returns freed memory to the OS and then
            page-faults it back.

    Returns:
        A :class:`DriftReport`.

    Raises:
        DriftError: an empty side, no common column, a column numerical on one side and text
            on the other, an unknown method or correction, a threshold out of range.
    """
    ref = load_reference(reference)
    cur = _load_current(current)
    if isinstance(ref, ReferenceProfile):
        ref_cols, n_ref = list(ref.columns), ref.n_rows
    else:
        ref_cols, n_ref = list(ref.columns), len(ref)
    _check_not_empty("reference", n_ref, len(ref_cols))
    _check_not_empty("current", len(cur), len(cur.columns))
    if isinstance(drift_share, bool) or not isinstance(drift_share, (int, float)) or not 0 < drift_share <= 1:
        raise DriftError(f"drift_share {drift_share!r} is out of range: it must be in (0, 1]")
    if correction not in CORRECTIONS:
        raise DriftError(f"unknown correction {correction!r}; allowed: {', '.join(CORRECTIONS)}")
    if isinstance(exclude, str) and exclude != "auto":
        raise DriftError(f"exclude must be \"auto\", a list of column names or None, not the string {exclude!r}")
    names = _resolve_columns(ref_cols, list(cur.columns), columns, exclude)
    excluded: dict[str, str] = {}
    if exclude == "auto":
        excluded = {c: why for c, why in auto_exclude(ref, cur).items() if c in names and c not in (columns or ())}
        names = [c for c in names if c not in excluded]
        if not any(c in ref_cols and c in cur.columns for c in names):
            raise DriftError(
                f"no column to compare: every common column is a date or an identifier "
                f"({_names(list(excluded))}); name the columns to compare with 'columns'"
            )

    if isinstance(method, str):
        _check_method(method)
        methods = dict.fromkeys(names, method)
    else:
        overrides = _per_column("methods", method, names, None)
        for c, m in overrides.items():
            _check_method(m, f" for column {str(c)!r}")
        methods = {c: overrides.get(c, "auto") for c in names}
    thresholds: dict[tuple[str, Any], Any] = {}
    if isinstance(threshold, Mapping):
        for key, value in threshold.items():
            if key in names:
                thresholds[("column", key)] = value
            elif key in METHODS:
                thresholds[("method", key)] = value
            else:
                raise DriftError(
                    f"threshold key {str(key)!r} is neither a compared column nor a method; "
                    f"methods: {', '.join(sorted(METHODS))}"
                )
    elif threshold is not None:
        thresholds[("global", None)] = threshold
    kind_of = _per_column("kinds", kinds or {}, names, KINDS)

    ref_set, cur_set = set(ref_cols), set(cur.columns)

    def one(name):
        if isinstance(ref, ReferenceProfile):
            r = ref.columns.get(name)
        else:
            r = summarize(ref[name]) if name in ref_set else None
        c = summarize(cur[name], std=False) if name in cur_set else None
        return _test_column(name, r, c, methods[name], thresholds, kind_of.get(name))

    results = _map_columns(one, names, n_jobs, (n_ref + len(cur)) * len(names))
    report = _finalize(results, correction, float(drift_share), n_ref, len(cur))
    return replace(report, excluded=excluded)

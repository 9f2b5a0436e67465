"""Column summaries: what the drift tests need from one column of one side.

A numerical column is reduced to its sorted distinct values and their counts (numbers are
sorted once), a categorical one to its category counts; missing values are counted and
left out. Every test, and a saved reference profile, works from these summaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True, eq=False)
class ColumnSummary:
    """What drift tests need from one column of one dataset.

    ``values`` are the sorted distinct values (float64) of a numerical column, or the sorted
    labels (str) of a categorical one, and ``counts`` the rows holding each. A profile of a
    numerical column with more than ``max_atoms`` distinct values keeps a quantile sketch
    instead: ``values`` are the means of equal-count blocks of the sorted data, ``exact`` is
    False and ``w1_error`` / ``ks_error`` bound how far the Wasserstein distance and the KS
    statistic computed from the sketch can be from the exact ones.
    """

    numeric: bool | None  # None: no value present, so the type is unknown
    integer: bool
    dtype: str
    values: np.ndarray
    counts: np.ndarray
    n: int
    n_missing: int
    n_infinite: int
    n_unique: int
    std: float
    vmin: float
    vmax: float
    datetime: bool = False
    exact: bool = True
    w1_error: float = 0.0
    ks_error: float = 0.0


def _numeric_array(series: pd.Series) -> np.ndarray | None | str:
    """The column as float64, None if it holds no numbers, "datetime", or "empty"."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return None
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        if dtype == np.float64:
            return series.to_numpy()  # a view: no copy of the data
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
        if inferred == "empty":
            return "empty"
        if inferred in ("datetime64", "datetime", "date", "timedelta64", "timedelta"):
            return "datetime"
    return None


def _compact(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts, from a sorted array, in O(n).

    Continuous data rarely repeat a value: then the array itself is returned with a
    zero-copy view of ones as counts.
    """
    n = sorted_values.size
    if n == 0:
        return sorted_values.astype(np.float64), np.zeros(0, dtype=np.int64)
    last = np.empty(n, dtype=bool)
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=last[:-1])
    last[-1] = True
    ends = np.flatnonzero(last)
    if ends.size == n:
        return sorted_values, np.broadcast_to(np.int64(1), (n,))
    counts = np.diff(ends, prepend=-1)
    return sorted_values[ends], counts


def summarize(series: pd.Series, *, std: bool = True) -> ColumnSummary:
    """Summarise one column: sorted distinct values or category counts, missing values.

    Numbers are sorted once; None, NaN and infinities are counted as missing. Anything else
    (text, categories, booleans) is counted by its text form, so ``True`` and ``"True"``
    are the same category. ``std=False`` skips the standard deviation, which only the
    reference side needs.
    """
    dtype = str(series.dtype)
    arr = _numeric_array(series)
    if isinstance(arr, str):  # "datetime" or "empty"
        n_missing = int(series.isna().sum())
        empty = np.zeros(0)
        return ColumnSummary(
            numeric=None, integer=False, dtype=dtype, values=empty, counts=empty.astype(np.int64),
            n=len(series) - n_missing, n_missing=n_missing, n_infinite=0,
            n_unique=0 if arr == "empty" else int(series.nunique()), std=math.nan,
            vmin=math.nan, vmax=math.nan, datetime=arr == "datetime",
        )
    if arr is not None:
        s = np.sort(arr)  # NaN sort last, infinities at either end
        lo = int(np.searchsorted(s, -np.inf, side="right"))
        hi = int(np.searchsorted(s, np.inf, side="left"))
        top = int(np.searchsorted(s, np.inf, side="right"))
        finite = s[lo:hi]
        values, counts = _compact(finite)
        return ColumnSummary(
            numeric=True if finite.size else None,
            integer=pd.api.types.is_integer_dtype(series.dtype),
            dtype=dtype, values=values, counts=counts, n=int(finite.size),
            n_missing=int(s.size - finite.size), n_infinite=lo + top - hi,
            n_unique=int(values.size),
            std=float(np.std(finite)) if finite.size and std else math.nan,
            vmin=float(finite[0]) if finite.size else math.nan,
            vmax=float(finite[-1]) if finite.size else math.nan,
        )
    vc = series.value_counts(dropna=True, sort=False)
    vc = vc[vc > 0]  # a categorical dtype lists unused categories with count 0
    labels = np.asarray([str(v) for v in vc.index], dtype=str) if len(vc) else np.zeros(0, dtype=str)
    counts = vc.to_numpy(dtype=np.int64)
    if len(np.unique(labels)) < len(labels):  # 1 and "1" share a text form: merge them
        merged = pd.Series(counts).groupby(labels).sum()
        labels, counts = merged.index.to_numpy(dtype=str), merged.to_numpy(dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    n = int(counts.sum())
    return ColumnSummary(
        numeric=False if n else None, integer=False, dtype=dtype, values=labels[order],
        counts=counts[order], n=n, n_missing=len(series) - n, n_infinite=0,
        n_unique=int(labels.size), std=math.nan, vmin=math.nan, vmax=math.nan,
    )

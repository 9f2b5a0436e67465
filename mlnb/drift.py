"""Data drift: does a batch of data still look like the reference it is compared with?

:func:`compare` tests every column of a current batch against the same column of a
reference and returns a :class:`DriftReport`: per column the kind, the method, the
statistic, the p-value where the method has one, the threshold and the verdict, plus the
share of drifted columns and the dataset verdict. :func:`profile` summarises the reference
once and saves it (``.npz``), so a monitor does not reread and re-sort the reference for
every batch.

``method="auto"`` chooses per column exactly as Evidently does (``_get_default_stattest`` in
``calculations/stattests/registry.py`` and ``_get_column_type`` in
``utils/data_preprocessing.py``, Evidently 0.4 to 0.7 and its ``legacy`` package), so
verdicts are comparable with Evidently's data drift preset:

=====================  ============================  =====================================
reference rows [1]_    numerical, > 5 values [2]_    categorical, or <= 5 values
=====================  ============================  =====================================
<= 1,000               ``ks``: drift if p <= 0.05    ``chisquare`` (> 2 values) or ``z``
                                                     (<= 2 values): drift if p < 0.05
> 1,000                ``wasserstein``: drift if     ``jensenshannon``: drift if >= 0.1
                       >= 0.1
=====================  ============================  =====================================

.. [1] Non-missing reference values of the column, as Evidently counts them after dropping
   NaN and infinities.
.. [2] Distinct values over reference and current together.

A column is numerical when its values are numbers, except an integer column with at most 5
distinct reference values, which is categorical (Evidently's ``NUMBER_UNIQUE_AS_CATEGORICAL``).
Text, categorical and boolean columns are categorical (Evidently calls booleans numerical,
but tests them exactly like categories because they have two values). Datetime columns
are reported and not tested, as in Evidently. The dataset drifts when the share of drifted
columns reaches ``drift_share`` (0.5).

The methods (every choice can be overridden per column):

- ``ks``: two-sample Kolmogorov-Smirnov, as :func:`scipy.stats.ks_2samp` (exact p-value up
  to 10,000 rows a side, Smirnov's asymptotic distribution above, as scipy's ``auto``).
- ``wasserstein``: :func:`scipy.stats.wasserstein_distance` divided by the reference's
  population standard deviation, floored at 0.001 as Evidently does.
- ``jensenshannon``: :func:`scipy.spatial.distance.jensenshannon` (natural log, at most
  0.833) of the category shares; numerical columns with more than 20 distinct reference
  values are first binned into Sturges equal-width bins over both samples' range
  (Evidently's ``get_binned_data``), otherwise compared value by value.
- ``psi``: Population Stability Index on the same shares, empty shares replaced by a tiny
  share as Evidently does; drift if >= 0.1.
- ``chisquare``: Evidently's chi-squared, :func:`scipy.stats.chisquare` of the current
  counts against counts expected from the reference shares. A value the reference never
  had makes the statistic infinite (p = 0).
- ``chi2_contingency``: the two-sample chi-squared test of homogeneity of
  :func:`scipy.stats.chi2_contingency` (Yates' correction for two categories, as scipy).
- ``z``: two-proportion Z-test of the share of the first value (in sorted order) against
  the rest, two-sided, as Evidently.

Missing values (None, NaN, and for numbers also infinities) are counted per column and
left out of the tests, as Evidently does; a column missing entirely on one side drifts.
P-values can be corrected for testing many columns (``correction="bonferroni"`` or
``"fdr"``, Benjamini-Hochberg); the verdict then uses the adjusted p-value.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from mlnb import records
from mlnb.exceptions import DriftError

#: Format tag of a saved reference profile.
PROFILE_SCHEMA = records.DRIFT_PROFILE
KINDS = ("numerical", "categorical")
CORRECTIONS = ("none", "bonferroni", "fdr")
#: Evidently's switch between p-value tests and distances, in non-missing reference rows.
AUTO_SMALL_REFERENCE = 1000
#: Evidently's NUMBER_UNIQUE_AS_CATEGORICAL.
AUTO_MAX_VALUES_AS_CATEGORICAL = 5
#: Evidently bins numerical columns for PSI and Jensen-Shannon above this many distinct values.
BIN_MIN_UNIQUE = 20
#: scipy's ks_2samp computes exact p-values while both samples have at most this many rows.
KS_EXACT_MAX_N = 10_000
#: Distinct values a profile keeps exactly per numerical column; above, a quantile sketch.
DEFAULT_MAX_ATOMS = 32_768
#: Evidently's floor for the reference standard deviation in the normalised Wasserstein.
WASSERSTEIN_MIN_STD = 0.001
_JS_MAX = math.sqrt(math.log(2.0))
# Below this many cells the thread pool costs more than it saves.
_PARALLEL_MIN_CELLS = 200_000


@dataclass(frozen=True)
class Method:
    """A drift test: its name, whether it yields a p-value, and how it decides."""

    name: str
    label: str
    has_p_value: bool
    default_threshold: float
    inclusive: bool  # p <= t (else p < t) for p-values; distances always use >=
    numeric_only: bool = False
    max_threshold: float = math.inf

    def drifted(self, score: float, threshold: float) -> bool:
        if self.has_p_value:
            return bool(score <= threshold) if self.inclusive else bool(score < threshold)
        return bool(score >= threshold)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ks", "KS p-value", True, 0.05, inclusive=True, numeric_only=True),
        Method("wasserstein", "normalised Wasserstein distance", False, 0.1, True, numeric_only=True),
        Method("jensenshannon", "Jensen-Shannon distance", False, 0.1, True, max_threshold=_JS_MAX),
        Method("psi", "PSI", False, 0.1, True),
        Method("chisquare", "chi-squared p-value", True, 0.05, inclusive=False),
        Method("chi2_contingency", "chi-squared (homogeneity) p-value", True, 0.05, inclusive=False),
        Method("z", "Z-test p-value", True, 0.05, inclusive=False),
    )
}
_METHOD_CHOICES = ", ".join(["auto", *sorted(METHODS)])

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


# -- column summaries: what the tests need from one column of one side ---------------------


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


# -- kernels ------------------------------------------------------------------------------


def _cdf_gaps(u: np.ndarray, wu: np.ndarray, v: np.ndarray, wv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|F_u - F_v|`` on each interval between consecutive points of the merged support.

    ``u`` and ``v`` are sorted, ``wu`` and ``wv`` their counts. A stable argsort of the two
    concatenated runs is a linear-time merge, cheaper than scipy's two searchsorted passes.
    The gap is accumulated in integers (``n1 * n2 * (F_u - F_v)``), so it is exact before
    the one final division. Returns ``(gap, dx)``, both of length ``len(u) + len(v) - 1``;
    where a value occurs on both sides the first of the tied positions is not a real value
    of the gap, but its ``dx`` is 0, so integrals ignore it and maxima must skip it.
    """
    n1, n2 = int(np.sum(wu)), int(np.sum(wv))
    nu = u.size
    x = np.concatenate((u, v))
    perm = np.argsort(x, kind="stable")
    merged = x.take(perm)
    dx = np.diff(merged)
    # Buffers are reused below: fresh memory costs page faults, which are slow in VMs.
    if n1 * n2 < 2**62:
        inc = x.view(np.int64)
        np.multiply(wu, n2, out=inc[:nu], casting="unsafe")
        np.multiply(wv, -n1, out=inc[nu:], casting="unsafe")
        gap = inc.take(perm, out=merged.view(np.int64))
        scale = float(n1) * float(n2)
    else:  # astronomically many rows: float increments, still well within 1e-9
        np.divide(wu, n1, out=x[:nu], casting="unsafe")
        np.divide(wv, -n2, out=x[nu:], casting="unsafe")
        gap = x.take(perm, out=merged)
        scale = 1.0
    del perm
    np.cumsum(gap, out=gap)
    gap = gap[:-1]
    np.abs(gap, out=gap)
    out = x[:-1]
    np.divide(gap, scale, out=out, casting="unsafe")
    return out, dx


def _integral(gap: np.ndarray, dx: np.ndarray) -> float:
    # Not np.dot: BLAS would wake its worker threads, which then spin and steal the cores
    # the column threads need (measured: ~1 s of CPU on the 1M-row benchmark).
    np.multiply(gap, dx, out=gap)
    return float(gap.sum())


def _w1(u, wu, v, wv) -> float:
    """First Wasserstein distance between two weighted samples (scipy's formula)."""
    gap, dx = _cdf_gaps(u, wu, v, wv)
    return _integral(gap, dx)


def _ks_and_w1(u, wu, v, wv) -> tuple[float, float]:
    """Largest CDF gap (the KS statistic) and the Wasserstein distance."""
    gap, dx = _cdf_gaps(u, wu, v, wv)
    complete = gap[dx != 0]  # skip the first of tied positions
    d = float(complete.max()) if complete.size else 0.0
    return d, _integral(gap, dx)


def _ks_test(ref: ColumnSummary, cur: ColumnSummary) -> tuple[float, float]:
    """KS statistic and p-value, as scipy.stats.ks_2samp(method="auto")."""
    if max(ref.n, cur.n) <= KS_EXACT_MAX_N:
        # scipy's exact p-value; repeating the distinct values rebuilds the sorted sample.
        res = stats.ks_2samp(np.repeat(ref.values, ref.counts), np.repeat(cur.values, cur.counts))
        return float(res.statistic), float(res.pvalue)
    d, _ = _ks_and_w1(ref.values, ref.counts, cur.values, cur.counts)
    m, n = sorted((float(ref.n), float(cur.n)), reverse=True)
    p = stats.kstwo.sf(d, np.round(m * n / (m + n)))
    return d, float(np.clip(p, 0.0, 1.0))


def _aligned_counts(ref: ColumnSummary, cur: ColumnSummary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of every value present on either side, in the same (sorted) order."""
    keys = np.union1d(ref.values, cur.values)
    rc = np.zeros(keys.size)
    cc = np.zeros(keys.size)
    rc[np.searchsorted(keys, ref.values)] = ref.counts
    cc[np.searchsorted(keys, cur.values)] = cur.counts
    return keys, rc, cc


def sturges_edges(vmin: float, vmax: float, size: int, integer: bool = False) -> np.ndarray:
    """``np.histogram_bin_edges(data, bins="sturges")`` from the data's min, max and size.

    Lets a profile bin a sample it no longer holds, with the very edges numpy would compute.
    """
    first, last = float(vmin), float(vmax)
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (float(vmax) - float(vmin)) / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = 1
        n_bins = int(np.ceil((last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def _bin_counts(side: ColumnSummary, edges: np.ndarray) -> np.ndarray:
    """Rows per bin, as np.histogram: [e_i, e_i+1), the last bin closed."""
    cum = np.concatenate(([0.0], np.cumsum(side.counts, dtype=np.float64)))
    idx = np.searchsorted(side.values, edges, side="left")
    idx[-1] = np.searchsorted(side.values, edges[-1], side="right")
    return np.diff(cum[idx])


def _shares(ref: ColumnSummary, cur: ColumnSummary, kind: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Reference and current counts per bin or value, as Evidently's get_binned_data."""
    if ref.numeric and kind == "numerical" and ref.n_unique > BIN_MIN_UNIQUE:
        edges = sturges_edges(
            min(ref.vmin, cur.vmin), max(ref.vmax, cur.vmax), ref.n + cur.n,
            integer=ref.integer and cur.integer,
        )
        return _bin_counts(ref, edges), _bin_counts(cur, edges), True
    _, rc, cc = _aligned_counts(ref, cur)
    return rc, cc, False


def _jensenshannon(rc: np.ndarray, cc: np.ndarray) -> float:
    """scipy.spatial.distance.jensenshannon(rc, cc), natural log."""
    p = rc / rc.sum()
    q = cc / cc.sum()
    m = (p + q) / 2.0
    js = special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()
    return float(np.sqrt(max(js, 0.0) / 2.0))


def _fill_zeroes(share: np.ndarray) -> np.ndarray:
    """Evidently's replacement of empty shares, which keeps PSI finite."""
    nonzero = share[share != 0]
    low = nonzero.min()
    return np.where(share == 0, low / 10**6 if low <= 0.0001 else 0.0001, share)


def _psi(rc: np.ndarray, cc: np.ndarray) -> float:
    r = _fill_zeroes(rc / rc.sum())
    c = _fill_zeroes(cc / cc.sum())
    return float(np.sum((r - c) * np.log(r / c)))


def _chisquare(rc: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """scipy.stats.chisquare(current counts, reference counts scaled to the current total)."""
    if rc.size < 2:
        return 0.0, 1.0
    expected = rc * (cc.sum() / rc.sum())
    if np.any((expected == 0) & (cc > 0)):
        return math.inf, 0.0
    stat = float(np.sum((cc - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, rc.size - 1))


def _chi2_contingency(rc: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """scipy.stats.chi2_contingency([rc, cc]) with its defaults (Yates for 1 degree)."""
    if rc.size < 2:
        return 0.0, 1.0
    observed = np.vstack((rc, cc))
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    dof = rc.size - 1
    if dof == 1:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    stat = float(np.sum((observed - expected) ** 2 / expected))
    return stat, float(stats.chi2.sf(stat, dof))


def _z_test(rc: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """Evidently's two-proportion Z-test: share of the first value against the rest."""
    n1, n2 = rc.sum(), cc.sum()
    if rc.size < 2:  # one value, the same on both sides
        return 0.0, 1.0
    p1 = (n1 - rc[0]) / n1
    p2 = (n2 - cc[0]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    # sf instead of Evidently's 1 - cdf: the same number, without cancellation for tiny p.
    return float(z), float(2 * stats.norm.sf(abs(z)))


def auto_method(kind: str, n_reference: int, n_values: int) -> str:
    """The method Evidently picks for a column (see the module docstring).

    Args:
        kind: "numerical" or "categorical".
        n_reference: non-missing reference values.
        n_values: distinct values over reference and current together.
    """
    if n_reference <= AUTO_SMALL_REFERENCE:
        if kind == "numerical" and n_values > AUTO_MAX_VALUES_AS_CATEGORICAL:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if kind == "numerical" and n_values > AUTO_MAX_VALUES_AS_CATEGORICAL:
        return "wasserstein"
    return "jensenshannon"


def _n_values(ref: ColumnSummary, cur: ColumnSummary, cap: int = AUTO_MAX_VALUES_AS_CATEGORICAL) -> int:
    """Distinct values over both sides, exact up to ``cap`` (cap + 1 means "more")."""
    if ref.n_unique > cap or cur.n_unique > cap:
        return cap + 1
    return int(np.union1d(ref.values, cur.values).size)


# -- one column ---------------------------------------------------------------------------


@dataclass
class _Result:
    """One column's test, before multiple-testing correction and the verdict."""

    column: str
    kind: str | None = None
    method: str | None = None
    statistic: float = math.nan
    p_value: float = math.nan
    threshold: float = math.nan
    n_reference: int = 0
    n_current: int = 0
    n_missing_reference: int = 0
    n_missing_current: int = 0
    max_error: float = math.nan
    compared: bool = True
    forced: bool | None = None  # verdict fixed without a test (a side entirely missing)
    notes: list[str] = field(default_factory=list)


def _describe(dtype: str, numeric: bool | None) -> str:
    return f"{'numerical' if numeric else 'text/categorical'} ({dtype})"


def _test_column(
    name: str,
    ref: ColumnSummary | None,
    cur: ColumnSummary | None,
    method: str,
    thresholds: Mapping[tuple[str, Any], Any],
    kind: str | None,
) -> _Result:
    res = _Result(column=str(name))
    if ref is None or cur is None:
        side = "reference" if cur is None else "current"
        present = ref if ref is not None else cur
        res.compared = False
        res.kind = "numerical" if present.numeric else ("categorical" if present.numeric is False else None)
        res.notes.append(f"only in {side}: not compared")
        res.n_reference = ref.n if ref else 0
        res.n_current = cur.n if cur else 0
        return res
    res.n_reference, res.n_current = ref.n, cur.n
    res.n_missing_reference, res.n_missing_current = ref.n_missing, cur.n_missing
    for side, summary in (("reference", ref), ("current", cur)):
        if summary.n_missing:
            inf = f", {summary.n_infinite} of them infinite" if summary.n_infinite else ""
            res.notes.append(f"{summary.n_missing} missing in {side}{inf}")
    if ref.datetime or cur.datetime:
        res.compared, res.kind = False, "datetime"
        res.notes.insert(0, "datetime column: not compared (as in Evidently); convert it to a number to compare it")
        return res
    if ref.numeric is not None and cur.numeric is not None and ref.numeric != cur.numeric:
        raise DriftError(
            f"column {name!r} is {_describe(ref.dtype, ref.numeric)} in reference but "
            f"{_describe(cur.dtype, cur.numeric)} in current; convert one side, or leave the "
            f"column out with exclude=[{name!r}]"
        )
    numeric = ref.numeric if ref.numeric is not None else cur.numeric
    if kind is None:
        n_unique = ref.n_unique or cur.n_unique
        integer_like = cur.integer if cur.n else ref.integer
        small_int = integer_like and n_unique <= AUTO_MAX_VALUES_AS_CATEGORICAL
        kind = "numerical" if numeric and not small_int else "categorical"
    elif kind == "numerical" and numeric is False:
        raise DriftError(
            f"column {name!r} holds text ({ref.dtype if ref.numeric is False else cur.dtype}); "
            "it cannot be numerical: use kinds={...: 'categorical'} or leave it out"
        )
    res.kind = kind
    if ref.n == 0 and cur.n == 0:
        res.compared = False
        res.notes.insert(0, "all values missing on both sides: not compared")
        return res
    if ref.n == 0 or cur.n == 0:
        empty, full = ("reference", cur) if ref.n == 0 else ("current", ref)
        other = "current" if empty == "reference" else "reference"
        res.forced = True
        res.notes.insert(0, f"all values missing in {empty} ({other} has {full.n})")
        return res

    if method == "auto":
        method = auto_method(kind, ref.n, _n_values(ref, cur))
    spec = METHODS[method]
    if spec.numeric_only and not numeric:
        allowed = ", ".join(m for m in sorted(METHODS) if not METHODS[m].numeric_only)
        raise DriftError(
            f"method {method!r} needs numbers; column {name!r} is {_describe(ref.dtype, numeric)}: "
            f"use one of {allowed}"
        )
    res.method = method
    res.threshold = _threshold_for(name, spec, thresholds)

    if method in ("ks", "wasserstein"):
        if method == "ks":
            res.statistic, res.p_value = _ks_test(ref, cur)
            res.max_error = ref.ks_error
        else:
            norm = max(ref.std, WASSERSTEIN_MIN_STD)
            res.statistic = _w1(ref.values, ref.counts, cur.values, cur.counts) / norm
            res.max_error = ref.w1_error / norm
            if ref.std < WASSERSTEIN_MIN_STD:
                res.notes.append(
                    f"reference nearly constant (std {ref.std:.3g}): distance divided by "
                    f"{WASSERSTEIN_MIN_STD} as Evidently does"
                )
        if not ref.exact:
            res.notes.append(f"reference from a sketched profile: statistic within ±{res.max_error:.2g}")
        else:
            res.max_error = 0.0
        return res

    if method in ("jensenshannon", "psi"):
        rc, cc, binned = _shares(ref, cur, kind)
        res.statistic = (_jensenshannon if method == "jensenshannon" else _psi)(rc, cc)
    else:  # value tests compare value by value, never binned (as Evidently)
        keys, rc, cc = _aligned_counts(ref, cur)
        binned = False
        test = {"chisquare": _chisquare, "chi2_contingency": _chi2_contingency, "z": _z_test}[method]
        res.statistic, res.p_value = test(rc, cc)
        if math.isinf(res.statistic):
            new = [str(k) for k in keys[(rc == 0) & (cc > 0)][:5]]
            res.notes.append(f"values never seen in reference: {', '.join(new)}")
    if rc.size < 2 and method != "jensenshannon" and method != "psi":
        res.notes.append("one value on both sides")
    res.max_error = 0.0
    if not ref.exact:
        res.max_error = math.nan
        res.notes.append(
            "reference from a sketched profile: "
            + (
                f"bin counts off by at most {math.ceil(ref.n / ref.values.size)} rows per bin edge"
                if binned
                else "values are block means, so this value test is approximate"
            )
        )
    return res


def _threshold_for(name: Any, spec: Method, thresholds: Mapping[tuple[str, Any], Any]) -> float:
    """The column's threshold (column, then method, then global), validated."""
    for key in (("column", name), ("method", spec.name), ("global", None)):
        if key in thresholds:
            value = thresholds[key]
            break
    else:
        return spec.default_threshold
    where = f"column {name!r} ({spec.name})"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise DriftError(f"threshold {value!r} for {where} is not a finite number")
    value = float(value)
    if spec.has_p_value and not 0 < value < 1:
        raise DriftError(f"threshold {value!r} for {where} is out of range: a p-value threshold must be in (0, 1)")
    if not spec.has_p_value and not 0 < value <= spec.max_threshold:
        upper = "" if math.isinf(spec.max_threshold) else f", at most {spec.max_threshold:.4f}"
        raise DriftError(f"threshold {value!r} for {where} is out of range: a distance threshold must be > 0{upper}")
    return value


# -- the report ---------------------------------------------------------------------------


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


# -- inputs -------------------------------------------------------------------------------


def load_reference(source: Any) -> pd.DataFrame | ReferenceProfile:
    """A reference as :func:`compare` takes it: a DataFrame, a profile, or a path to either.

    ``.npz`` paths are read as saved profiles, anything else with :func:`mlnb.data.read_table`.
    """
    if isinstance(source, (pd.DataFrame, ReferenceProfile)):
        return source
    if isinstance(source, (str, os.PathLike)):
        if Path(source).suffix.lower() == ".npz":
            return load_profile(source)
        from mlnb.data import read_table

        return read_table(source)
    raise DriftError(f"reference must be a DataFrame, a saved profile or a path, not {type(source).__name__}")


def _load_current(source: Any) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if isinstance(source, ReferenceProfile):
        raise DriftError("current must be data (a DataFrame or a CSV/Parquet path), not a profile")
    if isinstance(source, (str, os.PathLike)):
        from mlnb.data import read_table

        return read_table(source)
    raise DriftError(f"current must be a DataFrame or a path, not {type(source).__name__}")


def _check_not_empty(side: str, n_rows: int, n_columns: int) -> None:
    if n_columns == 0:
        raise DriftError(f"{side} has no columns; drift needs at least one column on each side")
    if n_rows == 0:
        raise DriftError(f"{side} is empty (0 rows); drift needs at least one row on each side")


def _names(values: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(str(v)) for v in list(values)[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _resolve_columns(ref_cols, cur_cols, columns, exclude) -> list:
    ref_set, cur_set = set(ref_cols), set(cur_cols)
    if not ref_set & cur_set:
        raise DriftError(
            f"reference and current have no column in common (reference: {_names(ref_cols)}; "
            f"current: {_names(cur_cols)})"
        )
    known = ref_set | cur_set
    for option, names in (("columns", columns), ("exclude", exclude)):
        if names is None or (option == "exclude" and names == "auto"):
            continue
        if isinstance(names, str):
            raise DriftError(f"{option} must be a list of column names, not the string {names!r}")
        for c in names:
            if c not in known:
                raise DriftError(
                    f"{option} names column {str(c)!r}, which is in neither reference nor current; "
                    f"columns are: {_names(sorted(map(str, known)), 20)}"
                )
    if columns is None:
        chosen = list(ref_cols) + [c for c in cur_cols if c not in ref_set]
    else:
        chosen = list(dict.fromkeys(columns))
    drop = set(exclude or ()) if exclude != "auto" else set()
    chosen = [c for c in chosen if c not in drop]
    if not any(c in ref_set and c in cur_set for c in chosen):
        raise DriftError(
            f"no column to compare: none of {_names(chosen)} is in both reference and current"
        )
    return chosen


def auto_exclude(reference: pd.DataFrame | ReferenceProfile, current: pd.DataFrame) -> dict[str, str]:
    """Columns that ``exclude="auto"`` leaves out of drift, each with the rule's reason.

    Dates and times (a datetime column, or text holding ISO dates) differ between any two
    batches by construction, and identifiers (named ``id``, ``*_id``, ``uuid``, ``key``,
    ``Unnamed: 0`` …, or text unique on every row) are unique per row: neither
    says anything about the population. The rules look at the reference when it is data
    (a small batch can look unique where the population is not), else at the batch.
    """
    from mlnb.metrics import is_date_like, is_id_like

    out = {}
    # the reference decides when it is data: a small batch may look unique where it is not
    sides = [reference] if isinstance(reference, pd.DataFrame) else [current]
    for name in dict.fromkeys([*current.columns, *(reference.columns if isinstance(reference, pd.DataFrame) else ())]):
        series = [side[name] for side in sides if name in side.columns]
        if any(is_date_like(s) for s in series):
            out[name] = "dates: differ between batches by construction"
        elif any(is_id_like(str(name), s) for s in series):
            text = not any(pd.api.types.is_numeric_dtype(s) for s in series)
            out[name] = ("identifier: text with a distinct value on most rows" if text
                         else "identifier: named like one")
    return out


def _per_column(option: str, value: Any, names: list, allowed_values: Sequence[str] | None) -> dict:
    """Check a {column: value} option: known columns, allowed values."""
    if not isinstance(value, Mapping):
        raise DriftError(f"{option} must be a dict of column -> value, not {type(value).__name__}")
    for c, v in value.items():
        if c not in names:
            raise DriftError(f"{option} names column {str(c)!r}, which is not compared; compared: {_names(names, 20)}")
        if allowed_values is not None and v not in allowed_values:
            raise DriftError(
                f"unknown {option[:-1]} {v!r} for column {str(c)!r}; allowed: {', '.join(allowed_values)}"
            )
    return dict(value)


def _check_method(value: Any, where: str = "") -> None:
    if value != "auto" and value not in METHODS:
        raise DriftError(f"unknown drift method {value!r}{where}; allowed: {_METHOD_CHOICES}")


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
        method: "auto" (Evidently's choice, see the module docstring), a method name for
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

    cells = (n_ref + len(cur)) * len(names)
    workers = _workers(n_jobs)
    if workers > 1 and cells >= _PARALLEL_MIN_CELLS and len(names) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(one, n) for n in names]
            results = [f.result() for f in futures]  # in column order: the first error wins
    else:
        results = [one(n) for n in names]
    report = _finalize(results, correction, float(drift_share), n_ref, len(cur))
    return replace(report, excluded=excluded)


def _workers(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise DriftError(f"n_jobs {n_jobs!r} must be a positive integer")
    return n_jobs


# -- reference profiles -------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """The reference side of drift tests, computed once (see :func:`profile`)."""

    columns: dict[str, ColumnSummary]
    n_rows: int
    max_atoms: int

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (roughly the file size)."""
        return sum(s.values.nbytes + s.counts.nbytes for s in self.columns.values())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the profile to ``path`` (``.npz``), atomically."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise DriftError(f"profile path {str(path)!r} must end in .npz")
        meta = {"schema": PROFILE_SCHEMA, "n_rows": self.n_rows, "max_atoms": self.max_atoms, "columns": []}
        arrays = {}
        for i, (name, s) in enumerate(self.columns.items()):
            meta["columns"].append(
                {
                    "name": name,
                    "numeric": s.numeric,
                    "integer": s.integer,
                    "dtype": s.dtype,
                    "datetime": s.datetime,
                    "n": s.n,
                    "n_missing": s.n_missing,
                    "n_infinite": s.n_infinite,
                    "n_unique": s.n_unique,
                    "std": _json_value(s.std),
                    "vmin": _json_value(s.vmin),
                    "vmax": _json_value(s.vmax),
                    "exact": s.exact,
                    "w1_error": s.w1_error,
                    "ks_error": s.ks_error,
                }
            )
            arrays[f"values_{i}"] = s.values
            top = int(s.counts.max()) if s.counts.size else 0
            arrays[f"counts_{i}"] = s.counts.astype(np.min_scalar_type(top))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def load_profile(path: str | os.PathLike) -> ReferenceProfile:
    """Read a profile saved by :func:`profile` or :meth:`ReferenceProfile.save`."""
    p = Path(path)
    if not p.is_file():
        raise DriftError(f"cannot read drift profile {str(p)!r}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("schema") != PROFILE_SCHEMA:
                raise DriftError(
                    f"{str(p)!r} is not an mlnb drift profile (schema {meta.get('schema')!r}, "
                    f"expected {PROFILE_SCHEMA!r}); create one with mlnb.drift.profile()"
                )
            columns = {}
            for i, c in enumerate(meta["columns"]):
                values = z[f"values_{i}"]
                columns[c["name"]] = ColumnSummary(
                    numeric=c["numeric"], integer=c["integer"], dtype=c["dtype"], values=values,
                    counts=z[f"counts_{i}"].astype(np.int64), n=c["n"], n_missing=c["n_missing"],
                    n_infinite=c["n_infinite"], n_unique=c["n_unique"], std=_nan(c["std"]),
                    vmin=_nan(c["vmin"]), vmax=_nan(c["vmax"]), datetime=c["datetime"],
                    exact=c["exact"], w1_error=c["w1_error"], ks_error=c["ks_error"],
                )
    except DriftError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DriftError(f"cannot read drift profile {str(p)!r}: {first}") from exc
    return ReferenceProfile(columns=columns, n_rows=int(meta["n_rows"]), max_atoms=int(meta["max_atoms"]))


def sketch(summary: ColumnSummary, max_atoms: int) -> ColumnSummary:
    """Shrink a numerical summary to at most ``max_atoms`` weighted values.

    The sorted data are cut into ``max_atoms`` blocks of equal row count; each block becomes
    one value, its mean (its exact value when the block is constant), weighted by its rows.
    The error this makes is measured, not guessed: ``w1_error`` is the Wasserstein distance
    and ``ks_error`` the largest CDF gap between the data and the sketch, so by the triangle
    inequality a statistic computed from the sketch is within that much of the exact one.
    """
    if not summary.numeric or summary.values.size <= max_atoms:
        return summary
    data = np.repeat(summary.values, summary.counts)
    bounds = np.unique(np.round(np.linspace(0, data.size, max_atoms + 1)).astype(np.int64))
    starts, ends = bounds[:-1], bounds[1:]
    sizes = ends - starts
    means = np.add.reduceat(data, starts) / sizes
    first, last = data[starts], data[ends - 1]
    # Keep constant blocks exact and every mean inside its block despite rounding.
    atoms = np.where(first == last, first, np.clip(means, first, last))
    merged = np.concatenate(([True], atoms[1:] != atoms[:-1]))
    group = np.cumsum(merged) - 1
    values = atoms[merged]
    counts = np.bincount(group, weights=sizes).astype(np.int64)
    ks_error, w1_error = _ks_and_w1(summary.values, summary.counts, values, counts)
    return ColumnSummary(
        numeric=True, integer=summary.integer, dtype=summary.dtype, values=values, counts=counts,
        n=summary.n, n_missing=summary.n_missing, n_infinite=summary.n_infinite,
        n_unique=summary.n_unique, std=summary.std, vmin=summary.vmin, vmax=summary.vmax,
        exact=False, w1_error=w1_error, ks_error=ks_error,
    )


def profile(
    reference: Any,
    path: str | os.PathLike | None = None,
    *,
    columns: Sequence[Any] | None = None,
    max_atoms: int = DEFAULT_MAX_ATOMS,
    n_jobs: int | None = None,
) -> ReferenceProfile:
    """Summarise a reference once, for every later :func:`compare`.

    Per numerical column the profile keeps the sorted distinct values and their counts, the
    standard deviation, min and max, so every test gives exactly the result it gives on the
    raw reference. A column with more than ``max_atoms`` distinct values keeps a quantile
    sketch of ``max_atoms`` values instead (see :func:`sketch`): about 12 bytes per value, so
    at most ~400 KB per column by default, whatever the row count; results then carry a
    measured error bound (``max_error`` in the report), typically far below 1e-3.
    Categorical columns keep their category counts.

    Args:
        reference: a DataFrame or a CSV/Parquet path.
        path: also save the profile there (``.npz``).
        columns: the columns to keep (default all).
        max_atoms: distinct values kept exactly per numerical column (at least 100).
        n_jobs: threads (default 1, see :func:`compare`).
    """
    if isinstance(max_atoms, bool) or not isinstance(max_atoms, int) or max_atoms < 100:
        raise DriftError(f"max_atoms {max_atoms!r} must be an integer >= 100")
    data = load_reference(reference)
    if isinstance(data, ReferenceProfile):
        raise DriftError("reference is already a profile")
    _check_not_empty("reference", len(data), len(data.columns))
    names = list(data.columns) if columns is None else list(columns)
    for c in names:
        if c not in data.columns:
            raise DriftError(f"columns names {str(c)!r}, which is not in reference: {_names(list(data.columns), 20)}")

    def one(name):
        return sketch(summarize(data[name]), max_atoms)

    workers = _workers(n_jobs)
    if workers > 1 and len(data) * len(names) >= _PARALLEL_MIN_CELLS and len(names) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            summaries = list(pool.map(one, names))
    else:
        summaries = [one(n) for n in names]
    result = ReferenceProfile(
        columns={str(n): s for n, s in zip(names, summaries)}, n_rows=len(data), max_atoms=max_atoms
    )
    if path is not None:
        result.save(path)
    return result


# -- distributions and plots for reports --------------------------------------------------


def distribution(reference: Any, current: Any, column: Any, *, bins: int = 30, top: int = 12) -> pd.DataFrame:
    """Shares of one column on both sides, ready to plot or show.

    Numerical columns: ``bins`` equal-width bins over both sides' range (columns ``left``,
    ``right``); categorical: the ``top`` most frequent values plus "(other)" (column
    ``value``). Both have ``reference`` and ``current`` shares of non-missing rows.
    """
    ref = load_reference(reference)
    cur = _load_current(current)
    r = ref.columns[column] if isinstance(ref, ReferenceProfile) else summarize(ref[column])
    c = summarize(cur[column])
    if r.n == 0 or c.n == 0:
        return pd.DataFrame({"value": [], "reference": [], "current": []})
    if r.numeric and c.numeric and r.n_unique + c.n_unique > 2 * AUTO_MAX_VALUES_AS_CATEGORICAL:
        lo, hi = min(r.vmin, c.vmin), max(r.vmax, c.vmax)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        return pd.DataFrame(
            {
                "left": edges[:-1],
                "right": edges[1:],
                "reference": _bin_counts(r, edges) / r.n,
                "current": _bin_counts(c, edges) / c.n,
            }
        )
    keys, rc, cc = _aligned_counts(r, c)
    table = pd.DataFrame({"value": [str(k) for k in keys], "reference": rc / r.n, "current": cc / c.n})
    table = table.sort_values("reference", ascending=False, kind="stable").reset_index(drop=True)
    if len(table) > top:
        rest = table.iloc[top:][["reference", "current"]].sum()
        table = pd.concat(
            [table.iloc[:top], pd.DataFrame({"value": ["(other)"], **{k: [v] for k, v in rest.items()}})],
            ignore_index=True,
        )
    return table


def plot_distributions(reference: Any, current: Any, columns: Sequence[Any], *, bins: int = 30, ncols: int = 2):
    """Overlaid histograms (numerical) or paired bars (categorical), one panel per column.

    Returns:
        A matplotlib Figure (static, so it renders in HTML).
    """
    import matplotlib.pyplot as plt

    ref = load_reference(reference)
    cur = _load_current(current)
    columns = list(columns)
    nrows = max(1, math.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, columns):
        table = distribution(ref, cur, name, bins=bins)
        if "left" in table:
            width = table["right"] - table["left"]
            ax.bar(table["left"], table["reference"], width=width, align="edge", alpha=0.5, label="reference")
            ax.bar(table["left"], table["current"], width=width, align="edge", alpha=0.5, label="current")
        else:
            x = np.arange(len(table))
            ax.bar(x - 0.2, table["reference"], width=0.4, label="reference")
            ax.bar(x + 0.2, table["current"], width=0.4, label="current")
            ax.set_xticks(x, table["value"], rotation=30, ha="right")
        ax.set_title(str(name))
        ax.set_ylabel("share of rows")
        ax.legend(frameon=False)
    fig.tight_layout()
    return fig

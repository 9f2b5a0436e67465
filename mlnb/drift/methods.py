"""Drift methods: each one's name, how it decides, and the test it runs on one column.

A :class:`Method` carries everything about a method: its label, whether it yields a p-value,
its default threshold and verdict rule, and its ``test``, which turns the two sides'
summaries into an :class:`Outcome`. :data:`METHODS` lists them all, so adding a method is
adding one entry there. :func:`auto_method` is Evidently's choice among them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlnb.drift.kernels import (
    _aligned_counts,
    _chi2_contingency,
    _chisquare,
    _jensenshannon,
    _ks_test,
    _psi,
    _shares,
    _w1,
    _z_test,
)
from mlnb.drift.summaries import ColumnSummary

#: Evidently's switch between p-value tests and distances, in non-missing reference rows.
AUTO_SMALL_REFERENCE = 1000
#: Evidently's NUMBER_UNIQUE_AS_CATEGORICAL.
AUTO_MAX_VALUES_AS_CATEGORICAL = 5
#: Evidently's floor for the reference standard deviation in the normalised Wasserstein.
WASSERSTEIN_MIN_STD = 0.001
_JS_MAX = math.sqrt(math.log(2.0))


@dataclass(frozen=True)
class Outcome:
    """What a method's test found in one column: the statistic, its p-value, its error."""

    statistic: float
    p_value: float = math.nan
    max_error: float = 0.0  # bound on the statistic's error (sketched reference); NaN: unknown
    notes: tuple[str, ...] = ()


#: A method's test: (reference summary, current summary, kind) -> Outcome.
Test = Callable[[ColumnSummary, ColumnSummary, str], Outcome]


@dataclass(frozen=True)
class Method:
    """A drift test: its name, whether it yields a p-value, how it decides, and its test."""

    name: str
    label: str
    has_p_value: bool
    default_threshold: float
    inclusive: bool  # p <= t (else p < t) for p-values; distances always use >=
    test: Test
    numeric_only: bool = False
    max_threshold: float = math.inf

    def drifted(self, score: float, threshold: float) -> bool:
        if self.has_p_value:
            return bool(score <= threshold) if self.inclusive else bool(score < threshold)
        return bool(score >= threshold)


# -- the tests ------------------------------------------------------------------------------


def _on_sorted_values(ref: ColumnSummary, statistic: float, p_value: float, error: float,
                      notes: tuple[str, ...] = ()) -> Outcome:
    """A test on the sorted values: exact, or within the sketch's measured ``error``."""
    if ref.exact:
        return Outcome(statistic, p_value, 0.0, notes)
    return Outcome(statistic, p_value, error,
                   (*notes, f"reference from a sketched profile: statistic within ±{error:.2g}"))


def _on_counts(ref: ColumnSummary, statistic: float, p_value: float, binned: bool,
               notes: tuple[str, ...] = ()) -> Outcome:
    """A test on counts per bin or value: exact, or approximate from a sketched reference."""
    if ref.exact:
        return Outcome(statistic, p_value, 0.0, notes)
    approximate = (
        f"bin counts off by at most {math.ceil(ref.n / ref.values.size)} rows per bin edge"
        if binned
        else "values are block means, so this value test is approximate"
    )
    return Outcome(statistic, p_value, math.nan, (*notes, "reference from a sketched profile: " + approximate))


def _ks(ref: ColumnSummary, cur: ColumnSummary, kind: str) -> Outcome:
    statistic, p_value = _ks_test(ref, cur)
    return _on_sorted_values(ref, statistic, p_value, ref.ks_error)


def _wasserstein(ref: ColumnSummary, cur: ColumnSummary, kind: str) -> Outcome:
    norm = max(ref.std, WASSERSTEIN_MIN_STD)
    notes: tuple[str, ...] = ()
    if ref.std < WASSERSTEIN_MIN_STD:
        notes = (
            f"reference nearly constant (std {ref.std:.3g}): distance divided by "
            f"{WASSERSTEIN_MIN_STD} as Evidently does",
        )
    statistic = _w1(ref.values, ref.counts, cur.values, cur.counts) / norm
    return _on_sorted_values(ref, statistic, math.nan, ref.w1_error / norm, notes)


def _distance_on_shares(distance: Callable[[np.ndarray, np.ndarray], float]) -> Test:
    """A distance between the shares per value, or per bin of a many-valued numerical column."""

    def test(ref: ColumnSummary, cur: ColumnSummary, kind: str) -> Outcome:
        rc, cc, binned = _shares(ref, cur, kind)
        return _on_counts(ref, distance(rc, cc), math.nan, binned)

    return test


def _value_test(kernel: Callable[[np.ndarray, np.ndarray], tuple[float, float]]) -> Test:
    """A test of the counts value by value, never binned (as Evidently)."""

    def test(ref: ColumnSummary, cur: ColumnSummary, kind: str) -> Outcome:
        keys, rc, cc = _aligned_counts(ref, cur)
        statistic, p_value = kernel(rc, cc)
        notes = []
        if math.isinf(statistic):
            new = [str(k) for k in keys[(rc == 0) & (cc > 0)][:5]]
            notes.append(f"values never seen in reference: {', '.join(new)}")
        if rc.size < 2:
            notes.append("one value on both sides")
        return _on_counts(ref, statistic, p_value, False, tuple(notes))

    return test


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ks", "KS p-value", True, 0.05, inclusive=True, test=_ks, numeric_only=True),
        Method("wasserstein", "normalised Wasserstein distance", False, 0.1, True, _wasserstein,
               numeric_only=True),
        Method("jensenshannon", "Jensen-Shannon distance", False, 0.1, True, _distance_on_shares(_jensenshannon),
               max_threshold=_JS_MAX),
        Method("psi", "PSI", False, 0.1, True, _distance_on_shares(_psi)),
        Method("chisquare", "chi-squared p-value", True, 0.05, inclusive=False, test=_value_test(_chisquare)),
        Method("chi2_contingency", "chi-squared (homogeneity) p-value", True, 0.05, inclusive=False,
               test=_value_test(_chi2_contingency)),
        Method("z", "Z-test p-value", True, 0.05, inclusive=False, test=_value_test(_z_test)),
    )
}
_METHOD_CHOICES = ", ".join(["auto", *sorted(METHODS)])


# -- Evidently's choice ---------------------------------------------------------------------


def auto_method(kind: str, n_reference: int, n_values: int) -> str:
    """The method Evidently picks for a column (see :mod:`mlnb.drift`).

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

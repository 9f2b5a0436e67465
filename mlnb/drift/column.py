"""One column: its kind, its method and threshold, and the method's test on its summaries.

:func:`_test_column` decides everything about one column that does not depend on the other
columns (the verdict waits for the multiple-testing correction in :mod:`mlnb.drift.report`):
columns on one side only, datetimes and all-missing columns are reported without a test;
otherwise the kind is detected (or forced), the method chosen and its test run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlnb.drift.methods import AUTO_MAX_VALUES_AS_CATEGORICAL, METHODS, Method, _n_values, auto_method
from mlnb.drift.summaries import ColumnSummary
from mlnb.exceptions import DriftError


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

    outcome = spec.test(ref, cur, kind)
    res.statistic, res.p_value, res.max_error = outcome.statistic, outcome.p_value, outcome.max_error
    res.notes.extend(outcome.notes)
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

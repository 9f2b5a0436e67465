"""Inputs: checking what :func:`~mlnb.drift.compare` and :func:`~mlnb.drift.profile` are given.

Empty sides, column names that exist on neither side, per-column options naming columns
that are not compared, unknown methods, the date and identifier columns that
``exclude="auto"`` leaves out, and the thread count for the per-column work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlnb.drift.methods import _METHOD_CHOICES, METHODS
from mlnb.exceptions import DriftError

if TYPE_CHECKING:
    from mlnb.drift.profiles import ReferenceProfile

KINDS = ("numerical", "categorical")
# Below this many cells the thread pool costs more than it saves.
_PARALLEL_MIN_CELLS = 200_000


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


def _workers(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise DriftError(f"n_jobs {n_jobs!r} must be a positive integer")
    return n_jobs


def _map_columns(one: Callable[[Any], Any], names: list, n_jobs: int | None, cells: int) -> list:
    """``[one(name) for name in names]``, on ``n_jobs`` threads when the input is large.

    Results come in column order, and so does the error: the first column's wins.
    """
    workers = _workers(n_jobs)
    if workers > 1 and cells >= _PARALLEL_MIN_CELLS and len(names) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, names))
    return [one(n) for n in names]

"""The checks table: pandera's failure cases read back as one row per planned check.

The engine plans the checks a schema asks for (:class:`_Planned`) before the data is seen;
:func:`_checks_table` maps pandera's failure cases onto that plan (:func:`_our_check`) and
describes each failed check in words, with the number of failing values and up to
:data:`N_EXAMPLES` examples (:func:`_describe`). Checks that could not run (on a missing
column, range checks on values of the wrong type) are left out, and a value that breaks
the schema is listed once, as the error, not again as a failed expectation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from mlnb.validation.result import EXPECTATIONS

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.validation.schema import Schema


#: How many example failing values the checks table shows per check.
N_EXAMPLES = 5

#: The expectation each schema check covers: a value that fails the check is listed once, as
#: the error, not again as a failed expectation.
_COUNTERPART = {"nulls": "expected_nulls", "in_range": "expected_range", "unique": "expected_unique"}


@dataclass
class _Planned:
    """A check the schema asks for, before the data is seen."""

    check: str
    column: str | None
    expect: str  # what the check requires, for the detail column
    #: for a value check, the mask of failing values of the coerced column: counts and
    #: examples come from it, not from pandera's failure cases (it keeps only the first)
    failing: Callable[[Any], Any] | None = None


def _fmt(x: float) -> str:
    return f"{x:g}"


def _our_check(row, check_ids) -> tuple[str, str | None]:
    """Map one row of pandera's failure cases to ``(our check name, column)``."""
    check = str(row["check"])
    column = row["column"] if isinstance(row["column"], str) else None
    if check == "column_in_schema":
        return "no_extra_columns", str(row["failure_case"])
    if check == "column_in_dataframe":
        return "column_present", str(row["failure_case"])
    if check == "multiple_fields_uniqueness":
        return "unique_key", None  # column filled in by the caller
    if check.startswith(("dtype(", "coerce_dtype(")):
        return "dtype", column
    if check == "not_nullable":
        return "nulls", column
    if check == "field_uniqueness":
        return "unique", column
    number = row["check_number"]
    if number is not None and not (isinstance(number, float) and math.isnan(number)):
        key = (column, int(number))
        if key in check_ids:
            return check_ids[key], column
    return check, column  # not expected; shown under pandera's own name


def _checks_table(df, spec: Schema, planned, check_ids, failure_cases, now, coerced=None) -> pd.DataFrame:
    import pandas as pd

    failed: dict[tuple[str, str | None], pd.DataFrame] = {}
    if failure_cases is not None and len(failure_cases):
        fc = failure_cases.reset_index(drop=True)
        # pandera lists a check's failures once per failing value, so the mapping below
        # runs once per distinct check, not once per value; a missing or extra column is
        # its own failure (the column's name is the failure case)
        structural = fc["check"].isin(["column_in_schema", "column_in_dataframe"])
        head = pd.concat(
            [
                fc[structural],
                fc[~structural].drop_duplicates(
                    ["schema_context", "column", "check", "check_number"]
                ),
            ]
        )
        key_column = ",".join(spec.unique) if spec.unique else None
        for _, row in head.iterrows():
            check, column = _our_check(row, check_ids)
            if check == "unique_key":
                column = key_column
            same = (fc["check"] == row["check"]) & (
                fc["column"].isna()
                if not isinstance(row["column"], str)
                else fc["column"] == row["column"]
            )
            if check in ("no_extra_columns", "column_present"):
                same &= fc["failure_case"].astype(str) == column
            part = fc[same]
            key = (check, column)
            failed[key] = pd.concat([failed[key], part]) if key in failed else part

    missing = {c for (k, c) in failed if k == "column_present"}
    wrong_dtype = {c for (k, c) in failed if k == "dtype"}
    rows = []
    for p in planned:
        if p.check == "no_extra_columns":
            extra = [c for (k, c) in failed if k == "no_extra_columns"]
            rows.extend(
                (p.check, c, False, 1, f"column {c!r} is not in the schema", repr(c)) for c in extra
            )
            if not extra:
                rows.append((p.check, None, True, 0, p.expect, ""))
            continue
        if (p.column in missing and p.check != "column_present") or (
            p.column in wrong_dtype and p.check in ("in_range", "expected_range", "freshness")
        ):
            # a missing column's checks cannot run; range and freshness compare values of
            # the wrong type (pandera reports the TypeError): the failed row above says why
            failed.pop((p.check, p.column), None)
            continue
        if p.check == "column_present" and p.column not in df.columns and p.column not in missing:
            rows.append((p.check, p.column, True, 0, "optional column; absent", ""))
            continue
        part = failed.pop((p.check, p.column), None)
        if part is None:
            rows.append((p.check, p.column, True, 0, p.expect, ""))
            continue
        n_failed, detail, examples = _describe(p, part, df, spec, now, coerced)
        others = [q.check for q in planned if q.column == p.column and q is not p]
        if p.check == "column_present" and others:
            detail += f"; its {_n(len(others), 'other check')} did not run"
        elif p.check == "dtype" and {"in_range", "expected_range", "freshness"} & set(others):
            detail += "; its range and freshness checks did not run"
        rows.append((p.check, p.column, False, n_failed, detail, examples))
    for (check, column), part in failed.items():
        if check != "no_extra_columns":  # not expected: shown under pandera's own name
            n = _n_located(part) or 1
            rows.append((check, column, False, n, f"pandera check {check} failed", _examples(part)))
    # a value that breaks the schema breaks the expectation too: it is listed once, as the error
    broken = {(_COUNTERPART[r[0]], r[1]) for r in rows if r[0] in _COUNTERPART and not r[2]}
    rows = [r for r in rows if (r[0], r[1]) not in broken]
    cols = list(zip(*rows))
    return pd.DataFrame(
        {
            "check": pd.Series(cols[0], dtype="str"),
            # object, so table-level checks hold None (not NaN) in JSON and in summaries
            "column": pd.Series(cols[1], dtype=object),
            "severity": pd.Series(["warning" if c in EXPECTATIONS else "error" for c in cols[0]], dtype="str"),
            "passed": pd.Series(cols[2], dtype=bool),
            "n_failed": pd.Series(cols[3], dtype="int64"),
            "detail": pd.Series(cols[4], dtype="str"),
            "examples": pd.Series(cols[5], dtype="str"),
        }
    )


def _n(n: int, noun: str) -> str:
    """``1 value``, ``3 values``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _n_located(part) -> int:
    """How many distinct rows pandera located failures in."""
    return int(part["index"].dropna().nunique())


def _show(value: Any) -> str:
    if _isnull(value):
        return "null"
    if isinstance(value, str):
        return repr(value)
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text[:10] if text.endswith("T00:00:00") else text
    return str(value)


def _examples(part, n: int = N_EXAMPLES) -> str:
    """Up to ``n`` distinct failing values with the first row each was seen in."""
    # drop_duplicates is vectorised: 100,000s of failure cases cost milliseconds here
    first = part.drop_duplicates("failure_case").head(n)
    return ", ".join(
        f"{_show(value)} (row {idx})" if not _isnull(idx) else _show(value)
        for value, idx in zip(first["failure_case"].tolist(), first["index"].tolist())
    )


def _isnull(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _describe(p: _Planned, part, df, spec: Schema, now, coerced=None) -> tuple[int, str, str]:
    """``(n_failed, detail, examples)`` for a failed planned check."""
    import pandas as pd

    if p.failing is not None and coerced is not None and p.column in coerced.columns:
        # every failing value, from the coerced column: pandera kept only the first
        s = coerced[p.column]
        return _describe_values(p, s[p.failing(s).to_numpy(dtype=bool)])
    col = spec.columns.get(p.column) if p.column is not None else None
    n_rows = len(df)
    if p.check == "row_count":
        return 1, f"{n_rows:,} rows; expected {p.expect}", ""
    if p.check == "column_present":
        return 1, "required column is missing", ""
    if p.check == "unique_key":
        n = _n_located(part)
        return n, f"{_n(n, 'row')} share their key ({p.column}) with another row", ""
    s = df[p.column]
    if p.check == "dtype":
        located = part[part["index"].notna() & part["check"].str.startswith("coerce_dtype(")]
        if len(located):
            n, examples = _n_located(located), _examples(located)
        else:
            n, examples = _unconvertible(s, col.dtype)
        what = _n(n, "value") if n else "values"
        return max(n, 1), f"{what} cannot be read as {col.dtype} (column is {s.dtype})", examples
    if p.check in ("nulls", "expected_nulls"):
        nulls = s.isna()
        n = int(nulls.sum())
        rows = nulls[nulls].index[:N_EXAMPLES].tolist()
        allowed = col.nullable if p.check == "nulls" else col.expect.nullable
        detail = f"{n / max(n_rows, 1):.1%} nulls ({_n(n, 'row')}); allowed {allowed:.1%}"
        return n, detail, ", ".join(f"null (row {r})" for r in rows)
    if p.check == "freshness":
        newest = pd.to_datetime(s, errors="coerce").max()
        n = int(s.notna().sum())
        if pd.isna(newest):
            return n, "no timestamps; " + p.expect, ""
        age = (now - newest) / pd.Timedelta(days=1)
        detail = (
            f"newest value {_show(newest)} is {age:.1f} days old; "
            f"allowed {_fmt(col.freshness_days)}"
        )
        return n, detail, _show(newest)
    n = _n_located(part) or len(part)
    cases = part["failure_case"]
    if p.check in ("in_range", "expected_range"):
        cases = pd.to_numeric(cases, errors="coerce")
    return n, _value_detail(p, n, cases if p.check.endswith("range") else cases.astype(str)), _examples(part)


def _value_detail(p: _Planned, n: int, bad) -> str:
    """The words for ``n`` values failing a value check, ``bad`` (some of) the failing values."""
    if p.check in ("in_range", "expected_range"):
        return f"{_n(n, 'value')} outside {p.expect.replace('value', 'x')}; seen {_fmt(bad.min())} to {_fmt(bad.max())}"
    if p.check == "categories":
        return f"{_n(n, 'value')} not allowed ({bad.nunique()} distinct); allowed: {p.expect[7:]}"
    if p.check == "expected_categories":
        return f"{_n(n, 'value')} not seen in the reference ({bad.nunique()} distinct); seen: {p.expect[7:]}"
    if p.check in ("unique", "expected_unique"):
        return f"{_n(n, 'row')} share their value with another row"
    return f"{_n(n, 'value')} fail: {p.expect}"


def _describe_values(p: _Planned, bad) -> tuple[int, str, str]:
    """``(n_failed, detail, examples)`` of a value check from its failing values (a Series
    indexed by row), in the words :func:`_describe` uses for pandera's failure cases."""
    n = len(bad)
    first = bad.iloc[:4096].drop_duplicates().head(N_EXAMPLES)
    if len(first) < N_EXAMPLES < n:  # few distinct values among the first: look at them all
        first = bad.drop_duplicates().head(N_EXAMPLES)
    examples = ", ".join(f"{_show(v)} (row {i})" for i, v in zip(first.index.tolist(), first.tolist()))
    return n, _value_detail(p, n, bad), examples


def _unconvertible(s, dtype: str) -> tuple[int, str]:
    """Values pandera could not locate: fractions in an int column, text in a bool one."""
    import pandas as pd

    if dtype == "int" and pd.api.types.is_float_dtype(s):
        bad = s[s.notna() & (s % 1 != 0)]
    elif dtype == "bool" and not pd.api.types.is_bool_dtype(s):
        bad = s[s.notna() & ~s.isin([True, False])]
    else:
        return 0, ""
    return len(bad), ", ".join(f"{_show(v)} (row {i})" for i, v in bad.iloc[:N_EXAMPLES].items())


"""The validation engine: a schema turned into a pandera ``DataFrameSchema`` and run.

:func:`validate` builds the pandera schema and the plan of checks (:func:`_to_pandera`),
runs it lazily on a shallow copy so every failure is collected, and returns a
:class:`~mlnb.validation.result.ValidationResult` built from the checks table.

pandera costs about half a second to import, so it is imported inside the functions that
use it: importing this module stays cheap for the CLI and the other modules.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mlnb.validation.checks import _checks_table, _fmt, _Planned
from mlnb.validation.result import ValidationResult
from mlnb.validation.schema import Schema, as_schema

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.validation.schema import ColumnSpec, ExpectSpec

#: Failure cases pandera keeps per value check. pandera builds a row and a piece of its error
#: message for every failing value (5.6 million failing values took minutes), when it only
#: has to say that a check failed: the checks table counts and picks examples from a
#: vectorised mask of the failing values (``_Planned.failing``).
PANDERA_CASES = 1


def validate(
    df: pd.DataFrame,
    schema: Schema | dict | str | os.PathLike,
    *,
    now: Any = None,
) -> ValidationResult:
    """Check ``df`` against ``schema``, collecting every failure (pandera, lazy).

    The data is not changed: columns are coerced to the schema's dtypes on a copy (a
    string ``date`` column is read as datetime, an int column as float when the schema
    says float); values that cannot be coerced fail the ``dtype`` check.

    Args:
        df: the table to check.
        schema: a :class:`Schema`, a dict in the YAML format, or a YAML path.
        now: the time freshness is measured from (anything :class:`pandas.Timestamp`
            accepts); default the current UTC time.

    Returns:
        A :class:`ValidationResult` listing every check, passed or failed.

    Raises:
        SchemaDefinitionError: the schema is malformed.
    """
    import pandas as pd
    from pandera.errors import SchemaErrors

    spec = as_schema(schema)
    now_ts = _naive_utc(pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now))
    pandera_schema, planned, check_ids = _to_pandera(spec, now_ts)
    n_rows = len(df)
    # A shallow copy: pandera assigns coerced columns into it (copy-on-write keeps the
    # caller's frame intact) instead of deep-copying the whole table first.
    coerced = df.copy(deep=False)
    try:
        pandera_schema.validate(coerced, lazy=True, inplace=True)
        failure_cases = None
    except SchemaErrors as exc:
        failure_cases = exc.failure_cases
    checks = _checks_table(df, spec, planned, check_ids, failure_cases, now_ts, coerced)
    duplicated = _duplicated_columns(df)
    checks = pd.concat([_unique_columns_row(duplicated), checks], ignore_index=True)
    errors = ~checks["passed"] & (checks["severity"] == "error")
    return ValidationResult(passed=not bool(errors.any()), n_rows=n_rows, checks=checks, schema=spec)


def _duplicated_columns(df: pd.DataFrame) -> list[str]:
    """Column names the table has more than once: in the file's header (pandas renames the
    copies ``x.1``; :func:`mlnb.data.read_table` keeps the original names in ``attrs``) or
    in the frame itself."""
    names = list(df.attrs.get("duplicated_columns") or [])
    names += [str(c) for c in df.columns[df.columns.duplicated()] if str(c) not in names]
    return names


def _unique_columns_row(duplicated: list[str]) -> pd.DataFrame:
    import pandas as pd

    detail = (f"column {', '.join(map(repr, duplicated))} appears more than once in the header"
              if duplicated else "every column name appears once")
    return pd.DataFrame({
        "check": pd.Series(["unique_columns"], dtype="str"),
        "column": pd.Series([", ".join(duplicated) or None], dtype=object),
        "severity": pd.Series(["error"], dtype="str"),
        "passed": pd.Series([not duplicated], dtype=bool),
        "n_failed": pd.Series([len(duplicated)], dtype="int64"),
        "detail": pd.Series([detail], dtype="str"),
        "examples": pd.Series([", ".join(map(repr, duplicated))], dtype="str"),
    })


def _naive_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _pandas_dtype(col: ColumnSpec) -> str:
    return {
        # pandas' nullable Int64: casting 2.5 to it fails (int64 would truncate silently)
        "int": "Int64",
        "float": "float64",
        # pandas' nullable boolean: casting "no" to it fails (bool would give True)
        "bool": "boolean",
        "str": "str",
        "category": "str",
        "datetime": "datetime64[ns]",
    }[col.dtype]


def _to_pandera(spec: Schema, now: pd.Timestamp):
    """Build the pandera schema, the list of planned checks, and how to find them.

    Returns:
        ``(DataFrameSchema, planned, check_ids)`` where ``check_ids`` maps
        ``(column or None, pandera check number)`` to our check name.
    """
    import pandas as pd
    import pandera.pandas as pa

    planned: list[_Planned] = []
    check_ids: dict[tuple[str | None, int], str] = {}

    lo, hi = spec.rows.min, spec.rows.max
    frame_checks = []
    if lo is not None or hi is not None:
        expect = (
            f"{lo or 0} <= rows" + (f" <= {hi}" if hi is not None else "")
            if lo is not None
            else f"rows <= {hi}"
        )
        frame_checks.append(
            pa.Check(
                lambda d, lo=lo, hi=hi: (
                    (lo is None or len(d) >= lo) and (hi is None or len(d) <= hi)
                ),
                name="row_count",
            )
        )
        check_ids[(None, 0)] = "row_count"
        planned.append(_Planned("row_count", None, expect))
    if spec.strict:
        planned.append(_Planned("no_extra_columns", None, "no columns outside the schema"))
    if spec.unique:
        planned.append(_Planned("unique_key", ",".join(spec.unique), "rows are unique on the key"))

    columns = {}
    for name, col in spec.columns.items():
        checks = []
        planned.append(_Planned("column_present", name, "required" if col.required else "optional"))
        planned.append(_Planned("dtype", name, f"values are {col.dtype}"))
        if col.nullable < 1:
            expect = "no nulls" if col.nullable == 0 else f"at most {col.nullable:.1%} nulls"
            planned.append(_Planned("nulls", name, expect))
        if col.nullable not in (0.0, 1.0):
            check_ids[(name, len(checks))] = "nulls"
            checks.append(
                pa.Check(
                    lambda s, share=col.nullable: bool(s.isna().mean() <= share),
                    ignore_na=False,
                    name="null_share",
                )
            )
        if col.min is not None or col.max is not None:
            check_ids[(name, len(checks))] = "in_range"
            checks.append(_range_check(col.min, col.max))
            planned.append(_Planned("in_range", name, _range_expect(col.min, col.max),
                                    failing=_outside(col.min, col.max)))
        if col.categories is not None:
            check_ids[(name, len(checks))] = "categories"
            checks.append(pa.Check.isin(col.categories, n_failure_cases=PANDERA_CASES))
            shown = ", ".join(col.categories[:10]) + (", ..." if len(col.categories) > 10 else "")
            planned.append(_Planned("categories", name, f"one of {shown}", failing=_not_in(col.categories)))
        if col.unique:
            planned.append(_Planned("unique", name, "values are unique"))
        if col.freshness_days is not None:
            cutoff = now - pd.Timedelta(days=col.freshness_days)
            check_ids[(name, len(checks))] = "freshness"
            checks.append(
                pa.Check(lambda s, cutoff=cutoff: bool(s.max() >= cutoff), name="freshness")
            )
            planned.append(
                _Planned(
                    "freshness",
                    name,
                    f"newest value within {_fmt(col.freshness_days)} days of {now:%Y-%m-%d %H:%M}",
                )
            )
        _expectation_checks(name, col.expect, checks, planned, check_ids)
        columns[name] = pa.Column(
            _pandas_dtype(col),
            checks=checks,
            nullable=col.nullable > 0,
            unique=col.unique,
            coerce=True,
            required=col.required,
        )
    schema = pa.DataFrameSchema(
        columns, checks=frame_checks, strict=spec.strict, unique=spec.unique or None
    )
    return schema, planned, check_ids


def _expectation_checks(name: str, e: ExpectSpec | None, checks: list, planned: list, check_ids: dict) -> None:
    """Add a column's expectations (warnings) to its pandera checks and to the plan."""
    import pandera.pandas as pa

    if e is None:
        return
    if e.nullable is not None and e.nullable < 1:
        check_ids[(name, len(checks))] = "expected_nulls"
        checks.append(pa.Check(lambda s, share=e.nullable: bool(s.isna().mean() <= share), ignore_na=False,
                               name="expected_null_share"))
        planned.append(_Planned("expected_nulls", name, "no nulls" if e.nullable == 0 else f"at most {e.nullable:.1%} nulls"))
    if e.min is not None or e.max is not None:
        check_ids[(name, len(checks))] = "expected_range"
        checks.append(_range_check(e.min, e.max, name="expected_range"))
        planned.append(_Planned("expected_range", name, _range_expect(e.min, e.max), failing=_outside(e.min, e.max)))
    if e.categories is not None:
        check_ids[(name, len(checks))] = "expected_categories"
        checks.append(pa.Check.isin(e.categories, name="expected_categories", n_failure_cases=PANDERA_CASES))
        shown = ", ".join(e.categories[:10]) + (", ..." if len(e.categories) > 10 else "")
        planned.append(_Planned("expected_categories", name, f"one of {shown}", failing=_not_in(e.categories)))
    if e.unique:
        check_ids[(name, len(checks))] = "expected_unique"
        checks.append(pa.Check(lambda s: ~s.duplicated(keep=False), name="expected_unique",
                               n_failure_cases=PANDERA_CASES))
        planned.append(_Planned("expected_unique", name, "values are unique",
                                failing=lambda s: s.notna() & s.duplicated(keep=False)))


def _range_check(lo: float | None, hi: float | None, **options):
    """pandera's range check, keeping only its first failure case (see :data:`PANDERA_CASES`)."""
    import pandera.pandas as pa

    options["n_failure_cases"] = PANDERA_CASES
    if lo is not None and hi is not None:
        return pa.Check.in_range(lo, hi, **options)
    return pa.Check.ge(lo, **options) if lo is not None else pa.Check.le(hi, **options)


def _range_expect(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{_fmt(lo)} <= value <= {_fmt(hi)}"
    return f"value >= {_fmt(lo)}" if lo is not None else f"value <= {_fmt(hi)}"


def _outside(lo: float | None, hi: float | None):
    """The failing values of a range check, as pandera decides them (nulls pass)."""
    def failing(s):
        inside = s.notna()
        if lo is not None:
            inside &= s >= lo
        if hi is not None:
            inside &= s <= hi
        return s.notna() & ~inside.fillna(False).astype(bool)
    return failing


def _not_in(allowed: list[str]):
    """The failing values of a categories check, as pandera decides them (nulls pass)."""
    return lambda s: s.notna() & ~s.isin(allowed)



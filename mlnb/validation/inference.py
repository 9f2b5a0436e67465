"""Schema inference: a :class:`~mlnb.validation.schema.Schema` from reference data.

:func:`infer` reads what broken data violates (dtypes, seen categories, nulls, ranges far
beyond the reference) and what is usual (the expectations, reported as warnings) from a
reference table; :func:`schema_for` picks the schema a run validates against: the user's
YAML file if given, else one inferred from the reference.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Sequence

from mlnb.exceptions import SchemaDefinitionError
from mlnb.validation.schema import ColumnSpec, ExpectSpec, RowsSpec, Schema, load_schema

if TYPE_CHECKING:
    import pandas as pd


def schema_for(
    schema: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    **infer_options: Any,
) -> Schema:
    """The schema a run validates against: a YAML file if given, else inferred.

    Args:
        schema: a YAML schema path; wins when both are given.
        reference: a CSV or Parquet table to infer the schema from (see :func:`infer`).
        **infer_options: passed to :func:`infer`.

    Raises:
        SchemaDefinitionError: neither is given, or the YAML is malformed.
        DataError: the reference table cannot be read.
    """
    if schema is not None:
        return load_schema(schema)
    if reference is not None:
        from mlnb.data import read_table

        return infer(read_table(reference), **infer_options)
    raise SchemaDefinitionError(
        "no schema to validate against: pass schema (a YAML file) or reference "
        "(a table to infer the schema from)"
    )


def infer(
    df: pd.DataFrame,
    slack: float = 0.25,
    null_slack: float = 0.05,
    max_categories: int = 50,
    range_factor: float = 3.0,
    optional: Sequence[str] = (),
) -> Schema:
    """Infer a schema from reference data: what broken data violates, and what is usual.

    The *schema* part (checks that reject a batch):

    - columns and dtypes from the data; string columns whose non-null values all parse as
      ISO 8601 dates become ``datetime``, string columns with at most ``max_categories``
      distinct values (and at most half as many as rows) become ``category`` with the seen
      values, so an unseen value is an error.
    - nulls: a column without nulls in the reference may have none; one with share ``s``
      may have up to ``s + max(0.25, 2 s)``.
    - numeric ranges: values implausibly far from the reference, beyond its ``[min, max]``
      widened by ``range_factor`` times its width on each side (a unit error, a sentinel such
      as -999, a value ten times too large), and never below zero for a column whose values
      reach zero and never go below (rain, counts). Identifier columns get no range.

    The *expectations* (warnings, see :data:`EXPECTATIONS`): the range widened by ``slack``
    of its width (never below zero for a column that never was), the null share plus
    ``null_slack``, and uniqueness of int, text and datetime columns whose values were all
    distinct (at least 20 rows), and the values of a low-cardinality text column whose
    reference holds values seen only once (an open list, such as countries: a new one is
    expected now and then). A batch from another region of the same population may
    exceed them; whether it *drifted* is the drift step's question.

    Args:
        df: the reference data.
        slack: share of each numeric range an expectation allows on both sides.
        null_slack: added to the observed share of nulls for the expectation.
        max_categories: most distinct values a string column may have to be a category.
        range_factor: widths of the reference range beyond which values are broken.
        optional: columns that a batch may lack or leave empty (a label that arrives later):
            their dtype, range and categories are still checked where they have values.
    """
    import pandas as pd

    from mlnb.metrics import is_id_like

    if df.shape[1] == 0:
        raise SchemaDefinitionError("cannot infer a schema from a table without columns")
    n = len(df)
    columns: dict[str, ColumnSpec] = {}
    for name in df.columns:
        s = df[name]
        null_share = float(s.isna().mean()) if n else 0.0
        values = s.dropna()
        all_distinct = len(values) >= 20 and values.is_unique
        # broken beyond the reference's share plus a quarter of the rows (or twice the share)
        broken_nulls = min(1.0, round(null_share + max(0.25, 2 * null_share), 4))
        spec: dict[str, Any] = {"nullable": 0.0 if null_share == 0 else broken_nulls}
        expect: dict[str, Any] = {}
        if null_share > 0:
            expect["nullable"] = min(1.0, round(null_share + null_slack, 4))
        if pd.api.types.is_bool_dtype(s):
            spec["dtype"] = "bool"
        elif pd.api.types.is_numeric_dtype(s):
            is_int = pd.api.types.is_integer_dtype(s)
            spec["dtype"] = "int" if is_int else "float"
            identifier = is_id_like(str(name), s) or (is_int and all_distinct)
            if len(values) and not identifier:
                lo, hi = float(values.min()), float(values.max())
                # a reference that reaches zero and never goes below has a bound there (rain,
                # counts); one that merely stayed positive (a temperature in summer) may not
                spec.update(_widened(lo, hi, range_factor, is_int, clamp_at_zero=lo == 0))
                expect.update(_widened(lo, hi, slack, is_int, clamp_at_zero=lo >= 0))
            expect["unique"] = bool(is_int and all_distinct)
        elif pd.api.types.is_datetime64_any_dtype(s) or _looks_like_dates(values):
            spec["dtype"] = "datetime"
            expect["unique"] = bool(all_distinct)
        else:
            counts = values.astype(str).value_counts()
            if 0 < len(counts) <= max_categories and len(counts) <= max(1, len(values) // 2):
                if (counts == 1).any():
                    # values seen once say the list is open: their share estimates the chance
                    # that a new row holds a value the reference never had (Good-Turing), so an
                    # unseen value is expected now and then, a warning rather than broken data
                    spec["dtype"] = "str"
                    expect["categories"] = sorted(counts.index.tolist())
                else:
                    spec.update(dtype="category", categories=sorted(counts.index.tolist()))
            else:
                spec["dtype"] = "str"
                expect["unique"] = bool(all_distinct)
        if not expect.get("unique"):
            expect.pop("unique", None)
        if str(name) in optional:
            spec.update(required=False, nullable=1.0)
            expect.pop("nullable", None)
            expect.pop("unique", None)
        if expect:
            spec["expect"] = ExpectSpec(**expect)
        columns[str(name)] = ColumnSpec(**spec)
    return Schema(rows=RowsSpec(min=1), columns=columns)


def _widened(lo: float, hi: float, slack: float, is_int: bool, clamp_at_zero: bool) -> dict[str, float]:
    """``[lo, hi]`` widened by ``slack`` of its width on each side, rounded outward."""
    pad = slack * (hi - lo) if hi > lo else slack * max(abs(lo), 1.0)
    new_lo, new_hi = lo - pad, hi + pad
    if clamp_at_zero:  # never negative in the reference (an area, a count): not expected now
        new_lo = max(new_lo, 0.0)
    if is_int:
        return {"min": float(math.floor(new_lo)), "max": float(math.ceil(new_hi))}
    # round outward to 4 significant decimals so the YAML is readable
    return {
        "min": math.floor(round(new_lo * 1e4, 6)) / 1e4,
        "max": math.ceil(round(new_hi * 1e4, 6)) / 1e4,
    }


def _looks_like_dates(values: pd.Series) -> bool:
    import pandas as pd

    if len(values) == 0 or not (
        pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)
    ):
        return False
    head = values.iloc[:1000].astype(str)
    # cheap pre-filter: ISO dates start with four digits and a dash
    if not head.str.match(r"^\d{4}-\d{2}").all():
        return False
    try:
        pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return False
    return True


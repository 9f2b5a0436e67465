"""Data validation: check a table against a schema before it reaches a model.

A :class:`Schema` says what a table must look like: its columns (dtype, allowed share of
nulls, numeric range, allowed categories, uniqueness, freshness of a timestamp), the bounds
on its number of rows, and whether columns outside the schema are allowed. A schema comes
from a YAML file the user writes (:func:`load_schema`, format in ``docs/validation.md``) or
is inferred from reference data (:func:`infer`) and written to YAML for the user to edit
(:meth:`Schema.to_yaml`).

:func:`validate` turns the schema into a pandera ``DataFrameSchema``, runs it lazily so
every failure is collected, and returns a :class:`ValidationResult` whose ``checks`` table
lists every check, passed or not, with the number of failing values and a few examples.

pandera costs about half a second to import, so it is imported inside the functions that
use it: importing this module stays cheap for the CLI and the other modules.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlnb.exceptions import SchemaDefinitionError, ValidationFailed

if TYPE_CHECKING:
    import pandas as pd

#: Column dtypes a schema can name. ``category`` is a string column whose values must be one
#: of ``categories``; ``str`` is free text.
DTYPES = ("int", "float", "bool", "str", "category", "datetime")

#: Names of the checks in :attr:`ValidationResult.checks`, in the order they are listed.
#: The ``expected_*`` checks are *expectations*: what a new batch of the same population
#: may exceed a little, reported as warnings. Every other check is the *schema*: what broken
#: data violates.
CHECKS = (
    "row_count",
    "unique_columns",
    "no_extra_columns",
    "unique_key",
    "column_present",
    "dtype",
    "nulls",
    "in_range",
    "categories",
    "unique",
    "freshness",
    "expected_nulls",
    "expected_range",
    "expected_categories",
    "expected_unique",
)
EXPECTATIONS = ("expected_nulls", "expected_range", "expected_categories", "expected_unique")
_COUNTERPART = {"nulls": "expected_nulls", "in_range": "expected_range", "unique": "expected_unique"}

#: Columns of :attr:`ValidationResult.checks`; ``severity`` is ``error`` for schema checks
#: and ``warning`` for expectations.
CHECK_COLUMNS = ("check", "column", "severity", "passed", "n_failed", "detail", "examples")

#: What a failed check rejects (``reject_on`` of :meth:`ValidationResult.rejected`):
#: ``schema`` failures only, ``any`` failure (expectations too), or ``none``.
REJECT_ON = ("schema", "any", "none")

#: How many example failing values the checks table shows per check.
N_EXAMPLES = 5

SCHEMA_VERSION = 1


# -- the schema ------------------------------------------------------------------------------


class _Spec(BaseModel):
    # strict: a YAML "12" is not silently the number 12; extra keys are typos.
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class RowsSpec(_Spec):
    """Bounds on the number of rows; ``None`` means unbounded."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> RowsSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


def _as_text(value: Any) -> Any:
    """Category values as text: YAML reads ``[1, 2]`` as numbers; values are compared as text."""
    if isinstance(value, list):
        return [v if isinstance(v, str) else str(v) for v in value]
    return value


def _check_order(lo: float | None, hi: float | None) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"min ({lo:g}) must not exceed max ({hi:g})")


class ExpectSpec(_Spec):
    """What a column usually looks like: exceeding it is a warning, not broken data."""

    min: float | None = None
    max: float | None = None
    nullable: float | None = Field(default=None, ge=0.0, le=1.0)
    categories: list[str] | None = None
    unique: bool = False

    _text = field_validator("categories", mode="before")(_as_text)

    @model_validator(mode="after")
    def _ordered(self) -> ExpectSpec:
        _check_order(self.min, self.max)
        return self


class ColumnSpec(_Spec):
    """What one column must look like.

    ``nullable`` is the largest allowed share of nulls, 0.0 (none) to 1.0 (any);
    ``true``/``false`` mean 1.0/0.0. ``min``/``max`` apply to int and float columns,
    ``categories`` to category columns, ``freshness_days`` to datetime columns: the newest
    value must be at most that many days older than now. ``expect`` holds expectations
    (``min``, ``max``, ``nullable``, ``unique``): failing them is a warning.
    """

    dtype: Literal["int", "float", "bool", "str", "category", "datetime"]
    required: bool = True
    nullable: float = Field(default=0.0, ge=0.0, le=1.0)
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    unique: bool = False
    freshness_days: float | None = Field(default=None, gt=0)
    expect: ExpectSpec | None = None

    @field_validator("nullable", mode="before")
    @classmethod
    def _bool_nullable(cls, value: Any) -> Any:
        return float(value) if isinstance(value, bool) else value

    @field_validator("min", "max", "freshness_days", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number or null, got {value!r}")
        return value

    _text = field_validator("categories", mode="before")(_as_text)

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if (self.min is not None or self.max is not None) and self.dtype not in ("int", "float"):
            raise ValueError(f"min and max apply to int and float columns, not {self.dtype}")
        _check_order(self.min, self.max)
        if self.categories is not None and self.dtype != "category":
            raise ValueError(f"categories apply to category columns, not {self.dtype}")
        if self.dtype == "category" and not self.categories:
            raise ValueError("a category column needs a non-empty list of categories")
        if self.freshness_days is not None and self.dtype != "datetime":
            raise ValueError(f"freshness_days applies to datetime columns, not {self.dtype}")
        e = self.expect
        if e is not None and (e.min is not None or e.max is not None) and self.dtype not in ("int", "float"):
            raise ValueError(f"expect.min and expect.max apply to int and float columns, not {self.dtype}")
        return self


class Schema(_Spec):
    """A validation schema: columns, row bounds, strictness. Build, load or infer it.

    Example:
        >>> Schema(columns={"x": ColumnSpec(dtype="float", min=0)})  # doctest: +ELLIPSIS
        Schema(...)
    """

    version: Literal[1] = SCHEMA_VERSION
    strict: bool = False
    rows: RowsSpec = Field(default_factory=RowsSpec)
    unique: list[str] | None = None
    columns: dict[str, ColumnSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _key_columns_exist(self) -> Schema:
        for name in self.unique or ():
            if name not in self.columns:
                raise ValueError(
                    f"unique: {name!r} is not a column of the schema; "
                    f"columns: {', '.join(self.columns)}"
                )
        return self

    def to_dict(self) -> dict:
        """The schema as plain data, in the YAML format (defaults included)."""
        return self.model_dump(mode="json")

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """Write the schema as YAML for the user to edit; return the text.

        Args:
            path: where to write it; ``None`` only returns the text.
        """
        import yaml

        data = self.to_dict()
        data["columns"] = {name: _compact_column(spec) for name, spec in data["columns"].items()}
        text = "# mlnb validation schema; format: docs/validation.md\n" + yaml.safe_dump(
            data, sort_keys=False, default_flow_style=None, width=100
        )
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _compact_column(spec: dict) -> dict:
    """Drop a column's keys that hold their default, so the YAML shows what matters."""
    defaults = {"required": True, "unique": False}
    out = {
        k: v
        for k, v in spec.items()
        if k in ("dtype", "nullable") or (v is not None and defaults.get(k, object()) != v)
    }
    if out.get("expect"):
        out["expect"] = {k: v for k, v in out["expect"].items() if v is not None and v is not False}
    return out


def schema_from_dict(data: Any, source: str = "schema") -> Schema:
    """Build a :class:`Schema` from plain data (as read from YAML).

    Args:
        data: a mapping in the format of ``docs/validation.md``; ``version`` is required.
        source: how to name the schema in error messages (a file name).

    Raises:
        SchemaDefinitionError: one line naming each bad key path and what is allowed.
    """
    if not isinstance(data, dict):
        raise SchemaDefinitionError(
            f"{source}: must be a mapping with keys version, columns (and optionally strict, "
            f"rows, unique), got {type(data).__name__}"
        )
    if "version" not in data:
        raise SchemaDefinitionError(
            f"{source}: version: required key is missing; write 'version: {SCHEMA_VERSION}'"
        )
    try:
        return Schema.model_validate(data)
    except ValidationError as exc:
        raise SchemaDefinitionError(_explain(exc, source)) from exc


def load_schema(path: str | os.PathLike) -> Schema:
    """Read a schema from a YAML file.

    Raises:
        SchemaDefinitionError: the file is missing, not YAML, or not a valid schema.
    """
    from mlnb import yamlfile

    p = Path(path)
    try:
        data = yamlfile.read(p)
    except FileNotFoundError as exc:
        raise SchemaDefinitionError(f"schema {str(p)!r}: no such file") from exc
    except yamlfile.YamlRefused as exc:
        raise SchemaDefinitionError(f"{p.name}: {exc}") from None
    return schema_from_dict(data, source=p.name)


def as_schema(schema: Schema | dict | str | os.PathLike) -> Schema:
    """Accept a :class:`Schema`, a dict in the YAML format, or a YAML path."""
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, dict):
        return schema_from_dict(schema)
    if isinstance(schema, (str, os.PathLike)):
        return load_schema(schema)
    raise SchemaDefinitionError(
        f"schema must be a Schema, a dict or a YAML path, got {type(schema).__name__}"
    )


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


_FIELDS = {"": Schema, "rows": RowsSpec, "column": ColumnSpec, "expect": ExpectSpec}
_MESSAGES = {
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def _explain(exc: ValidationError, source: str) -> str:
    """Turn pydantic's errors into one line: ``source: key.path: what is wrong; ...``."""
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        path = ".".join(loc) or "(top level)"
        kind, value = err["type"], err.get("input")
        if kind == "extra_forbidden":
            parent = loc[:-1]
            if parent[:1] == ["columns"]:
                model = _FIELDS["expect" if parent[-1:] == ["expect"] else "column"]
            else:
                model = _FIELDS[".".join(parent)]
            allowed = ", ".join(model.model_fields)
            msg = f"unknown key; allowed: {allowed}"
        elif kind == "missing":
            msg = "required key is missing"
        elif loc == ["version"]:
            msg = f"must be {SCHEMA_VERSION} (the only schema version), got {value!r}"
        elif loc[-1:] == ["nullable"] and loc[:1] == ["columns"]:
            msg = f"must be a share of rows from 0.0 to 1.0, or true/false, got {value!r}"
        elif kind == "literal_error":
            msg = f"must be one of {err['ctx']['expected']}, got {value!r}"
        elif kind == "too_short" and loc == ["columns"]:
            msg = "must name at least one column"
        elif kind == "value_error":
            msg = str(err["ctx"]["error"])
            if not loc:  # a check across keys names its own key
                parts.append(msg)
                continue
        elif kind in _MESSAGES:
            msg = f"{_MESSAGES[kind]}, got {value!r}"
            if path == "columns" and kind == "dict_type":
                msg = f"must be a mapping of column name to column spec, got {value!r}"
        else:
            msg = err["msg"].replace("Input should be", "must be").replace("Input", "value")
            msg = f"{msg}, got {value!r}"
        parts.append(f"{path}: {msg}")
    return f"{source}: " + "; ".join(parts)


# -- inference ---------------------------------------------------------------------------------


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


# -- validation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of :func:`validate`.

    Attributes:
        passed: every schema check passed (expectations may have failed: see
            :attr:`warnings`).
        n_rows: rows in the validated table.
        checks: one row per check and column: ``check, column, severity, passed, n_failed,
            detail, examples`` (see :data:`CHECKS`); ``column`` is None for table-level
            checks, ``severity`` is ``error`` (schema) or ``warning`` (expectation).
        schema: the schema the data was checked against.
    """

    passed: bool
    n_rows: int
    checks: pd.DataFrame
    schema: Schema

    @property
    def failures(self) -> pd.DataFrame:
        """The failed checks, errors and warnings."""
        return self.checks[~self.checks["passed"]].reset_index(drop=True)

    @property
    def errors(self) -> pd.DataFrame:
        """The failed schema checks: broken data."""
        failed = self.checks[~self.checks["passed"]]
        return failed[failed["severity"] == "error"].reset_index(drop=True)

    @property
    def warnings(self) -> pd.DataFrame:
        """The failed expectations: data outside what is usual, not broken."""
        failed = self.checks[~self.checks["passed"]]
        return failed[failed["severity"] == "warning"].reset_index(drop=True)

    def rejected(self, reject_on: str = "schema") -> bool:
        """Whether the data is rejected under ``reject_on`` (one of :data:`REJECT_ON`)."""
        if reject_on not in REJECT_ON:
            raise SchemaDefinitionError(f"reject_on {reject_on!r} is not allowed; allowed: {', '.join(REJECT_ON)}")
        if reject_on == "none":
            return False
        return len(self.errors if reject_on == "schema" else self.failures) > 0

    def summary(self, reject_on: str = "schema") -> str:
        """One sentence: accepted (with how many warnings) or rejected, and by which checks."""
        n_checks = len(self.checks)
        rejected = self.rejected(reject_on)
        named = self.failures if rejected and reject_on == "any" else self.errors
        warned = self.warnings if not (rejected and reject_on == "any") else self.warnings.iloc[0:0]

        def names(table) -> str:
            return ", ".join(f"{c} {k}" if c is not None else k for k, c in zip(table["check"], table["column"]))

        if rejected:
            text = (f"data rejected: {len(named)} of {n_checks} checks failed on {self.n_rows:,} rows "
                    f"({names(named)})")
        elif len(self.failures) == 0:
            return f"data accepted: all {n_checks} checks passed on {self.n_rows:,} rows"
        elif len(self.errors):
            text = (f"data accepted (reject_on: {reject_on}) although {len(self.errors)} schema checks failed "
                    f"on {self.n_rows:,} rows ({names(self.errors)})")
        else:
            text = f"data accepted: the schema's checks passed on {self.n_rows:,} rows"
        if len(warned):
            text += f"; {len(warned)} {'warning' if len(warned) == 1 else 'warnings'} ({names(warned)})"
        return text

    def to_dict(self) -> dict:
        """JSON-able: passed, n_rows, counts, the checks as records, and the schema."""
        records = [
            {
                "check": r.check,
                "column": r.column,
                "severity": r.severity,
                "passed": bool(r.passed),
                "n_failed": int(r.n_failed),
                "detail": r.detail,
                "examples": r.examples,
            }
            for r in self.checks.itertuples(index=False)
        ]
        return {
            "passed": bool(self.passed),
            "n_rows": int(self.n_rows),
            "n_checks": len(records),
            "n_failed_checks": sum(not r["passed"] for r in records),
            "n_warnings": len(self.warnings),
            "checks": records,
            "schema": self.schema.to_dict(),
        }

    def raise_if_failed(self, reject_on: str = "schema") -> None:
        """Raise :class:`ValidationFailed` with :meth:`summary` when the data is rejected."""
        if self.rejected(reject_on):
            table = self.failures if reject_on == "any" else self.errors
            failed = list(zip(table["check"], table["column"]))
            raise ValidationFailed(self.summary(reject_on), failed=failed, n_checks=len(self.checks))


@dataclass
class _Planned:
    """A check the schema asks for, before the data is seen."""

    check: str
    column: str | None
    expect: str  # what the check requires, for the detail column


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
    try:
        # A shallow copy: pandera assigns coerced columns into it (copy-on-write keeps the
        # caller's frame intact) instead of deep-copying the whole table first.
        pandera_schema.validate(df.copy(deep=False), lazy=True, inplace=True)
        failure_cases = None
    except SchemaErrors as exc:
        failure_cases = exc.failure_cases
    checks = _checks_table(df, spec, planned, check_ids, failure_cases, now_ts)
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


def _fmt(x: float) -> str:
    return f"{x:g}"


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
            if col.min is not None and col.max is not None:
                checks.append(pa.Check.in_range(col.min, col.max))
                expect = f"{_fmt(col.min)} <= value <= {_fmt(col.max)}"
            elif col.min is not None:
                checks.append(pa.Check.ge(col.min))
                expect = f"value >= {_fmt(col.min)}"
            else:
                checks.append(pa.Check.le(col.max))
                expect = f"value <= {_fmt(col.max)}"
            planned.append(_Planned("in_range", name, expect))
        if col.categories is not None:
            check_ids[(name, len(checks))] = "categories"
            checks.append(pa.Check.isin(col.categories))
            shown = ", ".join(col.categories[:10]) + (", ..." if len(col.categories) > 10 else "")
            planned.append(_Planned("categories", name, f"one of {shown}"))
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
        if e.min is not None and e.max is not None:
            checks.append(pa.Check.in_range(e.min, e.max, name="expected_range"))
            expect = f"{_fmt(e.min)} <= value <= {_fmt(e.max)}"
        elif e.min is not None:
            checks.append(pa.Check.ge(e.min, name="expected_range"))
            expect = f"value >= {_fmt(e.min)}"
        else:
            checks.append(pa.Check.le(e.max, name="expected_range"))
            expect = f"value <= {_fmt(e.max)}"
        planned.append(_Planned("expected_range", name, expect))
    if e.categories is not None:
        check_ids[(name, len(checks))] = "expected_categories"
        checks.append(pa.Check.isin(e.categories, name="expected_categories"))
        shown = ", ".join(e.categories[:10]) + (", ..." if len(e.categories) > 10 else "")
        planned.append(_Planned("expected_categories", name, f"one of {shown}"))
    if e.unique:
        check_ids[(name, len(checks))] = "expected_unique"
        checks.append(pa.Check(lambda s: ~s.duplicated(keep=False), name="expected_unique"))
        planned.append(_Planned("expected_unique", name, "values are unique"))


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


def _checks_table(df, spec: Schema, planned, check_ids, failure_cases, now) -> pd.DataFrame:
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
        n_failed, detail, examples = _describe(p, part, df, spec, now)
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


def _describe(p: _Planned, part, df, spec: Schema, now) -> tuple[int, str, str]:
    """``(n_failed, detail, examples)`` for a failed planned check."""
    import pandas as pd

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
    examples = _examples(part)
    if p.check in ("in_range", "expected_range"):
        values = pd.to_numeric(part["failure_case"], errors="coerce")
        detail = (
            f"{_n(n, 'value')} outside {p.expect.replace('value', 'x')}; "
            f"seen {_fmt(values.min())} to {_fmt(values.max())}"
        )
    elif p.check == "categories":
        unseen = part["failure_case"].astype(str).nunique()
        detail = f"{_n(n, 'value')} not allowed ({unseen} distinct); allowed: {p.expect[7:]}"
    elif p.check == "expected_categories":
        unseen = part["failure_case"].astype(str).nunique()
        detail = f"{_n(n, 'value')} not seen in the reference ({unseen} distinct); seen: {p.expect[7:]}"
    elif p.check in ("unique", "expected_unique"):
        detail = f"{_n(n, 'row')} share their value with another row"
    else:
        detail = f"{_n(n, 'value')} fail: {p.expect}"
    return n, detail, examples


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


# -- profiles and plots ------------------------------------------------------------------------


def profile(df: pd.DataFrame, schema: Schema | None = None, top: int = 3) -> pd.DataFrame:
    """Per-column profile: dtype, null share, distinct values, min/max or top categories.

    Args:
        df: the table.
        schema: when given, string columns the schema calls datetime are profiled as dates.
        top: how many most frequent values to show for non-numeric columns.

    Returns:
        A DataFrame with columns ``column, dtype, null_share, n_unique, min, max, top``;
        min and max are text so numbers and dates share the columns.
    """
    import pandas as pd

    rows = []
    for name in df.columns:
        s = df[name]
        spec = schema.columns.get(str(name)) if schema is not None else None
        if (
            spec is not None
            and spec.dtype == "datetime"
            and not pd.api.types.is_datetime64_any_dtype(s)
        ):
            s = pd.to_datetime(s, errors="coerce", format="ISO8601")
        n = len(s)
        lo = hi = top_text = ""
        values = s.dropna()
        if len(values) and (
            pd.api.types.is_numeric_dtype(s)
            and not pd.api.types.is_bool_dtype(s)
            or pd.api.types.is_datetime64_any_dtype(s)
        ):
            lo, hi = _show(values.min()), _show(values.max())
            if pd.api.types.is_datetime64_any_dtype(s):
                lo, hi = f"{values.min():%Y-%m-%d}", f"{values.max():%Y-%m-%d}"
        elif len(values):
            counts = values.astype(str).value_counts().head(top)
            top_text = ", ".join(f"{k} {v / len(values):.0%}" for k, v in counts.items())
        rows.append(
            {
                "column": str(name),
                "dtype": str(df[name].dtype),
                "null_share": float(s.isna().mean()) if n else 0.0,
                "n_unique": int(values.nunique()),
                "min": lo,
                "max": hi,
                "top": top_text,
            }
        )
    return pd.DataFrame(
        rows, columns=["column", "dtype", "null_share", "n_unique", "min", "max", "top"]
    )


def column_scores(result: ValidationResult, profile_table: pd.DataFrame) -> pd.DataFrame:
    """Per column: share of rows failing its worst check, and share of nulls; worst first."""
    import pandas as pd

    n = max(result.n_rows, 1)
    checks = result.checks[result.checks["column"].notna()]
    failing = (
        checks[~checks["passed"]].groupby("column")["n_failed"].max().div(n).clip(upper=1.0)
        if len(checks)
        else pd.Series(dtype=float)
    )
    scores = pd.DataFrame(
        {"column": profile_table["column"], "null_share": profile_table["null_share"]}
    )
    scores["failing_share"] = scores["column"].map(failing).fillna(0.0)
    extra = sorted(set(failing.index) - set(scores["column"]))  # missing columns
    if extra:
        scores = pd.concat(
            [
                scores,
                pd.DataFrame(
                    {"column": extra, "null_share": 0.0, "failing_share": failing[extra].values}
                ),
            ]
        )
    return scores.sort_values(
        ["failing_share", "null_share"], ascending=False, kind="stable"
    ).reset_index(drop=True)


def plot_worst_columns(scores: pd.DataFrame, top: int = 10):
    """Horizontal bars of the worst columns: failing-row share and null share.

    Args:
        scores: the table from :func:`column_scores`.
        top: how many columns to show.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    worst = scores.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(worst) + 1.2))
    y = range(len(worst))
    ax.barh(
        [i + 0.2 for i in y],
        worst["failing_share"],
        height=0.4,
        color="#c0392b",
        label="rows failing a check",
    )
    ax.barh(
        [i - 0.2 for i in y], worst["null_share"], height=0.4, color="#95a5a6", label="null share"
    )
    ax.set_yticks(list(y), worst["column"])
    ax.set_xlim(0, max(0.05, float(worst[["failing_share", "null_share"]].to_numpy().max()) * 1.1))
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
    title = (
        "Worst columns"
        if (worst["failing_share"] > 0).any()
        else "No failing rows; null share per column"
    )
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig

"""The validation schema: what a table must look like, as a model and as YAML.

A :class:`Schema` holds a table's columns (:class:`ColumnSpec`: dtype, allowed share of
nulls, numeric range, allowed categories, uniqueness, freshness of a timestamp, and the
:class:`ExpectSpec` expectations whose failure is a warning), the bounds on its number of
rows (:class:`RowsSpec`) and whether columns outside the schema are allowed. It is read
from the YAML file a user writes (:func:`load_schema`, through :mod:`mlnb.yamlfile`; format
in ``docs/validation.md``) or built from plain data (:func:`schema_from_dict`), and written
back with :meth:`Schema.to_yaml`. A malformed schema raises
:class:`~mlnb.exceptions.SchemaDefinitionError` naming every bad key path.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlnb.exceptions import SchemaDefinitionError

#: Column dtypes a schema can name. ``category`` is a string column whose values must be one
#: of ``categories``; ``str`` is free text.
DTYPES = ("int", "float", "bool", "str", "category", "datetime")

SCHEMA_VERSION = 1


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


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

The modules, one concept each:

- :mod:`~mlnb.validation.schema`: the schema model, reading and writing YAML;
- :mod:`~mlnb.validation.inference`: a schema inferred from reference data;
- :mod:`~mlnb.validation.engine`: the schema run with pandera (:func:`validate`);
- :mod:`~mlnb.validation.checks`: pandera's failure cases read back as the checks table;
- :mod:`~mlnb.validation.result`: :class:`ValidationResult` and the names of the checks;
- :mod:`~mlnb.validation.plots`: column profiles, scores and the worst-columns plot.

pandera costs about half a second to import, so it is imported inside the functions that
use it: importing this package stays cheap for the CLI and the other modules.
"""

from mlnb.exceptions import SchemaDefinitionError, ValidationFailed
from mlnb.validation.checks import N_EXAMPLES
from mlnb.validation.engine import validate
from mlnb.validation.inference import infer, schema_for
from mlnb.validation.plots import column_scores, plot_worst_columns, profile
from mlnb.validation.result import CHECK_COLUMNS, CHECKS, EXPECTATIONS, REJECT_ON, ValidationResult
from mlnb.validation.schema import (
    DTYPES,
    SCHEMA_VERSION,
    ColumnSpec,
    ExpectSpec,
    RowsSpec,
    Schema,
    as_schema,
    load_schema,
    schema_from_dict,
)

__all__ = [
    "CHECKS",
    "CHECK_COLUMNS",
    "DTYPES",
    "EXPECTATIONS",
    "N_EXAMPLES",
    "REJECT_ON",
    "SCHEMA_VERSION",
    "ColumnSpec",
    "ExpectSpec",
    "RowsSpec",
    "Schema",
    "SchemaDefinitionError",
    "ValidationFailed",
    "ValidationResult",
    "as_schema",
    "column_scores",
    "infer",
    "load_schema",
    "plot_worst_columns",
    "profile",
    "schema_for",
    "schema_from_dict",
    "validate",
]

"""Tests for mlnb.validation.schema: schemas read from YAML, written back, and refused."""

from __future__ import annotations

import pandas as pd
import pytest

from mlnb import validation
from mlnb.data import read_table
from mlnb.exceptions import SchemaDefinitionError
from mlnb.validation import Schema, infer, load_schema, validate
from tests.test_validation import REFERENCE, ROOT, strict_schema


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return read_table(REFERENCE)


@pytest.fixture(scope="module")
def schema(reference) -> Schema:
    return strict_schema(reference)


# -- schema YAML -----------------------------------------------------------------------------


def test_yaml_round_trip(tmp_path, schema):
    path = tmp_path / "schema.yaml"
    text = schema.to_yaml(path)
    assert path.read_text() == text
    assert "freshness_days: 30" in text
    assert load_schema(path) == schema


def test_example_schema_in_templates_validates_reference(reference):
    s = load_schema(ROOT / "templates" / "schemas" / "weather.yaml")
    assert validate(reference, s).passed


V1 = "version: 1\n"
T = V1 + "columns:\n  t: "  # then column t's spec
BAD_YAML = [
    # (schema text, the error line it must give)
    (V1 + "columns:\n  temp_max: {dtype: float, min: abc}\n",
     r"^schema\.yaml: columns\.temp_max\.min: must be a number, got 'abc'$"),
    (T + "{dtype: floaty}\n", r"columns\.t\.dtype: must be one of 'int', 'float', .*got 'floaty'"),
    (T + "{dtype: float, maximum: 3}\n",
     r"columns\.t\.maximum: unknown key; allowed: dtype, required, nullable, min, max"),
    (V1 + "colums: {}\n", r"columns: required key is missing; colums: unknown key"),
    ("columns:\n  t: {dtype: float}\n", r"version: required key is missing; write 'version: 1'"),
    ("version: 2\ncolumns:\n  t: {dtype: float}\n", r"version: must be 1 .*got 2"),
    (T + "{dtype: float, nullable: 1.5}\n",
     r"columns\.t\.nullable: must be a share of rows from 0\.0 to 1\.0, or true/false, got 1\.5"),
    (T + "{dtype: float, min: 5, max: 1}\n", r"columns\.t: min \(5\) must not exceed max \(1\)"),
    (T + "{dtype: float, categories: [a]}\n", r"categories apply to category columns, not float"),
    (T + "{dtype: category}\n", r"needs a non-empty list of categories"),
    (T + "{dtype: str, freshness_days: 3}\n", r"freshness_days applies to datetime columns"),
    (T + "{dtype: float}\nrows: {min: -1}\n", r"rows\.min: must be greater than or equal to 0"),
    (T + "{dtype: float}\nstrict: maybe\n", r"strict: must be true or false, got 'maybe'"),
    (T + "{dtype: float}\nunique: [zz]\n", r"unique: 'zz' is not a column of the schema; columns: t"),
    (T + "float\n", r"columns\.t: must be a mapping, got 'float'"),
    (V1 + "columns: {}\n", r"columns: must name at least one column"),
    ("- a\n- b\n", r"schema\.yaml: must be a mapping with keys version, columns"),
    (V1 + "columns: {t: [\n", r"schema\.yaml: not valid YAML at line \d+, column \d+"),
]


@pytest.mark.parametrize("yaml_text, message", BAD_YAML)
def test_malformed_yaml_is_one_readable_line(tmp_path, yaml_text, message):
    path = tmp_path / "schema.yaml"
    path.write_text(yaml_text)
    with pytest.raises(SchemaDefinitionError, match=message) as info:
        load_schema(path)
    assert "\n" not in str(info.value)


def test_schema_for_prefers_yaml_then_infers_then_refuses(tmp_path, schema):
    path = tmp_path / "s.yaml"
    schema.to_yaml(path)
    assert validation.schema_for(schema=path, reference=REFERENCE) == schema
    assert validation.schema_for(reference=REFERENCE) == infer(read_table(REFERENCE))
    assert validation.schema_for(reference=REFERENCE, slack=0.5).columns["wind"].expect.max == 13.75
    assert validation.schema_for(reference=REFERENCE, range_factor=1.0).columns["wind"].max == 18.0
    with pytest.raises(SchemaDefinitionError, match=r"pass schema \(a YAML file\) or reference"):
        validation.schema_for()


def test_missing_schema_file_and_wrong_schema_type(tmp_path):
    with pytest.raises(SchemaDefinitionError, match=r"no such file"):
        validate(pd.DataFrame({"a": [1]}), tmp_path / "nope.yaml")
    with pytest.raises(SchemaDefinitionError, match=r"a dict or a YAML path, got int"):
        validate(pd.DataFrame({"a": [1]}), 3)

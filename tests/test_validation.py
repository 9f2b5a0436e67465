"""Tests for mlnb.validation: every kind of defect, schemas from YAML and inferred, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlnb import validation
from mlnb.data import read_table
from mlnb.exceptions import DataError, MlnbError
from mlnb.scraps import encode
from mlnb.validation import (
    ColumnSpec,
    Schema,
    ValidationFailed,
    infer,
    load_schema,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "data" / "reference.csv"
BATCHES = sorted((ROOT / "data" / "batches").glob("*.csv"))
NOW = pd.Timestamp("2013-01-10")  # ten days after the reference year ends


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return read_table(REFERENCE)


def strict_schema(reference: pd.DataFrame) -> Schema:
    """The inferred schema, made strict, fresh within 30 days, and at least 10 rows."""
    s = infer(reference)
    s.strict = True
    s.rows.min = 10
    s.columns["date"].freshness_days = 30
    return s


@pytest.fixture(scope="module")
def schema(reference) -> Schema:
    return strict_schema(reference)


def failed(result) -> list[tuple[str, str | None]]:
    return [(c, col) for c, col in zip(result.failures["check"], result.failures["column"])]


# -- each kind of defect is detected and reported with its column and a sample -----------------


def _set(df, row, column, value):
    df = df.copy()
    if isinstance(value, str) and not pd.api.types.is_string_dtype(df[column]):
        df[column] = df[column].astype(object)  # text in a numeric column, as a CSV can hold
    df.loc[row, column] = value
    return df


def defect(name, make, check, column, example, detail, severity="error"):
    return pytest.param(make, check, column, example, detail, severity, id=name)


# each row: a real defect made in the real reference data, the one check that must fail
# (and on which column), text that must be among the examples, and in the detail; broken
# data fails the schema (error), unusual data only an expectation (warning)
DEFECTS = [
    defect("missing column", lambda d: d.drop(columns=["temp_min"]),
           "column_present", "temp_min", "", "required column is missing"),
    defect("extra column, strict", lambda d: d.assign(humidity=0.5),
           "no_extra_columns", "humidity", "'humidity'", "not in the schema"),
    defect("wrong dtype", lambda d: _set(d, 10, "temp_max", "warm"),
           "dtype", "temp_max", "'warm' (row 10)", "cannot be read as float"),
    defect("nulls, none allowed", lambda d: _set(d, [4, 6], "wind", np.nan),
           "nulls", "wind", "null (row 4), null (row 6)", "0.5% nulls (2 rows); allowed 0.0%"),
    defect("value implausibly above range", lambda d: _set(d, 3, "temp_max", 400.0),
           "in_range", "temp_max", "400.0 (row 3)", "1 value outside"),
    defect("value implausibly below range", lambda d: _set(d, 200, "precipitation", -500.0),
           "in_range", "precipitation", "-500.0 (row 200)", "seen -500"),
    defect("value a little above range", lambda d: _set(d, 3, "temp_max", 99.0),
           "expected_range", "temp_max", "99.0 (row 3)", "1 value outside", "warning"),
    defect("negative value in a never-negative column", lambda d: _set(d, 200, "precipitation", -1.5),
           "in_range", "precipitation", "-1.5 (row 200)", "seen -1.5"),
    defect("unseen category", lambda d: _set(d, 5, "weather", "hail"),
           "categories", "weather", "'hail' (row 5)", "not allowed"),
    defect("duplicate key", lambda d: _set(d, 8, "date", d.loc[7, "date"]),
           "expected_unique", "date", "2012-01-08 (row 7)", "2 rows share", "warning"),
    defect("too few rows", lambda d: d.tail(5),
           "row_count", None, "", "5 rows; expected 10 <= rows"),
    defect("stale timestamps", lambda d: d[d["date"] < "2012-11-01"],
           "freshness", "date", "2012-10-31", "71.0 days old; allowed 30"),
]


@pytest.mark.parametrize("make, check, column, example, detail, severity", DEFECTS)
def test_each_defect_is_detected_with_column_and_sample(
    reference, schema, make, check, column, example, detail, severity
):
    result = validate(make(reference), schema, now=NOW)
    assert result.passed is (severity == "warning")  # warnings do not fail the schema
    assert result.rejected("schema") is (severity == "error") and result.rejected("any")
    assert not result.rejected("none")
    assert failed(result) == [(check, column)]
    row = result.failures.iloc[0]
    assert row["severity"] == severity
    assert example in row["examples"]
    assert detail in row["detail"]
    assert row["n_failed"] >= 1


def test_clean_data_passes_and_lists_every_check(reference, schema):
    result = validate(reference, schema, now=NOW)
    assert result.passed, result.failures
    assert result.n_rows == 366
    assert list(result.checks.columns) == list(validation.CHECK_COLUMNS)
    assert result.checks["passed"].all()
    kinds = set(result.checks["check"])
    assert kinds == {"row_count", "unique_columns", "no_extra_columns", "column_present", "dtype", "nulls",
                     "in_range", "expected_range", "categories", "expected_unique", "freshness"}
    assert set(result.checks.loc[result.checks["severity"] == "warning", "check"]) == {"expected_range",
                                                                                        "expected_unique"}
    assert (result.checks["n_failed"] == 0).all()


def test_all_failures_are_collected_not_just_the_first(reference, schema):
    bad = _set(_set(reference, 3, "temp_max", 400.0), 5, "weather", "hail")
    bad = bad.drop(columns=["wind", "temp_min"]).assign(humidity=1, pressure=2)
    result = validate(bad, schema, now=NOW)
    assert set(failed(result)) == {
        ("in_range", "temp_max"),
        ("categories", "weather"),
        ("column_present", "wind"),
        ("column_present", "temp_min"),
        ("no_extra_columns", "humidity"),
        ("no_extra_columns", "pressure"),
    }
    # a missing column's other checks are not listed as passed
    assert list(result.checks.loc[result.checks["column"] == "wind", "check"]) == ["column_present"]
    assert result.summary().startswith("data rejected: 6 of ")


def test_a_large_batch_failing_on_every_row_is_counted_exactly_with_first_examples():
    # pandera keeps one failure case per check; the counts and examples are mlnb's own
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({"trip_id": np.arange(1_000), "fare": rng.uniform(2.0, 50.0, 1_000),
                              "payment": rng.choice(["card", "cash"], 1_000)})
    n = 300_000
    batch = pd.DataFrame({"trip_id": np.arange(n) % 1_000, "fare": rng.uniform(2.0, 50.0, n),
                          "payment": rng.choice(["card", "cash"], n)})
    sentinel = rng.random(n) < 0.1
    batch.loc[sentinel, "fare"] = -999.0
    batch.loc[7, "payment"], batch.loc[11, "payment"] = "crypto", "voucher"
    result = validate(batch, infer(reference))
    assert not result.passed
    checks = result.failures.set_index(["check", "column"])
    ids = checks.loc[("expected_unique", "trip_id")]
    assert ids["n_failed"] == n and ids["detail"] == f"{n:,} rows share their value with another row"
    assert ids["examples"] == "0 (row 0), 1 (row 1), 2 (row 2), 3 (row 3), 4 (row 4)"
    fare = checks.loc[("in_range", "fare")]
    first = int(np.flatnonzero(sentinel)[0])
    assert fare["n_failed"] == int(sentinel.sum()) and fare["examples"] == f"-999.0 (row {first})"
    assert "seen -999 to -999" in fare["detail"]
    assert ("expected_range", "fare") not in checks.index  # listed once, as the error
    payment = checks.loc[("categories", "payment")]
    assert payment["n_failed"] == 2 and payment["examples"] == "'crypto' (row 7), 'voucher' (row 11)"
    assert "(2 distinct)" in payment["detail"]


def test_input_frame_is_not_changed(reference, schema):
    before = reference.copy()
    validate(reference, schema, now=NOW)
    pd.testing.assert_frame_equal(reference, before)
    assert reference["date"].dtype == before["date"].dtype


NULL_SHARE = [
    # (allowed share, nulls injected in 366 rows, passes)
    (0.05, 10, True),
    (0.05, 18, True),  # 4.9 %
    (0.05, 19, False),  # 5.2 %
    (1.0, 366, True),
    (0.0, 1, False),
]


@pytest.mark.parametrize("allowed, n_nulls, passes", NULL_SHARE)
def test_allowed_share_of_nulls(reference, allowed, n_nulls, passes):
    df = reference.copy()
    df.loc[df.index[:n_nulls], "wind"] = np.nan
    spec = Schema(columns={"wind": ColumnSpec(dtype="float", nullable=allowed)})
    result = validate(df, spec)
    assert result.passed is passes
    if not passes:
        row = result.failures.iloc[0]
        assert (row["check"], row["column"], row["n_failed"]) == ("nulls", "wind", n_nulls)
        assert "null (row 0)" in row["examples"]


MORE_DEFECTS = [
    # (id, data, schema dict, check, column, text in examples)
    (
        "int column with fractions",
        pd.DataFrame({"n": [1.0, 2.5, 3.0]}),
        {"columns": {"n": {"dtype": "int"}}},
        "dtype", "n", "2.5 (row 1)",
    ),
    (
        "too many rows",
        pd.DataFrame({"n": range(20)}),
        {"rows": {"max": 10}, "columns": {"n": {"dtype": "int"}}},
        "row_count", None, "",
    ),
    (
        "duplicate compound key",
        pd.DataFrame({"a": [1, 1, 2], "b": ["x", "x", "x"]}),
        {"unique": ["a", "b"], "columns": {"a": {"dtype": "int"}, "b": {"dtype": "str"}}},
        "unique_key", "a,b", "",
    ),
    (
        "datetime strings that are not dates",
        pd.DataFrame({"t": ["2024-01-01", "yesterday"]}),
        {"columns": {"t": {"dtype": "datetime"}}},
        "dtype", "t", "'yesterday' (row 1)",
    ),
    (
        "all timestamps null",
        pd.DataFrame({"t": pd.to_datetime([None, None])}),
        {"columns": {"t": {"dtype": "datetime", "nullable": 1.0, "freshness_days": 1}}},
        "freshness", "t", "",
    ),
    (
        "bool column with text",
        pd.DataFrame({"f": ["yes", "no"]}),
        {"columns": {"f": {"dtype": "bool"}}},
        "dtype", "f", "'yes' (row 0), 'no' (row 1)",
    ),
]


@pytest.mark.parametrize(
    "df, spec, check, column, example",
    [d[1:] for d in MORE_DEFECTS],
    ids=[d[0] for d in MORE_DEFECTS],
)
def test_more_defects(df, spec, check, column, example):
    result = validate(df, {"version": 1, **spec}, now="2024-06-01")
    assert (check, column) in failed(result)
    row = result.failures[result.failures["check"] == check].iloc[0]
    assert example in row["examples"]


def test_optional_column_may_be_absent():
    spec = {
        "version": 1,
        "columns": {"a": {"dtype": "int"}, "b": {"dtype": "int", "required": False}},
    }
    assert validate(pd.DataFrame({"a": [1]}), spec).passed
    assert not validate(pd.DataFrame({"a": [1], "b": ["x"]}), spec).passed


def test_freshness_measured_from_injected_now(reference):
    spec = Schema(columns={"date": ColumnSpec(dtype="datetime", freshness_days=30)})
    assert validate(reference, spec, now="2013-01-30").passed
    assert not validate(reference, spec, now="2013-01-31").passed
    # timezone-aware "now" is compared in UTC
    assert validate(reference, spec, now=pd.Timestamp("2013-01-30", tz="UTC")).passed


# -- the data read -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.csv", None, r"no such file"),
        ("empty.csv", b"", r"the file is empty"),
        ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00", r"not UTF-8 text"),
        ("latin1.csv", "name\ncaf\xe9\n".encode("latin-1"), r"not UTF-8 text"),
        ("table.parquet", b"not parquet at all", r"as parquet"),
        ("table.xlsx", b"x", r"unknown extension '\.xlsx'"),
    ],
)
def test_unreadable_data_is_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_table(path)
    assert "\n" not in str(info.value)


def test_parquet_is_read_and_validated(tmp_path, reference, schema):
    path = tmp_path / "reference.parquet"
    reference.to_parquet(path)
    assert validate(read_table(path), schema, now=NOW).passed


# -- the result ------------------------------------------------------------------------------


def test_result_to_dict_is_json_and_checks_glue_as_a_table(reference, schema):
    result = validate(_set(reference, 3, "temp_max", 400.0), schema, now=NOW)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["passed"] is False and data["n_rows"] == 366
    assert data["n_failed_checks"] == 1 and data["n_checks"] == len(result.checks)
    assert data["checks"][0]["column"] is None  # row_count is table-level
    assert data["schema"]["columns"]["date"]["freshness_days"] == 30
    encoded, _ = encode("checks", result.checks)
    assert "application/scrapbook.scrap.pandas+json" in encoded


def test_validation_failed_names_the_failed_checks(reference, schema):
    bad = _set(_set(reference, 3, "temp_max", 400.0), 5, "weather", "hail")
    result = validate(bad, schema, now=NOW)
    expected = (
        r"^data rejected: 2 of \d+ checks failed on 366 rows "
        r"\(temp_max in_range, weather categories\)$"
    )
    with pytest.raises(ValidationFailed, match=expected) as info:
        result.raise_if_failed()
    assert isinstance(info.value, MlnbError) and isinstance(info.value, AssertionError)
    assert info.value.exit_code == 1
    assert info.value.failed == [("in_range", "temp_max"), ("categories", "weather")]
    validate(reference, schema, now=NOW).raise_if_failed()  # passes: no exception


def test_profile_and_worst_columns(reference, schema):
    df = _set(_set(reference, [1, 2, 3], "wind", np.nan), 3, "temp_max", 99.0)
    prof = validation.profile(df, schema)
    row = prof.set_index("column")
    assert row.loc["wind", "null_share"] == pytest.approx(3 / 366)
    assert row.loc["date", "min"] == "2012-01-01" and row.loc["date", "max"] == "2012-12-31"
    assert row.loc["weather", "top"].startswith("rain 52%")
    assert row.loc["temp_max", "max"] == "99.0"
    scores = validation.column_scores(validate(df, schema, now=NOW), prof)
    assert list(scores["column"][:2]) == ["wind", "temp_max"]
    fig = validation.plot_worst_columns(scores)
    assert fig.axes[0].get_title() == "Worst columns"


def test_profile_of_dates_as_text_counts_text_that_is_no_date_as_null(schema):
    days = pd.date_range("2012-03-01", periods=40).strftime("%Y-%m-%d").tolist()
    df = pd.DataFrame({"date": pd.array(days * 50 + ["soon", None], dtype="str")})
    row = validation.profile(df, schema).set_index("column").loc["date"]
    assert row["null_share"] == pytest.approx(2 / 2002)
    assert (row["min"], row["max"], row["n_unique"]) == ("2012-03-01", "2012-04-09", 40)


def test_import_does_not_load_pandera():
    import subprocess
    import sys

    code = "import sys, mlnb.validation; print('pandera' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the template ------------------------------------------------------------------------------

TEMPLATE = ROOT / "templates" / "validate.ipynb"


def _run_template(tmp_path, **parameters):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out = tmp_path / "out.ipynb"
    parameters.setdefault("artifacts_dir", str(tmp_path / "artifacts"))
    try:
        pm.execute_notebook(
            str(TEMPLATE), str(out), parameters=parameters, cwd=str(TEMPLATE.parent),
            kernel_name="python3", progress_bar=False,
        )
        error = None
    except PapermillExecutionError as exc:
        error = exc
    from mlnb.scraps import read_scraps

    return read_scraps(str(out)), error


def test_template_rejects_bad_data_after_gluing_the_report(tmp_path, reference):
    bad = tmp_path / "bad.csv"
    _set(reference, 3, "temp_max", 400.0).to_csv(bad, index=False)
    scraps, error = _run_template(tmp_path, data=str(bad))
    assert error is not None and error.ename == "ValidationFailed"
    n_checks = len(scraps["checks"])
    assert error.evalue.startswith(f"data rejected: 1 of {n_checks} checks failed on 366 rows (temp_max")
    assert scraps["passed"] is False and scraps["accepted"] is False and scraps["n_rows"] == 366
    checks = scraps["checks"]
    assert list(checks.columns) == list(validation.CHECK_COLUMNS)
    row = checks[~checks["passed"]].iloc[0]
    assert (row["check"], row["column"], row["examples"]) == ("in_range", "temp_max", "400.0 (row 3)")
    assert load_schema(tmp_path / "artifacts" / "schema.yaml") == infer(reference)


def test_template_only_reports_when_told_not_to_fail(tmp_path, reference):
    bad = tmp_path / "bad.parquet"
    _set(reference, 5, "weather", "hail").to_parquet(bad)
    scraps, error = _run_template(
        tmp_path, data=str(bad), schema=str(ROOT / "templates" / "schemas" / "weather.yaml"),
        fail_on_error=False,
    )
    assert error is None
    assert scraps["passed"] is False


def test_a_duplicated_column_in_the_header_is_broken_data(tmp_path, reference, schema):
    path = tmp_path / "dup.csv"
    text = reference.to_csv(index=False).splitlines()
    header, rows = text[0] + ",wind", [line + "," + line.split(",")[4] for line in text[1:]]
    path.write_text("\n".join([header, *rows]) + "\n")
    df = read_table(path)
    assert "wind.1" in df.columns  # what pandas makes of it
    result = validate(df, infer(reference), now=NOW)
    assert not result.passed
    assert failed(result) == [("unique_columns", "wind")]
    assert "column 'wind' appears more than once" in result.failures.iloc[0]["detail"]

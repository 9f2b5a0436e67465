"""Tests for mlnb.validation.inference: schemas inferred from real and generated tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlnb.data import read_table
from mlnb.validation import infer, load_schema, validate
from tests.test_validation import BATCHES, REFERENCE, ROOT, _set, failed


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return read_table(REFERENCE)


# -- inference -------------------------------------------------------------------------------


def test_infer_from_real_reference(reference):
    s = infer(reference)
    cols = s.columns
    assert cols["date"].dtype == "datetime" and cols["date"].expect.unique and not cols["date"].unique
    assert cols["weather"].dtype == "category"
    assert cols["weather"].categories == ["drizzle", "fog", "rain", "snow", "sun"]
    assert {cols[c].dtype for c in ["precipitation", "temp_max", "temp_min", "wind"]} == {"float"}
    # the schema: values beyond three widths of the reference range on either side are broken
    lo, hi = reference["temp_max"].min(), reference["temp_max"].max()
    assert cols["temp_max"].min == pytest.approx(lo - 3 * (hi - lo), abs=1e-3)
    assert cols["temp_max"].max == pytest.approx(hi + 3 * (hi - lo), abs=1e-3)
    # the expectations: widened by a quarter of the range on each side; a column that was
    # never negative is not expected to be
    assert cols["temp_max"].expect.min == pytest.approx(lo - 0.25 * (hi - lo), abs=1e-3)
    assert cols["temp_max"].expect.max == pytest.approx(hi + 0.25 * (hi - lo), abs=1e-3)
    assert cols["precipitation"].expect.min == 0.0 and cols["wind"].expect.min == 0.0
    assert cols["precipitation"].min == 0.0  # reaches zero, never below: a bound
    assert cols["wind"].min == pytest.approx(1.0 - 3 * 8.5)  # stayed positive: may go below zero
    assert all(c.nullable == 0.0 for c in cols.values())
    assert not cols["temp_max"].unique and not cols["temp_max"].expect.unique


@pytest.mark.parametrize("batch", BATCHES, ids=[b.stem for b in BATCHES])
def test_schema_inferred_from_2012_accepts_every_real_later_batch(reference, batch):
    result = validate(read_table(batch), infer(reference))
    assert result.passed, result.failures.to_string()


def test_less_slack_rejects_a_real_cold_snap(reference):
    """Why the default slack is 0.25: with 0.1, December 2013 (-7.1 C) is rejected."""
    batch = read_table(ROOT / "data" / "batches" / "2013-q4.csv")
    result = validate(batch, infer(reference, slack=0.1))
    assert failed(result) == [("expected_range", "temp_min")]
    assert "-7.1" in result.failures.iloc[0]["examples"]
    # a colder winter is unusual, not broken: the schema accepts it, and says so
    assert result.passed and not result.rejected() and result.rejected("any")
    assert "1 warning (temp_min expected_range)" in result.summary()


def _sample(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(n), unit="D")
    x = rng.normal(10, 3, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "id": rng.permutation(10 * n)[:n],
            "x": x,
            "count": rng.poisson(4, n),
            "kind": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
            "flag": rng.random(n) < 0.5,
            "day": day.strftime("%Y-%m-%d"),
            "ts": day,
        }
    )


def test_inferred_schema_accepts_its_data_and_a_fresh_sample():
    first, fresh = _sample(2000, seed=1), _sample(2000, seed=2)
    s = infer(first)
    assert {n: c.dtype for n, c in s.columns.items()} == {
        "id": "int", "x": "float", "count": "int", "kind": "category", "flag": "bool",
        "day": "datetime", "ts": "datetime",
    }
    assert s.columns["id"].expect.unique and s.columns["day"].expect.unique
    assert s.columns["id"].min is None  # identifiers get no range: new rows bring new ids
    assert 0.1 < s.columns["x"].expect.nullable <= 0.16  # observed share + 0.05
    assert 0.3 < s.columns["x"].nullable <= 0.36  # broken only beyond the observed share + 0.25
    assert validate(first, s).passed
    result = validate(fresh, s)
    assert result.passed, result.failures.to_string()


def test_inferred_schema_rejects_a_shifted_sample():
    s = infer(_sample(2000, seed=1))
    shifted = _sample(2000, seed=2).assign(x=lambda d: d["x"] + 30)
    result = validate(shifted, s)
    assert failed(result) == [("expected_range", "x")] and result.passed  # another region: drift, not broken
    broken = _sample(2000, seed=2).assign(x=lambda d: d["x"] * 100)  # a unit error
    assert failed(validate(broken, s)) == [("in_range", "x")]



def test_expectations_round_trip_through_yaml_and_are_warnings(tmp_path, reference):
    path = tmp_path / "schema.yaml"
    infer(reference).to_yaml(path)
    text = path.read_text()
    assert "expect: {min: 0.0, max: 67.625}" in text  # precipitation
    loaded = load_schema(path)
    assert loaded == infer(reference)
    summary = validate(_set(reference, 3, "wind", 20.0), loaded).summary()
    assert summary.startswith("data accepted: the schema's checks passed") and "1 warning (wind expected_range" in summary


def test_an_open_list_of_values_warns_on_a_new_one_a_closed_list_rejects():
    """vega_datasets' airports: 3,372 airports in the USA and four countries with one each."""
    from vega_datasets import local_data

    airports = local_data.airports()
    foreign = airports[airports["country"] != "USA"]
    assert len(foreign) == 4 and foreign["country"].is_unique
    usa = airports[airports["country"] == "USA"]
    reference = pd.concat([usa.sample(frac=0.5, random_state=0), foreign.iloc[:2]])  # two of them seen once
    schema = infer(reference)
    assert schema.columns["country"].dtype == "str"
    assert schema.columns["country"].expect.categories == sorted(reference["country"].unique())
    rest = airports.drop(reference.index)
    batch = pd.concat([rest[rest["country"] == "USA"].head(40), rest[rest["country"] != "USA"]])
    result = validate(batch, schema)
    assert result.passed and ("expected_categories", "country") in failed(result)
    # a closed list (no value seen once) keeps rejecting a value it never had
    weather = infer(read_table(REFERENCE))
    assert weather.columns["weather"].dtype == "category"


def test_a_label_that_arrives_later_may_be_missing_or_empty_but_not_wrong(reference):
    schema = infer(reference, optional=["weather"])
    assert schema.columns["weather"].required is False and schema.columns["weather"].nullable == 1.0
    assert validate(reference.drop(columns=["weather"]), schema).passed
    assert validate(reference.assign(weather=None), schema).passed
    assert failed(validate(_set(reference, 5, "weather", "hail"), schema)) == [("categories", "weather")]


def test_a_column_bounded_at_zero_is_broken_below_it_a_positive_one_is_not(reference):
    schema = infer(reference)
    assert schema.columns["precipitation"].min == 0.0  # rain: reaches zero, never below
    assert failed(validate(_set(reference, 4, "precipitation", -0.5), schema)) == [("in_range", "precipitation")]
    # wind stayed above 1.0: a little below zero is unusual (a warning), -999 is a sentinel
    assert failed(validate(_set(reference, 4, "wind", -0.5), schema)) == [("expected_range", "wind")]
    assert failed(validate(_set(reference, 4, "wind", -999.0), schema)) == [("in_range", "wind")]

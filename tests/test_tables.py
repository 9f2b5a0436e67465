"""Tables a template shows are capped to what a reader reads, and the record says so."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlnb import drift, validation
from mlnb.data import read_table
from mlnb.execute import run_template
from mlnb.tables import MAX_SHOWN_ROWS, cap


def test_cap_keeps_the_first_rows_and_says_how_many_there_are():
    table = pd.DataFrame({"x": range(MAX_SHOWN_ROWS + 70)})
    shown, capped = cap(table)
    assert shown["x"].tolist() == list(range(MAX_SHOWN_ROWS))
    assert capped == {"shown": MAX_SHOWN_ROWS, "rows": MAX_SHOWN_ROWS + 70}
    whole, none = cap(table.head(MAX_SHOWN_ROWS))
    assert len(whole) == MAX_SHOWN_ROWS and none is None


def _shown_html(notebook: dict, source_start: str) -> str:
    cell = next(c for c in notebook["cells"] if "".join(c["source"]).startswith(source_start))
    return "".join("".join(o.get("data", {}).get("text/html", "")) for o in cell["outputs"])


def _md_outputs(notebook: dict, source_start: str) -> str:
    cell = next(c for c in notebook["cells"] if "".join(c["source"]).startswith(source_start))
    return "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in cell["outputs"])


def _trips(n: int, seed: int) -> pd.DataFrame:
    """A generated table that is not the example: ids, dates as text, counts with nulls,
    heavy-tailed amounts, a text category; 13 columns, so its checks table is long."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", periods=90).strftime("%Y-%m-%d").to_numpy()
    df = pd.DataFrame({
        "pickup_date": rng.choice(days, n),
        "passengers": pd.array(rng.integers(1, 6, n), dtype="Int64"),
        "payment": rng.choice(["card", "cash", "no charge"], n, p=[0.6, 0.38, 0.02]),
    })
    df.loc[rng.random(n) < 0.02, "passengers"] = pd.NA
    for i in range(10):
        df[f"amount_{i}"] = np.round(rng.lognormal(1 + i / 10, 0.7, n), 2)
    return df


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A 200,000-row batch with a sentinel amount (-999) in 1 % of rows, and its reference."""
    root = tmp_path_factory.mktemp("large")
    reference, batch = _trips(20_000, 1), _trips(200_000, 2)
    batch.loc[np.random.default_rng(3).random(len(batch)) < 0.01, "amount_3"] = -999.0
    reference.to_csv(root / "reference.csv", index=False)
    batch.to_csv(root / "batch.csv", index=False)
    return root


def test_validate_on_a_large_table_gives_the_library_verdict_and_caps_its_tables(large, tmp_path):
    run = run_template("validate", {"data": str(large / "batch.csv"), "reference": str(large / "reference.csv")},
                       store=tmp_path / "runs")
    expected = validation.validate(read_table(large / "batch.csv"), validation.infer(read_table(large / "reference.csv")))
    assert not expected.passed and run.status == "failed"  # the sentinel rejects the batch
    scraps = run.record["scraps"]
    assert scraps["passed"] is False and scraps["n_rows"] == 200_000
    checks = run.scrap("checks")
    # the record keeps every check (Parquet gives the text columns back as str, nulls as NaN)
    pd.testing.assert_frame_equal(checks.astype(object).where(checks.notna(), None),
                                  expected.checks.astype(object).where(expected.checks.notna(), None))
    row = checks[(checks["check"] == "in_range") & (checks["column"] == "amount_3")].iloc[0]
    assert not row["passed"] and row["n_failed"] == int((read_table(large / "batch.csv")["amount_3"] == -999).sum())
    assert len(checks) > MAX_SHOWN_ROWS
    assert scraps["capped"] == {"checks": {"shown": MAX_SHOWN_ROWS, "rows": len(checks)}}
    notebook = json.loads((run.path / "notebook.ipynb").read_text())
    shown = _shown_html(notebook, "show(result.checks")
    assert shown.count("<tr") == MAX_SHOWN_ROWS + 1  # the header and the first rows
    assert f"The first {MAX_SHOWN_ROWS} of {len(checks)} rows of checks" in _md_outputs(notebook, "show(result.checks")
    assert (run.path / "notebook.html").stat().st_size < 1_000_000


def test_drift_shows_the_first_columns_of_a_wide_table_and_glues_them_all(tmp_path):
    rng = np.random.default_rng(4)
    n_columns = MAX_SHOWN_ROWS + 10
    reference = pd.DataFrame({f"x{i}": rng.normal(0, 1, 2_000) for i in range(n_columns)})
    current = pd.DataFrame({f"x{i}": rng.normal(0.5 if i % 2 else 0, 1, 2_000) for i in range(n_columns)})
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    run = run_template("drift", {"reference": str(tmp_path / "reference.csv"), "current": str(tmp_path / "current.csv")},
                       store=tmp_path / "runs")
    assert run.succeeded
    expected = drift.compare(read_table(tmp_path / "reference.csv"), read_table(tmp_path / "current.csv"))
    scraps = run.record["scraps"]
    assert scraps["dataset_drift"] == expected.dataset_drift and scraps["n_drifted"] == expected.n_drifted
    assert len(run.scrap("columns")) == n_columns
    assert scraps["capped"] == {"columns": {"shown": MAX_SHOWN_ROWS, "rows": n_columns}}
    notebook = json.loads((run.path / "notebook.ipynb").read_text())
    assert _shown_html(notebook, "table = report.by_severity()").count("<tr") == MAX_SHOWN_ROWS + 1


def test_a_table_within_the_cap_is_shown_whole_and_nothing_is_noted(tmp_path):
    rng = np.random.default_rng(5)
    for name, shift in (("reference", 0.0), ("current", 0.0)):
        pd.DataFrame({f"x{i}": rng.normal(shift, 1, 500) for i in range(3)}).to_csv(tmp_path / f"{name}.csv", index=False)
    run = run_template("drift", {"reference": str(tmp_path / "reference.csv"), "current": str(tmp_path / "current.csv")},
                       store=tmp_path / "runs")
    assert run.record["scraps"]["capped"] == {}

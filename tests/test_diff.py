"""Comparing two runs value by value (no kernels)."""

from __future__ import annotations

from datetime import timedelta

from mlnb.diff import diff_runs
from mlnb.store import Store
from tests.test_store import T0, commit_run


def test_changed_values_are_marked_and_nested_metrics_flattened(tmp_path):
    store = Store(tmp_path / "runs")
    a = commit_run(store, "train", parameters={"seed": 1, "max_iter": 100},
                   scraps={"metrics": {"f1": 0.80, "accuracy": 0.9}, "rows": 10})
    b = commit_run(store, "train", started=T0 + timedelta(minutes=1), parameters={"seed": 2, "max_iter": 100},
                   scraps={"metrics": {"f1": 0.85, "accuracy": 0.9}}, status="failed")
    rows = {(r.section, r.name): r for r in diff_runs(a, b)}
    assert rows[("parameters", "seed")].changed and not rows[("parameters", "max_iter")].changed
    assert rows[("scraps", "metrics.f1")][2:] == (0.80, 0.85, True)
    assert not rows[("scraps", "metrics.accuracy")].changed
    assert rows[("scraps", "rows")][2:] == (10, "—", True)
    assert rows[("status", "status")][2:] == ("succeeded", "failed", True)
    assert not rows[("template", "sha256")].changed


def test_table_scraps_are_compared_by_content(tmp_path):
    import pandas as pd

    from mlnb import records

    store = Store(tmp_path / "runs")
    ref = records.table_ref("columns", pd.DataFrame({"x": [1, 2]}))
    a = commit_run(store, scraps={"columns": ref})
    b = commit_run(store, scraps={"columns": ref})
    for run, values in ((a, [1, 2]), (b, [1, 3])):
        # the table artifact behind the reference, written in place for the test
        import os

        folder = run.path / records.ARTIFACTS_DIR
        os.chmod(folder, 0o755)
        (folder / records.SCRAP_TABLES_DIR).mkdir()
        pd.DataFrame({"x": values}).to_parquet(folder / records.table_path("columns"))
    [row] = [r for r in diff_runs(a, b) if r.name == "columns"]
    assert (row.a, row.b, row.changed) == ("table 2×1", "table 2×1", True)

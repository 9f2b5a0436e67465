"""Glue in scrapbook's format without scrapbook in the kernel; read back with scrapbook."""

from __future__ import annotations

import math

import nbformat
import numpy as np
import pandas as pd
import pytest

from mlnb.scraps import encode, read_scraps, to_jsonable


def _notebook_with(outputs: list[tuple[dict, dict]], path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=d, metadata=m) for d, m in outputs]
    nb.cells = [cell]
    nbformat.write(nb, path)
    return path


def test_scrapbook_reads_what_glue_writes(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    values = {"text": "hello", "number": np.float64(0.25), "flag": np.bool_(True),
              "nested": {"k": [1, np.int64(2), None]}, "table": df}
    path = _notebook_with([encode(k, v) for k, v in values.items()], tmp_path / "nb.ipynb")
    read = read_scraps(str(path))
    assert read["text"] == "hello" and read["number"] == 0.25 and read["flag"] is True
    assert read["nested"] == {"k": [1, 2, None]}
    pd.testing.assert_frame_equal(read["table"], df)


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "scrapbook cannot store a bare null"),
        (math.nan, "only finite numbers"),
        ({"x": object()}, r"scrap 'v'\['x'\] is a object"),
        ({1: "a"}, "keys must be strings"),
    ],
)
def test_values_scrapbook_or_json_cannot_hold_are_refused_where_they_are_glued(value, message):
    with pytest.raises(TypeError, match=message):
        encode("v", value)


def test_numpy_arrays_become_lists():
    assert to_jsonable(np.arange(3)) == [0, 1, 2]


BAD_NAMES = ["../../../../evil", "/etc/passwd", "a/b", ".hidden", "-flag", "a..b", "x" * 129, "tab\tname"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_scrap_name_that_could_leave_the_run_is_refused_where_it_is_glued(name):
    with pytest.raises(ValueError, match="is not allowed: use letters, digits"):
        encode(name, pd.DataFrame({"a": [1]}))


@pytest.mark.parametrize("name", BAD_NAMES[:3])
def test_the_same_rule_holds_where_scraps_are_read(tmp_path, name):
    """A notebook glued by other means than mlnb's glue (scrapbook itself, a hand edit)."""
    data, metadata = encode("ok", pd.DataFrame({"a": [1]}))
    payload = next(iter(data.values()))
    payload["name"] = name
    metadata["scrapbook"]["name"] = name
    path = _notebook_with([(data, metadata)], tmp_path / "nb.ipynb")
    with pytest.raises(ValueError, match="is not allowed"):
        read_scraps(str(path))


def test_a_record_that_points_outside_its_run_fails_verify(tmp_path):
    from mlnb import records
    from mlnb.store import Store
    from tests.test_store import commit_run

    outside = tmp_path / "runs" / "evil.parquet"
    store = Store(tmp_path / "runs")
    run = commit_run(store, artifact=b"weights")
    outside.write_bytes(b"x")
    forged = records.seal({**run.record, "scraps": {"t": {"$artifact": "../../evil.parquet", "rows": 1,
                                                          "columns": ["a"], "type": "dataframe"}},
                           "artifacts": [*run.record["artifacts"],
                                         {"path": "../../evil.parquet", "sha256": records.sha256_bytes(b"x"),
                                          "bytes": 1}]})
    import json
    import os

    os.chmod(run.path, 0o755)
    os.chmod(run.path / records.RECORD_FILE, 0o644)
    (run.path / records.RECORD_FILE).write_text(json.dumps(forged))
    problems = [str(p) for p in store.verify(run.id)]
    assert f"{run.id}: artifacts/../../evil.parquet: path is outside the run" in problems


def test_an_artifact_that_is_a_symbolic_link_fails_verify(tmp_path):
    import os

    from mlnb import records
    from mlnb.store import Store
    from tests.test_store import commit_run

    store = Store(tmp_path / "runs")
    run = commit_run(store, artifact=b"weights")
    target = run.path / records.ARTIFACTS_DIR / "model.bin"
    secret = tmp_path / "secret"
    secret.write_bytes(b"weights")  # the same bytes: the hash alone would not tell
    os.chmod(target.parent, 0o755)
    target.unlink()
    target.symlink_to(secret)
    assert [str(p) for p in store.verify(run.id)] == [
        f"{run.id}: artifacts/model.bin: is a symbolic link, not a file of the run"]

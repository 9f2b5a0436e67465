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

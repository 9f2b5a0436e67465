"""Reading users' tables and the bundled example (no kernels)."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from mlnb.data import is_example, probe_table, read_table, table_columns, write_example_data
from mlnb.exceptions import DataError


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    """A real table that is not the example: scikit-learn's diabetes, as CSV and Parquet."""
    frame = load_diabetes(as_frame=True).frame
    root = tmp_path_factory.mktemp("diabetes")
    frame.to_csv(root / "diabetes.csv", index=False)
    frame.to_parquet(root / "diabetes.parquet", index=False)
    return frame, root


@pytest.mark.parametrize("name", ["diabetes.csv", "diabetes.parquet"])
def test_csv_and_parquet_read_the_same_table(diabetes, name):
    frame, root = diabetes
    got = read_table(root / name)
    pd.testing.assert_frame_equal(got, frame, check_exact=False)
    assert table_columns(root / name) == list(frame.columns)


@pytest.mark.parametrize("content, name, message", [
    (None, "missing.csv", "no such file"),
    (b"", "empty.csv", "the file is empty"),
    (b"a,b\n1,2\n", "table.xlsx", "unknown extension '.xlsx'; allowed: .csv, .parquet, .pq"),
    (b"x,y\n1,caf\xe9\n", "latin1.csv", "not UTF-8 text"),
    (b"PAR1\x00\x00garbage", "broken.parquet", "as parquet"),
    (b"\x00\x01\x02\x03\n", "binary.csv", "binary, not text"),
])
def test_an_unreadable_file_is_one_line_naming_it(tmp_path, content, name, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for read in (probe_table, read_table):
        if read is read_table and name == "binary.csv":
            continue  # pandas reads NUL bytes as data; the probe is what refuses them
        with pytest.raises(DataError, match=message) as caught:
            read(path)
        assert name in str(caught.value) and "\n" not in str(caught.value)


def test_a_duplicated_header_is_kept_for_validation_to_report(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("wind,temp,wind\n1,2,3\n")
    df = read_table(path)
    assert list(df.columns) == ["wind", "temp", "wind.1"]
    assert df.attrs["duplicated_columns"] == ["wind"]
    assert "duplicated_columns" not in read_table(path, header=None).attrs


def test_only_the_example_is_the_example(tmp_path, diabetes):
    written = write_example_data(tmp_path)
    reference = next(p for p in written if p.name == "reference.csv")
    assert is_example(reference)
    changed = read_table(reference)
    changed.loc[3, "wind"] += 1.0
    assert is_example(read_table(reference)) and not is_example(changed)
    assert not is_example(diabetes[1] / "diabetes.csv")
    assert not is_example(tmp_path / "nothing.csv")

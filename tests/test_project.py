"""mlnb init writes a project without ever losing what is already there (no kernels)."""

from __future__ import annotations

import os

import pytest
from sklearn.datasets import load_wine

from mlnb.exceptions import ConfigError
from mlnb.project import init_project


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(path, index=False)
    return path


def listing(root):
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() and not p.is_symlink() else None)
                  for p in root.rglob("*"))


def test_own_data_never_replaces_a_reference_that_is_there(tmp_path, wine_csv):
    (tmp_path / "p" / "data").mkdir(parents=True)
    mine = tmp_path / "p" / "data" / "reference.csv"
    mine.write_text("my,own\n1,2\n")
    before = listing(tmp_path / "p")
    with pytest.raises(ConfigError, match="reference.csv exists and is not the file mlnb init writes; "
                                          "mlnb init never replaces data"):
        init_project(tmp_path / "p", data=wine_csv, target="target")
    assert listing(tmp_path / "p") == before


def test_the_example_never_replaces_data_even_with_force(tmp_path):
    init_project(tmp_path)
    batch = tmp_path / "data" / "batches" / "2013-q1.csv"
    batch.write_text("edited by the user\n")
    before = listing(tmp_path)
    with pytest.raises(ConfigError, match="never replaces data"):
        init_project(tmp_path, force=True)
    assert listing(tmp_path) == before
    batch.unlink()
    init_project(tmp_path, force=True)  # a missing file is written again
    assert batch.stat().st_size > 1000


def test_nothing_is_written_through_a_symbolic_link(tmp_path, wine_csv):
    elsewhere = tmp_path / "elsewhere.yaml"
    (tmp_path / "p").mkdir()
    os.symlink(elsewhere, tmp_path / "p" / "mlnb.yaml")  # dangling
    with pytest.raises(ConfigError, match="exists; use `force`"):
        init_project(tmp_path / "p", data=wine_csv, target="target")
    with pytest.raises(ConfigError, match="mlnb.yaml is a symbolic link"):
        init_project(tmp_path / "p", data=wine_csv, target="target", force=True)
    assert not elsewhere.exists()
    assert sorted(os.listdir(tmp_path / "p")) == ["mlnb.yaml"]


def test_an_edited_template_is_kept_unless_forced(tmp_path, wine_csv):
    init_project(tmp_path, data=wine_csv, target="target")
    train = tmp_path / "templates" / "train.ipynb"
    train.write_text("{}")
    (tmp_path / "mlnb.yaml").unlink()
    with pytest.raises(ConfigError, match="train.ipynb exists and differs from what mlnb init writes; use `force`"):
        init_project(tmp_path, data=wine_csv, target="target")
    assert train.read_text() == "{}"
    init_project(tmp_path, data=wine_csv, target="target", force=True)
    assert train.stat().st_size > 1000


def test_written_files_come_config_first_then_data(tmp_path, wine_csv):
    written = init_project(tmp_path, data=wine_csv, target="target")
    assert [p.relative_to(tmp_path).as_posix() for p in written[:2]] == ["mlnb.yaml", "data/reference.csv"]
    assert (tmp_path / "data" / "batches").is_dir() and (tmp_path / "runs").is_dir()

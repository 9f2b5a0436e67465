"""mlnb.yaml and the YAML mlnb reads: loading, bounds, keys, paths, fingerprint (no kernels)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlnb import yamlfile
from mlnb.config import CONFIG_FILE, find_config, load_config, parse_config
from mlnb.exceptions import ConfigError, ParameterError, SchemaDefinitionError

MINIMAL = """\
model: {name: cars, task: regression, target: mpg}
data: {reference: data/reference.csv, current: data/batches/*.csv}
"""

#: Nine levels of nine aliases: 500 bytes that expand to 9**9 values.
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def project(tmp_path: Path, text: str = MINIMAL) -> Path:
    (tmp_path / "data" / "batches").mkdir(parents=True)
    (tmp_path / "data" / "reference.csv").write_text("mpg,hp\n20,100\n")
    path = tmp_path / CONFIG_FILE
    path.write_text(text)
    return path


def test_a_minimal_project_gets_the_tasks_defaults(tmp_path):
    config = load_config(project(tmp_path))
    assert config.model.task == "regression"
    assert config.triggers.performance.metric == "rmse"
    assert config.promotion.metric == "rmse"
    assert config.value("data.reference") == str((tmp_path / "data" / "reference.csv").resolve())
    assert config.value("model.uri") == "cars@production"


def test_an_unknown_key_is_named_with_the_keys_allowed_there(tmp_path):
    with pytest.raises(ConfigError, match=r"drift\.methd: unknown key; allowed: .*method"):
        load_config(project(tmp_path, MINIMAL + "drift: {methd: ks}\n"))


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="no such file; create one with 'mlnb init'"):
        load_config(tmp_path / CONFIG_FILE)


def test_a_key_that_is_not_there_is_an_error(tmp_path):
    config = load_config(project(tmp_path))
    with pytest.raises(ConfigError, match="has no key 'drift.nothing'"):
        config.value("drift.nothing")


def test_the_fingerprint_follows_what_decides_and_ignores_alerts(tmp_path):
    path = project(tmp_path)
    first = load_config(path).fingerprint()
    path.write_text(MINIMAL + "alerts: {webhook: 'https://example.org/hook'}\n")
    assert load_config(path).fingerprint() == first
    (tmp_path / "data" / "reference.csv").write_text("mpg,hp\n21,100\n")
    assert load_config(path).fingerprint() != first


def test_the_project_file_is_found_from_a_subdirectory(tmp_path):
    path = project(tmp_path)
    deeper = tmp_path / "notebooks" / "work"
    deeper.mkdir(parents=True)
    assert find_config(deeper) == path


def test_parse_config_refuses_what_is_not_a_mapping():
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        parse_config(["model"])


def test_reading_the_store_name_does_not_import_pydantic(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("store: elsewhere\n")
    code = ("import sys; from mlnb.store import Store; s = Store(); "
            "print(s.path.name, 'pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["elsewhere", "False"]


# -- the YAML loader every reader shares -------------------------------------------------------


def test_an_alias_bomb_is_refused_before_it_expands():
    assert len(ALIAS_BOMB) < 600
    with pytest.raises(yamlfile.YamlRefused, match="more than 1,000,000 values once its aliases are expanded"):
        yamlfile.loads(ALIAS_BOMB)


def test_a_few_aliases_are_fine():
    assert yamlfile.loads("base: &b {max_iter: 10}\nrun: *b\n") == {"base": {"max_iter": 10}, "run": {"max_iter": 10}}


def test_an_alias_inside_itself_is_refused():
    with pytest.raises(yamlfile.YamlRefused, match="refers to the node that contains it"):
        yamlfile.loads("a: &a [1, *a]\n")


@pytest.mark.parametrize("reader, error, where", [
    (load_config, ConfigError, "mlnb.yaml"),
    ("params", ParameterError, "parameters file"),
    ("schema", SchemaDefinitionError, "schema.yaml"),
])
@pytest.mark.parametrize("content, message", [
    (ALIAS_BOMB.encode(), "once its aliases are expanded"),
    (b"model: caf\xe9\n", r"not UTF-8 text \(byte 10 is 0xe9\)"),
])
def test_every_yaml_mlnb_reads_has_the_same_bounds(tmp_path, reader, error, where, content, message):
    from mlnb import params
    from mlnb.validation import load_schema

    path = tmp_path / {"params": "p.yaml", "schema": "schema.yaml"}.get(reader, CONFIG_FILE)
    path.write_bytes(content)
    read = {"params": params.load_params_file, "schema": load_schema}.get(reader, reader)
    with pytest.raises(error, match=message) as caught:
        read(path)
    assert where in str(caught.value) and "\n" not in str(caught.value)


def test_a_file_beyond_the_size_bound_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 2048)
    with pytest.raises(yamlfile.YamlRefused, match="2,048 bytes, more than the 1,024 mlnb reads"):
        yamlfile.read(path, max_bytes=1024)


def test_a_cli_value_with_an_alias_bomb_stays_text():
    from mlnb.params import parse_cli_value

    text = "[" + ALIAS_BOMB.replace("\n", ", ").rstrip(", ") + "]"
    assert parse_cli_value(text) == text

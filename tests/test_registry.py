"""The model registry with real training runs, real skops files and the store's real SQLite.

Three models are trained once per session by the train template; every test gets a private
copy of that store, so tests can register, move aliases and tamper freely.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap

import nbformat
import pandas as pd
import pytest

from mlnb import metrics, records
from mlnb.exceptions import RegistryError, RunNotFound
from mlnb.metrics import UntrustedModel
from mlnb.registry import Registry, parse_uri
from mlnb.store import Store

from .abstract.registry import AbstractRegistryTests
from .conftest import ROOT

REFERENCE = ROOT / "data/reference.csv"
BATCH = ROOT / "data/batches/2013-q1.csv"


@pytest.fixture
def store(trained, tmp_path) -> Store:
    """A private copy of the trained store (run files stay read-only, as in a real store)."""
    source, _ = trained
    shutil.copytree(source, tmp_path / "store", ignore=shutil.ignore_patterns("mlnb.sqlite*", ".staging"))
    return Store(tmp_path / "store")


@pytest.fixture
def run_ids(trained) -> dict[str, str]:
    return trained[1]


@pytest.fixture
def registry(store):
    with Registry(store) as reg:
        yield reg


def _one_line_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlnb: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _make_writable(path):
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)


# -- without trained models (listed first: xdist runs them while another worker trains) ------


def test_register_refuses_a_failed_run(tmp_path):
    from mlnb.execute import run_template

    store = Store(tmp_path / "store")
    rainy = tmp_path / "rain-only.csv"
    pd.read_csv(REFERENCE).query("weather == 'rain'").to_csv(rainy, index=False)
    failed = run_template("train", {"data": str(rainy), "target": "weather"}, store)
    assert not failed.succeeded
    with pytest.raises(RegistryError, match=f"run {failed.id} failed: DataError: target 'weather' has a single class 'rain'.*only a succeeded training run can be registered"):
        Registry(store).register(failed.id, "weather")
    assert Registry(store).models() == []


def _untrusted_run(store):
    """A real run whose notebook saved a model with an untrusted type, with skops directly."""
    from mlnb.execute import run_template

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell('artifacts_dir = "."\nrun_id = None', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(textwrap.dedent("""
                import os
                import pandas as pd
                import skops.io as sio
                from sklearn.pipeline import Pipeline
                from sklearn.preprocessing import FunctionTransformer
                from mlnb.scraps import glue
                model = Pipeline([("run", FunctionTransformer(func=eval))]).fit(pd.DataFrame({"x": ["1"]}))
                sio.dump(model, os.path.join(artifacts_dir, "model.skops"))
                glue("model_artifact", "model.skops")
                glue("metrics", {"accuracy": 1.0})
            """)),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path = store.path.parent / "untrusted.ipynb"  # outside the store
    nbformat.write(nb, path)
    run = run_template(path, {}, store)
    assert run.succeeded, run.record["error"]
    return run


def test_a_model_with_an_untrusted_type_is_never_loaded(tmp_path):
    store = Store(tmp_path / "store")
    run = _untrusted_run(store)
    registry = Registry(store)
    registry.register(run.id, "evil")
    with pytest.raises(UntrustedModel, match="evil/1: refusing to load a model holding types outside mlnb's trusted list: builtins.eval"):
        registry.load("evil/1")


def test_cli_on_an_empty_store(cli, tmp_path):
    assert cli("models", "list", "--store", str(tmp_path / "none")).stdout.strip() == "no models registered"
    assert json.loads(cli("models", "list", "--json", "--store", str(tmp_path / "none")).stdout) == []
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ("weather", "names no version"),
        ("weather/0", "version '0' is not a whole number >= 1 or 'latest'"),
        ("weather/two", "version 'two' is not a whole number"),
        ("../weather/1", "model name '..' is not allowed"),
        ("Weather@production", "model name 'Weather' is not allowed"),
        ("weather@Prod", "alias 'Prod' is not allowed"),
        ("", "is empty"),
    ],
)
def test_malformed_uris(uri, fragment):
    with pytest.raises(RegistryError, match=fragment):
        parse_uri(uri)


# -- register, promote, rollback, load ----------------------------------------------------------


# -- lineage ------------------------------------------------------------------------------------


def test_categorical_features_survive_the_round_trip(registry, run_ids):
    mv = registry.register(run_ids["temp"], "temp-max")
    assert "weather" in mv.features and mv.task == "regression" and set(mv.metrics) == {"r2", "mae", "rmse"}
    X = pd.read_csv(BATCH)[mv.features].head(5)
    X.loc[X.index[0], "weather"] = "hail"  # a category the model never saw
    assert len(registry.load("temp-max/1").predict(X)) == 5


# -- refusals -----------------------------------------------------------------------------------


def test_register_refuses_a_run_without_model_and_unknown_runs(echo_run, registry):
    with pytest.raises(RegistryError, match=f"run {echo_run.id} \\(template 'echo'\\) has no model artifact"):
        Registry(echo_run.path.parent).register(echo_run.id, "weather")
    with pytest.raises(RunNotFound, match="run '20990101T000000Z-train-abcdef' not found"):
        registry.register("20990101T000000Z-train-abcdef", "weather")


@pytest.mark.parametrize("name", ["../x", "A", "", "a/b", "-x", ".hidden", "x y", "x" * 101])
def test_bad_names_are_refused_before_anything_is_read(registry, run_ids, name):
    with pytest.raises(RegistryError, match="is not allowed; use lowercase letters, digits"):
        registry.register(run_ids["hgb"], name)
    assert registry.models() == []


# -- the evaluate template ----------------------------------------------------------------------


def test_evaluate_template_scores_a_registered_model(registry, store, run_ids):
    from mlnb.execute import run_template

    registry.register(run_ids["hgb"], "weather")
    registry.promote("weather", 1)
    run = run_template("evaluate", {"model": "weather@production", "data": str(BATCH),
                                    "store": str(store.path)}, store)
    assert run.succeeded, run.record["error"]
    scraps = run.scraps
    assert scraps["model"] == {"uri": "weather@production", "name": "weather", "version": 1,
                               "run_id": run_ids["hgb"], "sha256": registry.get("weather/1").sha256, "demo": False}
    batch = pd.read_csv(BATCH)
    expected = metrics.evaluate(registry.load("weather/1"), batch[registry.get("weather/1").features], batch["weather"])
    assert scraps["metrics"] == pytest.approx(expected.metrics)
    assert set(scraps["metrics"]) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert scraps["confusion"].equals(expected.confusion)
    assert int(scraps["confusion"].drop(columns="true").to_numpy().sum()) == scraps["n_rows"] == len(batch)
    assert list(scraps["per_class"]["class"]) == ["drizzle", "fog", "rain", "snow", "sun"]


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_register_promote_rollback_show_list_history(cli, store, run_ids):
    s = ["--store", str(store.path)]
    out = cli("models", "register", run_ids["hgb"], "--name", "weather", "--tag", "owner=ml", *s)
    assert out.returncode == 0 and "registered weather/1 from run" in out.stdout, out.stderr
    assert cli("models", "register", run_ids["logreg"], "--name", "weather", *s).returncode == 0
    assert "weather@production: - -> 1 (promote" in cli("models", "promote", "weather", "1", *s).stdout
    assert "weather@production: 1 -> 2 (promote" in cli("models", "promote", "weather", "2", "--reason", "better", *s).stdout
    assert "weather@production: 2 -> 1 (rollback" in cli("models", "rollback", "weather", *s).stdout
    assert "weather@staging: - -> 2" in cli("models", "promote", "weather", "2", "--alias", "staging", *s).stdout

    listed = json.loads(cli("models", "list", "--json", *s).stdout)
    assert [(v["name"], v["version"], v["run_id"], v["aliases"]) for v in listed] == [
        ("weather", 1, run_ids["hgb"], ["production"]), ("weather", 2, run_ids["logreg"], ["staging"])
    ]
    assert all(set(v["metrics"]) >= {"accuracy", "f1"} for v in listed)

    shown = json.loads(cli("models", "show", "weather@production", "--json", *s).stdout)
    assert {k: shown[k] for k in ("name", "version", "run_id", "aliases")} == {
        "name": "weather", "version": 1, "run_id": run_ids["hgb"], "aliases": ["production"]}
    assert shown["data"][0]["sha256"] == records.sha256_file(REFERENCE)
    assert shown["hyperparameters"] == {"max_iter": 30} and shown["tags"] == {"owner": "ml"}

    text = cli("models", "show", "weather/1", *s).stdout
    for fragment in (run_ids["hgb"], "production", str(REFERENCE), records.sha256_file(REFERENCE), '{"max_iter": 30}'):
        assert fragment in text
    table = cli("models", "list", *s).stdout
    assert "weather        1  production" in table and "weather        2  staging" in table

    events = json.loads(cli("models", "history", "weather", "--json", *s).stdout)
    assert [(e["alias"], e["action"], e["from_version"], e["to_version"]) for e in events] == [
        ("production", "promote", None, 1), ("production", "promote", 1, 2),
        ("production", "rollback", 2, 1), ("staging", "promote", None, 2)]
    assert events[1]["reason"] == "better" and events[0]["caused_by"].startswith("cli:")
    assert "rollback" in cli("models", "history", "weather", "--alias", "production", *s).stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["register", "RUN", "--name", "../x"], ["model name '../x' is not allowed"]),
        (["register", "RUN", "--name", "A"], ["model name 'A' is not allowed"]),
        (["register", "RUN", "--name", ""], ["model name '' is not allowed"]),
        (["register", "20990101T000000Z-train-abcdef", "--name", "weather"], ["run '20990101T000000Z-train-abcdef' not found"]),
        (["show", "weather/9"], ["model 'weather' has no version 9; its versions are 1 to 1"]),
        (["show", "weather@staging"], ["model 'weather' has no alias 'staging'; its aliases: production -> 1"]),
        (["show", "nope/1"], ["no model named 'nope'", "registered models: weather"]),
        (["show", "weather"], ["model URI 'weather' names no version; give NAME@ALIAS"]),
        (["promote", "weather", "9"], ["model 'weather' has no version 9"]),
        (["promote", "weather", "x"], ["version 'x' is not allowed"]),
        (["promote", "weather", "1", "--alias", "Prod"], ["alias 'Prod' is not allowed"]),
        (["rollback", "weather", "--alias", "staging"], ["model 'weather' has no alias 'staging'"]),
        (["rollback", "weather"], ["cannot roll back weather@production"]),
        (["history", "nope"], ["no model named 'nope'"]),
        (["list", "nope"], ["no model named 'nope'"]),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(cli, store, run_ids, args, fragments):
    registry = Registry(store)
    registry.register(run_ids["hgb"], "weather")
    registry.promote("weather", 1)
    before = (registry.versions(), registry.all_events())
    args = [run_ids["hgb"] if a == "RUN" else a for a in args]
    _one_line_error(cli("models", *args, "--store", str(store.path)), *fragments)
    assert (registry.versions(), registry.all_events()) == before


# -- concurrency --------------------------------------------------------------------------------



class TestLocalRegistry(AbstractRegistryTests):
    """The shared registry behaviour on a local store: SQLite and run directories."""

    def overwrite(self, store, run_id, rel, data):
        path = store.path / run_id / rel
        _make_writable(path)
        path.write_bytes(data)

    def remove(self, store, run_id, rel):
        path = store.path / run_id / rel
        _make_writable(path)
        path.unlink()

    def delete_run(self, store, run_id):
        for path in (store.path / run_id, *(store.path / run_id).rglob("*")):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        shutil.rmtree(store.path / run_id)

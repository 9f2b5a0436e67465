"""The model registry with real training runs, real skops files and the store's real SQLite.

Three models are trained once per session by the train template; every test gets a private
copy of that store, so tests can register, move aliases and tamper freely.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time

import nbformat
import numpy as np
import pandas as pd
import pytest

from mlnb import metrics, records
from mlnb.exceptions import ArtifactTampered, ModelNotFound, RegistryError, RunNotFound
from mlnb.metrics import UntrustedModel
from mlnb.registry import Registry, parse_uri, replay
from mlnb.store import Store

from .conftest import ROOT

REFERENCE = ROOT / "data/reference.csv"
BATCH = ROOT / "data/batches/2013-q1.csv"


def _train_three(path) -> dict[str, str]:
    from mlnb.execute import run_template

    runs = {
        "hgb": run_template("train", {"data": str(REFERENCE), "hyperparameters": {"max_iter": 30}}, path),
        "logreg": run_template("train", {"data": str(REFERENCE), "estimator": "sklearn.linear_model.LogisticRegression",
                                         "features": ["precipitation", "temp_max", "temp_min", "wind"], "seed": 1}, path),
        "temp": run_template("train", {"data": str(REFERENCE), "target": "temp_max", "hyperparameters": {"max_iter": 30},
                                       "estimator": "sklearn.ensemble.HistGradientBoostingRegressor"}, path),
    }
    for run in runs.values():
        assert run.succeeded, run.record["error"]
    return {k: r.id for k, r in runs.items()}


@pytest.fixture(scope="session")
def trained(tmp_path_factory, worker_id):
    """A store with three training runs: two weather classifiers and a temp_max regressor.

    Trained once per test session: under xdist the first worker trains into the session's
    shared temporary directory while the others wait for it (a kernel run is ~5 s).
    """
    if worker_id == "master":
        path = tmp_path_factory.mktemp("trained") / "store"
        return path, _train_three(path)
    shared = tmp_path_factory.getbasetemp().parent / "registry-trained"
    shared.mkdir(exist_ok=True)
    done = shared / "runs.json"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            done.write_text(json.dumps(_train_three(shared / "store")))
    return shared / "store", json.loads(done.read_text())


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


def test_register_promote_rollback_load_round_trip(registry, run_ids):
    v1 = registry.register(run_ids["hgb"], "weather")
    v2 = registry.register(run_ids["logreg"], "weather")
    assert (v1.version, v2.version) == (1, 2)
    X = pd.read_csv(BATCH)[v1.features]
    first, second = registry.load("weather/1").predict(X), registry.load("weather/2").predict(X)
    assert (first != second).any()  # two different models, so the alias moves are visible

    assert registry.promote("weather", 1, reason="first model", caused_by="run-a").to_version == 1
    assert registry.promote("weather", 2, reason="better f1", caused_by="run-b").from_version == 1
    np.testing.assert_array_equal(registry.load("weather@production").predict(X), second)
    back = registry.rollback("weather", reason="f1 dropped in production", caused_by="cli:ops")
    assert (back.from_version, back.to_version, back.action) == (2, 1, "rollback")
    assert registry.get("weather@production").version == 1
    np.testing.assert_array_equal(registry.load("weather@production").predict(X), first)
    with pytest.raises(RegistryError, match="cannot roll back weather@production: it points at version 1, its first assignment"):
        registry.rollback("weather")

    history = registry.history("weather")
    assert [(e.action, e.from_version, e.to_version, e.reason, e.caused_by) for e in history] == [
        ("promote", None, 1, "first model", "run-a"),
        ("promote", 1, 2, "better f1", "run-b"),
        ("rollback", 2, 1, "f1 dropped in production", "cli:ops"),
    ]
    assert history[2].undoes == history[1].seq
    assert all(e.at.endswith("Z") for e in history)


def test_repeated_rollbacks_walk_back_through_earlier_versions(registry, run_ids):
    for _ in range(4):
        registry.register(run_ids["hgb"], "weather")
    for version in (1, 2, 3, 2, 4):
        registry.promote("weather", version)
    assert registry.promote("weather", 4) is None  # already there: not a move, not recorded
    walked = [registry.rollback("weather").to_version for _ in range(4)]
    assert walked == [2, 3, 2, 1]  # undoes 4, then 2, then 3, then 2 — never flip-flops
    registry.promote("weather", 3)
    assert registry.rollback("weather").to_version == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("weather")
    assert len(registry.history("weather")) == 5 + 4 + 2


def test_aliases_are_independent_and_set_alias_records_its_action(registry, run_ids):
    registry.register(run_ids["hgb"], "weather")
    registry.register(run_ids["logreg"], "weather")
    registry.promote("weather", 1)
    event = registry.set_alias("weather", "challenger", 2, reason="not promoted yet")
    assert event.action == "set" and event.alias == "challenger"
    assert registry.aliases("weather") == {("weather", "production"): 1, ("weather", "challenger"): 2}
    assert registry.get("weather/2").aliases == ["challenger"]
    assert registry.alias_version("weather", "production")["version"] == 1
    assert registry.alias_version("weather", "champion") is None
    assert registry.alias_version("nothing-yet") is None
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("weather", "challenger")


def test_latest_and_unknown_uris(registry, run_ids):
    registry.register(run_ids["hgb"], "weather")
    registry.register(run_ids["logreg"], "weather")
    assert registry.get("weather/latest").version == 2
    with pytest.raises(ModelNotFound, match="model 'weather' has no version 3; its versions are 1 to 2"):
        registry.get("weather/3")
    with pytest.raises(ModelNotFound, match="model 'weather' has no alias 'production'; its aliases: none"):
        registry.load("weather@production")
    with pytest.raises(ModelNotFound, match="no model named 'wether' in store .*; registered models: weather"):
        registry.promote("wether", 1)
    with pytest.raises(ModelNotFound, match="model 'weather' has no version 7"):
        registry.promote("weather", 7)


# -- lineage ------------------------------------------------------------------------------------


def test_a_version_carries_the_lineage_of_its_training_run(registry, store, run_ids):
    mv = registry.register(run_ids["hgb"], "weather", tags={"owner": "forecasting"}, caused_by="test")
    run = store.get(run_ids["hgb"])
    rec = run.record
    assert mv.run_id == run.id
    assert mv.metrics == rec["scraps"]["metrics"] and set(mv.metrics) >= {"accuracy", "f1", "roc_auc"}
    assert mv.hyperparameters == {"max_iter": 30} == rec["parameters"]["hyperparameters"]
    assert mv.features == ["precipitation", "temp_max", "temp_min", "wind"]
    assert (mv.target, mv.task) == ("weather", "classification")
    assert mv.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert mv.data == rec["inputs"]
    assert [(d["parameter"], d["path"], d["sha256"]) for d in mv.data] == [
        ("data", str(REFERENCE), records.sha256_file(REFERENCE))
    ]
    assert mv.sklearn_version == rec["environment"]["packages"]["scikit-learn"]
    assert mv.artifact == "model.skops"
    assert mv.sha256 == records.sha256_file(run.artifact("model.skops")) == next(
        a["sha256"] for a in rec["artifacts"] if a["path"] == "model.skops"
    )
    assert mv.code["template"] == "train" and mv.code["record_digest"] == rec["digest"]
    assert mv.code["template_sha256"] == rec["template"]["sha256"]
    assert mv.tags == {"owner": "forecasting"} and mv.created_by == "test"


def test_the_loaded_model_reproduces_the_metrics_its_run_recorded(registry, store, run_ids):
    mv = registry.register(run_ids["hgb"], "weather")
    params = store.get(run_ids["hgb"]).parameters
    df = pd.read_csv(params["data"])
    X, y = df[mv.features], df[mv.target]
    _, X_holdout, _, y_holdout, _ = metrics.split(X, y, mv.task, params["test_size"], params["seed"])
    assert metrics.evaluate(registry.load("weather/1"), X_holdout, y_holdout).metrics == pytest.approx(mv.metrics)


def test_categorical_features_survive_the_round_trip(registry, run_ids):
    mv = registry.register(run_ids["temp"], "temp-max")
    assert "weather" in mv.features and mv.task == "regression" and set(mv.metrics) == {"r2", "mae", "rmse"}
    X = pd.read_csv(BATCH)[mv.features].head(5)
    X.loc[X.index[0], "weather"] = "hail"  # a category the model never saw
    assert len(registry.load("temp-max/1").predict(X)) == 5


def test_tags_are_added_and_versions_never_change(registry, run_ids):
    registry.register(run_ids["hgb"], "weather", tags={"stage": "candidate"})
    before = {k: v for k, v in registry.get("weather/1").to_dict().items() if k not in ("tags", "aliases")}
    registry.add_tags("weather/1", {"stage": "approved", "ticket": "ML-12"})
    registry.promote("weather", 1)
    registry.register(run_ids["logreg"], "weather")
    after = registry.get("weather/1")
    assert after.tags == {"stage": "approved", "ticket": "ML-12"}
    assert {k: v for k, v in after.to_dict().items() if k not in ("tags", "aliases")} == before


def test_versions_tags_and_history_are_append_only_in_sqlite(registry, store, run_ids):
    registry.register(run_ids["hgb"], "weather", tags={"a": "b"})
    registry.promote("weather", 1)
    db = sqlite3.connect(store.path / "mlnb.sqlite")
    for sql in (
        "UPDATE alias_events SET to_version = 9",
        "DELETE FROM alias_events",
        "UPDATE model_versions SET sha256 = 'x'",
        "DELETE FROM model_versions",
        "UPDATE model_tags SET value = 'c'",
        "DELETE FROM model_tags",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="never|append-only"):
            db.execute(sql)
    db.close()
    assert len(registry.history("weather")) == 1 and registry.get("weather/1").sha256


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


def test_a_tampered_artifact_is_refused(registry, store, run_ids):
    registry.register(run_ids["hgb"], "weather")
    registry.promote("weather", 1)
    artifact = store.get(run_ids["hgb"]).artifact("model.skops")
    _make_writable(artifact)
    data = artifact.read_bytes()
    artifact.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ArtifactTampered, match=r"weather/1: model artifact .*model.skops changed since it was registered \(sha256 [0-9a-f]{12}…, registered [0-9a-f]{12}…\); refusing to load"):
        registry.load("weather@production")
    with pytest.raises(ArtifactTampered, match="changed since it was recorded"):
        registry.register(run_ids["hgb"], "weather")  # and a tampered run cannot be registered again
    artifact.unlink()
    with pytest.raises(ArtifactTampered, match="weather/1: model artifact .* is missing"):
        registry.load("weather/1")


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

_MOVER = """
import json, sys, time
from mlnb.exceptions import RegistryError
from mlnb.registry import Registry
store, start, me = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
registry = Registry(store)
while time.time() < start:
    time.sleep(0.001)
seqs, noops, refused = [], 0, 0
for i in range(50):
    event = registry.promote("weather", 2 + (me + i) % 4, caused_by=f"proc-{me}")
    if event is None:
        noops += 1
    else:
        seqs.append(event.seq)
    try:
        seqs.append(registry.rollback("weather", caused_by=f"proc-{me}").seq)
    except RegistryError:
        refused += 1
print(json.dumps({"seqs": seqs, "noops": noops, "refused": refused}))
"""

_REGISTRAR = """
import json, sys, time
from mlnb.registry import Registry
store, start, run_id = sys.argv[1], float(sys.argv[2]), sys.argv[3]
registry = Registry(store)
while time.time() < start:
    time.sleep(0.001)
print(json.dumps([registry.register(run_id, "weather").version for _ in range(8)]))
"""


def _race(script: str, args) -> list:
    """Start 4 interpreters that begin work at the same instant; return their JSON outputs.

    ``args(i, start)`` gives the command-line arguments of process ``i``.
    """
    start = str(time.time() + 1.5)  # after every interpreter has imported mlnb.registry
    procs = [
        subprocess.Popen([sys.executable, "-c", script, *args(i, start)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


def test_concurrent_promotions_and_rollbacks_leave_a_consistent_history(registry, store, run_ids):
    for _ in range(5):
        registry.register(run_ids["hgb"], "weather")
    registry.promote("weather", 1, caused_by="setup")
    results = _race(_MOVER, lambda i, start: [str(store.path), start, str(i)])

    history = registry.history("weather")
    reported = sorted(seq for r in results for seq in r["seqs"])
    assert reported == [e.seq for e in history[1:]]  # every move recorded once, none lost
    assert sum(r["noops"] + len(r["seqs"]) + r["refused"] for r in results) == 4 * 100
    assert sum(1 for e in history if e.action == "rollback") > 20
    # replaying the history gives exactly the alias table
    replayed = {}
    for event in history:
        assert event.from_version == replayed.get((event.name, event.alias)), event
        replayed[(event.name, event.alias)] = event.to_version
    assert replayed == registry.aliases() == replay(history)
    # and every rollback undid the latest move not yet undone
    stack = []
    for event in history:
        if event.action == "rollback":
            undone = stack.pop()
            assert (event.undoes, event.to_version) == (undone.seq, undone.from_version)
        else:
            stack.append(event)


def test_concurrent_registrations_get_distinct_consecutive_versions(store, run_ids):
    results = _race(_REGISTRAR, lambda i, start: [str(store.path), start, run_ids["hgb"]])
    got = sorted(v for r in results for v in r)
    assert got == list(range(1, 33))
    assert all(r == sorted(r) for r in results)
    assert [mv.version for mv in Registry(store).versions("weather")] == list(range(1, 33))

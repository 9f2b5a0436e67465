"""The team store on real servers: run files on moto's S3 server, index and registry in PostgreSQL.

The store and registry behaviour suites of ``tests/abstract/`` run here unchanged; what only
an object store has (staging prefixes, claims, gc, the commands that set it up, the errors
of endpoints and databases that are not there) is tested below them.
"""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import pytest

from mlnb import records
from mlnb.exceptions import DataError, StoreError
from mlnb.store import Store, new_run_id
from mlnb.store.team import TeamStore

from .abstract.registry import AbstractRegistryTests
from .abstract.store import AbstractStoreTests, write_runs
from .servers import postgres_database, postgres_url, s3_bucket, s3_env, s3_server  # noqa: F401  (fixtures)


@pytest.fixture
def team_env(monkeypatch, tmp_path, s3_server, postgres_url):  # noqa: F811
    """The environment of a team-store user: endpoint, credentials, database, a private cache."""
    for key, value in {**s3_env(s3_server.endpoint_url), "MLNB_DATABASE": postgres_url,
                       "MLNB_CACHE_DIR": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLNB_STORE", raising=False)
    return {"database": postgres_url, "endpoint": s3_server.endpoint_url}


@pytest.fixture
def team_store(team_env, s3_bucket) -> TeamStore:  # noqa: F811
    store = Store(f"s3://{s3_bucket}/runs")
    assert isinstance(store, TeamStore)
    store.init()
    return store


class _TeamHooks:
    """Change a run's object on S3, as seen by a host that has not fetched it yet (this
    host's cached copy is dropped: what a host loads is what it checks)."""

    def overwrite(self, store, run_id, rel, data):
        store.fs.pipe_file(store._key(run_id, rel), data)
        (store.path / "runs" / run_id / rel).unlink(missing_ok=True)

    def remove(self, store, run_id, rel):
        store.fs.rm_file(store._key(run_id, rel))
        (store.path / "runs" / run_id / rel).unlink(missing_ok=True)

    def delete_run(self, store, run_id):
        store.fs.rm(store._key(run_id), recursive=True)
        shutil.rmtree(store.path / "runs" / run_id, ignore_errors=True)

    def remove_ledger_entry(self, store, seq):
        store.fs.rm_file(f"{store.root}/ledger/{seq:012d}.json")


class TestTeamStore(_TeamHooks, AbstractStoreTests):
    """The shared store behaviour on S3 and PostgreSQL."""

    @pytest.fixture
    def store(self, team_store):
        return team_store


class TestTeamRegistry(_TeamHooks, AbstractRegistryTests):
    """The shared registry behaviour in PostgreSQL, its models' files on S3."""

    @pytest.fixture
    def store(self, team_store, trained):
        from mlnb.store.copy import copy_store

        copy_store(Store(trained[0]), team_store)
        return team_store

    @pytest.fixture
    def run_ids(self, trained):
        return trained[1]


# -- what only an object store has ---------------------------------------------------------------


def test_a_commit_leaves_no_staging_and_a_claim_marked_committed(team_store):
    (run_id,) = write_runs(team_store, 1)
    assert team_store.fs.find(f"{team_store.root}/.staging") == []
    with team_store.connect() as db:
        writer, committed = db.execute("SELECT writer, committed FROM run_claims WHERE id = ?", (run_id,)).fetchone()
    assert committed and ":" in writer
    assert sorted(p.rsplit("/", 1)[-1] for p in team_store.fs.find(team_store._key(run_id))) == [
        "model.bin", "notebook.html", "notebook.ipynb", "record.json"]


def test_a_writer_killed_before_the_index_row_leaves_an_invisible_run_that_gc_removes(team_store, monkeypatch):
    import mlnb.store.team as team

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # the writer dies between its record and its index row

    monkeypatch.setattr(team, "index_insert", fail)
    run_id = new_run_id("train")
    with pytest.raises(KeyboardInterrupt):
        write_runs(team_store, 1, run_id=run_id)
    monkeypatch.undo()
    assert team_store.list_runs() == [] and team_store.run_ids() == [] and team_store.verify() == []
    assert team_store.fs.exists(team_store._key(run_id, records.NOTEBOOK_FILE))  # uploaded, never visible
    assert not team_store.fs.exists(team_store._key(run_id, records.RECORD_FILE))  # the record goes with the entry
    assert team_store.ledger_files() == {}
    assert team_store.gc(older_than_s=3600) == []  # too young to be a dead writer's
    assert team_store.gc(older_than_s=0) == [team_store.run_location(run_id)]
    assert not team_store.fs.exists(team_store._key(run_id))
    with team_store.connect() as db:
        assert db.execute("SELECT COUNT(*) FROM run_claims").fetchone()[0] == 0


def test_gc_removes_staging_older_than_the_age(team_store):
    stale = f"{team_store.root}/.staging/20260101T000000Z-train-abcdef.1234"
    team_store.fs.pipe_file(f"{stale}/notebook.ipynb", b"{}")
    assert team_store.gc(older_than_s=3600) == []
    removed = team_store.gc(older_than_s=0)
    assert removed == [f"{team_store.location}/.staging/20260101T000000Z-train-abcdef.1234"]
    assert team_store.fs.find(f"{team_store.root}/.staging") == []


def test_verify_reads_the_object_store_not_the_cache(team_store):
    (run_id,) = write_runs(team_store, 1)
    cached = team_store.get(run_id).artifact("model.bin")
    assert cached.read_bytes() == bytes([0]) * 64
    team_store.fs.pipe_file(team_store._key(run_id, "artifacts/model.bin"), b"tampered")
    assert [(p.where, p.what) for p in team_store.verify()] == [
        ("artifacts/model.bin", "content changed (sha256 differs from the record)")]


def test_an_executed_run_reads_the_model_from_the_team_store_in_the_kernel(team_store, trained, capsys):
    from mlnb.cli_common import print_run_outcome
    from mlnb.execute import run_template
    from mlnb.registry import Registry
    from mlnb.store.copy import copy_store

    from .test_registry import BATCH

    copy_store(Store(trained[0]), team_store)
    with Registry(team_store) as registry:
        registry.register(trained[1]["hgb"], "weather")
        registry.promote("weather", 1)
    run = run_template("evaluate", {"model": "weather@production", "data": str(BATCH)}, team_store)
    assert run.succeeded, run.record["error"]
    assert run.record["parameters"]["store"] == team_store.location  # the URL, not this host's cache
    assert run.record["scraps"]["model"]["version"] == 1 and run.record["scraps"]["metrics"]["accuracy"] > 0.5
    assert team_store.verify(run.id) == []
    print_run_outcome(run)  # what `mlnb run` prints: where the run is stored, then the local copy
    out = capsys.readouterr().out
    assert f"  stored:   {team_store.location}/{run.id}\n" in out and f"  record:   {run.path}/record.json" in out


# -- the commands ------------------------------------------------------------------------------


def _one_line(result, code: int, *fragments: str) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_store_init_copy_list_verify_and_gc_from_the_command_line(cli, team_env, s3_bucket, tmp_path):  # noqa: F811
    from mlnb.store import LocalStore

    local = LocalStore(tmp_path / "runs")
    ids = write_runs(local, 3)
    env = {**s3_env(team_env["endpoint"]), "MLNB_DATABASE": team_env["database"],
           "MLNB_CACHE_DIR": str(tmp_path / "cache")}
    url = f"s3://{s3_bucket}/weather"
    _one_line(cli("runs", "list", "--store", url, env=env), 2, "has no mlnb tables; run 'mlnb store init'")
    out = cli("store", "init", "--store", url, env=env)
    assert out.returncode == 0 and f"store {url}: ready" in out.stdout, out.stderr
    out = cli("store", "copy", str(local.path), url, env=env)
    assert out.returncode == 0 and "3 runs copied, 0 already there" in out.stdout, out.stderr
    listed = json.loads(cli("runs", "list", "--json", env={**env, "MLNB_STORE": url}).stdout)
    assert sorted(r["id"] for r in listed) == sorted(ids)
    out = cli("runs", "verify", "--store", url, env=env)
    assert out.returncode == 0 and "3 runs checked, 3 intact, 0 changed" in out.stdout, out.stderr
    out = cli("store", "gc", "--older-than", "1h", "--store", url, env=env)
    assert out.returncode == 0 and "0 left-overs removed" in out.stdout, out.stderr
    _one_line(cli("store", "gc", "--older-than", "soon", "--store", url, env=env), 2,
              "--older-than 'soon' is not an age; give a number and a unit: 90s, 15m, 6h or 2d")


def test_bad_team_store_settings_are_one_line_and_write_nothing(cli, team_env, s3_bucket, tmp_path):  # noqa: F811
    base = {**s3_env(team_env["endpoint"]), "MLNB_CACHE_DIR": str(tmp_path / "cache"), "MLNB_DATABASE": None}
    url = f"s3://{s3_bucket}/weather"
    cases = [
        ({}, url, "is a team store and needs its database: set MLNB_DATABASE=postgresql://"),
        ({"MLNB_DATABASE": "postgresql://postgres@127.0.0.1:1/none"}, url,
         "cannot reach database postgresql://postgres@127.0.0.1:1/none: connection failed: connection to server at "
         "\"127.0.0.1\", port 1 failed: Connection refused; Is the server running on that host"),
        ({"MLNB_DATABASE": team_env["database"]}, "s3://no-such-bucket-mlnb/runs", "bucket 'no-such-bucket-mlnb' does not exist"),
        ({"MLNB_DATABASE": "mysql://root@127.0.0.1/test"}, url, "unsupported scheme 'mysql'"),
        ({"MLNB_DATABASE": team_env["database"]}, "gs://bucket/runs", "no installed backend for gs:// URLs; pip install gcsfs"),
    ]
    for extra, location, fragment in cases:
        _one_line(cli("store", "init", "--store", location, env={**base, **extra}), 2, fragment)
    _one_line(cli("runs", "list", env={**base, "MLNB_DATABASE": team_env["database"]}, cwd=tmp_path), 2,
              "MLNB_DATABASE is set but the store is the local")
    assert not (tmp_path / "runs").exists()
    with pytest.raises(StoreError, match="is not a postgresql:// URL"):
        TeamStore(url, database=str(tmp_path / "x.sqlite"))
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_wrong_credentials_are_one_line_that_says_so_and_write_nothing(cli, team_env, tmp_path):
    import psycopg

    from .servers import S3Server

    checking = S3Server.start(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # a server that checks every signature
    try:
        env = {**s3_env(checking.endpoint_url), "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0",
               "AWS_SECRET_ACCESS_KEY": "wrong", "MLNB_DATABASE": team_env["database"],
               "MLNB_CACHE_DIR": str(tmp_path / "cache")}
        tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        with psycopg.connect(team_env["database"]) as db:
            before = db.execute(tables).fetchall()
        _one_line(cli("store", "init", "--store", "s3://ml-runs/weather", env=env), 2,
                  "store 's3://ml-runs/weather': access denied (Forbidden); check the credentials")
        with psycopg.connect(team_env["database"]) as db:
            assert db.execute(tables).fetchall() == before
    finally:
        checking.stop()


def test_a_database_of_a_newer_schema_is_refused(team_store):
    with team_store.connect() as db:
        db.execute("UPDATE registry_meta SET value = 'mlnb.index/9' WHERE key = 'index'")
    fresh = Store(team_store.location)
    with pytest.raises(StoreError, match="has index schema 'mlnb.index/9', newer than this mlnb's 'mlnb.index/1'; upgrade mlnb"):
        fresh.list_runs()


# -- a database serves one store -----------------------------------------------------------------


def _row_counts(url: str) -> dict[str, int]:
    """Every mlnb table's row count in the database at ``url``."""
    import psycopg

    with psycopg.connect(url) as db:
        tables = [r[0] for r in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in sorted(tables)}


def test_a_database_serves_one_store_and_another_prefix_is_refused_before_anything_is_read_or_written(
        cli, team_store, team_env, tmp_path):
    from mlnb.store import LocalStore

    write_runs(team_store, 2)
    local = LocalStore(tmp_path / "local")
    write_runs(local, 1)
    bucket = team_store.root.split("/", 1)[0]
    other = f"s3://{bucket}/team2"
    env = {**s3_env(team_env["endpoint"]), "MLNB_DATABASE": team_env["database"].replace("postgres@", "postgres:s3cret@"),
           "MLNB_CACHE_DIR": str(tmp_path / "cache2")}
    before = _row_counts(team_env["database"])
    belongs = (f"database postgresql://postgres:***@{team_env['database'].split('@', 1)[1]} belongs to store "
               f"{team_store.location!r}, not {other!r}; give each store a database of its own")
    for args in (["runs", "list"], ["models", "list"], ["runs", "verify"], ["store", "verify"], ["store", "head"],
                 ["store", "init"], ["store", "gc", "--older-than", "0s"], ["store", "copy", str(local.path), other]):
        line = _one_line(cli(*args, env={**env, "MLNB_STORE": other}), 2, belongs)
        assert "s3cret" not in line
    # a bucket that does not exist is a store this database does not belong to either
    _one_line(cli("runs", "list", env={**env, "MLNB_STORE": "s3://no-such-bucket-mlnb/x"}), 2,
              f"belongs to store {team_store.location!r}, not 's3://no-such-bucket-mlnb/x'")
    assert team_store.fs.find(f"{bucket}/team2") == []
    assert _row_counts(team_env["database"]) == before
    out = cli("store", "verify", env={**env, "MLNB_STORE": team_store.location})
    assert out.returncode == 0 and "2 runs checked, 2 intact, 0 changed" in out.stdout, out.stdout + out.stderr


def test_a_database_without_a_store_recorded_is_adopted_by_the_first_store_that_writes_to_it(team_store):
    write_runs(team_store, 1)
    with team_store.connect() as db:  # as an mlnb that recorded no store left it
        db.execute("DELETE FROM registry_meta WHERE key = 'store'")
    other = f"{team_store.location}2"
    assert len(Store(other).list_runs()) == 1  # reading does not adopt it
    write_runs(Store(team_store.location), 1)
    with pytest.raises(StoreError, match=f"belongs to store {team_store.location!r}, not {other!r}"):
        Store(other).list_runs()
    with team_store.connect() as db:
        db.execute("DELETE FROM registry_meta WHERE key = 'store'")
    Store(other).init()  # so does 'mlnb store init'
    with pytest.raises(StoreError, match=f"belongs to store {other!r}"):
        Store(team_store.location).list_runs()


def test_a_bucket_gone_from_under_its_database_is_one_line_naming_it(cli, team_store, team_env, tmp_path):
    (run_id,) = write_runs(team_store, 1)
    bucket = team_store.root.split("/", 1)[0]
    team_store.fs.rm(bucket, recursive=True)
    assert not team_store.fs.exists(bucket)
    env = {**s3_env(team_env["endpoint"]), "MLNB_DATABASE": team_env["database"],
           "MLNB_CACHE_DIR": str(tmp_path / "cache2"), "MLNB_STORE": team_store.location}
    for args in (["runs", "show", run_id], ["runs", "verify"], ["runs", "verify", run_id], ["store", "verify"]):
        _one_line(cli(*args, env=env), 2, f"store {team_store.location!r}: bucket {bucket!r} does not exist")


@pytest.mark.parametrize("model, refusal", [
    ("weather", "the target registry already has model 'weather'"),
    ("other", "the target registry already has an alias history; copy into an empty registry"),
])
def test_a_copy_the_target_registry_refuses_writes_nothing(cli, team_store, team_env, trained, tmp_path, model, refusal):
    from mlnb.registry import Registry
    from mlnb.store import LocalStore
    from mlnb.store.copy import copy_store

    ids = trained[1]
    copy_store(Store(trained[0]), team_store)
    with Registry(team_store) as registry:
        registry.register(ids["hgb"], "weather")
        registry.promote("weather", 1, alias="production", reason="first")
    source = LocalStore(tmp_path / "source")
    copy_store(Store(trained[0]), source)
    write_runs(source, 2)
    with Registry(source) as registry:
        registry.register(ids["logreg"], model)
        registry.promote(model, 1, alias="production", reason="first")
    objects = sorted(team_store.fs.find(team_store.root))
    rows = _row_counts(team_env["database"])
    env = {**s3_env(team_env["endpoint"]), "MLNB_DATABASE": team_env["database"],
           "MLNB_CACHE_DIR": str(tmp_path / "cache2")}
    result = cli("store", "copy", str(source.path), team_store.location, env=env)
    _one_line(result, 2, refusal)
    assert "copied" not in result.stdout
    assert sorted(team_store.fs.find(team_store.root)) == objects
    assert _row_counts(team_env["database"]) == rows


# -- the UI ------------------------------------------------------------------------------------


def test_the_ui_serves_a_team_store_and_shows_what_changed_on_the_object_store(team_store):
    from fastapi.testclient import TestClient

    from mlnb.ui.app import create_app

    ids = write_runs(team_store, 3)
    client = TestClient(create_app(team_store))
    page = client.get("/runs", params={"filter": "params.seed >= 1", "sort": "metrics.accuracy", "order": "asc"})
    assert page.status_code == 200, page.text
    assert ids[1] in page.text and ids[2] in page.text and ids[0] not in page.text
    assert page.text.index(ids[1]) < page.text.index(ids[2])
    assert client.get(f"/runs/{ids[0]}").status_code == 200
    artifact = client.get(f"/raw/runs/{ids[0]}/artifacts/model.bin")
    assert artifact.status_code == 200 and artifact.content == bytes([0]) * 64
    _TeamHooks().overwrite(team_store, ids[1], "notebook.html", b"changed")
    client.app.state.site._verify.clear()  # what it found a minute ago is kept for a minute
    shown = client.get(f"/runs/{ids[1]}").text
    assert "notebook.html" in shown and "content changed" in shown


def test_the_ui_model_pages_read_the_registry_in_postgresql(team_store, trained):
    from fastapi.testclient import TestClient

    from mlnb.registry import Registry
    from mlnb.store.copy import copy_store
    from mlnb.ui.app import create_app

    copy_store(Store(trained[0]), team_store)
    ids = trained[1]
    with Registry(team_store) as registry:
        registry.register(ids["hgb"], "weather")
        registry.register(ids["logreg"], "weather")
        registry.promote("weather", 2, alias="production", reason="better f1")
    client = TestClient(create_app(team_store))
    models = client.get("/models")
    assert models.status_code == 200 and "weather" in models.text
    model = client.get("/models/weather")
    assert model.status_code == 200 and "production" in model.text and "better f1" in model.text
    version = client.get("/models/weather/versions/1")
    assert version.status_code == 200 and ids["hgb"] in version.text  # lineage: the run that trained it
    run = client.get(f"/runs/{ids['logreg']}")
    assert run.status_code == 200 and "weather" in run.text  # the version it produced
    assert client.get("/models/nosuch").status_code == 404


# -- tables and logs, seen from another host ----------------------------------------------------
#
# A second host is a second TeamStore of the same URL and database with a cache of its own
# (MLNB_CACHE_DIR): nothing the first host wrote into its cache is there.


def _other_host(monkeypatch, tmp_path, location: str, name: str = "host-b") -> TeamStore:
    monkeypatch.setenv("MLNB_CACHE_DIR", str(tmp_path / name))
    store = Store(location)
    assert isinstance(store, TeamStore) and not store.path.exists()
    return store


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    """scikit-learn's wine table (three cultivars), shuffled: a reference half and a batch half."""
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.frame.drop(columns=["target"]).assign(cultivar=[f"c{t}" for t in data.target])
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    base = tmp_path_factory.mktemp("wine")
    frame.iloc[:90].to_csv(base / "reference.csv", index=False)
    frame.iloc[90:].to_csv(base / "batch.csv", index=False)
    return base


def test_a_pipeline_run_on_one_host_is_reproduced_on_another_from_the_tables_in_the_store(
        team_store, wine, tmp_path, monkeypatch):
    from mlnb.config import load_config
    from mlnb.execute import reproduce
    from mlnb.monitor import holdout_of
    from mlnb.pipeline import run_pipeline
    from mlnb.project import init_project
    from mlnb.registry import Registry

    root = tmp_path / "project"
    init_project(root, data=wine / "reference.csv", target="cultivar")
    decision, _ = run_pipeline(load_config(root / "mlnb.yaml"), team_store, current=str(wine / "batch.csv"))
    assert decision.outcome == "promoted", decision.reasons
    (train,) = team_store.list_runs(template="train")
    table = train["parameters"]["data"]
    assert table.startswith(str(team_store.data_dir))  # host A's cache...
    name = table.rsplit("/", 1)[-1]
    assert team_store.fs.exists(f"{team_store.root}/data/{name}")  # ...and the object store

    shutil.rmtree(team_store.data_dir)  # host A's disk, which host B cannot read
    b = _other_host(monkeypatch, tmp_path, team_store.location)
    said = []
    original, again, changed = reproduce(b, train["id"], say=said.append)
    assert again.succeeded, again.record["error"]
    assert changed == []  # the same metrics, from the same rows
    fetched = b.data_dir / name
    assert len(said) == 1 and f"{table} is not on this host; using the store's copy {fetched}" in said[0]
    assert again.record["parameters"]["data"] == str(fetched)
    assert [i["sha256"] for i in again.record["inputs"]] == [i["sha256"] for i in original.record["inputs"]]
    # the lineage from the deployed version to its training data reads on this host too
    with Registry(b) as registry:
        version = registry.get(f"{load_config(root / 'mlnb.yaml').model.name}@production")
    assert len(holdout_of(b, version)) > 0


WINE_FEATURES = ["alcohol", "malic_acid", "flavanoids", "color_intensity", "hue", "proline"]


def _train_wine(store, data) -> str:
    from mlnb.execute import run_template

    run = run_template("train", {"data": str(data), "target": "cultivar", "features": WINE_FEATURES,
                                 "estimator": "sklearn.linear_model.LogisticRegression",
                                 "hyperparameters": {"max_iter": 5000}}, store)
    assert run.succeeded, run.record["error"]
    return run.id


def _rows_seen(read, expected: int, timeout: float = 20.0) -> int:
    """Rows another host reads, polled until ``expected`` arrive (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = len(read().table)
        except DataError:
            rows = 0
        if rows >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_served_predictions_and_shadow_lines_are_labelled_and_read_on_another_host(
        team_store, wine, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    import uvicorn

    from mlnb import labels, predlog, shadow
    from mlnb.registry import Registry
    from mlnb.serve import serve as mlnb_serve

    with Registry(team_store) as registry:
        registry.register(_train_wine(team_store, wine / "reference.csv"), "wine")
        registry.promote("wine", 1)
    batch = pd.read_csv(wine / "batch.csv")
    apps = []  # what `mlnb serve` would run
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: apps.append(app))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    mlnb_serve("wine@production", shadow="wine/1", store=team_store.location, log_share_interval=0.2)
    (app,) = apps
    b = _other_host(monkeypatch, tmp_path, team_store.location)  # (the server keeps host A's cache)

    def serve(client, rows):
        for i in rows:
            body = {"rows": [{f: float(batch.loc[i, f]) for f in WINE_FEATURES}]}
            assert client.post("/predict", json=body, headers={"X-Request-Id": f"w-{i:03d}"}).status_code == 200

    with TestClient(app) as client:
        serve(client, range(40))
        # uploaded every 0.2 s while the server runs: host B sees them without a restart
        assert _rows_seen(lambda: predlog.read_log(predlog.synced_log_dir(b, "wine")), 40) == 40
        serve(client, range(40, len(batch)))
    # the rest went up at shutdown
    seen = predlog.read_log(predlog.synced_log_dir(b, "wine"))
    assert len(seen.table) == len(batch) and seen.skipped == 0
    assert list(seen.table["request_id"]) == [f"w-{i:03d}" for i in range(len(batch))]

    labelled = batch.iloc[:60].assign(request_id=[f"w-{i:03d}" for i in range(60)])[["request_id", "cultivar"]]
    path = tmp_path / "cultivars.csv"
    pd.concat([labelled, pd.DataFrame({"request_id": ["w-999"], "cultivar": ["c0"]})]).to_csv(path, index=False)
    added = labels.add_file(path, b, "wine", label_column="cultivar")
    assert added.run.succeeded, added.run.record["error"]
    assert (added.counts["matched"], added.counts["unknown"], added.counts["logged"]) == (60, 1, len(batch))
    assert len(labels.stored_labels(team_store, "wine")[0]) == 61  # the labels run is in the store for host A too

    shadow_log = shadow.read_shadow_log(shadow.resolve_log("wine", b))
    assert len(shadow_log.table) == len(batch) and shadow_log.skipped == 0
    assert shadow.agreement(shadow_log.table)["agreement"] == 1.0  # the same version served and shadowed

    # a last line cut on host A stays skipped on host B; host A's own files are never replaced by a sync
    (written,) = (team_store.predictions_dir / "wine").glob("*.jsonl")
    with open(written, "ab") as f:
        f.write(b'{"schema": "mlnb.prediction/1", "request_id": "w-c')
    team_store.share_logs([written])
    with open(written, "ab") as f:
        f.write(b"ontinues")  # on host A only: not uploaded yet
    team_store.sync_logs(team_store.predictions_dir)
    assert written.read_bytes().endswith(b'"w-continues')
    again = predlog.read_log(predlog.synced_log_dir(b, "wine"))
    assert (len(again.table), again.skipped) == (len(batch), 1)


def test_a_table_in_the_store_that_is_not_what_the_run_read_is_refused_in_one_line(
        team_store, team_env, wine, tmp_path, cli):
    from mlnb.pipeline import write_dataset

    table = write_dataset(team_store, pd.read_csv(wine / "reference.csv"), "train")
    run_id = _train_wine(team_store, table)
    team_store.fs.pipe_file(f"{team_store.root}/data/{table.name}", table.read_bytes().replace(b"c1", b"c2"))
    shutil.rmtree(team_store.data_dir)  # host A's disk, which host B cannot read
    env = {**s3_env(team_env["endpoint"]), "MLNB_DATABASE": team_env["database"], "MLNB_STORE": team_store.location,
           "MLNB_CACHE_DIR": str(tmp_path / "host-b")}
    result = cli("runs", "reproduce", run_id[:20], "-q", env=env)
    _one_line(result, 2, f"table data/{table.name} has sha256", "not the recorded", "not the table the run read")
    assert team_store.run_ids() == [run_id]
    assert list((tmp_path / "host-b").rglob("*.csv")) == []  # nothing fetched is kept


def test_rotated_prediction_files_reach_another_host_whole_and_once(team_store, tmp_path, monkeypatch):
    from mlnb import predlog

    writer = predlog.PredictionLog(predlog.log_dir(team_store, "rotating"), max_bytes=4096)
    b = _other_host(monkeypatch, tmp_path, team_store.location)
    sent = []
    for _ in range(6):
        for _ in range(15):
            sent.append(f"r-{len(sent):03d}")
            writer.append(predlog.entries(sent[-1], time.time(), [{"x": 1.5}], name="rotating", version=1,
                                          uri="rotating/1", task="regression", target="y", features=["x"],
                                          predictions=[2.0], probabilities=None, classes=None))
        team_store.share_logs(writer.files())
        seen = predlog.read_log(predlog.synced_log_dir(b, "rotating"))
        assert sorted(seen.table["request_id"]) == sent and seen.skipped == 0
    assert len(writer.files()) >= 3  # it rotated, more than once

"""Sweeps on a Dask cluster that shares no directory with the client, into a team store.

A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, each worker in its
own working directory with its own HOME and TMPDIR and only the team store's settings in
its environment (``tests/dask_cluster.py``); the client runs ``mlnb sweep`` from another
directory, with a template and data files that exist only there. Moto's S3 server and a
fresh PostgreSQL database come from ``tests/servers.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mlnb import records
from mlnb.store import Store

from .conftest import NOTEBOOKS
from .dask_cluster import dask_cluster
from .servers import postgres_database, postgres_url, s3_bucket, s3_env, s3_server  # noqa: F401  (fixtures)


def _sklearn_csv(name: str) -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data" / name


@pytest.fixture
def team(monkeypatch, tmp_path, s3_server, postgres_url, s3_bucket):  # noqa: F811
    """A team store made ready, and the settings a user (or a worker) needs to reach it."""
    settings = {**s3_env(s3_server.endpoint_url), "MLNB_DATABASE": postgres_url}
    for key, value in {**settings, "MLNB_CACHE_DIR": str(tmp_path / "client-cache")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLNB_STORE", raising=False)
    store = Store(f"s3://{s3_bucket}/runs")
    store.init()
    return store, settings


@pytest.fixture
def client_dir(tmp_path) -> Path:
    """The client's project: a template and two data files that exist only here (one small
    enough to travel inside the tasks, one staged through the object store)."""
    client = tmp_path / "client"
    client.mkdir()
    shutil.copyfile(NOTEBOOKS / "cpu_work.ipynb", client / "count_lines.ipynb")
    shutil.copyfile(_sklearn_csv("iris.csv"), client / "iris.csv")  # 2.7 kB
    shutil.copyfile(_sklearn_csv("breast_cancer.csv"), client / "breast_cancer.csv")  # 120 kB
    return client


def _processes_under(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (kernels name their connection
    file under the worker's HOME)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline:
                found.append(cmdline)
    return found


def test_a_sweep_on_workers_without_a_shared_file_system_commits_every_run_to_the_team_store(
        tmp_path, cli, team, client_dir):
    store, settings = team
    files = {name: client_dir / name for name in ("iris.csv", "breast_cancer.csv")}
    (client_dir / "params.yaml").write_text("cpu_seconds: 0.1\n")  # a params file of the client's
    with dask_cluster(tmp_path / "cluster", [settings, settings]) as cluster:
        result = cli("sweep", "count_lines.ipynb", "--grid", "seed=1,2", "--grid", "data=iris.csv,breast_cancer.csv",
                     "-f", "params.yaml", "--scheduler", cluster.address, "--store", store.location, "--json",
                     cwd=client_dir, env={**settings, "MLNB_CACHE_DIR": str(tmp_path / "client-cache")})
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert (out["n_runs"], out["n_failed"]) == (4, 0)
        worker_dirs = list(cluster.directories.values())
        worker_pids = set(cluster.workers.values())
    assert _processes_under(tmp_path / "cluster") == [], "a worker or a kernel outlived the cluster"

    # the summary says the values as the user gave them
    assert [(r["parameters"]["seed"], r["parameters"]["data"]) for r in out["runs"]] == [
        (seed, name) for seed in (1, 2) for name in files]
    template_sha = records.sha256_file(client_dir / "count_lines.ipynb")
    listed = {r["id"]: r for r in Store(store.location).list_runs(parent=out["sweep"])}
    assert set(listed) == {r["run_id"] for r in out["runs"]}
    for row in out["runs"]:
        run = Store(store.location).get(row["run_id"])
        data = files[row["parameters"]["data"]]
        # executed and committed by a worker, from its own copy of the client's file
        assert run.record["scraps"]["executor_pid"] in worker_pids
        assert run.record["scraps"]["data_lines"] == len(data.read_text().splitlines())
        assert run.record["parameters"]["data"] == str(data) and run.record["parameters"]["cpu_seconds"] == 0.1
        assert listed[run.id]["parameters"]["data"] == str(data)
        # the record names the client's files, with the client's hashes
        assert run.record["inputs"] == [{"parameter": "data", "path": str(data), **records.fingerprint(data)}]
        assert run.record["template"] == {"name": "count_lines", "path": str(client_dir / "count_lines.ipynb"),
                                          "sha256": template_sha}
        injected = next(c for c in run.notebook.cells if "injected-parameters" in c.metadata.get("tags", []))
        assert any(str(w / "tmp") in injected.source for w in worker_dirs), injected.source
    summary = Store(store.location).get(out["sweep"])
    assert summary.template == "sweep" and summary.scrap("n_runs") == 4
    verify = cli("runs", "verify", "--store", store.location, env=settings)
    assert verify.returncode == 0 and "5 runs checked, 5 intact, 0 changed" in verify.stdout, verify.stdout
    assert store.fs.find(f"{store.root}/.staging") == []  # the staged data file is gone with the sweep
    # the client reproduces a run from its own files: the record names them
    again = cli("runs", "reproduce", out["runs"][1]["run_id"], "--store", store.location, "--quiet", env=settings,
                cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"reproduces {out['runs'][1]['run_id']}" in again.stdout


def test_a_worker_without_the_team_store_settings_is_named_before_anything_runs(tmp_path, cli, team, client_dir):
    store, settings = team
    no_database = {k: v for k, v in settings.items() if k != "MLNB_DATABASE"}
    with dask_cluster(tmp_path / "cluster", [settings, no_database]) as cluster:
        result = cli("sweep", "count_lines.ipynb", "--grid", "seed=1,2", "-p", "data", "iris.csv",
                     "-p", "cpu_seconds", "0.1", "--scheduler", cluster.address, "--store", store.location,
                     cwd=client_dir, env={**settings, "MLNB_CACHE_DIR": str(tmp_path / "client-cache")})
        good, bad = cluster.workers
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{bad}: store {store.location!r} is a team store and needs its database: set MLNB_DATABASE" in lines[0]
    assert good not in lines[0]
    assert Store(store.location).list_runs() == []
    assert store.fs.find(f"{store.root}/.staging") == []


def test_a_parameter_naming_a_directory_is_refused_before_anything_runs(tmp_path, cli, team, client_dir):
    store, settings = team
    (client_dir / "batches").mkdir()
    with dask_cluster(tmp_path / "cluster", [settings]) as cluster:
        result = cli("sweep", "count_lines.ipynb", "--grid", "seed=1,2", "-p", "data", "batches",
                     "--scheduler", cluster.address, "--store", store.location,
                     cwd=client_dir, env={**settings, "MLNB_CACHE_DIR": str(tmp_path / "client-cache")})
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert (f"parameter 'data' names the directory {str(client_dir / 'batches')!r} on this host; a sweep on a "
            "remote scheduler ships files") in result.stderr
    assert Store(store.location).list_runs() == []


def test_a_shipped_file_that_arrives_changed_is_refused_on_the_worker(tmp_path, team):
    from mlnb.exceptions import MlnbError
    from mlnb.parallel import shipping

    store, _ = team
    target = tmp_path / "worker" / "iris.csv"
    sent = shipping.ShippedFile(name="iris.csv", sha256="0" * 64, size=4, source="/client/iris.csv", content=b"a,b\n")
    with pytest.raises(MlnbError, match=r"'/client/iris.csv' arrived with sha256 [0-9a-f]{12}…, the client sent 000000000000…"):
        shipping._materialise(sent, target, store)
    assert not target.exists() and os.listdir(target.parent) == []


def test_a_local_cluster_sweep_into_the_team_store_reads_the_files_where_they_are(tmp_path, cli, team, client_dir):
    store, settings = team
    result = cli("sweep", "count_lines.ipynb", "--grid", "seed=1,2", "-p", "data", "iris.csv", "-p", "cpu_seconds",
                 "0.1", "--workers", "2", "--store", store.location, "--json", cwd=client_dir,
                 env={**settings, "MLNB_CACHE_DIR": str(tmp_path / "client-cache")})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    data = client_dir / "iris.csv"
    for row in out["runs"]:
        run = Store(store.location).get(row["run_id"])
        assert run.record["inputs"] == [{"parameter": "data", "path": str(data), **records.fingerprint(data)}]
        injected = next(c for c in run.notebook.cells if "injected-parameters" in c.metadata.get("tags", []))
        assert str(data) in injected.source  # on this host nothing is shipped: the kernel read the file itself
    assert Store(store.location).verify() == []

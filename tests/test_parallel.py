"""Sweeps: planning, backends (in-process, LocalCluster, a real Dask cluster), a shared
store under concurrent commits, failures and Ctrl-C. Real kernels and processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlnb import parallel
from mlnb.exceptions import DataError, ParameterError
from mlnb.params import load_template
from mlnb.store import DATABASE, STAGING, Store

from .abstract.sweep_backend import CPU, AbstractSweepBackendTests
from .conftest import NOTEBOOKS

ECHO = NOTEBOOKS / "echo.ipynb"


def _sweep_json(result) -> dict:
    return json.loads(result.stdout)


def _indexed_ids(store_path: Path) -> set[str]:
    """Run ids in the SQLite index as written by commits (no resync from the directory)."""
    with sqlite3.connect(store_path / DATABASE) as db:
        return {row[0] for row in db.execute("SELECT id FROM runs")}


# -- planning: pure, nothing runs ---------------------------------------------------------


@pytest.mark.parametrize(
    "text, items",
    [
        ("1,2,3", ["1", "2", "3"]),
        (" a , b ", ["a", "b"]),
        ("[1,2],[3]", ["[1,2]", "[3]"]),
        ('{"a": 1, "b": 2},{}', ['{"a": 1, "b": 2}', "{}"]),
        ('"a,b",c', ['"a,b"', "c"]),
        ("'x,y'", ["'x,y'"]),
        ("single", ["single"]),
        ('"a\\\\",c', ['"a\\\\"', "c"]),  # a JSON string ending in a backslash
        ('"say \\"hi\\", ok",d', ['"say \\"hi\\", ok"', "d"]),
    ],
)
def test_split_values_keeps_commas_inside_brackets_and_quotes(text, items):
    assert parallel.split_values(text) == items


@pytest.mark.parametrize("text", ["[1,2", "1]", '"open', "{"])
def test_split_values_refuses_unbalanced_text(text):
    with pytest.raises(ParameterError, match="unbalanced"):
        parallel.split_values(text)


@pytest.mark.parametrize(
    "spec, name, values",
    [
        ("n=1,2", "n", [1, 2]),
        ("ratio=0.1,1", "ratio", [0.1, 1]),
        ("flag=true,false", "flag", [True, False]),
        ("name=1,x", "name", ["1", "x"]),  # str parameters take text as is
        ('name="a,b",c', "name", ["a,b", "c"]),
        ("items=[1,2],[]", "items", [[1, 2], []]),
        ('options={"k": 1}', "options", [{"k": 1}]),
    ],
)
def test_grid_values_are_parsed_against_the_parameter_types(spec, name, values):
    assert parallel.parse_grid(spec, load_template(ECHO)) == (name, values)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("n", "must be NAME=V1,V2"),
        ("=1,2", "must be NAME=V1,V2"),
        ("n=", "gives no values"),
        ("n=1,,2", "empty value"),
    ],
)
def test_malformed_grid_specs_are_refused(spec, message):
    with pytest.raises(ParameterError, match=message):
        parallel.parse_grid(spec, load_template(ECHO))


def test_plan_is_the_cross_product_in_grid_order_with_common_values(tmp_path):
    plan = parallel.plan_sweep(
        load_template(ECHO), Store(tmp_path / "store"),
        grid=["n=1,2,3", "flag=false,true"], fixed={"name": "x"},
    )
    points = [(t.parameters["n"], t.parameters["flag"]) for t in plan.tasks]
    assert points == [(1, False), (1, True), (2, False), (2, True), (3, False), (3, True)]
    assert all(t.parameters["name"] == "x" for t in plan.tasks)
    assert plan.varying == ["n", "flag"]
    assert {t.sweep_id for t in plan.tasks} == {plan.sweep_id}
    assert [t.tags["point"] for t in plan.tasks] == list(range(6))
    assert not (tmp_path / "store").exists(), "planning writes nothing"


def test_backfill_runs_once_per_file_crossed_with_the_grid(tmp_path, monkeypatch):
    for name in ("b.csv", "a.csv", "c.txt"):
        (tmp_path / name).write_text("x\n1\n")
    monkeypatch.chdir(tmp_path)
    plan = parallel.plan_sweep(load_template(ECHO), Store("store"), grid=["n=1,2"], over="*.csv")
    files = [t.parameters["data"] for t in plan.tasks]
    assert files == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")] * 2
    assert plan.varying == ["n", "data"]
    assert plan.tasks[0].store == str(tmp_path / "store")  # absolute, for the workers


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"grid": ["nope=1,2"]}, ParameterError, "unknown parameter 'nope'.*sweep point 1"),
        ({"grid": ["n=1,x"]}, ParameterError, r"'n' must be int, got str \"x\".*sweep point 2: n=\"x\""),
        ({"grid": ["n=1", "n=2"]}, ParameterError, "given twice"),
        ({"grid": ["n=1,2"], "fixed": {"n": 3}}, ParameterError, "both `grid` and the fixed values"),
        ({"over": "*.nothing"}, DataError, "matches no file"),
        ({"over": "*", "over_param": "missing"}, ParameterError, "`over_param` 'missing' is not a parameter"),
        ({"over_param": "data"}, ParameterError, "needs `over`"),
    ],
)
def test_every_point_is_checked_before_anything_runs(tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        parallel.plan_sweep(load_template(ECHO), Store(tmp_path / "store"), **options)
    assert not (tmp_path / "store").exists()


def test_the_backend_is_chosen_in_one_place():
    assert isinstance(parallel.make_backend(1), parallel.SequentialBackend)
    assert isinstance(parallel.make_backend(4, n_tasks=1), parallel.SequentialBackend)
    local = parallel.make_backend(8, n_tasks=3)
    assert isinstance(local, parallel.DaskBackend) and local.n_workers == 3 and local.client is None
    remote = parallel.make_backend(None, "tcp://127.0.0.1:1")
    assert isinstance(remote, parallel.DaskBackend) and remote.scheduler == "tcp://127.0.0.1:1"
    with pytest.raises(ParameterError, match="not both"):
        parallel.make_backend(2, "tcp://127.0.0.1:1")


def test_summary_table_is_parameters_by_scraps_and_stores_as_parquet(tmp_path):
    rows = [
        {"index": 1, "run_id": "r2", "status": "failed", "parameters": {"n": 2}, "scraps": {"x": "text"},
         "error": "ValueError: bad"},
        {"index": 0, "run_id": "r1", "status": "succeeded", "parameters": {"n": 1}, "scraps": {"x": 1.5, "y": [1]},
         "error": None},
    ]
    table = parallel.summary_table(rows)
    assert list(table.columns) == ["point", "run_id", "status", "n", "scrap.x", "scrap.y", "error"]
    assert list(table["point"]) == [1, 2]
    assert list(table["scrap.x"]) == ["1.5", "text"]  # mixed kinds become text
    assert table["scrap.y"].iloc[0] == "[1]" and table["scrap.y"].isna().iloc[1]  # lists become JSON
    table.to_parquet(tmp_path / "t.parquet")


# -- behaviour every backend shares, and what only one backend does -----------------------


class TestSequentialBackend(AbstractSweepBackendTests):
    """``--workers 1``: every run in the command's own process, one after the other."""

    @pytest.fixture
    def backend(self):
        return parallel.SequentialBackend()

    @pytest.fixture
    def workers(self):
        return "1"

    def test_sequential_sweep_records_every_run_and_the_summary_and_counts_failures(self, tmp_path, cli):
        store_path = tmp_path / "store"
        result = cli("sweep", CPU, "--grid", "seed=1,2", "--grid", "fail=false,true", "-p", "cpu_seconds", "0.05",
                     "--workers", "1", "--store", str(store_path), "--json")
        assert result.returncode == 1, result.stderr  # two runs failed; their records exist
        out = _sweep_json(result)
        sweep_id = out["sweep"]
        assert (out["n_runs"], out["n_succeeded"], out["n_failed"]) == (4, 2, 2)
        assert [(r["parameters"]["seed"], r["parameters"]["fail"], r["status"]) for r in out["runs"]] == [
            (1, False, "succeeded"), (1, True, "failed"), (2, False, "succeeded"), (2, True, "failed")]
        assert "failed on purpose (seed 1)" in out["runs"][1]["error"]
        # each run is its own immutable record, tagged with the sweep and naming it as parent
        store = Store(store_path)
        children = store.list_runs(parent=sweep_id)
        assert {c["id"] for c in children} == {r["run_id"] for r in out["runs"]}
        assert all(c["tags"]["sweep"] == sweep_id for c in children)
        # the summary is recorded: a run of the sweep template whose id is the sweep id
        summary = store.get(sweep_id)
        assert out["summary_run"] == sweep_id and summary.template == "sweep" and summary.succeeded
        assert summary.scrap("n_failed") == 2 and summary.scrap("n_runs") == 4
        table = summary.scrap("runs")
        assert list(table["status"]) == ["succeeded", "failed", "succeeded", "failed"]
        assert table["scrap.pi_estimate"].between(2.5, 3.8).all()
        # progress: one plain line per run when stderr is not a terminal, failures counted
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("[")]
        assert len(lines) == 4 and lines[-1].startswith("[4/4]") and lines[-1].endswith("(2 failed)")
        assert cli("runs", "verify", "--store", str(store_path)).returncode == 0
        # every point's kernel was started ahead, while the point before it ran (forked where it can be)
        from mlnb.forkserver import available

        modes = {store.get(c["id"]).record["environment"]["kernel_preparation"]["mode"] for c in children}
        assert modes == {"forked" if available() else "warm"}

    def test_a_cold_sweep_starts_every_kernel_from_nothing(self, tmp_path, cli):
        store_path = tmp_path / "store"
        result = cli("sweep", CPU, "--grid", "seed=1,2", "-p", "cpu_seconds", "0.05", "--workers", "1", "--cold",
                     "--store", str(store_path), "--json")
        assert result.returncode == 0, result.stderr
        store = Store(store_path)
        runs = [store.get(r["run_id"]) for r in _sweep_json(result)["runs"]]
        assert [r.record["environment"]["kernel_preparation"] for r in runs] == [{"mode": "cold", "preloaded": []}] * 2


class TestLocalClusterBackend(AbstractSweepBackendTests):
    """``--workers 2``: a Dask LocalCluster of two worker processes on this host."""

    @pytest.fixture
    def backend(self):
        with parallel.DaskBackend(n_workers=2) as backend:
            yield backend

    @pytest.fixture
    def workers(self):
        return "2"

    def test_local_cluster_backfill_runs_in_the_workers_and_commits_there(self, tmp_path):
        batches = tmp_path / "batches"
        batches.mkdir()
        for i in range(1, 5):
            (batches / f"2013-q{i}.csv").write_text("x\n" + "1\n" * i)
        store_path = tmp_path / "store"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlnb", "sweep", CPU, "--over", "batches/*.csv", "-p", "cpu_seconds", "0.2",
             "--workers", "2", "--store", str(store_path), "--json"],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        summary = json.loads(out)
        assert [r["parameters"]["data"] for r in summary["runs"]] == [str(p) for p in sorted(batches.glob("*.csv"))]
        assert [r["scraps"]["data_lines"] for r in summary["runs"]] == [2, 3, 4, 5]
        # the notebooks ran in two worker processes, not in the command's own process
        executors = {r["scraps"]["executor_pid"] for r in summary["runs"]}
        assert len(executors) == 2 and proc.pid not in executors
        store = Store(store_path)
        assert _indexed_ids(store_path) == set(store.run_ids())  # every worker's commit indexed
        assert store.verify() == []
        assert list((store_path / STAGING).iterdir()) == []


# -- sweeps through the command -----------------------------------------------------------


def test_summary_table_is_printed_with_parameters_and_scraps(tmp_path, cli):
    result = cli("sweep", CPU, "--grid", "seed=7,8", "-p", "cpu_seconds", "0.05", "--workers", "1",
                 "--scrap", "samples", "--store", str(tmp_path / "store"), "--quiet")
    assert result.returncode == 0, result.stderr
    header = next(ln for ln in result.stdout.splitlines() if "seed" in ln)
    assert "samples" in header and "pi_estimate" not in header  # --scrap chooses the columns
    rows = [ln for ln in result.stdout.splitlines() if "cpu-work" in ln]
    assert len(rows) == 2 and all("succeeded" in r for r in rows)
    assert "2 runs: 2 succeeded, 0 failed" in result.stdout
    assert result.stderr == ""  # --quiet


@pytest.mark.parametrize(
    "args, message",
    [
        (["--grid", "seed=1,two"], "parameter 'seed' must be int"),
        (["--grid", "sede=1,2"], "unknown parameter 'sede'"),
        (["--over", "nothing/*.csv"], "--over 'nothing/*.csv' matches no file"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give --workers or --scheduler, not both"),
        (["--grid", "seed"], "--grid 'seed' must be NAME=V1,V2,..."),
        (["--over-param", "data"], "--over-param needs --over"),
        (["--kernel", "no-such-kernel", "--workers", "1"], "no Jupyter kernel named 'no-such-kernel' (installed: "),
        (["--store", "s3://bucket/runs"], "is a team store and needs its database: set MLNB_DATABASE="),
    ],
)
def test_bad_usage_exits_2_and_runs_nothing(tmp_path, cli, args, message):
    result = cli("sweep", CPU, "--store", str(tmp_path / "store"), *args, cwd=tmp_path,
                 env={"MLNB_DATABASE": None})  # args win
    assert not list(tmp_path.glob("s3*"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


# -- an existing Dask cluster: real dask scheduler and dask worker processes --------------


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers (no nanny) on 127.0.0.1."""
    base = tmp_path_factory.mktemp("dask")
    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = base / "scheduler.json"
    procs = []

    def start(*args):
        procs.append(subprocess.Popen([dask, *args], cwd=base, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return procs[-1]

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(scheduler_file))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler_file.exists(), "the scheduler did not start"
        workers = [
            start("worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-nanny",
                  "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(base / f"w{i}"))
            for i in range(2)
        ]
        address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)  # tests count on both workers being there
        yield address, scheduler_file, {w.pid for w in workers}
    finally:
        # the workers first, while their scheduler is there to see them leave: a worker whose
        # scheduler went first waits for it before it exits
        workers_then_scheduler = [procs[1:], procs[:1]]
        for group in workers_then_scheduler:
            for proc in group:
                proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def test_sweep_on_an_existing_dask_cluster(tmp_path, cli, dask_cluster):
    address, _, worker_pids = dask_cluster
    store_path = tmp_path / "store"
    result = cli("sweep", CPU, "--grid", "seed=1,2,3", "-p", "cpu_seconds", "0.2", "--scheduler", address,
                 "--store", str(store_path), "--json")
    assert result.returncode == 0, result.stderr
    out = _sweep_json(result)
    assert out["n_runs"] == 3 and out["n_failed"] == 0
    # each record was executed and committed by a dask worker process
    assert {r["scraps"]["executor_pid"] for r in out["runs"]} <= worker_pids
    store = Store(store_path)
    assert {r["id"] for r in store.list_runs(parent=out["sweep"])} == {r["run_id"] for r in out["runs"]}
    assert store.get(out["sweep"]).scrap("n_runs") == 3
    assert store.verify() == []


def test_workers_that_cannot_use_the_store_are_named_before_anything_runs(tmp_path, dask_cluster):
    _, scheduler_file, _ = dask_cluster
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the workers would need a directory")
    plan = parallel.plan_sweep(load_template(CPU), Store(blocked / "store"), grid=["seed=1,2"])
    with parallel.DaskBackend(scheduler=str(scheduler_file)) as backend:  # a scheduler file works too
        with pytest.raises(parallel.BackendError, match="workers cannot run this sweep") as info:
            parallel.check_workers(plan, backend)
    assert str(info.value).count("cannot create store") == 2  # one per worker, each named
    assert str(info.value).count("tcp://127.0.0.1:") == 2


def test_worker_problems_name_what_differs_from_the_client(tmp_path):
    from mlnb import records

    template = tmp_path / "t.ipynb"
    template.write_text("{}")
    sha = records.sha256_file(template)
    assert parallel.worker_problems(str(template), sha, str(tmp_path / "store"), _mlnb_version()) == []
    problems = parallel.worker_problems(str(template), "0" * 64, str(template / "store"), "0.0.0")
    assert problems[0] == f"mlnb {_mlnb_version()} (the client has 0.0.0)"
    assert "differs from the client's" in problems[1]
    assert "cannot create store" in problems[2]
    assert parallel.worker_problems(str(tmp_path / "gone.ipynb"), sha, str(tmp_path), _mlnb_version()) == [
        f"template {str(tmp_path / 'gone.ipynb')!r} is not there"]


def _mlnb_version() -> str:
    from importlib import metadata

    return metadata.version("mlnb")


def test_unreachable_scheduler_is_a_one_line_error(tmp_path, cli):
    result = cli("sweep", CPU, "--grid", "seed=1", "--scheduler", "tcp://127.0.0.1:9",
                 "--store", str(tmp_path / "store"), env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert result.returncode == 2, result.stderr
    assert "cannot connect to the Dask scheduler 'tcp://127.0.0.1:9'" in result.stderr
    assert "Traceback" not in result.stderr


# -- a shared store under concurrent commits -----------------------------------------------


COMMITTER = textwrap.dedent("""
    import os, shutil, sys, time
    from pathlib import Path
    from mlnb import records
    from mlnb.store import Store, new_run_id

    store, template_run, go = Store(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    original = records.read_record(template_run)
    run_id = new_run_id("commit")
    with store.staging(run_id) as staged:
        for name in (records.NOTEBOOK_FILE, records.HTML_FILE):
            shutil.copyfile(template_run / name, staged / name)
        record = {k: v for k, v in original.items() if k not in ("digest", "field_sha256")}
        record.update(id=run_id, artifacts=[], scraps={"pid": os.getpid()})
        record["files"] = {n: records.fingerprint(staged / n) for n in (records.NOTEBOOK_FILE, records.HTML_FILE)}
        while not go.exists():  # every process commits at the same moment
            time.sleep(0.001)
        store.commit(staged, records.seal(record))
    print(run_id)
""")


def test_eight_concurrent_commits_all_land_in_the_store_and_the_index(tmp_path, echo_run, cli):
    store_path, go = tmp_path / "store", tmp_path / "go"
    script = tmp_path / "commit.py"
    script.write_text(COMMITTER)
    procs = [subprocess.Popen([sys.executable, str(script), str(store_path), str(echo_run.path), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((store_path / STAGING).glob("*/notebook.html"))) < 8:
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outs
    ids = {out.strip() for out, _ in outs}
    assert len(ids) == 8
    assert set(Store(store_path).run_ids()) == ids
    assert _indexed_ids(store_path) == ids  # written by the commits themselves, none lost
    verify = cli("runs", "verify", "--store", str(store_path))
    assert verify.returncode == 0 and "8 runs checked, 8 intact" in verify.stdout
    assert list((store_path / STAGING).iterdir()) == []

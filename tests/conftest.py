"""Shared fixtures: fixture notebooks, stores, and the mlnb command as a user runs it."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


@pytest.fixture(scope="session")
def notebooks() -> Path:
    return NOTEBOOKS


@pytest.fixture
def store(tmp_path):
    from mlnb.store import Store

    return Store(tmp_path / "store")


def run_cli(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``mlnb ARGS`` in a fresh process, as a user would, with no standard input
    (``env`` adds variables; a None value removes one)."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLNB_STORE"}
    full_env.update(env or {})
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "mlnb", *args],
        cwd=cwd or ROOT,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def default_signals() -> None:
    """``preexec_fn`` for a child that a test interrupts: SIGINT and SIGTERM act as they do
    under a terminal, whatever the test runner inherited (a background job of a
    non-interactive shell starts with SIGINT ignored, and a child would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def echo_run(tmp_path_factory):
    """One executed run of tests/notebooks/echo.ipynb, shared read-only by many tests."""
    from mlnb.execute import run_template

    base = tmp_path_factory.mktemp("echo")
    data = base / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    run = run_template(NOTEBOOKS / "echo.ipynb", {"n": 5, "data": str(data)}, base / "store")
    assert run.succeeded, run.record["error"]
    return run


@pytest.fixture
def run_copy(echo_run, tmp_path):
    """A private, writable copy of the shared run in a store of its own (for tampering)."""
    from mlnb.store import Store

    target = tmp_path / "store" / echo_run.id
    shutil.copytree(echo_run.path, target)
    for dirpath, _, files in os.walk(target):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return Store(tmp_path / "store").get(echo_run.id)


# -- three training runs, shared by the registry suites of both stores ---------------------------

TRAIN_DATA = ROOT / "data/reference.csv"


def _train_three(path) -> dict[str, str]:
    from mlnb.execute import run_template

    runs = {
        "hgb": run_template("train", {"data": str(TRAIN_DATA), "hyperparameters": {"max_iter": 30}}, path),
        "logreg": run_template("train", {"data": str(TRAIN_DATA), "estimator": "sklearn.linear_model.LogisticRegression",
                                         "features": ["precipitation", "temp_max", "temp_min", "wind"], "seed": 1}, path),
        "temp": run_template("train", {"data": str(TRAIN_DATA), "target": "temp_max", "hyperparameters": {"max_iter": 30},
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

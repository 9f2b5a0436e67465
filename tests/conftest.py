"""Shared fixtures: fixture notebooks, stores, and the mlnb command as a user runs it."""

from __future__ import annotations

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
    """Run ``mlnb ARGS`` in a fresh process, as a user would, with no standard input."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLNB_STORE"}
    full_env.update(env or {})
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

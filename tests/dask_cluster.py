"""A real Dask cluster for tests and benchmarks: ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1, each worker in a directory of its own.

Each worker runs in its own working directory with its own ``HOME``, ``TMPDIR`` and
``MLNB_CACHE_DIR`` under it, and an environment made from scratch: the client's mlnb and
object-store settings are not inherited, only what the caller gives each worker. So a
worker shares no directory with the client and sees none of its relative paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .servers import _free_port

DASK = str(Path(sys.executable).parent / "dask")
START_TIMEOUT_S = 60
#: what a worker inherits from the caller's environment: nothing of mlnb, the object store or Dask
_PRIVATE = ("MLNB_", "AWS_", "DASK_")


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class Cluster:
    """A running scheduler and its workers; ``workers`` maps each worker's address to its pid."""

    address: str
    scheduler_file: Path
    workers: dict[str, int]
    directories: dict[str, Path]
    procs: list[subprocess.Popen] = field(repr=False, default_factory=list)


def worker_environment(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """A worker's environment: the caller's minus mlnb's, the object store's and Dask's
    settings, with its own HOME, TMPDIR and mlnb cache under ``home``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE)}
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), MLNB_CACHE_DIR=str(home / "cache"))
    env.update(extra)
    return env


@contextlib.contextmanager
def dask_cluster(base: Path, worker_envs: list[dict[str, str]], dask_env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Start a scheduler and one single-threaded worker (no nanny) per entry of
    ``worker_envs`` (its extra environment), each in ``base/worker-<i>``; stop them all at
    the end, the workers first (a worker whose scheduler went first waits for it)."""
    base.mkdir(parents=True, exist_ok=True)
    scheduler_file = base / "scheduler.json"
    procs: list[subprocess.Popen] = []
    common = {k: v for k, v in (dask_env or {}).items()}

    def start(args, cwd: Path, env: dict) -> subprocess.Popen:
        log = open(cwd / "dask.log", "wb")
        try:
            procs.append(subprocess.Popen([DASK, *args], cwd=cwd, env={**env, **common}, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=log, start_new_session=True,
                                          preexec_fn=_default_signals))
        finally:
            log.close()
        return procs[-1]

    try:
        scheduler_dir = base / "scheduler"
        scheduler_dir.mkdir(exist_ok=True)
        start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
               "--scheduler-file", str(scheduler_file)], scheduler_dir, worker_environment(scheduler_dir, {}))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler_file.exists(), "the scheduler did not start"
        address = json.loads(scheduler_file.read_text())["address"]
        workers, directories = {}, {}
        for i, extra in enumerate(worker_envs):
            home = base / f"worker-{i}"
            home.mkdir(exist_ok=True)
            port = _free_port()
            proc = start(["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                          "--worker-port", str(port), "--local-directory", str(home / "dask")],
                         home, worker_environment(home, extra))
            workers[f"tcp://127.0.0.1:{port}"] = proc.pid
            directories[f"tcp://127.0.0.1:{port}"] = home
        from distributed import Client

        with Client(address, timeout=START_TIMEOUT_S) as client:
            client.wait_for_workers(len(worker_envs), timeout=START_TIMEOUT_S)
        yield Cluster(address, scheduler_file, workers, directories, procs)
    finally:
        for group in (procs[1:], procs[:1]):
            for proc in group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)  # the worker and the kernels it started
            for proc in group:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

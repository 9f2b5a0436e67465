"""A fresh example project for each exploration notebook in this directory.

Each notebook calls :func:`fresh_project` in its first cell and works in its own new
directory ``scratch/<name>-<random>/`` next to the notebooks (under the directory JupyterLab
serves, so links to a run's notebook.html open in JupyterLab). A notebook's kernel holds
a lock on its directory while it lives; the next call removes the directories whose
kernels are gone, so concurrent executions (pytest -n 2, two sessions) never collide.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

SCRATCH = Path(__file__).resolve().parent / "scratch"
_held = []  # lock files of this kernel's projects: held open until the kernel exits


def _writable(root: Path) -> None:
    # run records are read-only; make them removable
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o755)


def _remove_stale(name: str) -> None:
    for lock_path in SCRATCH.glob(f"{name}-*.lock"):
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live kernel still uses it
            project = lock_path.with_suffix("")
            if project.is_dir():
                _writable(project)
                shutil.rmtree(project)
            lock_path.unlink()
    for project in SCRATCH.glob(f"{name}-*"):
        # a directory without a lock file is being created, or was left by a crash
        if project.is_dir() and not project.with_suffix(".lock").exists() and time.time() - project.stat().st_mtime > 600:
            _writable(project)
            shutil.rmtree(project)


def fresh_project(name: str) -> Path:
    """A new example project (``mlnb init``): mlnb.yaml, data/, templates/, an empty runs/.

    Returns its absolute path.
    """
    from mlnb.project import init_project

    SCRATCH.mkdir(exist_ok=True)
    _remove_stale(name)
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=SCRATCH))
    lock = open(root.with_suffix(".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held.append(lock)
    init_project(root)
    return root

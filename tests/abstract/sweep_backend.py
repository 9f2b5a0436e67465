"""What every sweep backend must do, whichever process runs the notebooks.

:class:`AbstractSweepBackendTests` is subclassed once per backend (``tests/test_parallel.py``)
with two fixtures: ``backend``, a ready :class:`mlnb.parallel.Backend` for the library calls,
and ``workers``, the ``--workers`` value that makes ``mlnb sweep`` choose that backend.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest

from mlnb import parallel
from mlnb.params import load_template
from mlnb.store import STAGING, Store

from ..conftest import NOTEBOOKS, ROOT, default_signals

CPU = str(NOTEBOOKS / "cpu_work.ipynb")


class AbstractSweepBackendTests:
    """Rows in grid order whatever order the runs finish in, one point that cannot run
    counted without stopping the others, Ctrl-C leaving no partial run: on every backend."""

    @pytest.fixture
    def backend(self) -> parallel.Backend:
        raise NotImplementedError("a backend's test class gives its backend")

    @pytest.fixture
    def workers(self) -> str:
        raise NotImplementedError("a backend's test class gives the --workers value that chooses it")

    def test_a_run_that_cannot_start_is_counted_and_does_not_stop_the_others(self, tmp_path, notebooks, backend):
        plan = parallel.plan_sweep(load_template(notebooks / "trivial.ipynb"), Store(tmp_path / "store"),
                                   grid=["x=1,2"])
        plan.tasks[0] = dataclasses.replace(plan.tasks[0], template=str(tmp_path / "vanished.ipynb"))
        seen = []

        class Observer(parallel.SweepObserver):
            def run_done(self, row, done, total, failed):
                seen.append((done, total, failed))

        result = parallel.run_sweep(plan, backend, Observer())
        assert [r["status"] for r in result.rows] == ["error", "succeeded"]
        assert result.rows[0]["run_id"] is None and "TemplateNotFound" in result.rows[0]["error"]
        assert result.rows[1]["scraps"] == {"answer": 4}
        assert result.n_failed == 1 and seen == [(1, 2, 1), (2, 2, 1)]  # done, total, failed

    def test_ctrl_c_cancels_pending_runs_and_leaves_no_partial_run(self, tmp_path, workers):
        store_path = tmp_path / "store"
        # a terminal sends SIGINT to the whole foreground process group: do the same
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlnb", "sweep", CPU, "--grid", "seed=1,2,3,4,5,6", "-p", "cpu_seconds", "30",
             "--workers", workers, "--store", str(store_path)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=default_signals,
        )
        staged = lambda: list((store_path / STAGING).glob("*/notebook.ipynb")) if (store_path / STAGING).is_dir() else []  # noqa: E731
        deadline = time.monotonic() + 120
        while not staged() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert staged(), "no run started"
        time.sleep(1.0)  # inside the working cell
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("mlnb: sweep ")
        assert "interrupted: 0 of 6 runs recorded" in err
        assert Store(store_path).run_ids() == []  # no summary, no half run
        assert list((store_path / STAGING).iterdir()) == []

"""Sweeps: many independent runs of one template, on one machine or a Dask cluster.

A sweep is planned, checked and only then executed. :func:`plan_sweep` (``plan``) expands
the grid and the backfill into one checked task per run, so a bad name or value stops the
sweep before anything runs. :func:`run_sweep` (``running``) hands one task per run to a
:class:`Backend` (``backends``); each task calls ``run_template`` where it executes
(``worker``), so the record is committed by the process that ran it, straight into the
store, and only a small summary (run id, status, selected scraps) travels back. On a
remote cluster into a team store, each task carries the template and its input files as
content (``shipping``), so the workers need no shared file system.
:func:`record_summary` (``summary``) records the sweep itself as a run of the shipped
``sweep`` template, whose run id is the sweep id that every run of the sweep names as its
``parent``.

Backends: :class:`SequentialBackend` runs in this process, one run after the other;
:class:`DaskBackend` submits to a Dask ``LocalCluster`` it starts, or to an existing
scheduler. :func:`make_backend` is the one place that chooses.
"""

from mlnb.exceptions import BackendError, SweepInterrupted
from mlnb.parallel.backends import (
    LOCAL_CLUSTER_CONFIG,
    Backend,
    DaskBackend,
    SequentialBackend,
    available_cores,
    make_backend,
)
from mlnb.parallel.plan import (
    OVER_PARAMS,
    RunTask,
    SweepPlan,
    backfill_files,
    over_parameter,
    parse_grid,
    plan_sweep,
    split_values,
)
from mlnb.parallel.running import STATUSES, SweepObserver, SweepResult, execute_sweep, run_sweep
from mlnb.parallel.summary import (
    SUMMARY_TEMPLATE,
    record_summary,
    scrap_columns,
    summary_parameters,
    summary_table,
    summary_template,
)
from mlnb.parallel.worker import check_workers, execute_task, summarize_run, worker_problems

__all__ = [
    "BackendError", "SweepInterrupted",
    "LOCAL_CLUSTER_CONFIG", "Backend", "DaskBackend", "SequentialBackend", "available_cores", "make_backend",
    "OVER_PARAMS", "RunTask", "SweepPlan", "backfill_files", "over_parameter", "parse_grid", "plan_sweep",
    "split_values",
    "STATUSES", "SweepObserver", "SweepResult", "execute_sweep", "run_sweep",
    "SUMMARY_TEMPLATE", "record_summary", "scrap_columns", "summary_parameters", "summary_table", "summary_template",
    "check_workers", "execute_task", "summarize_run", "worker_problems",
]

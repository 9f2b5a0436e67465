"""Running a planned sweep: check the workers, execute every task, report, record, stop.

:func:`run_sweep` checks the workers and hands one task per run to a backend; failed runs
do not stop the others, and a :class:`SweepObserver` is told of each. :func:`execute_sweep`
adds the summary record and the release of the backend, and turns Ctrl-C into
:class:`mlnb.exceptions.SweepInterrupted` naming the runs that were committed.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from mlnb.exceptions import SweepInterrupted
from mlnb.parallel.backends import Backend, SequentialBackend
from mlnb.parallel.plan import RunTask, SweepPlan
from mlnb.parallel.summary import record_summary
from mlnb.parallel.worker import check_workers, execute_task

#: Run statuses in a sweep's summary: the two of a record, and ``error`` for a run that
#: could not be executed or committed at all (no record exists; the message says why).
STATUSES = ("succeeded", "failed", "error")


@dataclass
class SweepResult:
    """What a sweep did: one row per run in grid order, and the summary record."""

    plan: SweepPlan
    rows: list[dict]
    summary_run: Any = None

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(r["status"] == s for r in self.rows) for s in STATUSES}

    @property
    def n_failed(self) -> int:
        """Runs that failed, with a record (``failed``) or without one (``error``)."""
        return sum(r["status"] != "succeeded" for r in self.rows)


def _row(task: RunTask, plan: SweepPlan, result: Any) -> dict:
    params = {name: task.parameters.get(name) for name in plan.varying}
    if isinstance(result, BaseException):
        message = str(result).strip().splitlines()[0] if str(result).strip() else ""
        return {
            "index": task.index, "run_id": None, "status": "error", "parameters": params, "scraps": {},
            "error": f"{type(result).__name__}: {message}".rstrip(": "), "duration_s": None,
        }
    return {**result, "index": task.index, "parameters": params}



class SweepObserver:
    """What a sweep reports while it runs; override what you show (a progress bar...)."""

    def started(self, plan: SweepPlan, backend: Backend) -> None:
        """Every check passed; the runs are about to be submitted."""

    def run_done(self, row: dict, done: int, total: int, failed: int) -> None:
        """A run finished (``row`` as in :attr:`SweepResult.rows`); ``failed`` so far."""

    def interrupted(self) -> None:
        """Ctrl-C arrived; cancelling and shutting down follow."""


def run_sweep(plan: SweepPlan, backend: Backend, observer: SweepObserver | None = None) -> SweepResult:
    """Check the workers, then execute every task; failed runs do not stop the others.

    Returns:
        The rows in grid order (``index``, ``run_id``, ``status``, ``parameters`` — the
        varying ones —, ``scraps``, ``error``, ``duration_s``).

    Raises:
        BackendError: before anything runs, see :func:`check_workers`.
        KeyboardInterrupt: after cancelling the runs that had not started.
    """
    from mlnb.parallel import shipping

    observer = observer or SweepObserver()
    check_workers(plan, backend)
    plan.store.ensure_writable()
    with contextlib.ExitStack() as stack:
        tasks = plan.tasks
        if shipping.needed(plan.store, backend):  # the workers see none of this host's files
            shipper = stack.enter_context(shipping.Shipper(plan.store, plan.sweep_id))
            tasks = [shipper.ship(task, plan.template, plan.resolved[task.index]) for task in tasks]
        observer.started(plan, backend)
        rows: dict[int, dict] = {}
        failed = 0
        for task, result in backend.map(execute_task, tasks):
            row = _row(plan.tasks[task.index], plan, result)  # the parameters as given, not as shipped
            rows[task.index] = row
            failed += row["status"] != "succeeded"
            observer.run_done(row, len(rows), len(plan.tasks), failed)
    return SweepResult(plan=plan, rows=[rows[i] for i in sorted(rows)])


def execute_sweep(
    plan: SweepPlan,
    backend: Backend,
    observer: SweepObserver | None = None,
    record: bool = True,
) -> SweepResult:
    """Run a planned sweep on a backend, record its summary, and release the backend.

    On Ctrl-C (or SIGTERM, see :func:`sigterm_as_interrupt`) the runs that had not started
    are cancelled, the backend is closed, and the staging directories its killed workers
    left on this host are removed; runs already committed stay.

    Args:
        observer: told when the sweep starts, after each run, and on Ctrl-C.
        record: record the summary (a run of the ``sweep`` template).

    Raises:
        SweepInterrupted: on Ctrl-C, with the ids of the runs that were committed.
    """
    observer = observer or SweepObserver()
    # A local cluster's workers sit idle while the summary is recorded, and stopping them
    # takes a second or more: this process records the summary instead, while they stop.
    # It imports what that needs during the sweep, when it has nothing else to do.
    summary_here = record and backend.on_this_host and not backend.in_process
    try:
        with backend:
            try:
                try:
                    result = run_sweep(plan, backend, _Preparing(observer) if summary_here else observer)
                    if summary_here:
                        stopping = threading.Thread(target=backend.close, name="mlnb-stop-workers")
                        stopping.start()
                        try:
                            record_summary(result, SequentialBackend())
                        finally:
                            stopping.join()
                    elif record:  # in this process: the summary's kernel comes from the runs' fork server
                        record_summary(result, backend)
                finally:
                    if backend.in_process:  # its kernels, and the one started ahead for a run that will not come
                        from mlnb.kernels import close_process_pool

                        close_process_pool()
                # every worker indexed its own commit; an index write that failed there
                # (suppressed: the record is what counts) is made good here
                if plan.store.has_database():
                    plan.store.sync_index()
            except KeyboardInterrupt:
                observer.interrupted()
                raise
    except KeyboardInterrupt as exc:
        # workers stopped mid-run leave a staging directory; on this host their pids are
        # gone now, so the store can tell their debris from live runs
        plan.store.clean_stale()
        # a run may have committed between Ctrl-C and its worker's end: ask the store
        recorded = [r["id"] for r in plan.store.list_runs(parent=plan.sweep_id)]
        raise SweepInterrupted(f"sweep {plan.sweep_id} interrupted: {len(recorded)} of {len(plan.tasks)} runs "
                               "recorded", recorded) from exc
    return result


class _Preparing(SweepObserver):
    """Passes everything on; once the runs are submitted, imports and warms up in a thread
    what running a notebook in this process needs (not before: imports hold the GIL that
    the local cluster's start-up needs)."""

    def __init__(self, observer: SweepObserver):
        self.observer = observer

    def started(self, plan, backend):
        threading.Thread(target=self._prepare, name="mlnb-prepare", daemon=True).start()
        self.observer.started(plan, backend)

    def run_done(self, row, done, total, failed):
        self.observer.run_done(row, done, total, failed)

    def interrupted(self):
        self.observer.interrupted()

    @staticmethod
    def _prepare() -> None:
        from mlnb import execute

        import papermill  # noqa: F401

        execute.warm_up()

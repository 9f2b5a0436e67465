"""Execution backends: where the runs of a sweep execute.

:class:`Backend` is the interface (``map`` tasks, yield results as they finish; call a
function on every worker). :class:`SequentialBackend` runs in this process, one run after
the other; :class:`DaskBackend` submits to a Dask ``LocalCluster`` it starts, or to an
existing scheduler. :func:`make_backend` is the one place that chooses.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import signal
import threading
from typing import Any, Callable, Iterable, Iterator

from mlnb.exceptions import BackendError, ParameterError


class Backend(abc.ABC):
    """Where the runs of a sweep execute.

    A backend is a context manager: leaving it releases what it started (a cluster, a
    connection), and cancels what has not started yet.
    """

    #: a short description for messages ("sequential", "LocalCluster, 2 workers"...)
    description: str = ""
    #: whether this process runs the tasks itself (its own signals stop a run cleanly)
    in_process: bool = False
    #: whether the tasks run on this host (this process sees the same files and store)
    on_this_host: bool = False

    @abc.abstractmethod
    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """Run ``fn(task)`` for every task; yield ``(task, result)`` as each finishes.

        Results come in completion order. When ``fn`` raises (or its worker dies), the
        exception is yielded in place of the result; KeyboardInterrupt is not caught: it
        cancels the tasks that have not started and propagates.
        """

    @abc.abstractmethod
    def on_every_worker(self, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """Call ``fn(*args)`` once on every worker; return ``{worker: result}``."""

    def close(self) -> None:  # noqa: B027  (most backends hold nothing)
        """Release what the backend started."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class SequentialBackend(Backend):
    """Runs every task in this process, one after the other (``--workers 1``)."""

    description = "sequential, in this process"
    in_process = True
    on_this_host = True

    def map(self, fn, tasks):
        for task in tasks:
            try:
                result = fn(task)
            except KeyboardInterrupt:  # mlnb's Interrupted is both an Exception and this: stop
                raise
            except Exception as exc:  # the run's own failure is data for the summary
                result = exc
            yield task, result

    def on_every_worker(self, fn, *args):
        return {"local": fn(*args)}


#: Dask settings for the LocalCluster mlnb starts. Its tasks are few, long and alike, and
#: its workers share the machine with the kernels: Dask's 20 ms event-loop tick, 0.5 s
#: system monitor, 0.1 s memory monitor and work stealing cost CPU that the notebooks need
#: (measured: the scheduler and client used 5x less CPU per run with these).
LOCAL_CLUSTER_CONFIG = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.admin.system-monitor.host-cpu": False,
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}


class DaskBackend(Backend):
    """Runs tasks on Dask workers: a LocalCluster it starts, or an existing scheduler.

    The local cluster has ``n_workers`` processes with one thread each, so a worker runs
    one notebook at a time and imports mlnb once, for all its runs.

    Args:
        scheduler: the address of a running scheduler (``tcp://HOST:PORT``), or a
            scheduler file (JSON written by ``dask scheduler --scheduler-file``); None
            starts a LocalCluster.
        n_workers: workers of the LocalCluster (default: the machine's cores).
        connect_timeout: seconds to wait for the scheduler and its first worker (default:
            Dask's ``distributed.comm.timeouts.connect``, 30 s unless configured).
    """

    def __init__(self, scheduler: str | None = None, n_workers: int | None = None,
                 connect_timeout: float | None = None):
        self.scheduler = scheduler
        self.n_workers = n_workers or available_cores()
        self.connect_timeout = connect_timeout
        self.client = None
        self.cluster = None
        self.on_this_host = scheduler is None
        self.description = f"Dask scheduler {scheduler}" if scheduler else f"Dask LocalCluster, {self.n_workers} workers"

    def __enter__(self) -> "DaskBackend":
        self.start()
        return self

    def start(self) -> None:
        """Start the LocalCluster or connect to the scheduler (idempotent)."""
        if self.client is not None:
            return
        try:
            import dask
            import distributed
        except ImportError as exc:  # pragma: no cover - a dependency of mlnb
            raise BackendError("sweeps on Dask need distributed: pip install 'dask[distributed]'") from exc
        # Dask reports worker start-up and shutdown at INFO/WARNING; a sweep reports its runs
        for name in ("distributed", "distributed.worker", "distributed.nanny", "distributed.scheduler"):
            logging.getLogger(name).setLevel(logging.ERROR)
        if self.scheduler:
            from dask.config import get as config
            from dask.utils import parse_timedelta

            timeout = self.connect_timeout or parse_timedelta(config("distributed.comm.timeouts.connect"))
            kwargs = {"scheduler_file": self.scheduler} if os.path.isfile(self.scheduler) else {"address": self.scheduler}
            try:
                self.client = distributed.Client(timeout=timeout, **kwargs)
            except (OSError, TimeoutError, ValueError) as exc:
                raise BackendError(f"cannot connect to the Dask scheduler {self.scheduler!r}: {exc}") from exc
            if not self.client.scheduler_info().get("workers"):
                try:
                    self.client.wait_for_workers(1, timeout=timeout)
                except TimeoutError as exc:
                    self.close()
                    raise BackendError(f"the Dask scheduler {self.scheduler!r} has no workers") from exc
        else:
            # Ctrl-C reaches every process of the terminal's group: the workers must leave it
            # to this process, which cancels the sweep and then stops them
            with _workers_ignore_sigint(), dask.config.set(LOCAL_CLUSTER_CONFIG):
                self.cluster = distributed.LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    # a worker losing its scheduler while a sweep is cancelled logs an ERROR
                    # with a traceback; failed runs are in their records, so keep stderr clean
                    silence_logs=logging.CRITICAL,
                )
            self.client = distributed.Client(self.cluster)

    def map(self, fn, tasks):
        from distributed import as_completed

        self.start()
        tasks = list(tasks)
        # pure=False: two runs with equal parameters are still two runs
        futures = {self.client.submit(fn, task, pure=False, retries=0): task for task in tasks}
        try:
            for future in as_completed(futures):
                task = futures.pop(future)
                if future.status == "finished":
                    yield task, future.result()
                else:
                    yield task, future.exception() or RuntimeError(f"task {future.status}")
        except BaseException:  # Ctrl-C, or the caller stopped iterating
            self.client.cancel(list(futures))
            raise

    def on_every_worker(self, fn, *args):
        self.start()
        return self.client.run(fn, *args)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


@contextlib.contextmanager
def _workers_ignore_sigint():
    """Ignore SIGINT while worker processes are spawned: they inherit it (exec keeps an
    ignored signal ignored, and Python then installs no KeyboardInterrupt handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def available_cores() -> int:
    """The cores this process may use (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def make_backend(workers: int | None = None, scheduler: str | None = None, n_tasks: int | None = None) -> Backend:
    """Choose the backend: ``--scheduler`` → that cluster; one worker → sequential;
    else a LocalCluster of ``workers`` (default: the cores), never more than the runs.
    """
    if scheduler:
        if workers is not None:
            raise ParameterError("give `workers` or `scheduler`, not both (the cluster has its own workers)",
                                 parameters=("workers", "scheduler"))
        return DaskBackend(scheduler=scheduler)
    n = workers if workers is not None else available_cores()
    if n_tasks is not None:
        n = min(n, max(n_tasks, 1))
    return SequentialBackend() if n <= 1 else DaskBackend(n_workers=n)

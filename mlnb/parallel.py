"""Sweeps: many independent runs of one template, on one machine or a Dask cluster.

A sweep is planned, checked and only then executed. :func:`plan_sweep` expands the cross
product of ``--grid`` values (and, for a backfill, one run per data file matched by
``--over``), parses every value against the template's parameter types and checks every
point exactly as :func:`mlnb.execute.run_template` would, so a bad name or value stops the
sweep before anything runs. :func:`run_sweep` hands one task per run to a
:class:`Backend`; each task calls ``run_template`` where it executes, so the record is
committed by the process that ran it, straight into the shared store, and only a small
summary (run id, status, selected scraps) travels back. :func:`record_summary` records
the sweep itself as a run of the shipped ``sweep`` template, whose run id is the sweep id
that every run of the sweep names as its ``parent``.

Backends: :class:`SequentialBackend` runs in this process, one run after the other;
:class:`DaskBackend` submits to a Dask ``LocalCluster`` it starts, or to an existing
scheduler. :func:`make_backend` is the one place that chooses.
"""

from __future__ import annotations

import abc
import contextlib
import glob as globlib
import itertools
import json
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from mlnb import records
from mlnb.exceptions import BackendError, DataError, MlnbError, ParameterError, SweepInterrupted
from mlnb.store import Store, new_run_id

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.params import Template

#: Parameters a backfill (``--over``) sets when ``--over-param`` is not given, in order.
OVER_PARAMS = ("data", "current")
#: The shipped template that records a sweep's summary.
SUMMARY_TEMPLATE = "sweep.ipynb"
#: Run statuses in a sweep's summary: the two of a record, and ``error`` for a run that
#: could not be executed or committed at all (no record exists; the message says why).
STATUSES = ("succeeded", "failed", "error")


# -- plan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep, as sent to a worker: everything is absolute and picklable."""

    sweep_id: str
    index: int
    template: str
    template_name: str
    parameters: dict[str, Any]
    store: str
    kernel_name: str | None = None
    timeout: float | None = None
    scraps: tuple[str, ...] | None = None
    run_id: str | None = None
    parent: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    paths_relative_to: str | None = None


@dataclass
class SweepPlan:
    """A checked sweep: its id, the template, and one task per run in grid order.

    Attributes:
        varying: the parameters that differ between runs (grid names, then the backfill
            parameter), the columns of the summary table.
        grid: every varying parameter's values, in order.
        fixed: the ``-p`` values common to every run.
    """

    sweep_id: str
    template: "Template"
    store: Store
    tasks: list[RunTask]
    varying: list[str]
    grid: dict[str, list[Any]]
    fixed: dict[str, Any]


def split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` on top-level commas: brackets, braces and quotes protect commas.

    ``1,2`` → ``["1", "2"]``; ``[1,2],[3]`` → ``["[1,2]", "[3]"]``; ``"a,b",c`` →
    ``['"a,b"', "c"]``. Surrounding spaces are dropped.

    Raises:
        ParameterError: unbalanced brackets or quotes.
    """
    items, depth, quote, start, escaped = [], 0, None, 0, False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth < 0:
                raise ParameterError(f"unbalanced {ch!r} in {text!r}")
        elif ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    if quote or depth:
        raise ParameterError(f"unbalanced {'quote' if quote else 'bracket'} in {text!r}")
    items.append(text[start:].strip())
    return items


def parse_grid(spec: str, template: "Template") -> tuple[str, list[Any]]:
    """Parse one ``--grid NAME=V1,V2,...`` against the template's parameter types.

    Values are parsed like ``-p`` values (:func:`mlnb.params.parse_cli_value`); a ``str``
    parameter takes each item as text, and a double-quoted item as the JSON string inside
    (so ``name="a,b",c`` gives ``a,b`` and ``c``).

    Raises:
        ParameterError: no ``=``, an empty value list, or an empty value.
    """
    from mlnb.params import parse_cli_value

    name, sep, rest = spec.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParameterError(f"--grid {spec!r} must be NAME=V1,V2,... (for example seed=1,2,3)")
    items = split_values(rest)
    if not any(items):
        raise ParameterError(f"--grid {spec!r} gives no values; write {name}=V1,V2,...", name)
    if any(item == "" for item in items):
        raise ParameterError(f"--grid {spec!r} has an empty value (two commas in a row?)", name)
    param = template.parameters.get(name)
    values = []
    for item in items:
        if param is not None and param.type == "str" and len(item) >= 2 and item[0] == item[-1] == '"':
            try:
                values.append(json.loads(item))
                continue
            except ValueError:
                pass
        values.append(parse_cli_value(item, param))
    return name, values


def backfill_files(pattern: str, base: str | os.PathLike | None = None) -> list[str]:
    """The files a ``--over`` glob matches (``**`` recurses), absolute and sorted.

    Raises:
        DataError: the pattern matches no file.
    """
    base = Path(base or Path.cwd())
    full = pattern if os.path.isabs(os.path.expanduser(pattern)) else str(base / pattern)
    matches = sorted(
        str(Path(p).resolve()) for p in globlib.glob(os.path.expanduser(full), recursive=True) if os.path.isfile(p)
    )
    if not matches:
        raise DataError(f"--over {pattern!r} matches no file (relative to {str(base)!r})")
    return matches


def over_parameter(template: "Template", name: str | None) -> str:
    """The parameter a backfill sets: ``name``, else the template's ``data`` or ``current``.

    Raises:
        ParameterError: the template has no such parameter.
    """
    if name is not None:
        if name not in template.parameters:
            valid = ", ".join(template.parameters) or "none"
            raise ParameterError(
                f"--over-param {name!r} is not a parameter of template {template.name!r}; valid: {valid}", name
            )
        return name
    for candidate in OVER_PARAMS:
        if candidate in template.parameters:
            return candidate
    raise ParameterError(
        f"template {template.name!r} has no 'data' or 'current' parameter; "
        "name the parameter that takes each file with --over-param NAME"
    )


def plan_sweep(
    template: "Template",
    store: Store,
    *,
    grid: Iterable[str] = (),
    fixed: dict[str, Any] | None = None,
    over: str | None = None,
    over_param: str | None = None,
    kernel_name: str | None = None,
    timeout: float | None = None,
    scraps: Iterable[str] | None = None,
    paths_relative_to: str | os.PathLike | None = None,
) -> SweepPlan:
    """Expand and check a sweep; nothing runs and nothing is written.

    Every point's parameters go through the same checks as a single run (names, types,
    JSON values, declared inputs readable), so a sweep either starts whole or not at all.

    Args:
        template: the loaded template.
        store: where the runs will be recorded (made absolute for the workers).
        grid: ``NAME=V1,V2,...`` specs; the sweep runs their cross product.
        fixed: values common to every run (``-p``), already parsed.
        over: a glob of data files; one run per file (crossed with the grid).
        over_param: the parameter that takes each file (default ``data``, else ``current``).
        kernel_name, timeout: as for :func:`mlnb.execute.run_template`.
        scraps: the scraps each run reports back for the summary (default: every scalar).
        paths_relative_to: base of relative paths in values (default: the working directory).

    Raises:
        ParameterError, DataError, SchemaDefinitionError: a bad spec or a bad point.
    """
    from mlnb.execute import prepare_parameters

    base = Path(paths_relative_to or Path.cwd()).resolve()
    fixed = dict(fixed or {})
    axes: dict[str, list[Any]] = {}
    for spec in grid:
        name, values = parse_grid(spec, template)
        if name in axes:
            raise ParameterError(f"--grid {name!r} is given twice; list every value in one --grid", name)
        if name in fixed:
            raise ParameterError(f"parameter {name!r} is given by both --grid and -p; keep one", name)
        axes[name] = values
    if over is not None:
        name = over_parameter(template, over_param)
        if name in axes or name in fixed:
            raise ParameterError(f"parameter {name!r} is set by --over and by --grid or -p; keep one", name)
        axes[name] = list(backfill_files(over, base))
    elif over_param is not None:
        raise ParameterError("--over-param needs --over PATH_GLOB")

    sweep_id = new_run_id("sweep")
    store_path = str(store.path.resolve())
    tasks = []
    for index, combo in enumerate(itertools.product(*axes.values())):
        overrides = {**fixed, **dict(zip(axes, combo))}
        try:
            prepare_parameters(template, overrides, base, store)  # refuse a bad point before any runs
        except MlnbError as exc:
            point = ", ".join(f"{k}={json.dumps(v)}" for k, v in zip(axes, combo))
            raise type(exc)(f"{exc} (sweep point {index + 1}: {point or 'defaults'})") from exc
        tasks.append(RunTask(
            sweep_id=sweep_id,
            index=index,
            template=str(template.path),
            template_name=template.name,
            parameters=overrides,
            store=store_path,
            kernel_name=kernel_name,
            timeout=timeout,
            scraps=tuple(scraps) if scraps else None,
            parent=sweep_id,
            tags={"sweep": sweep_id, "point": index},
            paths_relative_to=str(base),
        ))
    return SweepPlan(
        sweep_id=sweep_id, template=template, store=Store(store_path), tasks=tasks,
        varying=list(axes), grid=axes, fixed=fixed,
    )


# -- what runs on a worker -------------------------------------------------------------------


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def summarize_run(run, scraps: Iterable[str] | None = None) -> dict:
    """The small summary of a committed run that a worker sends back (pure).

    ``scraps`` names the scraps to include (a table is described, not sent); by default
    every scalar scrap.
    """
    rec = run.record
    values = {}
    for name, value in rec["scraps"].items():
        if scraps is None and not _is_scalar(value):
            continue
        if scraps is not None and name not in scraps:
            continue
        if records.is_table(value):
            value = records.table_text(value)
        values[name] = value
    err = rec.get("error")
    return {
        "run_id": rec["id"],
        "status": rec["status"],
        "scraps": values,
        "error": f"{err['ename']}: {err['evalue']}".strip(": ") if err else None,
        "duration_s": rec["duration_s"],
    }


def execute_task(task: RunTask) -> dict:
    """Run one task with :func:`mlnb.execute.run_template`; return its summary.

    This is the function a backend calls in its workers. The record is committed here, by
    the process that ran the notebook. Errors before a record exists propagate.
    """
    from mlnb.execute import run_template

    run = run_template(
        task.template,
        task.parameters,
        Store(task.store),
        kernel_name=task.kernel_name,
        timeout=task.timeout,
        parent=task.parent,
        tags=task.tags,
        run_id=task.run_id,
        paths_relative_to=task.paths_relative_to,
    )
    return {**summarize_run(run, task.scraps), "index": task.index}


def worker_problems(template: str, sha256: str, store: str, version: str, kernel: str | None = None) -> list[str]:
    """What would stop this worker from running the sweep (run on every worker)."""
    from importlib import metadata

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from mlnb import records

    problems = []
    try:
        found = metadata.version("mlnb")
    except metadata.PackageNotFoundError:
        found = "not installed"
    if found != version:
        problems.append(f"mlnb {found} (the client has {version})")
    if not os.path.isfile(template):
        problems.append(f"template {template!r} is not there")
    elif records.sha256_file(template) != sha256:
        problems.append(f"template {template!r} differs from the client's")
    problem = _store_problem(Path(store))
    if problem:
        problems.append(problem)
    if kernel is not None:
        specs = KernelSpecManager()
        try:
            specs.get_kernel_spec(kernel)
        except NoSuchKernel:
            installed = ", ".join(sorted(specs.find_kernel_specs())) or "none"
            problems.append(f"no Jupyter kernel named {kernel!r} (installed: {installed})")
    return problems


def _store_problem(path: Path) -> str | None:
    """Why runs could not be committed to the store at ``path``, without creating it."""
    from mlnb.exceptions import StoreError

    if path.is_dir():
        try:
            Store(path).ensure_writable()
        except StoreError as exc:
            return str(exc)
        return None
    ancestor = next((p for p in path.parents if p.exists()), None)
    if ancestor is None or not ancestor.is_dir():
        return f"cannot create store {str(path)!r}: {str(ancestor)!r} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot create store {str(path)!r}: {str(ancestor)!r} is not writable"
    return None


# -- backends --------------------------------------------------------------------------------


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
            raise ParameterError("give --workers or --scheduler, not both (the cluster has its own workers)")
        return DaskBackend(scheduler=scheduler)
    n = workers if workers is not None else available_cores()
    if n_tasks is not None:
        n = min(n, max(n_tasks, 1))
    return SequentialBackend() if n <= 1 else DaskBackend(n_workers=n)


# -- running ---------------------------------------------------------------------------------


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


def check_workers(plan: SweepPlan, backend: Backend) -> None:
    """Refuse to start when a worker lacks the template, the store or the kernel, or runs
    another mlnb: every worker is asked, before any run is submitted.

    Raises:
        BackendError: naming each worker and what is wrong there.
    """
    from importlib import metadata

    from mlnb import records

    kernel = plan.tasks[0].kernel_name if plan.tasks else None
    answers = backend.on_every_worker(
        worker_problems, str(plan.template.path), records.sha256_file(plan.template.path),
        str(plan.store.path), metadata.version("mlnb"), kernel or plan.template.kernel_name,
    )
    bad = {worker: problems for worker, problems in answers.items() if problems}
    if bad:
        detail = "; ".join(f"{w}: {', '.join(p)}" for w, p in sorted(bad.items()))
        if backend.in_process:
            raise BackendError(f"cannot run this sweep: {detail.removeprefix('local: ')}")
        raise BackendError(f"workers cannot run this sweep (they need the same mlnb, the kernel and a shared "
                           f"store): {detail}")


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
    observer = observer or SweepObserver()
    check_workers(plan, backend)
    plan.store.ensure_writable()
    observer.started(plan, backend)
    rows: dict[int, dict] = {}
    failed = 0
    for task, result in backend.map(execute_task, plan.tasks):
        row = _row(task, plan, result)
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
                result = run_sweep(plan, backend, _Preparing(observer) if summary_here else observer)
                if summary_here:
                    stopping = threading.Thread(target=backend.close, name="mlnb-stop-workers")
                    stopping.start()
                    try:
                        record_summary(result, SequentialBackend())
                    finally:
                        stopping.join()
                elif record:
                    record_summary(result, backend)
                # every worker indexed its own commit; an index write that failed there
                # (suppressed: the record is what counts) is made good here
                if plan.store.path.is_dir():
                    plan.store.sync_index()
            except KeyboardInterrupt:
                observer.interrupted()
                raise
    except KeyboardInterrupt as exc:
        # workers stopped mid-run leave a staging directory; on this host their pids are
        # gone now, so the store can tell their debris from live runs
        plan.store.clean_stale()
        # a run may have committed between Ctrl-C and its worker's end: ask the store
        recorded = [r["id"] for r in Store(plan.store.path).list_runs(parent=plan.sweep_id)]
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


def summary_template() -> "Template":
    """The shipped ``sweep`` template (a project's own ``templates/`` cannot shadow it)."""
    from mlnb.execute import shipped_templates
    from mlnb.params import load_template

    return load_template(shipped_templates() / SUMMARY_TEMPLATE, name="sweep")


def summary_parameters(result: SweepResult) -> dict[str, Any]:
    """The parameters of the sweep's summary record (pure)."""
    plan = result.plan
    return {
        "template": plan.template.name,
        "template_sha256": plan.template.sha256,
        "grid": plan.grid,
        "fixed": plan.fixed,
        "rows": result.rows,
    }


def record_summary(result: SweepResult, backend: Backend) -> Any:
    """Record the sweep: a run of the ``sweep`` template whose id is the sweep id.

    The summary runs on the backend like any run (on a cluster, a worker with mlnb already
    imported commits it). Returns the summary's row (``run_id``, ``status``...).
    """
    plan = result.plan
    tpl = summary_template()
    task = RunTask(
        sweep_id=plan.sweep_id,
        index=-1,
        template=str(tpl.path),
        template_name=tpl.name,
        parameters=summary_parameters(result),
        store=str(plan.store.path),
        run_id=plan.sweep_id,
        tags={"sweep": plan.sweep_id, "role": "summary", "runs": len(result.rows), "failed": result.n_failed},
        paths_relative_to=str(tpl.path.parent),  # no value of the summary names a file
    )
    for _, outcome in backend.map(execute_task, [task]):
        if isinstance(outcome, BaseException):
            raise outcome
        result.summary_run = outcome
    return result.summary_run


# -- the summary table -----------------------------------------------------------------------


def scrap_columns(rows: list[dict]) -> list[str]:
    """Scrap names over all rows, in first-seen order."""
    return list(dict.fromkeys(name for row in rows for name in row.get("scraps") or {}))


def _cell(value: Any) -> Any:
    return value if _is_scalar(value) else json.dumps(value, sort_keys=True)


def summary_table(rows: list[dict]) -> "pd.DataFrame":
    """The sweep's table: one row per run, parameters × scraps (pure; used by the template).

    Columns: ``point`` (1-based), ``run_id``, ``status``, one column per varying
    parameter, one per scrap (``scrap.<name>``), ``error``. Lists and dicts become JSON
    text so the table stores as Parquet.
    """
    import pandas as pd

    params = list(dict.fromkeys(name for row in rows for name in row.get("parameters") or {}))
    scraps = scrap_columns(rows)
    records = []
    for row in sorted(rows, key=lambda r: r["index"]):
        item = {"point": row["index"] + 1, "run_id": row.get("run_id"), "status": row["status"]}
        for name in params:
            item[name] = _cell(row["parameters"].get(name))
        for name in scraps:
            item[f"scrap.{name}"] = _cell((row.get("scraps") or {}).get(name))
        item["error"] = row.get("error")
        records.append(item)
    columns = ["point", "run_id", "status", *params, *(f"scrap.{n}" for n in scraps), "error"]
    for column in columns:
        if len({_kind(r[column]) for r in records if r[column] is not None}) > 1:
            # e.g. a scrap that is a number in one run and text in another: Parquet needs one type
            for r in records:
                r[column] = None if r[column] is None else str(r[column])
    return pd.DataFrame(records, columns=columns)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__

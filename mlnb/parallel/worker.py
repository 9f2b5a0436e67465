"""What runs on a worker: one run of a sweep, its summary, and the check that a worker can.

:func:`execute_task` is the function every backend calls where the run executes: it calls
:func:`mlnb.execute.run_template`, so the record is committed by the process that ran the
notebook, straight into the store, and only a small summary (:func:`summarize_run`)
travels back. A task that carries its files (:mod:`mlnb.parallel.shipping`) is run from
the worker's copies of them. :func:`worker_problems` runs on every worker before a sweep
starts, and :func:`check_workers` asks every worker of a backend and refuses to start if
one cannot run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from mlnb import records
from mlnb.exceptions import BackendError
from mlnb.store import STAGING, Store

if TYPE_CHECKING:
    from mlnb.parallel.backends import Backend
    from mlnb.parallel.plan import RunTask, SweepPlan


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
    if task.shipment is not None:
        from mlnb.parallel.shipping import execute_shipped

        return {**summarize_run(execute_shipped(task), task.scraps), "index": task.index}
    from mlnb.execute import run_template
    from mlnb.kernels import process_pool

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
        kernels=process_pool() if task.warm else None,
    )
    return {**summarize_run(run, task.scraps), "index": task.index}


def worker_problems(template: str | None, sha256: str | None, store: str, version: str,
                    kernel: str | None = None) -> list[str]:
    """What would stop this worker from running the sweep (run on every worker).

    ``template`` None: the template is shipped to the worker, so it need not be there. A
    ``store`` URL (a team store) is opened with this worker's own settings (``MLNB_DATABASE``,
    the object store's endpoint and credentials) and written to.
    """
    from importlib import metadata

    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    problems = []
    try:
        found = metadata.version("mlnb")
    except metadata.PackageNotFoundError:
        found = "not installed"
    if found != version:
        problems.append(f"mlnb {found} (the client has {version})")
    if template is not None:  # None: shipped to the worker with the task
        if not os.path.isfile(template):
            problems.append(f"template {template!r} is not there")
        elif records.sha256_file(template) != sha256:
            problems.append(f"template {template!r} differs from the client's")
    problem = _team_store_problem(store) if "://" in store else _store_problem(Path(store))
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


def _team_store_problem(location: str) -> str | None:
    """Why this worker could not commit runs to the team store at ``location``: its
    settings, the bucket, the database and its tables, and a write under the staging prefix."""
    import secrets
    import socket

    from mlnb.exceptions import StoreError

    try:
        store = Store(location)
        store.ensure_writable()
        store.connect().close()
        probe = f"{store.root}/{STAGING}/probe-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        store._call(store.fs.pipe_file, probe, b"mlnb")
        store._call(store.fs.rm_file, probe)
    except (StoreError, FileNotFoundError) as exc:
        return " ".join(str(exc).split())  # one line, whatever the backend's message
    return None


def check_workers(plan: SweepPlan, backend: Backend) -> None:
    """Refuse to start when a worker lacks the template, the store or the kernel, or runs
    another mlnb: every worker is asked, before any run is submitted.

    When the sweep ships its files (a team store on a remote cluster, see
    :mod:`mlnb.parallel.shipping`), a worker need not have the template; it must open and
    write the team store with its own settings.

    Raises:
        BackendError: naming each worker and what is wrong there.
    """
    from importlib import metadata

    from mlnb.parallel import shipping

    kernel = plan.tasks[0].kernel_name if plan.tasks else None
    ships = shipping.needed(plan.store, backend)
    answers = backend.on_every_worker(
        worker_problems,
        None if ships else str(plan.template.path),
        None if ships else records.sha256_file(plan.template.path),
        plan.store.location, metadata.version("mlnb"),
        kernel or plan.template.kernel_name,
    )
    bad = {worker: problems for worker, problems in answers.items() if problems}
    if bad:
        detail = "; ".join(f"{w}: {', '.join(p)}" for w, p in sorted(bad.items()))
        if backend.in_process:
            raise BackendError(f"cannot run this sweep: {detail.removeprefix('local: ')}")
        if ships:
            raise BackendError(f"workers cannot run this sweep (each needs the same mlnb, the kernel, and the team "
                               f"store's settings in its own environment: MLNB_DATABASE, the object store's "
                               f"endpoint and credentials): {detail}")
        raise BackendError(f"workers cannot run this sweep (they need the same mlnb, the kernel, and the template "
                           f"and the store at the same paths; without a shared file system use a team store, "
                           f"docs/team-store.md): {detail}")

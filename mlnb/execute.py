"""Template → papermill → run record.

:func:`run_template` is the one way a run is made: it checks the parameters, executes the
template with papermill in a staging directory of the store, reads the scraps, renders the
HTML, and commits the record. Failures of the notebook are recorded truthfully: papermill
marks every cell completed after a dead kernel or a timeout and treats ``sys.exit(0)`` as
success, so the outcome is decided here from the exception and the executed cells.
Finding the template (:mod:`mlnb.catalog`) and checking the run's inputs
(:mod:`mlnb.inputs`) come before, in their own modules.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
import logging
import os
import platform
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mlnb import _compat  # noqa: F401  (fast jsonschema import, before papermill)
from mlnb import engine
from mlnb import kernels as kernels_mod
from mlnb import inputs as inputs_mod
from mlnb import params as params_mod
from mlnb import records
from mlnb.exceptions import Interrupted, RunDiscarded
from mlnb.params import Template
from mlnb.store import RUN_ID, Run, Store, as_store, new_run_id

# finding a template and checking a run's inputs live in their own modules; importable from here too
from mlnb.catalog import TEMPLATES_DIR, available_templates, find_template  # noqa: F401
from mlnb.catalog import shipped_templates, template_dirs  # noqa: F401
from mlnb.inputs import INPUT_KINDS, PATH_KINDS, prepare_parameters, project_defaults  # noqa: F401

if TYPE_CHECKING:
    from mlnb.kernels import KernelPool

log = logging.getLogger(__name__)

#: Packages whose versions every record lists.
KEY_PACKAGES = (
    "mlnb", "papermill", "scrapbook", "nbformat", "nbconvert", "ipykernel", "pandas",
    "numpy", "scipy", "scikit-learn", "skops", "pandera",
)


def _input_files(template: Template, final: dict[str, Any]) -> list[dict]:
    """Fingerprint every parameter value (or list item) that names an existing file."""
    inputs = []
    seen = set()
    base = template.path.parent
    for name, value in final.items():
        candidates = value if isinstance(value, list) else [value]
        for item in candidates:
            if not isinstance(item, str) or not item or len(item) > 4096:
                continue
            path = Path(item) if os.path.isabs(item) else base / item
            if inputs_mod.is_file(path) and (name, str(path)) not in seen:
                seen.add((name, str(path)))
                inputs.append({"parameter": name, "path": str(path.resolve()), **records.fingerprint(path)})
    return inputs


@dataclass(frozen=True)
class Origin:
    """Where a run's files came from when another host shipped them here: what its record
    names instead of this host's copies (a sweep on a cluster without a shared file system).

    Attributes:
        template_path: the template's path on the host that shipped it.
        parameters: that host's values of the parameters that name shipped files.
        paths: this host's copy (resolved) → that host's path, for the record's inputs.
        git: that host's git state of the template's directory.
    """

    template_path: str
    parameters: dict[str, Any]
    paths: dict[str, str]
    git: dict | None = None


def _git_state(directory: Path) -> dict | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory, capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _environment(kernel_name: str) -> dict:
    packages = {}
    for name in KEY_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kernel": kernel_name,
        "packages": packages,
    }


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C for the duration (main thread only), so cleanup runs either way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _error_from_notebook(nb) -> dict | None:
    """The first error output of an executed notebook, as a record error."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                kind = "exit" if output.get("ename") == "SystemExit" else "exception"
                return {
                    "kind": kind,
                    "cell_index": index,
                    "ename": output.get("ename", ""),
                    "evalue": output.get("evalue", ""),
                }
    return None


def _last_started_cell(nb) -> int | None:
    last = None
    for index, cell in enumerate(nb.cells):
        if (cell.get("metadata", {}).get("papermill") or {}).get("start_time"):
            last = index
    return last


#: A kernel that dies before it answers its first message ran no cell of the notebook, so
#: starting another is safe; it happens when two kernels start at once and race for ports.
KERNEL_START_ATTEMPTS = 3


def _died_at_start(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and "Kernel died before replying to kernel_info" in str(exc)


def _classify(exc: BaseException | None, nb) -> dict | None:
    """Decide the outcome from papermill's exception and the executed notebook."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if exc is None or isinstance(exc, PapermillExecutionError):
        error = _error_from_notebook(nb) if nb is not None else None
        if error is None and exc is not None:
            error = {"kind": "exception", "cell_index": exc.cell_index, "ename": exc.ename, "evalue": exc.evalue}
        return error
    cell = _last_started_cell(nb) if nb is not None else None
    if _died_at_start(exc):
        return {"kind": "dead_kernel", "cell_index": None, "ename": "DeadKernelError", "evalue": str(exc)}
    if isinstance(exc, CellTimeoutError):
        return {"kind": "timeout", "cell_index": cell, "ename": "CellTimeoutError", "evalue": str(exc).strip().splitlines()[0] if str(exc).strip() else "cell timed out"}
    if isinstance(exc, DeadKernelError):
        return {"kind": "dead_kernel", "cell_index": cell, "ename": "DeadKernelError", "evalue": str(exc) or "the kernel died"}
    return {"kind": "exception", "cell_index": cell, "ename": type(exc).__name__, "evalue": str(exc)}


def _store_scraps(notebook_path: Path, artifacts_dir: Path) -> dict:
    """Read scraps; DataFrames become Parquet artifacts under ``scraps/``, referenced."""
    from mlnb.scraps import read_scraps

    scraps = {}
    for name, value in read_scraps(str(notebook_path)).items():
        if type(value).__name__ == "DataFrame":
            (artifacts_dir / records.SCRAP_TABLES_DIR).mkdir(exist_ok=True)
            value.to_parquet(artifacts_dir / records.table_path(name), engine="pyarrow")
            scraps[name] = records.table_ref(name, value)
        else:
            scraps[name] = value
    return scraps


@functools.lru_cache(maxsize=1)
def _html_exporter():
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    # nbconvert warns about images without alt text on every plot: not actionable here
    exporter.log.setLevel(logging.ERROR)
    # compiling the lab templates costs more than rendering a notebook: compile them once
    exporter.from_notebook_node(_blank_notebook())
    return exporter


def _blank_notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# warm-up"), nbformat.v4.new_code_cell("1")]
    return nb


def warm_up() -> None:
    """Import and compile what finishing a run needs, while the kernel works."""
    from mlnb.scraps import read_scraps  # noqa: F401

    import scrapbook  # noqa: F401

    _html_exporter()
    records._schema_validator()


def render_html(notebook_path: Path, html_path: Path) -> None:
    """Render an executed notebook to standalone HTML with nbconvert (inputs and outputs)."""
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    for cell in nb.cells:
        # glued payloads have no visual form; leave them out rather than warn about them
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if not _is_payload(o)]
    body, _ = _html_exporter().from_notebook_node(nb)
    html_path.write_text(body, encoding="utf-8")


def _is_payload(output) -> bool:
    data = output.get("data") or {}
    return bool(data) and all(k.startswith("application/scrapbook.scrap.") for k in data)


def refuse_foreign_files(staged: Path) -> list[str]:
    """Remove what a notebook left in its staged run that a record cannot hold, and say what.

    A run holds its notebook and the regular files under ``artifacts/``. A symbolic link
    there would be hashed by its target's content (``/etc/passwd``) and made read-only
    through it, a hard link shares its file with a path outside the run, a pipe or socket
    has no content, and a file beside ``artifacts/`` (written through
    ``artifacts_dir/..``) is in no record: each is removed before the record is built, and
    the run is recorded failed, naming them.

    Returns:
        One line per removed entry (empty: nothing foreign).
    """
    refused: list[str] = []

    def remove(path: Path, why: str) -> None:
        refused.append(f"{path.relative_to(staged).as_posix()} {why}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    for entry in sorted(staged.iterdir()):
        if entry.name == records.NOTEBOOK_FILE and entry.is_file() and not entry.is_symlink():
            continue
        if entry.name == records.ARTIFACTS_DIR and entry.is_dir() and not entry.is_symlink():
            continue
        where = "is a symbolic link" if entry.is_symlink() else "was written outside artifacts_dir"
        remove(entry, where)
    artifacts = staged / records.ARTIFACTS_DIR
    artifacts.mkdir(exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(artifacts):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                remove(path, f"is a symbolic link (to {os.readlink(path)!r}); an artifact must be a file it wrote")
            elif stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                remove(path, "is a hard link to a file outside the run; an artifact must be a file it wrote")
            elif not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                remove(path, "is not a regular file")
        dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).is_dir()]
    return refused


def _artifact_list(artifacts_dir: Path) -> list[dict]:
    out = []
    for path in sorted(p for p in artifacts_dir.rglob("*") if p.is_file()):
        out.append({"path": path.relative_to(artifacts_dir).as_posix(), **records.fingerprint(path)})
    return out


def run_template(
    template: str | os.PathLike | Template,
    parameters: dict[str, Any] | None = None,
    store: Store | str | os.PathLike | None = None,
    *,
    kernel_name: str | None = None,
    timeout: float | None = None,
    progress: bool = False,
    parent: str | None = None,
    tags: dict[str, Any] | None = None,
    reproduces: str | None = None,
    paths_relative_to: str | os.PathLike | None = None,
    run_id: str | None = None,
    config: Any = None,
    kernels: KernelPool | None = None,
    before_commit: Callable[[], bool] | None = None,
    origin: Origin | None = None,
) -> Run:
    """Execute a template and commit its run record; return the committed run.

    A notebook that fails still gives a committed record with ``status == "failed"``;
    check ``run.succeeded``. Nothing is written when the parameters are wrong, and nothing
    is left behind when the run is interrupted.

    Args:
        template: a template name, a notebook path, or a loaded :class:`Template`.
        parameters: overrides of the template's defaults (JSON values).
        store: the store (default: ``MLNB_STORE``, ``mlnb.yaml``'s ``store``, ``runs/``).
        kernel_name: the Jupyter kernel (default: the template's kernelspec).
        timeout: seconds each cell may run before the run fails with kind ``timeout``.
        progress: show papermill's cell progress bar on stderr.
        parent: the run (a pipeline or sweep) that started this one.
        tags: free labels stored in the record (a sweep id, for example).
        reproduces: the run this one reproduces.
        paths_relative_to: base for relative file paths in ``parameters`` (default: the
            working directory); the kernel runs in the template's directory.
        run_id: an id allocated beforehand with :func:`mlnb.store.new_run_id` (a pipeline
            names its children's parent before it records itself).
        config: the project's :class:`mlnb.config.Config`; parameters the template maps to
            its keys default to the project's values (see :func:`project_defaults`).
        kernels: a :class:`mlnb.kernels.KernelPool` to take a warm kernel from (default: a
            kernel started from nothing); the record says which.
        before_commit: asked once the notebook ran; when it returns False the run is
            discarded instead of committed (:class:`mlnb.exceptions.RunDiscarded`).
        origin: the template and inputs are copies shipped from another host: the record
            names that host's paths, values and git state (:class:`Origin`).

    Raises:
        TemplateNotFound, TemplateError, ParameterError, StoreError: before anything runs.
        Interrupted: on Ctrl-C or SIGTERM, after removing the staged run.
        RunDiscarded: ``before_commit`` said no; nothing was written.
    """
    tpl = template if isinstance(template, Template) else find_template(template)
    store = as_store(store)
    final = prepare_parameters(tpl, parameters or {}, paths_relative_to or Path.cwd(), store, config)
    kernel = kernel_name or tpl.kernel_name
    kernels_mod.check_kernel(kernel)
    inputs = _input_files(tpl, final)
    if run_id is not None and not RUN_ID.match(run_id):
        raise ValueError(f"run_id {run_id!r} is not an id made by mlnb.store.new_run_id")
    run_id = run_id or new_run_id(tpl.name)
    from mlnb import ledger

    ledger.configured_signer()  # a signing key that cannot sign: said now, not after the kernel ran

    import papermill as pm

    # papermill warns on every injected name a template does not declare, and logs at INFO
    logging.getLogger("papermill").setLevel(logging.ERROR)

    params_mod.install_safe_translator(kernel)
    started, t0 = _now(), time.perf_counter()
    # the host mostly waits on the kernel: meanwhile, prepare what finishing the run needs
    helpers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlnb-warm-up")
    warm = helpers.submit(warm_up)
    environment = helpers.submit(_environment, kernel)
    git = helpers.submit(_git_state, tpl.path.parent) if origin is None else None
    helpers.shutdown(wait=False)
    with sigterm_as_interrupt():
        try:
            with store.staging(run_id) as staged:
                out_nb = staged / records.NOTEBOOK_FILE
                artifacts = staged / records.ARTIFACTS_DIR
                injected = {**final, "run_id": run_id, "artifacts_dir": str(artifacts)}
                exc: BaseException | None = None
                preparation = kernels_mod.cold()
                for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
                    exc = None
                    lease = kernels.acquire(tpl, kernel) if kernels is not None else None
                    # never papermill's cwd=, which changes this process's directory (and every
                    # thread's): a warm kernel started there, a cold one is started there by nbclient
                    where = {"km": lease.km} if lease else {"resources": {"metadata": {"path": str(tpl.path.parent)}},
                                                            "kernel_manager_class": kernels_mod.notebook_kernel_manager_class()}
                    preparation = lease.preparation if lease else kernels_mod.cold()
                    try:
                        pm.execute_notebook(
                            str(tpl.path),
                            str(out_nb),
                            engine_name=engine.register(),
                            parameters=injected,
                            kernel_name=kernel,
                            progress_bar=progress,
                            log_output=False,
                            execution_timeout=timeout,
                            # the engine writes the notebook when execution ends, even if the kernel died
                            request_save_on_cell_execute=True,
                            extra_arguments=list(kernels_mod.KERNEL_ARGUMENTS),
                            **where,
                        )
                    except KeyboardInterrupt:
                        raise
                    except Exception as e:  # every failure of the notebook is recorded
                        exc = e
                    finally:
                        if lease is not None:
                            lease.shutdown()
                    if not (_died_at_start(exc) and attempt < KERNEL_START_ATTEMPTS):
                        break
                    log.warning("kernel %s died while starting (attempt %d); starting another", kernel, attempt)
                if out_nb.is_file():
                    import nbformat

                    nb = nbformat.read(out_nb, as_version=4)
                else:  # papermill failed before writing anything: not a run
                    raise exc if exc is not None else RuntimeError("papermill wrote no notebook")
                warm.result()
                error = _classify(exc, nb)
                refused = refuse_foreign_files(staged)
                if refused:
                    shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
                    if error is None:
                        error = {"kind": "exception", "cell_index": None, "ename": "ArtifactRefused",
                                 "evalue": f"removed from the run: {shown}"}
                    else:
                        error = {**error, "evalue": f"{error['evalue']} (also removed from the run: {shown})"}
                try:
                    scraps = _store_scraps(out_nb, artifacts)
                except Exception as e:  # a payload scrapbook refuses: the run is failed, not lost
                    scraps = {}
                    error = error or {"kind": "exception", "cell_index": None, "ename": type(e).__name__,
                                      "evalue": f"cannot read the notebook's scraps: {str(e).splitlines()[0][:300]}"}
                render_html(out_nb, staged / records.HTML_FILE)
                finished = _now()
                record = {
                    "schema": records.SCHEMA,
                    "id": run_id,
                    "template": {"name": tpl.name, "path": origin.template_path if origin else str(tpl.path),
                                 "sha256": tpl.sha256},
                    "parameters": {**final, **origin.parameters} if origin else final,
                    "inputs": [{**i, "path": origin.paths.get(i["path"], i["path"])} for i in inputs] if origin
                    else inputs,
                    "scraps": scraps,
                    "files": {
                        records.NOTEBOOK_FILE: records.fingerprint(out_nb),
                        records.HTML_FILE: records.fingerprint(staged / records.HTML_FILE),
                    },
                    "artifacts": _artifact_list(artifacts),
                    "status": "failed" if error else "succeeded",
                    "error": error,
                    "started": _iso(started),
                    "finished": _iso(finished),
                    "duration_s": round(time.perf_counter() - t0, 3),
                    "environment": {**environment.result(), "kernel_preparation": preparation},
                    "git": git.result() if origin is None else origin.git,
                    "parent": parent,
                    "tags": dict(tags or {}),
                    "reproduces": reproduces,
                }
                if before_commit is not None and not before_commit():
                    raise RunDiscarded(f"run {run_id} of {tpl.name} discarded before its commit")
                return store.commit(staged, records.seal(record))
        except KeyboardInterrupt as exc:
            # the cell's asyncio task that nbclient abandons fails once its kernel is gone, and
            # asyncio logs that with a traceback when the task is collected: the run is over
            # and the line below says so
            logging.getLogger("asyncio").setLevel(logging.CRITICAL)
            raise Interrupted(f"run {run_id} interrupted; nothing was written") from exc


def reproduce(store: Store, run_id: str, cold: bool = False, say: Callable[[str], None] | None = None,
              **options) -> tuple[Run, Run, list[str]]:
    """Re-execute a run with the identical template content, parameters and inputs, on a
    kernel prepared as the record says (warm with the same modules preloaded, or cold);
    ``cold`` starts it from nothing whatever the record says.

    The template is the file at its recorded path if it still has the recorded sha256, else
    the template of the same name and sha256 in the working directory's project or among
    mlnb's own (a store read on another host, a project moved): ``say`` is told which file.
    An input missing on this host that the store holds (a table the pipeline derived on
    another host of a team store, same sha256) is fetched, and the run reads that copy:
    ``say`` is told so in one line.

    Returns:
        ``(original, new_run, changed_scraps)``: the names of scraps whose values differ.

    Raises:
        ReproduceError: no template with the recorded sha256 is found (naming where mlnb
            looked), or an input no longer has the recorded sha256.
    """
    from mlnb.exceptions import ReproduceError

    original = store.get(run_id)
    rec = original.record
    tpl = _recorded_template(original, say)
    parameters = rec["parameters"]
    for inp in rec["inputs"]:
        path = Path(inp["path"])
        # a relative value was read from the recorded template's directory: the run reads
        # the recorded file, wherever the template is found now and wherever mlnb runs
        parameters = _with_path(parameters, inp["parameter"], inp["path"], inp["path"])
        if not path.is_file():
            fetched = store.fetch_table(path.name, inp["sha256"])  # a table the pipeline derived on another host
            if fetched is None:
                raise ReproduceError(f"cannot reproduce {original.id}: input {inp['path']!r} is gone")
            parameters = _with_path(parameters, inp["parameter"], inp["path"], str(fetched))
            if say is not None:
                say(f"input {inp['parameter']!r}: {inp['path']} is not on this host; using the store's copy "
                    f"{fetched} (same sha256)")
            continue
        if records.sha256_file(path) != inp["sha256"]:
            raise ReproduceError(
                f"cannot reproduce {original.id}: input {inp['path']!r} (parameter "
                f"{inp['parameter']!r}) changed since the run"
            )
    preparation = rec["environment"].get("kernel_preparation") or kernels_mod.cold()
    pool = None if cold or preparation["mode"] == "cold" else kernels_mod.KernelPool(
        preparation["preloaded"], size=1, fork=preparation["mode"] == "forked")
    try:
        new = run_template(
            tpl, parameters, store, kernel_name=rec["environment"]["kernel"], paths_relative_to=tpl.path.parent,
            reproduces=original.id, parent=rec.get("parent"), tags=rec.get("tags"), kernels=pool, **options,
        )
    finally:
        if pool is not None:
            pool.close()
    return original, new, changed_scraps(original, new)


def _recorded_template(original: Run, say: Callable[[str], None] | None) -> Template:
    """The run's template with its recorded content: at its recorded path, or else the
    template of the same name and sha256 found as ``mlnb run NAME`` finds one (the project
    of the working directory, then mlnb's own), which ``say`` is told in one line."""
    from mlnb.catalog import find_by_content
    from mlnb.exceptions import ReproduceError, TemplateNotFound

    recorded = original.record["template"]
    path = Path(recorded["path"])
    if path.is_file():
        tpl = params_mod.load_template(path, name=recorded["name"])
        if tpl.sha256 == recorded["sha256"]:
            return tpl
        why = f"changed since the run (sha256 {tpl.sha256[:12]}…, recorded {recorded['sha256'][:12]}…)"
    else:
        why = "is gone"
    try:
        found = find_by_content(recorded["name"], recorded["sha256"])
    except TemplateNotFound as exc:
        raise ReproduceError(f"cannot reproduce {original.id}: template {str(path)!r} {why}, and {exc}") from None
    if say is not None:
        say(f"template {str(path)!r} {why.split(' (')[0]}; using {found.path}, whose sha256 "
            f"{recorded['sha256'][:12]}… is the recorded one")
    return found


def _with_path(parameters: dict, name: str, old: str, new: str) -> dict:
    """``parameters`` with the path ``old`` in parameter ``name`` (a value or a list item, as
    recorded or relative) replaced by ``new``."""
    def swap(value):
        same = value == old or (isinstance(value, str) and not os.path.isabs(value) and Path(value).name == Path(old).name)
        return new if same else value

    value = parameters.get(name)
    return {**parameters, name: [swap(v) for v in value] if isinstance(value, list) else swap(value)}


def changed_scraps(a: Run, b: Run) -> list[str]:
    """Names of scraps whose values differ between two runs (tables compared by content)."""
    sa, sb = a.record["scraps"], b.record["scraps"]
    changed = []
    for name in dict.fromkeys([*sa, *sb]):
        if name not in sa or name not in sb:
            changed.append(name)
        elif records.is_table(sa[name]) and records.is_table(sb[name]):
            if not a.scrap(name).equals(b.scrap(name)):
                changed.append(name)
        elif records.canonical(sa[name]) != records.canonical(sb[name]):
            changed.append(name)
    return changed


"""Warm kernels: a small pool of pre-started Jupyter kernels with the heavy imports done.

Commands that run several notebooks (a pipeline run, a backfill, the demo, a sweep on this
machine) take each run's kernel from a :class:`KernelPool`: started, and with ``pandas``,
``scikit-learn``, … already imported, while the previous run executed. A kernel serves
exactly one notebook and is then shut down, so no run's state ever reaches another; what
a warm kernel has beyond a fresh one is modules in ``sys.modules``, never a name in the
notebook's namespace.

The kernels are jupyter_client ``KernelManager`` objects, handed to papermill's nbclient
engine as ``km=``: nbclient executes on a kernel it is given as on one it started.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import functools
import json
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Modules every warm kernel imports besides its template's own imports (``mlnb.yaml``:
#: ``kernels.preload``). A warm kernel imports what its template's code cells import, so it
#: does the work a fresh kernel would do, only earlier.
DEFAULT_PRELOAD: tuple[str, ...] = ()

#: Arguments every kernel mlnb starts gets (the kernel's own log is not the user's business).
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=CRITICAL",)

#: Seconds a kernel may take to start, and then to import the preload list.
START_TIMEOUT = 60
PRELOAD_TIMEOUT = 300

# Runs inside the kernel, silently (no history, no execution count): every name it binds is
# removed again, so the notebook's namespace is a fresh kernel's. ``optional`` holds the
# ``X.Y`` of ``from X import Y``, imported only when ``Y`` is a module.
_PRELOAD_CODE = """\
def _mlnb_preload(names, optional):
    import importlib
    import importlib.util
    failed = {{}}
    done = []
    for name in names + optional:
        try:
            if name in optional and importlib.util.find_spec(name) is None:
                continue
            importlib.import_module(name)
            done.append(name)
        except Exception as exc:
            if name not in optional:
                failed[name] = (type(exc).__name__ + ": " + str(exc)).splitlines()[0][:200]
    return {{"done": done, "failed": failed}}
_mlnb_preload_result = _mlnb_preload({names!r}, {optional!r})
del _mlnb_preload
"""
_RESULT_NAME = "_mlnb_preload_result"


def template_imports(path: str | os.PathLike) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The modules a notebook imports: those of its metadata's ``mlnb.preload`` (what its
    library calls import lazily) and those its code cells import at their top level, as
    ``(modules, maybe)``, where ``maybe`` holds ``X.Y`` for each ``from X import Y``."""
    stat = os.stat(path)
    return _template_imports(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _template_imports(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    modules: dict[str, None] = {}
    maybe: dict[str, None] = {}
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    # what the template's library calls import lazily (model loading: skops.io), declared in
    # its metadata as mlnb.preload
    modules.update((name, None) for name in (nb.get("metadata", {}).get("mlnb", {}).get("preload") or []))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        try:
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:  # a cell that does not parse imports nothing here; the run will say why
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                modules.update((alias.name, None) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module != "__future__":
                modules[node.module] = None
                maybe.update((f"{node.module}.{alias.name}", None) for alias in node.names if alias.name != "*")
    return tuple(modules), tuple(m for m in maybe if m not in modules)


_installed: set[str] = set()


def check_kernel(name: str) -> None:
    """Refuse a kernel name that no installed kernel spec has, before anything starts.

    Raises:
        ParameterError: naming the kernel and the installed ones (exit 2, nothing written).
    """
    if name in _installed:
        return
    from jupyter_client.kernelspec import KernelSpecManager

    from mlnb.exceptions import ParameterError

    specs = KernelSpecManager().find_kernel_specs()
    if name not in specs:
        raise ParameterError(f"kernel {name!r} is not installed; installed kernels: "
                             f"{', '.join(sorted(specs)) or 'none'} (see 'jupyter kernelspec list')", "kernel")
    _installed.add(name)


def cold() -> dict:
    """The ``kernel_preparation`` of a run whose kernel started from nothing."""
    return {"mode": "cold", "preloaded": []}


#: the bytes of a Unix socket's path, its terminating NUL included (Linux's sun_path)
SOCKET_PATH_MAX = 108


def private_sockets(base: type) -> type:
    """``base`` (a jupyter_client kernel manager class) whose kernels talk over Unix sockets
    in a directory of their own, where the platform has them.

    Over TCP, jupyter_client picks five free ports by binding and releasing them, and the
    kernel binds them a moment later: kernels started at once by other processes (parallel
    ``mlnb run``, a sweep's workers) can take a port in between, and the kernel prints a
    ``ZMQError: Address already in use`` traceback, or dies at start. jupyter_client's port
    cache only keeps one process's kernels apart. A socket file in a fresh private directory
    (mode 0700) cannot be taken by anyone else, and no other user can connect to it either.
    """
    import tempfile

    from traitlets import default

    def socket_dir() -> str | None:
        # a socket's path must fit Linux's sun_path (107 bytes), and jupyter_client names
        # each "<dir>/k-<n>": a deep TMPDIR (a worker's own, a test's) falls back to /tmp,
        # and where neither fits the kernel talks TCP
        for parent in (None, "/tmp"):
            try:
                where = tempfile.mkdtemp(prefix="mlnb-kernel-", dir=parent)
            except OSError:
                continue
            if len(os.fsencode(where)) + len("/k-99") < SOCKET_PATH_MAX:
                return where
            os.rmdir(where)
        return None

    class PrivateSocketsKernelManager(base):
        @default("transport")
        def _mlnb_transport(self) -> str:
            if os.name != "posix":
                return "tcp"
            self._mlnb_socket_dir = socket_dir()
            return "ipc" if self._mlnb_socket_dir else "tcp"

        @default("ip")
        def _mlnb_ip(self) -> str:
            if self.transport != "ipc":
                return super()._ip_default()
            if getattr(self, "_mlnb_socket_dir", None) is None:
                self._mlnb_socket_dir = tempfile.mkdtemp(prefix="mlnb-kernel-")
            return os.path.join(self._mlnb_socket_dir, "k")

        def cleanup_ipc_files(self) -> None:
            super().cleanup_ipc_files()
            where = getattr(self, "_mlnb_socket_dir", None)
            if where and not self._connection_file_written:  # shut down, not restarting
                with contextlib.suppress(OSError):
                    os.rmdir(where)

    PrivateSocketsKernelManager.__name__ = PrivateSocketsKernelManager.__qualname__ = f"PrivateSockets{base.__name__}"
    return PrivateSocketsKernelManager


class _PromptReaping:
    """A kernel manager mixin: a kernel shut down after its notebook is killed and gone within
    milliseconds, and jupyter_client looked again only after 0.1 s, which every notebook paid."""

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        await super()._async_wait(pollinterval=min(pollinterval, 0.005))


@functools.lru_cache(maxsize=1)
def notebook_kernel_manager_class() -> type:
    """The kernel manager class nbclient starts a cold run's kernel with (``kernel_manager_class=``)."""
    from jupyter_client import AsyncKernelManager

    return type("NotebookKernelManager", (_PromptReaping, private_sockets(AsyncKernelManager)), {})


@functools.lru_cache(maxsize=1)
def _ready_client_class() -> type:
    from jupyter_client.blocking.client import BlockingKernelClient
    from jupyter_client.utils import run_sync

    class ReadyKernelClient(BlockingKernelClient):
        """jupyter_client's blocking client whose ``wait_for_ready`` is done once IOPub has
        delivered the ``idle`` status of its ``kernel_info`` request — proof that IOPub is
        connected and that request's messages are through — instead of after 0.2 s in which
        IOPub says nothing more, which every notebook of a pipeline paid once more."""

        async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
            from queue import Empty

            from jupyter_core.utils import ensure_async

            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    reply = await ensure_async(self.shell_channel.get_msg(timeout=1))
                except Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply" and \
                        await self._idle_after(reply["parent_header"].get("msg_id"), 0.2):
                    self._handle_kernel_info_reply(reply)
                    break
                if not await ensure_async(self._async_is_alive()):
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:  # what IOPub already holds besides
                try:
                    await ensure_async(self.iopub_channel.get_msg(timeout=0))
                except Empty:
                    break

        async def _idle_after(self, msg_id: str | None, wait: float) -> bool:
            """Read IOPub until the ``idle`` status of request ``msg_id``; False when IOPub
            stays silent for ``wait`` seconds (not connected yet: the request is sent again)."""
            from queue import Empty

            from jupyter_core.utils import ensure_async

            while True:
                try:
                    msg = await ensure_async(self.iopub_channel.get_msg(timeout=wait))
                except Empty:
                    return False
                if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle" \
                        and msg["parent_header"].get("msg_id") == msg_id:
                    return True

        wait_for_ready = run_sync(_async_wait_for_ready)

    return ReadyKernelClient


@functools.lru_cache(maxsize=1)
def _kernel_manager_class():
    from jupyter_client import KernelManager

    class PooledKernelManager(_PromptReaping, private_sockets(KernelManager)):
        """A kernel manager that remembers the clients made for it (nbclient makes one and,
        not owning the kernel, leaves it open), so that shutting down closes them too."""

        forkserver = None  # a ForkServer that serves the kernel spec (start_warm_kernel checked): fork from it
        forked_with = None  # then: the modules the server had imported when it forked this kernel

        async def _async_pre_start_kernel(self, **kw: Any):
            if self.forkserver is not None and self.provisioner is None:
                import uuid

                from mlnb.forkserver import provisioner_class

                self.kernel_id = self.kernel_id or str(uuid.uuid4())
                self.provisioner = provisioner_class()(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec,
                                                       parent=self)
            return await super()._async_pre_start_kernel(**kw)

        def client(self, **kwargs: Any):
            self.client_factory = _ready_client_class()
            kc = super().client(**kwargs)
            self.__dict__.setdefault("_mlnb_clients", []).append(kc)
            return kc

        def close_clients(self) -> None:
            for kc in self.__dict__.pop("_mlnb_clients", []):
                kc.stop_channels()

    return PooledKernelManager


@dataclass
class WarmKernel:
    """One started kernel, for one notebook. ``preloaded`` is what it imported."""

    km: Any
    kernel_name: str
    cwd: str
    preloaded: list[str]
    failed: dict[str, str] = field(default_factory=dict)

    forked: bool = False  # forked from a process that had imported ``preloaded`` (mlnb.forkserver)

    @property
    def preparation(self) -> dict:
        """What the run record says about this kernel (``environment.kernel_preparation``)."""
        return {"mode": "forked" if self.forked else "warm", "preloaded": list(self.preloaded)}

    def alive(self) -> bool:
        try:
            return bool(self.km.is_alive())
        except Exception:  # a kernel whose manager cannot tell is not one to hand out
            return False

    def shutdown(self) -> None:
        """Stop the kernel and close every client of it; never raises."""
        try:
            self.km.close_clients()
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
        except Exception as exc:  # the run is over; a kernel that will not stop is logged, not fatal
            log.warning("could not shut down kernel %s: %s", self.kernel_name, exc)
        finally:
            self.km.cleanup_resources()


def start_warm_kernel(kernel_name: str, cwd: str | os.PathLike, preload: tuple[str, ...] = (),
                      optional: tuple[str, ...] = (), forkserver: Any = None) -> WarmKernel:
    """Start a kernel in ``cwd`` and import ``preload`` (and each of ``optional`` that is a
    module) in it, silently.

    With ``forkserver`` (a :class:`mlnb.forkserver.ForkServer` that serves the kernel's spec)
    the modules are imported there once and the kernel is forked from it, so its own imports
    find them done; otherwise the kernel starts as jupyter_client starts any.

    A module that does not import is left out (``failed`` says why); the kernel is used
    without it.

    Raises:
        RuntimeError: the kernel died while starting or warming (it is shut down).
    """
    from mlnb.forkserver import ForkServerError

    km = _kernel_manager_class()(kernel_name=kernel_name)
    forked = forkserver is not None and forkserver.serves(km.kernel_spec)
    args = list(KERNEL_ARGUMENTS)
    if getattr(km, "ipykernel", False):
        args.append("--HistoryManager.hist_file=:memory:")  # as nbclient starts its kernels
    if forked:
        try:
            forkserver.load(preload, optional, str(cwd))
            km.forkserver = forkserver
            km.start_kernel(extra_arguments=args, cwd=str(cwd))
        except ForkServerError as exc:  # a warm kernel instead, started as any other
            log.info("kernel not forked (%s): starting it warm", exc)
            with contextlib.suppress(Exception):
                km.cleanup_resources()  # the connection file and socket directory it made
            km = _kernel_manager_class()(kernel_name=kernel_name)
            forked = False
    if not forked:
        km.start_kernel(extra_arguments=args, cwd=str(cwd))
    kernel = WarmKernel(km=km, kernel_name=kernel_name, cwd=str(cwd), preloaded=[], forked=forked)
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=START_TIMEOUT)
        result = {"done": [], "failed": {}}
        if preload or optional:
            quiet = {"silent": True, "store_history": False, "output_hook": lambda msg: None}
            reply = kc.execute_interactive(
                _PRELOAD_CODE.format(names=list(preload), optional=list(optional)),
                user_expressions={"result": _RESULT_NAME}, timeout=PRELOAD_TIMEOUT, **quiet,
            )
            content = reply["content"]
            if content.get("status") != "ok":
                raise RuntimeError(f"preloading failed: {content.get('ename')}: {content.get('evalue')}")
            shown = content["user_expressions"]["result"]
            if shown.get("status") == "ok":
                result = ast.literal_eval(shown["data"]["text/plain"])
            kc.execute_interactive(f"del {_RESULT_NAME}", timeout=START_TIMEOUT, **quiet)
        km.close_clients()
    except BaseException:
        kernel.shutdown()
        raise
    # a forked kernel holds every module its server had imported, its own template's and others'
    kernel.preloaded = list(dict.fromkeys([*(km.forked_with or []), *result["done"]]))
    kernel.failed = dict(result["failed"])
    return kernel


def _import_ahead(forkserver: Any, kernel_name: str, cwd: str, modules: tuple[str, ...], maybe: tuple[str, ...]) -> None:
    from mlnb.forkserver import ForkServerError

    try:
        if forkserver.serves(_kernel_manager_class()(kernel_name=kernel_name).kernel_spec):
            forkserver.load(modules, maybe, cwd)
    except ForkServerError as exc:  # each kernel then imports what it needs, as it would anyway
        log.info("the fork server did not import ahead: %s", exc)


class KernelPool:
    """Pre-started kernels, each warmed for one template and handed out once.

    :meth:`warm` starts kernels for a template ahead of its run (its kernel, its directory,
    its imports plus ``preload``), or, while the pool is full, as soon as a kernel leaves it;
    :meth:`acquire` returns one of them, or starts one when none is ready or starting, and
    with ``ahead`` starts the next one for the same template behind it (a sweep's pattern:
    each worker runs one template many times). ``size`` bounds the kernels the pool holds
    (starting or ready, not those handed out) and defaults to the machine's cores.

    Use as a context manager: leaving it shuts down every kernel it still holds.
    """

    def __init__(self, preload: tuple[str, ...] | list[str] = DEFAULT_PRELOAD, size: int | None = None,
                 ahead: bool = False, fork: bool = True):
        from mlnb import forkserver
        from mlnb.parallel.backends import available_cores

        self.preload = tuple(preload)
        # kernels forked from one process that did the imports (where the platform forks)
        self.forkserver = forkserver.ForkServer() if fork and forkserver.available() else None
        self.ahead = ahead  # each acquire starts the next kernel for the same template (a sweep's pattern)
        self.size = size if size is not None else available_cores()
        if self.size < 1:
            raise ValueError(f"size {self.size}: a kernel pool holds at least one kernel")
        self._lock = threading.Lock()
        self._waiting: dict[tuple, collections.deque[Future]] = collections.defaultdict(collections.deque)
        self._wanted: collections.deque[tuple] = collections.deque()  # asked for while the pool was full
        self._starter = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="mlnb-kernel")
        self._closed = False
        self._warned: set[str] = set()

    @classmethod
    def for_config(cls, config: Any, cold: bool = False) -> "KernelPool | None":
        """The pool the ``kernels`` section of ``mlnb.yaml`` asks for; None when it turns
        warm kernels off (``warm: false``) or ``cold`` (``--cold``) does."""
        section = config.kernels
        if cold or not section.warm:
            return None
        return cls(preload=DEFAULT_PRELOAD if section.preload is None else section.preload, size=section.pool_size,
                   fork=section.fork)

    def __enter__(self) -> "KernelPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def held(self) -> int:
        """Kernels the pool holds now, starting or ready."""
        with self._lock:
            return self._held()

    def _held(self) -> int:  # with the lock held
        return sum(len(q) for q in self._waiting.values())

    def _key(self, template: Any, kernel_name: str | None) -> tuple:
        modules, maybe = template_imports(template.path)
        preload = tuple(dict.fromkeys([*self.preload, *modules]))
        return (kernel_name or template.kernel_name, str(Path(template.path).parent.resolve()), preload, maybe)

    def _start(self, key: tuple) -> Future:
        return self._starter.submit(start_warm_kernel, *key, forkserver=self.forkserver)

    def warm(self, template: Any, n: int = 1, kernel_name: str | None = None) -> None:
        """Start ``n`` kernels for ``template`` (a :class:`mlnb.params.Template`): now as far
        as the pool has room, the others in the order asked as kernels leave the pool."""
        key = self._key(template, kernel_name)
        with self._lock:
            if self._closed:
                return
            self._wanted.extend([key] * max(0, n))
            self._fill()

    def prepare(self, *templates: Any) -> None:
        """Have the fork server import, in one go and before it forks, what the kernels of
        every one of ``templates`` import: a pipeline's later steps then start as soon as the
        first ones. Starts no kernel; a pool that does not fork does nothing."""
        if self.forkserver is None or not templates:
            return
        keys = [self._key(template, None) for template in templates]
        modules = tuple(dict.fromkeys(m for key in keys for m in key[2]))
        maybe = tuple(dict.fromkeys(m for key in keys for m in key[3]))
        with self._lock:
            if not self._closed:
                self._starter.submit(_import_ahead, self.forkserver, keys[0][0], keys[0][1], modules, maybe)

    def _fill(self) -> None:  # with the lock held
        while self._wanted and self._held() < self.size:
            key = self._wanted.popleft()
            self._waiting[key].append(self._start(key))

    def acquire(self, template: Any, kernel_name: str | None = None) -> WarmKernel:
        """A started kernel for one run of ``template``; the caller shuts it down.

        A kernel that died while it waited is replaced; one that fails to start or warm is
        logged and another is started in its place (the third failure raises).
        """
        if self._closed:
            raise RuntimeError("the kernel pool is closed")
        key = self._key(template, kernel_name)
        error: BaseException | None = None
        for _ in range(3):
            with self._lock:
                queue = self._waiting[key]
                future = queue.popleft() if queue else None
                if future is None and key in self._wanted:
                    self._wanted.remove(key)  # started here and now: that wish is served
                if self.ahead and not self._closed and self._held() < self.size:
                    queue.append(self._start(key))
                if not self._closed:
                    self._fill()  # a kernel left: room for one asked for while the pool was full
            try:
                kernel = future.result() if future is not None else start_warm_kernel(*key, forkserver=self.forkserver)
            except Exception as exc:
                error = exc
                log.warning("a warm kernel %s failed to start: %s; starting another", key[0], exc)
                continue
            if not kernel.alive():
                log.warning("a warm kernel %s died while it waited; starting another", key[0])
                kernel.shutdown()
                continue
            for name, why in kernel.failed.items():
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("preload module %s does not import (%s): warm kernels go on without it", name, why)
            return kernel
        raise RuntimeError(f"could not start a warm kernel {key[0]}: {error}")

    def close(self) -> None:
        """Shut down every kernel the pool still holds (waiting for those starting)."""
        with self._lock:
            self._closed = True
            futures = [f for q in self._waiting.values() for f in q]
            self._waiting.clear()
            self._wanted.clear()
        for future in futures:
            future.cancel()
        self._starter.shutdown(wait=True)
        for future in futures:
            if future.cancelled():
                continue
            try:
                kernel = future.result()
            except Exception as exc:  # a kernel that never started has nothing to stop
                log.debug("a warm kernel failed to start while the pool closed: %s", exc)
                continue
            kernel.shutdown()
        if self.forkserver is not None:
            self.forkserver.close()


_process_pool: KernelPool | None = None
_process_lock = threading.Lock()


def process_pool() -> KernelPool:
    """This process's pool for a sweep's runs: one kernel held, started while the previous
    run executes; shut down when the process exits (or by :func:`close_process_pool`)."""
    global _process_pool
    with _process_lock:
        if _process_pool is None or _process_pool._closed:
            import atexit

            _process_pool = KernelPool(size=1, ahead=True)
            atexit.register(_process_pool.close)
        return _process_pool


def close_process_pool() -> None:
    """Shut down this process's sweep pool, if it has one (a sweep's end)."""
    global _process_pool
    with _process_lock:
        pool, _process_pool = _process_pool, None
    if pool is not None:
        pool.close()

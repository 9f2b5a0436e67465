"""Forked kernels: one process imports the heavy modules once, and every kernel is a fork of it.

A warm kernel (:mod:`mlnb.kernels`) still imports ``pandas``, ``scikit-learn``, ``skops``, …
itself, a few seconds of CPU for each of a pipeline's seven notebooks. A fork server does
those imports once, in a process of its own that never runs a notebook, and starts each
kernel as a fork of itself: the child becomes an ipykernel exactly as ``python -m
ipykernel_launcher`` would (its own connection file, environment, working directory,
session), with the modules already in ``sys.modules``. Nothing of one run reaches another:
the server holds modules, not a notebook's names, and each kernel is a new process.

The host side is :class:`ForkServer` (one per :class:`mlnb.kernels.KernelPool`) and
:class:`ForkedProvisioner`, a jupyter_client provisioner that asks the server for a process
instead of ``Popen``; the server is this module run as ``python -m mlnb.forkserver``,
speaking one JSON object a line on its standard input and output.

What differs from a kernel started from nothing, on purpose:

- modules whose import looks for a running IPython shell (``ipywidgets``,
  ``matplotlib_inline.backend_inline``, ``tqdm.auto``) are never imported in the server; a
  kernel imports them itself, after its shell exists;
- after the fork, numpy's global random state is reseeded from the operating system (the
  standard library's ``random`` reseeds itself), so kernels do not share random numbers;
- string hashing shares the server's seed (``PYTHONHASHSEED``) across its kernels.

Linux only (``os.fork``, pidfds); elsewhere :func:`available` is False and pools use warm kernels.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from typing import Any

#: Modules the server never imports: their import asks IPython for a running shell.
NEEDS_SHELL = ("ipywidgets", "matplotlib_inline.backend_inline", "tqdm.auto", "tqdm.autonotebook", "tqdm.notebook")

#: What the server imports before any request: the kernel's own machinery.
KERNEL_MODULES = ("ipykernel.kernelapp", "ipykernel.ipkernel")

#: What a kernel spec's command line must hold for its kernels to be forked: before it, this
#: interpreter and its options (the server runs with the same); after it, the kernel's own
#: arguments (``-f {connection_file}``, …).
LAUNCHER = ("-m", "ipykernel_launcher")

START_TIMEOUT = 300  # seconds: the server's first imports, on a loaded machine


def available() -> bool:
    """Whether kernels are forked here: on Linux (macOS's system libraries are not safe to
    fork once loaded, which is why CPython spawns there)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class ForkServerError(RuntimeError):
    """The fork server died or answered what is not a reply."""


class ForkServer:
    """A ``python -m mlnb.forkserver`` process, started on first use; thread-safe.

    Use :meth:`serves` to ask whether a kernel spec's kernels can come from it, :meth:`load`
    to import modules into it, and :meth:`fork` (through :class:`ForkedProvisioner`) to start
    a kernel. :meth:`close` stops the server; the kernels it started live on until their
    managers shut them down.
    """

    def __init__(self):
        self.interpreter: tuple[str, ...] | None = None  # the command before LAUNCHER, of the first spec served
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._closed = False
        self.loaded: list[str] = []  # modules imported in the server, in order

    def serves(self, kernel_spec: Any) -> bool:
        """Whether kernels of ``kernel_spec`` are this interpreter's ipykernel (the first spec
        served fixes the interpreter's options; a spec with others is not served)."""
        interpreter = launcher_prefix(list(getattr(kernel_spec, "argv", None) or []))
        if interpreter is None or getattr(kernel_spec, "language", "python") != "python":
            return False
        with self._lock:
            if self.interpreter is None and _same_program(interpreter[0], sys.executable):
                self.interpreter = interpreter
            return interpreter == self.interpreter

    def _started(self) -> subprocess.Popen:  # with the lock held
        if self._closed:
            raise ForkServerError("the fork server is closed")
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [*self.interpreter, "-m", "mlnb.forkserver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd="/", start_new_session=True,
            )
            self.loaded = []
        return self._process

    def _ask(self, request: dict, timeout: float) -> dict:
        with self._lock:
            process = self._started()
            try:
                process.stdin.write((json.dumps(request) + "\n").encode())
                process.stdin.flush()
                ready, _, _ = select.select([process.stdout], [], [], timeout)
                line = process.stdout.readline() if ready else b""
            except (OSError, ValueError) as exc:
                line, why = b"", str(exc)
            else:
                why = "no reply" if ready else f"no reply in {timeout:.0f} s"
            if not line:
                self._stop(process, kill=True)
                raise ForkServerError(f"the kernel fork server stopped ({why})")
        reply = json.loads(line)
        if "error" in reply:
            raise ForkServerError(reply["error"])
        return reply

    def load(self, modules: tuple[str, ...] | list[str], optional: tuple[str, ...] | list[str] = (),
             cwd: str | None = None) -> dict:
        """Import ``modules`` (and each of ``optional`` that is a module) in the server.

        A module that a file or package in ``cwd`` would shadow in a kernel started there is
        left to the kernel (it would import that one, not the installed one). Returns
        ``{"done": [...], "failed": {module: why}}``; a failure costs nothing but the kernel
        importing the module itself.
        """
        wanted = [m for m in [*modules, *optional] if m not in self.loaded]
        if not wanted:
            return {"done": [], "failed": {}}
        reply = self._ask({"op": "load", "modules": list(modules), "optional": list(optional), "cwd": cwd},
                          START_TIMEOUT)
        self.loaded.extend(m for m in reply["done"] if m not in self.loaded)
        return reply

    def fork(self, argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, list[str]]:
        """Start a kernel: ``argv`` are ``ipykernel_launcher``'s arguments. Returns its pid and
        the modules the server had imported when it forked (every load so far, in order)."""
        reply = self._ask({"op": "fork", "argv": argv, "env": env, "cwd": cwd}, START_TIMEOUT)
        return int(reply["pid"]), list(reply["loaded"])

    def _stop(self, process: subprocess.Popen, kill: bool = False) -> None:
        """End the server's requests; it exits once the kernels it forked have (reaped here).
        ``kill``: a server that failed a request is killed, and the next request starts another."""
        if kill:
            process.kill()
            if self._process is process:
                self._process = None
        for pipe in (process.stdin, process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        threading.Thread(target=process.wait, name="mlnb-forkserver-reaper", daemon=True).start()

    def close(self) -> None:
        """Stop taking requests. Kernels the server forked run on until their managers shut
        them down; should this process die first, the server kills them."""
        with self._lock:
            self._closed = True
            process, self._process = self._process, None
            if process is not None:
                self._stop(process)


def launcher_prefix(argv: list[str]) -> tuple[str, ...] | None:
    """The interpreter and its options of a kernel command ``… -m ipykernel_launcher …``."""
    for i in range(1, len(argv) - 1):
        if tuple(argv[i:i + 2]) == LAUNCHER:
            return tuple(argv[:i]) if all(a.startswith("-") for a in argv[1:i]) else None
    return None


def _same_program(a: str, b: str) -> bool:
    """Whether two interpreter paths run the same program (a venv's ``python`` is a link)."""
    import shutil

    found = shutil.which(a) or a
    try:
        return os.path.samefile(found, b) or os.path.realpath(found) == os.path.realpath(b)
    except OSError:
        return False


class ForkedProcess:
    """What a provisioner needs of ``subprocess.Popen``, for a kernel forked by the server.

    The kernel is the server's child, not this process's: its end is seen through a pidfd
    (Linux), else by signalling it; its exit status is the server's to collect, so
    ``returncode`` is 0 once it has gone.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._fd = None

    def poll(self) -> int | None:
        if self.returncode is None and not self._alive():
            self.returncode = 0
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        return self.returncode

    def _alive(self) -> bool:
        if self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], 0)
            return not ready
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # the pid now names another user's process: ours has gone
            return False
        return True

    def wait(self, timeout: float | None = None) -> int:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            if self._fd is not None and hasattr(signal, "pidfd_send_signal"):
                signal.pidfd_send_signal(self._fd, signum)
            else:
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def provisioner_class() -> type:
    """The jupyter_client provisioner whose kernels the fork server starts."""
    from jupyter_client.provisioning import LocalProvisioner

    class ForkedProvisioner(LocalProvisioner):
        """:class:`~jupyter_client.provisioning.LocalProvisioner`, with the kernel's process
        forked by the kernel manager's ``forkserver`` instead of started by ``Popen``."""

        async def launch_kernel(self, cmd: list[str], **kwargs: Any):
            server: ForkServer = self.parent.forkserver
            cwd = str(kwargs.get("cwd") or os.getcwd())
            env = {str(k): str(v) for k, v in (kwargs.get("env") or os.environ).items()}
            arguments = list(cmd[len(server.interpreter) + len(LAUNCHER):])
            pid, self.parent.forked_with = server.fork(arguments, env, cwd)
            self.process = ForkedProcess(pid)
            self.pid = self.pgid = self.process.pid  # the child leads a session of its own
            self.cwd = cwd
            return self.connection_info

    return ForkedProvisioner


# -- the server ------------------------------------------------------------------------------


class _NeedsShell:
    """A meta path finder refusing :data:`NEEDS_SHELL` while the server imports."""

    def find_spec(self, name, path=None, target=None):
        if any(name == m or name.startswith(m + ".") for m in NEEDS_SHELL):
            raise ImportError(f"{name} is imported by the kernel itself (it looks for a running shell)")
        return None


def _shadowed(name: str, cwd: str | None) -> bool:
    if not cwd:
        return False
    top = name.split(".")[0]
    return any(os.path.exists(os.path.join(cwd, p)) for p in (top + ".py", top, top + ".pyc"))


def _differs_in(cwd: str, loaded: dict) -> str | None:
    """Why a kernel in ``cwd`` would not get what a kernel started there imports: a file
    there shadows a module the server imported, or configures one at import (matplotlibrc)."""
    if os.path.exists(os.path.join(cwd, "matplotlibrc")) and "matplotlib" in sys.modules:
        return f"{cwd} has a matplotlibrc, read when matplotlib is imported"
    tops = dict.fromkeys(name.split(".")[0] for name in [*loaded, *KERNEL_MODULES])
    shadowing = [top for top in tops if _shadowed(top, cwd)]
    return f"{cwd} holds {shadowing[0]!r}, which the server imported from elsewhere" if shadowing else None


def _load(modules: list[str], optional: list[str], cwd: str | None) -> dict:
    import importlib
    import importlib.util

    done, failed = [], {}
    for name in [*modules, *optional]:
        if _shadowed(name, cwd):
            continue
        try:
            if name in optional and importlib.util.find_spec(name) is None:
                continue
            importlib.import_module(name)
            done.append(name)
        except Exception as exc:  # the kernel imports it itself, and says so if it fails there too
            if name not in optional:
                failed[name] = (type(exc).__name__ + ": " + str(exc)).splitlines()[0][:200]
    return {"done": done, "failed": failed}


def _child(argv: list[str], env: dict[str, str], cwd: str, keep: tuple[int, ...]) -> None:
    """Become ``python -m ipykernel_launcher ARGV`` in ``cwd`` with ``env``; never returns."""
    code = 1
    try:
        os.setsid()
        for fd in keep:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _NeedsShell)]
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        if "numpy.random" in sys.modules:
            sys.modules["numpy.random"].seed()
        import ipykernel_launcher

        # the kernel ends when the server does (IPKernelApp read JPY_PARENT_PID when imported here)
        argv = [*argv, f"--IPKernelApp.parent_handle={os.getppid()}"]
        sys.argv = [ipykernel_launcher.__file__, *argv]
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def serve() -> None:
    """The server's loop: one request a line on standard input, one reply a line on output."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # what imports print goes where the kernels' own output goes
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # kernels are reaped as they exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's: it shuts kernels down
    if sys.path and (sys.path[0] in ("", os.getcwd())):
        del sys.path[0]  # as ipykernel_launcher does; the kernel's shell puts it back
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # as ipykernel sets it
    sys.meta_path.insert(0, _NeedsShell())
    _load(list(KERNEL_MODULES), [], None)
    host = os.getppid()
    forked: list[int] = []
    loaded: dict[str, None] = {}  # what requests asked for and imported, in order
    for line in requests:
        try:
            request = json.loads(line)
            if request["op"] == "load":
                reply = _load(request["modules"], request.get("optional", []), request.get("cwd"))
                loaded.update(dict.fromkeys(reply["done"]))
            elif request["op"] == "fork" and (why := _differs_in(request["cwd"], loaded)):
                reply = {"error": f"not forked: {why}"}
            elif request["op"] == "fork":
                pid = os.fork()
                if pid == 0:
                    _child(request["argv"], request["env"], request["cwd"], (requests.fileno(), replies.fileno()))
                forked.append(pid)
                reply = {"pid": pid, "loaded": list(loaded)}
            else:
                reply = {"error": f"unknown request {request['op']!r}"}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write((json.dumps(reply) + "\n").encode())
        replies.flush()
    _outlive(forked, host)
    # the server holds modules, never a notebook: tearing them down would only keep the host's
    # standard error (which the server shares) open for half a second more
    sys.stderr.flush()
    os._exit(0)


def _outlive(forked: list[int], host: int) -> None:
    """After the last request: wait for the kernels to be shut down by their managers; if the
    host process dies meanwhile (or died, closing the requests), kill them instead."""
    import time

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True

    while True:
        forked[:] = [pid for pid in forked if alive(pid)]
        if not forked:
            return
        if os.getppid() != host:
            for pid in forked:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            return
        time.sleep(0.2)

if __name__ == "__main__":
    serve()

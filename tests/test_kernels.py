"""Warm kernels: started ahead with the template's imports done, used once, never carrying
a run's state; the record says how its kernel was prepared."""

from __future__ import annotations

import ast
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from mlnb.execute import changed_scraps, find_template, reproduce, run_template
from mlnb.kernels import KernelPool, template_imports

NOTEBOOKS = Path(__file__).parent / "notebooks"
NAMESPACE = NOTEBOOKS / "namespace.ipynb"


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """The namespace notebook on a cold kernel, a warm one and a forked one (pandas preloaded)."""
    store = tmp_path_factory.mktemp("kernels") / "store"
    runs = {"cold": run_template(NAMESPACE, {}, store)}
    for mode, fork in (("warm", False), ("forked", True)):
        with KernelPool(preload=("pandas",), size=1, fork=fork) as pool:
            runs[mode] = run_template(NAMESPACE, {}, store, kernels=pool)
    return store, runs


@pytest.fixture(params=["warm", "forked"])
def cold_and_warm(kinds, request):
    store, runs = kinds
    return store, runs["cold"], runs[request.param]


def test_a_warm_kernel_has_a_fresh_kernels_namespace_and_only_more_modules(cold_and_warm, request):
    _, cold, warm = cold_and_warm
    assert cold.succeeded and warm.succeeded, (cold.record["error"], warm.record["error"])
    assert cold.record["environment"]["kernel_preparation"] == {"mode": "cold", "preloaded": []}
    preparation = warm.record["environment"]["kernel_preparation"]
    assert preparation["mode"] == request.node.callspec.params["cold_and_warm"]
    assert "pandas" in preparation["preloaded"]
    assert "mlnb.scraps" in preparation["preloaded"]  # what the notebook itself imports
    # the names, the execution count, the history and the directory are a fresh kernel's
    assert changed_scraps(cold, warm) == ["pandas_loaded"]
    assert cold.scraps["pandas_loaded"] is False and warm.scraps["pandas_loaded"] is True
    assert warm.scraps["cwd"] == str(NOTEBOOKS)


def test_reproduce_prepares_the_kernel_as_the_record_says_or_cold_on_request(cold_and_warm):
    store, _, warm = cold_and_warm
    from mlnb.store import Store

    _, again, changed = reproduce(Store(store), warm.id)
    assert again.record["environment"]["kernel_preparation"] == warm.record["environment"]["kernel_preparation"]
    assert changed == []
    _, cold, changed = reproduce(Store(store), warm.id, cold=True)
    assert cold.record["environment"]["kernel_preparation"]["mode"] == "cold"
    assert changed == ["pandas_loaded"]


def test_a_preload_module_that_does_not_import_is_one_warning_and_the_pool_goes_on(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mlnb.kernels")
    with KernelPool(preload=("pandas", "mlnb_no_such_module"), size=1) as pool:
        runs = [run_template(NAMESPACE, {}, tmp_path / "store", kernels=pool) for _ in range(2)]
    assert all(r.succeeded for r in runs)
    preloaded = runs[0].record["environment"]["kernel_preparation"]["preloaded"]
    assert "pandas" in preloaded and "mlnb_no_such_module" not in preloaded
    lines = [r.getMessage() for r in caplog.records if "mlnb_no_such_module" in r.getMessage()]
    assert len(lines) == 1 and "does not import" in lines[0] and "ModuleNotFoundError" in lines[0]


@pytest.mark.parametrize("mode", ["warm", "forked"])
def test_a_kernel_that_died_while_it_waited_is_replaced(tmp_path, caplog, mode):
    caplog.set_level(logging.WARNING, logger="mlnb.kernels")
    tpl = find_template(NAMESPACE)
    with KernelPool(size=1, fork=mode == "forked") as pool:
        pool.warm(tpl)
        (waiting,) = [f for q in pool._waiting.values() for f in q]
        kernel = waiting.result(timeout=120)
        os.kill(kernel.km.provisioner.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while kernel.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        run = run_template(NAMESPACE, {}, tmp_path / "store", kernels=pool)
    assert run.succeeded, run.record["error"]
    assert run.record["environment"]["kernel_preparation"]["mode"] == mode
    assert any("died while it waited" in r.getMessage() for r in caplog.records)


def test_the_pool_holds_no_more_kernels_than_its_size():
    tpl = find_template(NAMESPACE)
    with KernelPool(size=1) as pool:
        pool.warm(tpl, n=3)
        assert pool.held == 1
    assert pool.held == 0


def test_a_kernel_asked_for_while_the_pool_is_full_starts_when_one_leaves_it():
    namespace, drift = find_template(NAMESPACE), find_template("drift")
    with KernelPool(size=1) as pool:
        pool.warm(namespace)
        pool.warm(drift)  # no room: it waits for the namespace kernel to be handed out
        assert pool.held == 1 and not pool._waiting[pool._key(drift, None)]
        pool.acquire(namespace).shutdown()
        assert pool.held == 1 and len(pool._waiting[pool._key(drift, None)]) == 1
        kernel = pool.acquire(drift)
        try:
            assert kernel.alive() and "mlnb.drift" in kernel.preloaded
        finally:
            kernel.shutdown()
        assert pool.held == 0


def test_a_pool_that_forks_imports_what_templates_need_ahead_without_starting_kernels():
    with KernelPool(size=1) as pool:
        pool.prepare(find_template("drift"), find_template("evaluate"))
        pool._starter.submit(lambda: None).result(timeout=300)  # the import ahead ran before it
        assert pool.held == 0
        assert {"mlnb.drift", "skops.io", "pandas"} <= set(pool.forkserver.loaded)
        kernel = pool.acquire(find_template("evaluate"))
        try:
            assert kernel.forked and "mlnb.drift" in kernel.preloaded  # the server held it when it forked
        finally:
            kernel.shutdown()


def test_the_preload_of_a_template_is_what_its_code_cells_import():
    modules, maybe = template_imports(find_template("drift").path)
    assert {"pandas", "matplotlib.pyplot", "mlnb"} <= set(modules)
    assert "mlnb.scraps.glue" in maybe  # from mlnb.scraps import glue: imported if it is a module
    assert "mlnb.drift" in modules  # what its library calls import lazily, from the template's metadata
    # what a library call imports lazily is declared in the template's metadata
    assert "skops.io" in template_imports(find_template("evaluate").path)[0]
    assert "skops.io" not in modules


def test_mlnb_run_starts_its_kernel_ahead_unless_cold(tmp_path, cli):
    import json

    store = tmp_path / "store"
    records = {}
    for flags, mode in (([], "warm"), (["--cold"], "cold")):
        result = cli("run", str(NAMESPACE), "--store", str(store), "--json", *flags)
        assert result.returncode == 0, result.stderr
        records[mode] = json.loads(result.stdout)
        assert records[mode]["environment"]["kernel_preparation"]["mode"] == mode
    assert records["warm"]["scraps"] == records["cold"]["scraps"]  # nothing is preloaded beyond its imports


def test_a_bad_preload_name_in_mlnb_yaml_is_a_config_error_naming_it(tmp_path):
    from mlnb.config import load_config
    from mlnb.exceptions import ConfigError

    (tmp_path / "mlnb.yaml").write_text(
        "model: {name: m, target: y}\ndata: {reference: r.csv, current: c.csv}\nkernels: {preload: [pandas, 'sk learn']}\n")
    with pytest.raises(ConfigError, match=r"kernels.preload.*'sk learn' is not a module name"):
        load_config(tmp_path / "mlnb.yaml")


# Starts kernels the way mlnb does, three in a row without waiting, then waits for each,
# so that several such processes at once start kernels at the same moments.
_START_THREE = """
import sys
from mlnb.kernels import _kernel_manager_class, notebook_kernel_manager_class
managers = [_kernel_manager_class()(kernel_name="python3") for _ in range(2)]
managers.append(notebook_kernel_manager_class()(kernel_name="python3"))
for km in managers:
    km.start_kernel(extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
for km in managers[:2]:
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    kc.stop_channels()
print(sorted({km.transport for km in managers}))
for km in managers[:2]:
    km.shutdown_kernel(now=True)
import asyncio
asyncio.run(managers[2].shutdown_kernel(now=True))
"""


def test_kernels_started_at_once_by_several_processes_never_collide(tmp_path):
    """Over TCP, ports picked by jupyter_client could be taken by a kernel of another process
    before its own kernel bound them (a ZMQError traceback on stderr, or a kernel dead at
    start); each kernel's Unix sockets live in a private directory instead."""
    import subprocess
    import sys

    from .conftest import default_signals

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", _START_THREE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, preexec_fn=default_signals) for _ in range(5)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "ZMQError" not in err, err
        assert out.strip() == "['ipc']"
    assert not list(tmp_path.glob("mlnb-kernel-*")), "a kernel's socket directory was left behind"


def test_a_temp_directory_too_deep_for_a_socket_path_still_starts_kernels(tmp_path):
    """A Unix socket's path holds at most 107 bytes: under a deep TMPDIR (a Dask worker's
    own, a CI runner's) the kernels' sockets go to /tmp instead of failing to start."""
    import subprocess
    import sys

    from .conftest import default_signals

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    env = {**os.environ, "TMPDIR": str(deep)}
    script = _START_THREE + "print([km._mlnb_socket_dir for km in managers])\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          preexec_fn=default_signals, timeout=180)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    transports, used = done.stdout.strip().splitlines()
    assert transports == "['ipc']"
    used = [Path(p) for p in ast.literal_eval(used)]
    assert len(used) == 3 and all(p.parent == Path("/tmp") for p in used), used
    assert not any(p.exists() for p in used), "a kernel's socket directory in /tmp was left behind"
    assert not list(deep.glob("mlnb-kernel-*")), "the deep directory was tried but not cleaned"


_RANDOM = "import os, numpy as np\nprint(os.getppid(), np.random.randint(1 << 62), flush=True)"


def _ask(kernel, code: str) -> str:
    out = []
    kc = kernel.km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive(code, timeout=60, output_hook=lambda m: out.append(m["content"].get("text", "")))
    finally:
        kc.stop_channels()
    return "".join(out).strip()


@pytest.mark.parametrize("fork", [False, True])
def test_a_pooled_kernels_client_is_ready_once_iopub_delivered_its_kernel_info_status(fork):
    from mlnb.kernels import _ready_client_class

    tpl = find_template(NAMESPACE)
    with KernelPool(size=1, fork=fork) as pool:
        kernel = pool.acquire(tpl)
        try:
            assert isinstance(kernel.km.client(), _ready_client_class())
            for _ in range(3):  # each new client: ready, IOPub connected, nothing of another request left
                assert _ask(kernel, "print(6 * 7)") == "42"
        finally:
            kernel.shutdown()


def test_forked_kernels_are_children_of_the_fork_server_and_share_no_random_numbers():
    tpl = find_template(NAMESPACE)
    with KernelPool(preload=("numpy.random",), size=2) as pool:  # imported in the server, before the fork
        pool.warm(tpl, n=2)
        kernels = [pool.acquire(tpl), pool.acquire(tpl)]
        try:
            answers = [_ask(k, _RANDOM).split() for k in kernels]
            server = pool.forkserver._process.pid
        finally:
            for k in kernels:
                k.shutdown()
    assert all(k.forked and "numpy.random" in k.preloaded for k in kernels)
    assert [int(parent) for parent, _ in answers] == [server, server]  # forked there, not started here
    assert answers[0][1] != answers[1][1]  # numpy's global random state was reseeded in each


def test_closing_a_pool_stops_its_fork_server():
    tpl = find_template(NAMESPACE)
    with KernelPool(size=1) as pool:
        pool.acquire(tpl).shutdown()
        server = pool.forkserver._process
    server.wait(timeout=30)  # it had no kernel left, so it ended when its requests did


# A host that makes a forked kernel and dies without shutting it down.
_DIE = """
import os, sys
from mlnb.execute import find_template
from mlnb.kernels import KernelPool
pool = KernelPool(size=1)
kernel = pool.acquire(find_template(sys.argv[1]))
print(kernel.km.provisioner.pid, flush=True)
os._exit(0)
"""


def test_the_kernels_of_a_host_that_died_are_killed(tmp_path):
    import subprocess
    import sys

    from .conftest import default_signals

    done = subprocess.run([sys.executable, "-c", _DIE, str(NAMESPACE)], capture_output=True, text=True,
                          preexec_fn=default_signals, timeout=180)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"kernel {pid} outlived the process that started it")


def test_only_kernels_of_this_interpreter_are_forked():
    import sys
    from types import SimpleNamespace

    from mlnb.forkserver import ForkServer, launcher_prefix

    argv = [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert launcher_prefix(argv) == (sys.executable, "-Xfrozen_modules=off")
    assert launcher_prefix(["julia", "-i", "kernel.jl", "{connection_file}"]) is None
    server = ForkServer()
    other = "/nonexistent/python3"
    assert not server.serves(SimpleNamespace(argv=[other, "-m", "ipykernel_launcher", "-f", "x"], language="python"))
    assert not server.serves(SimpleNamespace(argv=["R", "-m", "ipykernel_launcher"], language="R"))
    assert server.serves(SimpleNamespace(argv=argv, language="python"))
    # the first spec served fixes the interpreter's options: other options are not the server's
    assert not server.serves(SimpleNamespace(argv=[sys.executable, *argv[2:]], language="python"))


def test_a_kernel_is_started_warm_where_its_directory_would_change_what_the_server_imported(tmp_path, caplog):
    """A file in the template's directory that shadows a module the server imported (or a
    matplotlibrc, read when matplotlib is imported) would give a forked kernel other modules
    than a kernel started there: that kernel is started warm instead."""
    import shutil

    caplog.set_level(logging.INFO, logger="mlnb.kernels")
    shutil.copy(NAMESPACE, tmp_path / NAMESPACE.name)
    (tmp_path / "pandas.py").write_text("SHADOW = True\n")
    with KernelPool(preload=("pandas",), size=1) as pool:
        pool.acquire(find_template(NOTEBOOKS / "cpu_work.ipynb")).shutdown()  # the server has pandas
        run = run_template(tmp_path / NAMESPACE.name, {}, tmp_path / "store", kernels=pool)
    assert run.succeeded, run.record["error"]
    assert run.record["environment"]["kernel_preparation"]["mode"] == "warm"
    assert any("not forked" in r.getMessage() and "pandas" in r.getMessage() for r in caplog.records)


def test_a_forked_kernel_watches_the_fork_server_and_can_be_interrupted():
    tpl = find_template(NAMESPACE)
    with KernelPool(size=1) as pool:
        kernel = pool.acquire(tpl)
        try:
            handle = _ask(kernel, "from ipykernel.kernelapp import IPKernelApp\nprint(IPKernelApp.instance().parent_handle)")
            assert int(handle) == pool.forkserver._process.pid
            kc = kernel.km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=60)
                msg_id = kc.execute("import time\ntime.sleep(60)")
                time.sleep(1)
                kernel.km.interrupt_kernel()
                reply = kc.get_shell_msg(timeout=30)
                assert reply["parent_header"]["msg_id"] == msg_id
                assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
            finally:
                kc.stop_channels()
            assert _ask(kernel, "print(6 * 7)") == "42"  # and it goes on
        finally:
            kernel.shutdown()

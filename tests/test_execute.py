"""Executing templates with a real kernel: records, failures, interruption, concurrency."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mlnb import records
from mlnb.execute import run_template
from mlnb.store import STAGING, Store

from .conftest import NOTEBOOKS, ROOT, default_signals, run_cli


def test_record_holds_every_parameter_scrap_artifact_and_hash(echo_run):
    rec = echo_run.record
    assert rec["schema"] == "mlnb.run/1"
    assert rec["status"] == "succeeded" and rec["error"] is None
    # defaults included, not only the overrides
    assert rec["parameters"]["n"] == 5 and rec["parameters"]["ratio"] == 0.5
    assert rec["parameters"]["options"] == {"a": 1}
    assert rec["scraps"]["values"]["n"] == 5
    assert rec["scraps"]["run_id"] == echo_run.id
    assert rec["scraps"]["data_lines"] == 3
    # the input file named by a parameter is fingerprinted
    (inp,) = rec["inputs"]
    assert inp["parameter"] == "data" and inp["bytes"] == 12
    assert inp["sha256"] == records.sha256_file(inp["path"])
    # the table scrap is a Parquet artifact, referenced from the record
    assert rec["scraps"]["table"]["$artifact"] == "scraps/table.parquet"
    table = echo_run.scrap("table")
    assert list(table["b"]) == ["x", "y", "z"]
    names = {a["path"] for a in rec["artifacts"]}
    assert names == {"out.txt", "scraps/table.parquet"}
    assert echo_run.artifact("out.txt").read_text() == "echo 5\n"
    assert rec["template"]["sha256"] == records.sha256_file(rec["template"]["path"])
    assert rec["environment"]["packages"]["papermill"]
    assert rec["git"] is None or set(rec["git"]) == {"commit", "dirty"}
    assert records.compute_digest(rec) == rec["digest"]
    assert records.verify(echo_run.path) == []


def test_committed_files_are_read_only_and_html_is_rendered(echo_run):
    for path in echo_run.path.rglob("*"):
        if path.is_file():
            assert not os.stat(path).st_mode & 0o222, path
    html = echo_run.html_path.read_text()
    assert "<html" in html and "A test fixture." in html
    assert "application/scrapbook" not in html


def test_store_api_for_notebooks(echo_run):
    store = Store(echo_run.path.parent)
    df = store.runs(template="echo")
    assert list(df["id"]) == [echo_run.id]
    assert df.loc[0, "scrap.data_lines"] == 3
    run = store.get(echo_run.id[:20])  # a unique prefix is enough
    assert run.parameters["n"] == 5
    assert isinstance(run.scraps["table"], pd.DataFrame)
    assert run.notebook.cells[0].cell_type == "markdown"
    assert run.html_path.is_file()


@pytest.mark.parametrize(
    "notebook, options, kind, ename, evalue, failing_source",
    [
        ("raises.ipynb", {}, "exception", "ValueError", "bad value 1", "raise ValueError"),
        ("dies.ipynb", {}, "dead_kernel", "DeadKernelError", "Kernel died", "os._exit(1)"),
        ("sleeps.ipynb", {"timeout": 2}, "timeout", "CellTimeoutError", "after 2 seconds", "time.sleep"),
        ("exits.ipynb", {}, "exit", "SystemExit", "0", "sys.exit(code)"),
    ],
)
def test_each_failure_kind_is_recorded_as_failed(notebooks, store, notebook, options, kind, ename, evalue, failing_source):
    run = run_template(notebooks / notebook, {}, store, **options)
    assert run.status == "failed"
    err = run.record["error"]
    assert (err["kind"], err["ename"]) == (kind, ename)
    assert evalue in err["evalue"]
    cell = run.notebook.cells[err["cell_index"]]
    assert failing_source in cell.source
    # later cells did not run, whatever papermill's metadata says
    assert "never" not in json.dumps([c.get("outputs", []) for c in run.notebook.cells])
    assert records.verify(run.path) == []


def test_failed_run_keeps_scraps_glued_before_the_error(notebooks, store):
    run = run_template(notebooks / "raises.ipynb", {}, store)
    assert run.record["scraps"] == {"before": 1}


def test_injected_strings_arrive_intact_and_run_nothing(notebooks, store, tmp_path):
    marker = tmp_path / "pwned"
    evil = f'x"; import pathlib; pathlib.Path("{marker}").touch(); y="\nimport os\\\n\'\'\'"'
    run = run_template(notebooks / "echo.ipynb", {"name": evil, "options": {evil: [evil]}}, store)
    assert run.succeeded, run.record["error"]
    assert run.record["scraps"]["values"]["name"] == evil
    assert run.record["scraps"]["values"]["options"] == {evil: [evil]}
    assert not marker.exists()


def _wait_for(predicate, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _start_sleeping_run(store_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mlnb", "run", str(ROOT / "tests/notebooks/sleeps.ipynb"),
         "-p", "seconds", "60", "--store", str(store_path), "--quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_signals,
    )


def _staged(store_path: Path) -> list[Path]:
    staging = store_path / STAGING
    return [p for p in staging.iterdir() if (p / "notebook.ipynb").exists()] if staging.is_dir() else []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_leaves_no_record_and_no_debris(tmp_path, sig):
    store_path = tmp_path / "store"
    proc = _start_sleeping_run(store_path)
    assert _wait_for(lambda: _staged(store_path)), "the run never started"
    time.sleep(1.0)  # inside the sleeping cell
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert Store(store_path).run_ids() == []
    assert list((store_path / STAGING).iterdir()) == []


def test_killed_run_leaves_debris_that_the_next_run_cleans(tmp_path, notebooks):
    store_path = tmp_path / "store"
    proc = _start_sleeping_run(store_path)
    assert _wait_for(lambda: _staged(store_path))
    proc.kill()
    proc.communicate(timeout=60)
    assert _staged(store_path), "SIGKILL cannot clean up: debris expected"
    run = run_template(notebooks / "trivial.ipynb", {}, Store(store_path))
    assert Store(store_path).run_ids() == [run.id]
    assert list((store_path / STAGING).iterdir()) == []


def test_concurrent_runs_on_one_store_both_commit(tmp_path):
    store_path = tmp_path / "store"
    cmd = [sys.executable, "-m", "mlnb", "run", str(ROOT / "tests/notebooks/trivial.ipynb"),
           "--store", str(store_path), "--quiet"]
    procs = [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = Store(store_path)
    ids = store.run_ids()
    assert len(set(ids)) == 2
    assert {r["id"] for r in store.list_runs()} == set(ids)


def test_reproduce_links_the_new_record_and_reports_differing_scraps(tmp_path, notebooks):
    from mlnb.execute import reproduce

    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    store = Store(tmp_path / "store")
    original = run_template(notebooks / "echo.ipynb", {"data": str(data)}, store)
    orig, new, changed = reproduce(store, original.id)
    assert new.record["reproduces"] == original.id
    assert new.parameters == original.parameters
    assert new.record["inputs"] == original.record["inputs"]
    assert changed == ["run_id"]  # the only value that depends on the run itself


def test_reproduce_refuses_a_changed_input(tmp_path, notebooks, cli):
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    store = Store(tmp_path / "store")
    original = run_template(notebooks / "echo.ipynb", {"data": str(data)}, store)
    data.write_text("a\n2\n")
    result = cli("runs", "reproduce", original.id, "--store", str(store.path))
    assert result.returncode == 2
    assert f"input '{data}' (parameter 'data') changed since the run" in result.stderr
    assert store.run_ids() == [original.id]



@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory) -> Path:
    from sklearn.datasets import load_wine

    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def moved_run(tmp_path_factory, wine_csv):
    """A run of a project's own template, whose project directory was renamed afterwards:
    (store, run, the template's recorded path, its bytes)."""
    base = tmp_path_factory.mktemp("moved")
    (base / "project-a" / "templates").mkdir(parents=True)
    template = base / "project-a" / "templates" / "echo.ipynb"
    shutil.copyfile(NOTEBOOKS / "echo.ipynb", template)
    store = Store(base / "store")
    result = run_cli("run", "echo", "-p", "data", str(wine_csv), "--store", str(store.path), "--quiet",
                     cwd=base / "project-a")
    assert result.returncode == 0, result.stderr
    (run_id,) = store.run_ids()
    (base / "project-a").rename(base / "project-a-moved")
    return store, store.get(run_id), template, (NOTEBOOKS / "echo.ipynb").read_bytes()


def _project_with(root: Path, name: str, content: bytes) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "templates" / name).write_bytes(content)
    return root


def test_reproduce_finds_a_moved_template_by_its_content_in_the_working_directorys_project(moved_run, tmp_path):
    store, original, recorded, content = moved_run
    project = _project_with(tmp_path / "project-b", "echo.ipynb", content)
    result = run_cli("runs", "reproduce", original.id, "--store", str(store.path), "-q", cwd=project)
    assert result.returncode == 0, result.stderr
    used = project / "templates" / "echo.ipynb"
    assert result.stderr.splitlines() == [
        f"template '{recorded}' is gone; using {used}, whose sha256 "
        f"{original.record['template']['sha256'][:12]}… is the recorded one"]
    assert f"reproduces {original.id}" in result.stdout
    assert "scraps that differ: run_id\n" in result.stdout  # the only value that depends on the run itself
    (again,) = [r for r in store.run_ids() if store.get(r).record["reproduces"] == original.id]
    again = store.get(again)
    assert again.record["template"] == {**original.record["template"], "path": str(used)}
    assert again.scraps["data_lines"] == original.scraps["data_lines"] == 179  # the wine table, read again
    assert again.record["inputs"] == original.record["inputs"]


def test_reproduce_refuses_a_same_named_template_one_byte_apart_and_says_where_it_looked(moved_run, tmp_path):
    from mlnb.catalog import shipped_templates

    store, original, recorded, content = moved_run
    sha = original.record["template"]["sha256"]
    changed = content.replace(b"A test fixture.", b"A test fixturE.")
    assert len(changed) == len(content) and sum(a != b for a, b in zip(changed, content)) == 1
    project = _project_with(tmp_path / "project-b", "echo.ipynb", changed)
    before = store.run_ids()
    result = run_cli("runs", "reproduce", original.id, "--store", str(store.path), "-q", cwd=project)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert f"template '{recorded}' is gone, and no template 'echo' with sha256 {sha[:12]}… in " in line
    assert f"{project / 'templates'} (its echo.ipynb has sha256 {records.sha256_bytes(changed)[:12]}…)" in line
    assert str(shipped_templates()) in line
    assert store.run_ids() == before


def test_reproduce_finds_a_shipped_template_whose_project_copy_is_gone(tmp_path, wine_csv):
    from mlnb.catalog import shipped_templates

    assert run_cli("init", "project", "--data", str(wine_csv), "--target", "cultivar", cwd=tmp_path).returncode == 0
    project, store = tmp_path / "project", tmp_path / "store"
    result = run_cli("run", "train", "--store", str(store), "--quiet", cwd=project)
    assert result.returncode == 0, result.stderr
    (run_id,) = Store(store).run_ids()
    original = Store(store).get(run_id)
    recorded = project / "templates" / "train.ipynb"
    assert original.record["template"]["path"] == str(recorded)
    assert original.parameters["data"] == "../data/reference.csv"  # the template's default, from its directory
    shutil.rmtree(project / "templates")
    # from outside any project: only mlnb's own templates are there to look in
    result = run_cli("runs", "reproduce", run_id, "--store", str(store), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (said,) = result.stderr.splitlines()
    assert said.startswith(f"template '{recorded}' is gone; using {shipped_templates() / 'train.ipynb'}, whose sha256")
    assert "every scrap is identical" in result.stdout
    (again,) = [Store(store).get(r) for r in Store(store).run_ids() if r != run_id]
    # the table the run read, not one next to the shipped template or the working directory
    assert again.parameters["data"] == str(project / "data" / "reference.csv")
    assert again.record["inputs"] == original.record["inputs"]


def test_a_template_with_a_store_parameter_gets_the_runs_store(notebooks, store, tmp_path):
    run = run_template(notebooks / "storeparam.ipynb", {}, store)
    assert run.record["scraps"]["store"] == str(store.path.resolve())
    assert run.parameters["store"] == str(store.path.resolve())
    other = str(tmp_path / "elsewhere")
    assert run_template(notebooks / "storeparam.ipynb", {"store": other}, store).record["scraps"]["store"] == other


def _kernelspec(tmp_path, name: str, dies: str) -> None:
    """A kernel that exits before answering: on its first start only, or always."""
    spec_dir = tmp_path / "jupyter" / "kernels" / name
    spec_dir.mkdir(parents=True)
    script = spec_dir / "kernel.py"
    script.write_text(
        "import pathlib, sys\n"
        "marker = pathlib.Path(__file__).with_name('started')\n"
        f"if {dies!r} == 'always' or not marker.exists():\n"
        "    marker.write_text('1')\n"
        "    sys.exit(1)\n"
        "from ipykernel import kernelapp\n"
        "kernelapp.launch_new_instance()\n"
    )
    spec = {"argv": [sys.executable, str(script), "-f", "{connection_file}"], "display_name": name, "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))


def test_a_kernel_that_dies_while_starting_is_started_again(notebooks, store, tmp_path, monkeypatch):
    _kernelspec(tmp_path, "flaky", dies="once")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    run = run_template(notebooks / "trivial.ipynb", {}, store, kernel_name="flaky")
    assert run.succeeded and run.record["scraps"] == {"answer": 42}


def test_a_kernel_that_never_starts_is_recorded_as_dead(notebooks, store, tmp_path, monkeypatch):
    _kernelspec(tmp_path, "broken", dies="always")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    run = run_template(notebooks / "trivial.ipynb", {}, store, kernel_name="broken")
    assert run.status == "failed"
    assert run.record["error"]["kind"] == "dead_kernel" and run.record["error"]["cell_index"] is None


def test_a_declared_input_of_unknown_kind_is_a_template_error(tmp_path, store):
    from mlnb.exceptions import TemplateError

    nb = json.loads((ROOT / "tests/notebooks/echo.ipynb").read_text())
    nb["metadata"]["mlnb"] = {"inputs": {"data": "spreadsheet"}}
    path = tmp_path / "odd.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(TemplateError, match="kind 'spreadsheet'; allowed kinds: table, schema, file"):
        run_template(path, {"data": str(path)}, store)
    assert store.run_ids() == []


@pytest.mark.parametrize("mode, entry, why", [
    ("symlink", "artifacts/passwd", "is a symbolic link (to "),
    ("symlink_dir", "artifacts/etc", "is a symbolic link (to "),
    ("hardlink", "artifacts/linked", "is a hard link to a file outside the run"),
    ("outside", "evil.txt", "was written outside artifacts_dir"),
    ("fifo", "artifacts/pipe", "is not a regular file"),
])
def test_what_a_record_cannot_hold_is_removed_and_the_run_recorded_failed_saying_so(tmp_path, mode, entry, why):
    """A link in artifacts/ would be hashed by its target's content and made read-only
    through it; a file beside artifacts/ would make the committed run fail verify."""
    import stat

    target = tmp_path / "outside" / "secret.txt"
    target.parent.mkdir()
    target.write_text("not the run's")
    os.chmod(target, 0o640)
    link_to = target.parent if mode == "symlink_dir" else target
    run = run_template(NOTEBOOKS / "writes_foreign.ipynb", {"mode": mode, "target": str(link_to)}, tmp_path / "store")
    assert run.status == "failed"
    assert run.record["error"]["ename"] == "ArtifactRefused"
    assert f"{entry} {why}" in run.record["error"]["evalue"]
    assert [a["path"] for a in run.record["artifacts"]] == ["model.txt"]
    assert not os.path.lexists(run.path / entry)
    assert Store(tmp_path / "store").verify(run.id) == []
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "not the run's"

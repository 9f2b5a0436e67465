"""Rendered runs as a person sees them: each template's notebook.html opened in headless Chromium.

One real retraining pipeline run on the example project gives a real, recorded run of every
template it uses (validate, drift, train, evaluate) and of the pipeline template itself.
Each run's HTML is opened in Chromium twice: once to save a screenshot under
``test-artifacts/browser/`` (look at it), once to dump the DOM after rendering, on which the
tests assert: a title, the parameters, the template's summary table, plot images that
decode, and no traceback, error or stderr output.

Chromium is Debian's ``chromium`` package; when it is missing the test set-up installs it
with apt-get (root), and skips with the reason when that is impossible.
"""

from __future__ import annotations

import base64
import fcntl
import html
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.xdist_group("browser")

ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]

# template -> (title, the cells of its summary table, at least this many plots)
EXPECTED = {
    "validate": ("Validate a data batch", ["check", "column", "passed", "n_failed", "row_count"], 1),
    "drift": ("Drift analysis", ["value", "reference rows", "columns drifted", "drift share", "dataset drift"], 1),
    "train": ("Train a model", ["holdout", "accuracy", "f1", "precision", "recall"], 2),
    "evaluate": ("Evaluate a registered model", ["weather/1", "accuracy", "f1", "roc_auc"], 1),
    "pipeline": ("Retraining pipeline", ["name", "fired", "threshold", "reason", "drift"], 1),
}


def _install_chromium() -> str | None:
    """Install Debian's chromium once (serialised across test processes); return why not, or None."""
    if os.geteuid() != 0:
        return "chromium is not installed and installing it needs root: apt-get install -y chromium"
    if shutil.which("apt-get") is None:
        return "chromium is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(Path(tempfile.gettempdir()) / "mlnb-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shutil.which("chromium"):
            return None
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
            try:
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{' '.join(cmd)} failed: {exc}"
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                return f"{' '.join(cmd)} exited {done.returncode}: {' | '.join(tail)}"
    return None if shutil.which("chromium") else "apt-get installed chromium but it is not on PATH"


@pytest.fixture(scope="session")
def chromium() -> str:
    if shutil.which("chromium") is None:
        reason = _install_chromium()
        if reason:
            pytest.skip(reason)
    return shutil.which("chromium")


def _chromium(binary: str, url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="mlnb-chromium-") as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def pipeline_runs(tmp_path_factory) -> dict:
    """One pipeline run on the example project: {template: run} for it and its children."""
    from mlnb.config import load_config
    from mlnb.pipeline import run_pipeline
    from mlnb.project import init_project
    from mlnb.store import Store

    project = tmp_path_factory.mktemp("browser") / "project"
    init_project(project)
    store = Store(project / "runs")
    decision, record = run_pipeline(load_config(project / "mlnb.yaml"), store,
                                    current=str(project / "data" / "batches" / "2013-q2.csv"))
    assert decision.outcome != "error", decision.reasons
    runs = {record.template: record}
    for run_id in decision.children.values():
        run = store.get(run_id)
        runs.setdefault(run.template, run)
    return runs


@pytest.fixture(scope="module")
def rendered(chromium, pipeline_runs) -> dict:
    """{template: (DOM after rendering, screenshot path)}."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = {}
    for template, run in pipeline_runs.items():
        url = run.html_path.resolve().as_uri()
        shot = ARTIFACTS / f"{template}.png"
        done = _chromium(chromium, url, "--window-size=1280,2400", f"--screenshot={shot}")
        assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
        dom = _chromium(chromium, url, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        out[template] = (dom.stdout, shot)
    return out


def _tables(dom: str) -> list[list[str]]:
    """The text of every table's cells."""
    tables = []
    for table in re.findall(r"<table\b.*?</table>", dom, re.S):
        cells = re.findall(r"<t[hd]\b[^>]*>(.*?)</t[hd]>", table, re.S)
        tables.append([re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return tables


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_every_template_ran(pipeline_runs):
    assert set(pipeline_runs) == set(EXPECTED)
    assert all(run.succeeded for run in pipeline_runs.values())


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_rendered_run_has_title_parameters_summary_and_plots(rendered, pipeline_runs, template):
    dom, _ = rendered[template]
    title, summary, min_plots = EXPECTED[template]
    run = pipeline_runs[template]
    # a title, as the first heading
    headings = re.findall(r"<h1\b[^>]*>(.*?)</h1>", dom, re.S)
    assert headings and re.sub(r"<[^>]+>", "", headings[0]).replace("¶", "").strip() == title
    # the parameters: the values this run was given, in the cell papermill injected
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert "# Parameters" in text
    for name, value in run.parameters.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            assert f"{name} = {value!r}" in text
    # the summary table
    assert any(all(cell in table for cell in summary) for table in _tables(dom)), _tables(dom)
    # plot images, embedded, that decode to real pictures
    images = re.findall(r'<img\b[^>]*src="data:image/png;base64,([^"]+)"', dom)
    assert len(images) >= min_plots
    for data in images:
        width, height = _png_size(base64.b64decode(data))
        assert width >= 200 and height >= 150


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_rendered_run_shows_no_traceback_error_or_stderr(rendered, template):
    dom, _ = rendered[template]
    assert "Traceback (most recent call last)" not in dom
    assert not re.search(r"site-packages/mlnb|/mlnb/[a-z_]+\.py", dom)
    # warnings and errors are the outputs nbconvert marks as stderr
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in dom


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_screenshot_shows_a_page(rendered, template):
    import matplotlib.image

    _, shot = rendered[template]
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1280)
    # not a blank page: text, tables and plots make many distinct rows of pixels
    rows = {bytes(row) for row in (pixels[:, :, :3] * 255).astype("uint8")}
    assert len(rows) > 200

"""The retraining pipeline end to end: real templates, real data, real registry and kernels."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from mlnb.config import load_config
from mlnb.pipeline import OUTCOME_EXIT, run_pipeline
from mlnb.project import init_project
from mlnb.registry import Registry
from mlnb.store import Store


@pytest.fixture(scope="session")
def bootstrapped(tmp_path_factory):
    """An example project whose pipeline promoted a first model on batch 2013-q1."""
    root = tmp_path_factory.mktemp("project") / "weather"
    init_project(root)
    decision, record = run_pipeline(load_config(root / "mlnb.yaml"), current=str(root / "data/batches/2013-q1.csv"))
    assert decision.outcome == "promoted", decision.reasons
    return root


@pytest.fixture
def project(bootstrapped, tmp_path):
    """A private copy of the bootstrapped project (store and registry included)."""
    root = tmp_path / "weather"
    shutil.copytree(bootstrapped, root)
    return root


def _config(root: Path, **changes):
    import yaml

    data = yaml.safe_load((root / "mlnb.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    (root / "mlnb.yaml").write_text(yaml.safe_dump(data))
    return load_config(root / "mlnb.yaml")


def _reference_like_batch(root: Path) -> Path:
    """90 days drawn from the reference year: no drift, and the model knows them."""
    ref = pd.read_csv(root / "data/reference.csv")
    path = root / "data/incoming-reference-like.csv"
    ref.sample(90, random_state=1).sort_values("date").to_csv(path, index=False)
    return path


def _versions(root: Path) -> list[int]:
    return [v.version for v in Registry(Store(root / "runs")).versions("weather")]


def test_bootstrap_promoted_a_first_model_with_full_lineage(bootstrapped):
    store = Store(bootstrapped / "runs")
    registry = Registry(store)
    production = registry.get("weather@production")
    assert production.version == 1
    # version → training run → pipeline record → the batch's fingerprint
    train = store.get(production.run_id)
    assert train.template == "train" and train.succeeded
    pipeline_run = store.get(train.record["parent"])
    assert pipeline_run.template == "pipeline"
    decision = pipeline_run.record["scraps"]["decision"]
    assert decision["children"]["train"] == train.id
    batch = bootstrapped / "data/batches/2013-q1.csv"
    from mlnb.records import sha256_file

    assert decision["batch"]["sha256"] == sha256_file(batch)
    assert production.data == train.record["inputs"]
    assert {"register", "set_alias"} == {c["action"] for c in decision["registry_changes"]}
    events = registry.history("weather", "production")
    assert events[-1].caused_by == pipeline_run.id
    assert pipeline_run.html_path.is_file()
    for child in decision["children"].values():
        assert store.get(child).record["parent"] == pipeline_run.id


def test_reference_like_batch_needs_nothing_and_a_second_run_skips_it(project):
    config = load_config(project / "mlnb.yaml")
    batch = _reference_like_batch(project)
    decision, record = run_pipeline(config, current=str(batch))
    assert decision.outcome == "nothing_needed", decision.reasons
    assert OUTCOME_EXIT[decision.outcome] == 0
    assert not any(t["fired"] for t in decision.triggers)
    assert {"validate", "drift", "evaluate_production"} == set(decision.children)
    assert _versions(project) == [1]
    again, record2 = run_pipeline(config, current=str(batch))
    assert again.outcome == "skipped"
    assert record.id in again.reasons[0] and again.children == {}
    assert _versions(project) == [1]


def test_drifted_batch_retrains_and_decides_from_the_recorded_metrics(project):
    config = load_config(project / "mlnb.yaml")
    decision, record = run_pipeline(config, current=str(project / "data/batches/2013-q3.csv"))
    assert decision.outcome in ("promoted", "not_promoted")
    assert "drift" in [t["name"] for t in decision.triggers if t["fired"]]
    store = Store(project / "runs")
    challenger = store.get(decision.children["evaluate_challenger"]).record["scraps"]["metrics"]["accuracy"]
    champion = store.get(decision.children["evaluate_champion"]).record["scraps"]["metrics"]["accuracy"]
    assert decision.comparison["challenger"] == challenger and decision.comparison["champion"] == champion
    should_promote = challenger - champion >= config.promotion.min_gain and challenger > champion
    assert (decision.outcome == "promoted") == should_promote
    assert _versions(project) == [1, 2]
    registry = Registry(store)
    assert registry.get("weather@production").version == (2 if should_promote else 1)
    if not should_promote:
        assert registry.get("weather@challenger").version == 2
    # the challenger and champion were scored on the same holdout file
    e1 = store.get(decision.children["evaluate_challenger"]).record["inputs"]
    e2 = store.get(decision.children["evaluate_champion"]).record["inputs"]
    assert [i["sha256"] for i in e1 if i["parameter"] == "data"] == [i["sha256"] for i in e2 if i["parameter"] == "data"]


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_rejected_batch_stops_the_pipeline_and_alerts_the_webhook(project, capsys):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = _config(project, alerts__webhook=f"http://127.0.0.1:{server.server_address[1]}/hook")
        batch = pd.read_csv(project / "data/batches/2013-q2.csv")
        batch.loc[:10, "temp_max"] = -999.0  # a sentinel for a missing reading: broken, not drift
        bad = project / "data/incoming-bad.csv"
        batch.to_csv(bad, index=False)
        lines = []
        decision, record = run_pipeline(config, current=str(bad), echo=lambda text, err=False: lines.append(text))
    finally:
        server.shutdown()
        server.server_close()
    assert decision.outcome == "rejected" and OUTCOME_EXIT["rejected"] == 5
    assert set(decision.children) == {"validate"}
    assert _versions(project) == [1]
    assert any(line.startswith("mlnb: alert:") and "rejected" in line for line in lines)
    (payload,) = server.received
    assert payload["event"] == "data_rejected" and "temp_max" in payload["text"]
    assert payload["pipeline_run"] == record.id
    assert record.record["scraps"]["decision"]["alerts"][0]["webhook"]["delivered"] is True


def test_webhook_that_is_down_loses_nothing(project):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = _config(project, alerts__webhook=f"http://127.0.0.1:{port}/down", alerts__retries=1)
    batch = pd.read_csv(project / "data/batches/2013-q2.csv").drop(columns=["wind"])
    bad = project / "data/incoming-no-wind.csv"
    batch.to_csv(bad, index=False)
    decision, record = run_pipeline(config, current=str(bad))
    assert decision.outcome == "rejected"
    delivery = record.record["scraps"]["decision"]["alerts"][0]["webhook"]
    assert delivery["delivered"] is False and delivery["attempts"] == 2
    assert record.succeeded and Store(project / "runs").verify(record.id) == []


def test_old_production_model_fires_the_schedule_trigger(project):
    config = load_config(project / "mlnb.yaml")
    created = Registry(Store(project / "runs")).get("weather@production").created
    later = datetime.fromisoformat(created.replace("Z", "+00:00")) + timedelta(days=31)
    decision, _ = run_pipeline(config, current=str(_reference_like_batch(project)), now=later.astimezone(timezone.utc))
    fired = [t["name"] for t in decision.triggers if t["fired"]]
    assert fired == ["schedule"], decision.reasons
    assert decision.outcome in ("promoted", "not_promoted")
    assert _versions(project) == [1, 2]


def test_broken_config_is_exit_2_naming_the_key(cli, tmp_path):
    init_project(tmp_path)
    text = (tmp_path / "mlnb.yaml").read_text().replace("drift_share: 0.5", "drift_share: lots")
    (tmp_path / "mlnb.yaml").write_text(text)
    result = cli("pipeline", "run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "drift.drift_share" in result.stderr
    assert not any((tmp_path / "runs").iterdir())


def test_cli_exit_code_says_data_rejected(cli, project):
    bad = project / "data/incoming-empty-weather.csv"
    batch = pd.read_csv(project / "data/batches/2013-q2.csv")
    batch["weather"] = "hail"
    batch.to_csv(bad, index=False)
    result = cli("pipeline", "run", "--current", str(bad), "-q", cwd=project)
    assert result.returncode == 5, result.stderr
    assert "decision: rejected" in result.stdout and "mlnb: alert:" in result.stderr
    assert "notebook.html" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backfill", "data/nothing/*.csv"], "--backfill 'data/nothing/*.csv' matches no file"),
        (["--backfill", "data/batches/*.csv", "--current", "data/batches/2013-q1.csv"],
         "give --current or --backfill, not both"),
    ],
)
def test_a_backfill_that_cannot_start_is_one_line_exit_2_and_writes_nothing(tmp_path, cli, args, message):
    root = tmp_path / "weather"
    init_project(root)
    result = cli("pipeline", "run", *args, "-q", cwd=root)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())


def test_an_interrupted_pipeline_records_what_its_steps_did(project, monkeypatch):
    import mlnb.pipeline.run
    from mlnb.exceptions import Interrupted

    def interrupted(*args, **kwargs):
        raise Interrupted("run interrupted")  # as Ctrl-C after the drift and evaluate steps

    monkeypatch.setattr(mlnb.pipeline.run, "evaluate_triggers", interrupted)  # where the run looks it up
    config = load_config(project / "mlnb.yaml")
    with pytest.raises(Interrupted, match=r"interrupted after step\(s\) validate, drift, evaluate_production; "
                                          r"recorded as an error"):
        run_pipeline(config, current=str(project / "data/batches/2013-q2.csv"))
    store = Store(project / "runs")
    (newest, *_) = store.list_runs(template="pipeline")
    decision = newest["scraps"]["decision"]
    assert decision["outcome"] == "error" and "interrupted" in decision["reasons"][-1]
    for step, run_id in decision["children"].items():
        assert store.get(run_id).record["parent"] == newest["id"], step
    assert _versions(project) == [1]


def test_a_new_configuration_reprocesses_the_newest_batch_only(project, monkeypatch):
    import mlnb.pipeline.run
    from mlnb import records
    from mlnb.pipeline import _Pipeline, batches

    config = load_config(project / "mlnb.yaml")
    files = batches(config)
    old = {records.sha256_file(f): [{"run": "old", "config": "0" * 64, "outcome": "nothing_needed"}] for f in files}
    monkeypatch.setattr(mlnb.pipeline.run, "processed_batches", lambda store: old)
    pipe = _Pipeline(config, Store(project / "runs"), datetime.now(timezone.utc), False, lambda *a, **k: None)
    assert pipe.choose_batch(None, False) == files[-1]  # not an older one, batch after batch
    assert "the configuration changed since" in pipe.decision.reasons[-1]
    newest = records.sha256_file(files[-1])
    old[newest].append({"run": "new", "config": config.fingerprint(), "outcome": "nothing_needed"})
    again = _Pipeline(config, Store(project / "runs"), datetime.now(timezone.utc), False, lambda *a, **k: None)
    assert again.choose_batch(None, False) is None and again.decision.outcome == "skipped"


def test_a_batch_that_cannot_be_read_is_rejected_and_recorded(project):
    bad = project / "data/incoming-binary.csv"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00")
    decision, record = run_pipeline(load_config(project / "mlnb.yaml"), current=str(bad))
    assert decision.outcome == "rejected" and OUTCOME_EXIT["rejected"] == 5
    assert "data rejected: cannot read" in decision.reasons[-1] and decision.children == {}
    assert record.succeeded and decision.alerts[0]["event"] == "data_rejected"


def test_ctrl_c_during_a_backfill_keeps_every_finished_batch_and_no_partial_record(project):
    import signal
    import subprocess
    import sys
    import time

    from .conftest import default_signals

    def pipeline_records() -> list[dict]:
        found = [json.loads(p.read_text()) for p in (project / "runs").glob("*-pipeline-*/record.json")]
        return [r for r in found if r["status"] == "succeeded" and r["scraps"]["decision"]["outcome"] != "error"]

    def batches_done() -> set[str]:
        return {Path(r["scraps"]["decision"]["batch"]["path"]).name for r in pipeline_records()}

    cmd = [sys.executable, "-m", "mlnb", "pipeline", "run", "--backfill", "data/batches/2013-q*.csv", "-q"]
    proc = subprocess.Popen(cmd, cwd=project, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.monotonic() + 180
    while "2013-q2.csv" not in batches_done() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()  # still running: batches 2013-q3 and -q4 are left
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "backfill interrupted at batch" in err and "Traceback" not in err, err
    done = batches_done()
    assert {"2013-q1.csv", "2013-q2.csv"} <= done and "2013-q4.csv" not in done
    staging = project / "runs" / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []  # no half-written run
    verified = subprocess.run([sys.executable, "-m", "mlnb", "store", "verify"], cwd=project, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
    assert verified.returncode == 0, verified.stdout + verified.stderr  # every record whole, the ledger unbroken
    again = subprocess.run(cmd, cwd=project, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert again.returncode in (0, 3, 4), again.stderr
    assert "processed before, left alone" in again.stdout
    names = [Path(r["scraps"]["decision"]["batch"]["path"]).name for r in pipeline_records()]
    assert sorted(names) == ["2013-q1.csv", "2013-q2.csv", "2013-q3.csv", "2013-q4.csv"]  # each batch once

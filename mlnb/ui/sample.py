"""A synthetic store for trying ``mlnb ui`` at scale and for its tests and benchmarks.

``python -m mlnb.ui.sample DIR --batches 2000 --models 4`` writes pipeline runs with their
children (validate, drift with a per-column table, evaluate of the production model, and on
retraining train and evaluate of the challenger), a sweep of training runs, model versions
registered from the training runs and promotions caused by the pipelines. Records are real
``mlnb.run/1`` records (sealed, verifiable) with notebooks rendered by nbconvert, written
straight into the store directory and indexed once, instead of executing thousands of
notebooks. Nothing here is used by ``mlnb ui`` itself.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mlnb import records
from mlnb.store import Store, new_run_id

BASE_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)
COLUMNS = ("precipitation", "temp_max", "temp_min", "wind", "humidity", "pressure")
TITLES = {"pipeline": "Retraining pipeline", "validate": "Validate a data batch", "drift": "Drift analysis",
          "evaluate": "Evaluate a registered model", "train": "Train a model", "sweep": "Sweep summary"}


def _notebook(template: str, scraps: dict, extra_html: str | None = None):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    # one notebook is rendered per template and shared by its runs: it names what is glued,
    # the values are in each record
    shown = {k: type(v).__name__ for k, v in scraps.items()}
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in shown.items())
    cells = [
        nbformat.v4.new_markdown_cell(f"# {TITLES.get(template, template)}\n\nA synthetic run of `{template}`."),
        nbformat.v4.new_code_cell("# Parameters\nseed = 0", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell(
            "summary = compute_summary(data)\nsummary",
            outputs=[nbformat.v4.new_output("execute_result", execution_count=3, data={
                "text/html": f"<table class='summary'><tr><th>scrap</th><th>type</th></tr>{rows}</table>",
                "text/plain": json.dumps(shown)})]),
        nbformat.v4.new_code_cell("print('done')", outputs=[nbformat.v4.new_output("stream", name="stdout", text="done\n")]),
    ]
    if extra_html:
        cells.append(nbformat.v4.new_code_cell(
            "display(HTML(payload))",
            outputs=[nbformat.v4.new_output("display_data", data={"text/html": extra_html, "text/plain": "<HTML>"})]))
    nb.cells = cells
    return nb


class _Writer:
    """Writes sealed records into a store directory, rendering each template's notebook once."""

    def __init__(self, store: Store):
        import logging

        from nbconvert import HTMLExporter

        self.store = store
        self.exporter = HTMLExporter(template_name="lab")
        self.exporter.log.setLevel(logging.ERROR)
        self.rendered: dict[str, tuple[bytes, bytes]] = {}
        self.hashes: dict[bytes, str] = {}
        self.n = 0

    def files(self, template: str, scraps: dict, extra_html: str | None = None) -> tuple[bytes, bytes]:
        import nbformat

        key = template if extra_html is None else f"{template}:{extra_html}"
        if key not in self.rendered:
            nb = _notebook(template, scraps, extra_html)
            html, _ = self.exporter.from_notebook_node(nb)
            self.rendered[key] = (nbformat.writes(nb).encode(), html.encode())
        return self.rendered[key]

    def sha256(self, data: bytes) -> str:
        if data not in self.hashes:
            self.hashes[data] = records.sha256_bytes(data)
        return self.hashes[data]

    def write(self, template: str, started: datetime, parameters: dict, scraps: dict, *, parent: str | None = None,
              tags: dict | None = None, artifacts: dict[str, bytes] | None = None, inputs: list | None = None,
              status: str = "succeeded", extra_html: str | None = None, run_id: str | None = None) -> str:
        run_id = run_id or new_run_id(template, now=started)
        with self.store.staging(run_id) as path:
            self._write(path, run_id, template, started, parameters, scraps, parent, tags, artifacts, inputs,
                        status, extra_html)
        self.n += 1
        return run_id

    def _write(self, path, run_id, template, started, parameters, scraps, parent, tags, artifacts, inputs, status,
               extra_html) -> None:
        ipynb, html = self.files(template, scraps, extra_html)
        (path / records.NOTEBOOK_FILE).write_bytes(ipynb)
        (path / records.HTML_FILE).write_bytes(html)
        arts = []
        for rel, data in sorted((artifacts or {}).items()):
            target = path / records.ARTIFACTS_DIR / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            arts.append({"path": rel, "sha256": records.sha256_bytes(data), "bytes": len(data)})
        duration = 2.0 + (self.n % 7)
        record = records.seal({
            "schema": records.SCHEMA, "id": run_id,
            "template": {"name": template, "path": f"templates/{template}.ipynb", "sha256": "0" * 64},
            "parameters": parameters, "inputs": inputs or [], "scraps": scraps,
            "files": {records.NOTEBOOK_FILE: {"sha256": self.sha256(ipynb), "bytes": len(ipynb)},
                      records.HTML_FILE: {"sha256": self.sha256(html), "bytes": len(html)}},
            "artifacts": arts, "status": status,
            "error": None if status == "succeeded" else {"kind": "exception", "cell_index": 2, "ename": "ValueError",
                                                         "evalue": "synthetic failure"},
            "started": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "finished": (started + timedelta(seconds=duration)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration_s": duration,
            "environment": {"python": "3.11.2", "platform": "Linux-x86_64", "kernel": "python3",
                            "packages": {"mlnb": "0.1.0", "scikit-learn": "1.5.2", "pandas": "2.2.3"}},
            "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
            "parent": parent, "tags": tags or {}, "reproduces": None,
        })
        self.store.commit(path, record)


def _drift_tables(seed: int) -> list[bytes]:
    import pandas as pd

    rng = random.Random(seed)
    out = []
    for k in range(8):
        rows = []
        for col in COLUMNS:
            p = rng.random() ** (1 + k)
            rows.append({"column": col, "kind": "numeric", "method": "ks", "statistic": round(1 - p, 4),
                         "p_value": round(p, 4), "threshold": 0.05, "drifted": p < 0.05})
        buf = io.BytesIO()
        pd.DataFrame(rows).to_parquet(buf, index=False)
        out.append(buf.getvalue())
    return out


def generate(store_path: str | os.PathLike, batches: int = 20, models: int = 1, sweep: int = 12,
             retrain_every: int = 2, seed: int = 0, extra_runs: list[dict] | None = None) -> dict:
    """Write a synthetic store; return ids worth knowing (pipelines, sweep, versions).

    Args:
        batches: pipeline runs, spread round-robin over ``models`` models.
        sweep: training runs of one sweep (0: none).
        retrain_every: every n-th batch of a model retrains (and registers a version).
        extra_runs: more runs to write, as keyword arguments of the writer (template, ...).
    """
    from mlnb.registry import Registry

    store = Store(store_path)
    store.ensure_writable()
    w = _Writer(store)
    rng = random.Random(seed)
    tables = _drift_tables(seed)
    names = [f"model-{chr(97 + i)}" if models > 1 else "weather" for i in range(models)]
    plan: list[dict] = []
    versions = {n: 0 for n in names}
    out = {"pipelines": [], "sweep": None, "sweep_runs": [], "names": names, "extra": []}
    for b in range(batches):
        name = names[b % len(names)]
        t = BASE_TIME + timedelta(hours=b)
        pid = new_run_id("pipeline", now=t)
        batch_path = f"/data/{name}/batches/batch-{b // len(names):04d}.csv"
        batch = {"path": batch_path, "sha256": records.sha256_bytes(batch_path.encode()), "bytes": 1000 + b}
        inputs = [{"parameter": "data", **batch}]
        children: dict[str, str] = {}
        share = round(min(1.0, max(0.0, 0.15 + 0.5 * ((b // len(names)) % 10) / 10 + rng.uniform(-0.1, 0.1))), 3)
        children["validate"] = w.write("validate", t + timedelta(seconds=1), {"data": batch_path, "schema": None},
                                       {"passed": True, "n_rows": 90, "n_warnings": 0}, parent=pid,
                                       tags={"pipeline_step": "validate"}, inputs=inputs)
        children["drift"] = w.write(
            "drift", t + timedelta(seconds=2), {"current": batch_path, "reference": "data/reference.csv",
                                                "method": "auto", "drift_share": 0.5},
            {"dataset_drift": share >= 0.5, "drift_share": share, "n_drifted": int(share * len(COLUMNS)),
             "columns": {"$artifact": "scraps/columns.parquet", "rows": len(COLUMNS),
                         "columns": ["column", "kind", "method", "statistic", "p_value", "threshold", "drifted"]}},
            parent=pid, tags={"pipeline_step": "drift"}, inputs=inputs,
            artifacts={"scraps/columns.parquet": tables[b % len(tables)]})
        production = versions[name]
        if production:
            f1 = round(0.9 - 0.3 * share + rng.uniform(-0.03, 0.03), 4)
            children["evaluate_production"] = w.write(
                "evaluate", t + timedelta(seconds=3), {"model": f"{name}/{production}", "data": batch_path,
                                                       "target": "weather"},
                {"metrics": {"accuracy": round(f1 + 0.04, 4), "f1": f1}, "model": {"name": name, "version": production},
                 "n_rows": 90}, parent=pid, tags={"pipeline_step": "evaluate_production"}, inputs=inputs)
        retrain = production == 0 or (b // len(names)) % retrain_every == 0
        outcome = "nothing_needed"
        if retrain:
            children["train"] = w.write(
                "train", t + timedelta(seconds=4),
                {"data": batch_path, "target": "weather", "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                 "hyperparameters": {"max_iter": 200}, "test_size": 0.25, "seed": b},
                {"metrics": {"accuracy": round(0.85 + rng.uniform(0, 0.1), 4), "f1": round(0.8 + rng.uniform(0, 0.1), 4)},
                 "model_artifact": "model.skops", "hyperparameters": {"max_iter": 200}, "features": list(COLUMNS[:4]),
                 "target": "weather", "task": "classification",
                 "estimator": "sklearn.ensemble.HistGradientBoostingClassifier"},
                parent=pid, tags={"pipeline_step": "train"}, inputs=inputs,
                artifacts={"model.skops": f"model {name} batch {b}".encode()})
            children["evaluate_challenger"] = w.write(
                "evaluate", t + timedelta(seconds=5), {"model": f"{name}/{production + 1}", "data": batch_path,
                                                       "target": "weather"},
                {"metrics": {"accuracy": 0.9, "f1": 0.86}, "model": {"name": name, "version": production + 1}},
                parent=pid, tags={"pipeline_step": "evaluate_challenger"}, inputs=inputs)
            versions[name] += 1
            outcome = "promoted"
        alerts = [{"event": "drift", "text": f"{name}: dataset drift on {Path(batch_path).name} (share {share:.2f})"}] \
            if share >= 0.5 else []
        decision = {"outcome": outcome, "reasons": [f"drift share {share:.2f}" + (" ≥ 0.50" if share >= 0.5 else " < 0.50")],
                    "triggers": [], "batch": batch, "children": children, "registry_changes": [], "comparison": None,
                    "alerts": alerts, "model": name, "champion": None, "challenger": None}
        w.write("pipeline", t, {"config": "mlnb.yaml", "current": batch_path},
                {"decision": decision, "outcome": outcome}, inputs=inputs, run_id=pid)
        plan.append({"pipeline": pid, "name": name, "train": children.get("train"), "outcome": outcome})
        out["pipelines"].append(pid)
    if sweep:
        t = BASE_TIME + timedelta(hours=batches + 1)
        sid = new_run_id("sweep", now=t)
        for k in range(sweep):
            max_iter, lr = (50, 100, 200, 400)[k % 4], (0.03, 0.1, 0.3)[k % 3]
            score = round(0.7 + 0.05 * (k % 4) + 0.1 * lr + rng.uniform(0, 0.02), 4)
            out["sweep_runs"].append(w.write(
                "train", t + timedelta(seconds=k), {"data": "data/reference.csv", "target": "weather",
                                                    "hyperparameters": {"max_iter": max_iter, "learning_rate": lr},
                                                    "max_iter": max_iter, "learning_rate": lr, "seed": 0},
                {"metrics": {"accuracy": round(score + 0.03, 4), "f1": score}, "n_train": 900},
                parent=sid, tags={"sweep": sid, "point": k}))
        w.write("sweep", t + timedelta(seconds=sweep + 1), {"template": "train", "grid": "max_iter, learning_rate"},
                {"runs": sweep, "failed": 0}, run_id=sid, tags={"sweep": sid, "role": "summary"})
        out["sweep"] = sid
    for extra in extra_runs or []:
        out["extra"].append(w.write(**extra))
    store.sync_index(force=True)
    with Registry(store) as registry:
        for step in plan:
            if step["train"]:
                mv = registry.register(step["train"], step["name"], caused_by=step["pipeline"])
                registry.promote(step["name"], mv.version, reason="pipeline: challenger beats champion",
                                 caused_by=step["pipeline"])
        out["versions"] = len(registry.versions())
    out["runs"] = len(store.run_ids())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--sweep", type=int, default=24)
    args = parser.parse_args(argv)
    made = generate(args.store, batches=args.batches, models=args.models, sweep=args.sweep)
    print(f"wrote {made['runs']} runs and {made['versions']} model versions into {args.store}")


if __name__ == "__main__":
    main()

"""Monitoring benchmark: estimated against realized accuracy under covariate shift, and what logging costs.

Quality: two real labelled tables that ship with scikit-learn (handwritten digits, 10
classes; breast cancer, 2 classes) are split into training, reference and analysis rows. A
logistic regression is fitted on the training rows; chunks are sampled from the analysis
rows, the first half uniformly, the second half with weights ``exp(a * z)`` that grow chunk
after chunk, ``z`` being a linear probe (fitted on the reference) of where the model errs.
The weights depend on the features only: a covariate shift, the relation between features
and labels unchanged. Per chunk the script prints the realized accuracy, mlnb's CBPE
estimate and NannyML's CBPE estimate on the same chunks (NannyML runs in its own
environment, ``--nannyml-python``, never in the project's), then the mean absolute error of
each estimate, and how often an estimate moved in the same direction as the realized value
after the shift: relative to the mean of the chunks before the shift, and from one chunk
to the next (a noisier measure: chunk-to-chunk changes of the realized value are mostly
sampling noise).

Latency: two ``mlnb serve`` processes of the same model on 127.0.0.1, one with the
prediction log on (the default) and one with ``MLNB_SERVE_PREDICTION_LOG=off``, measured
alternately with single-row ``POST /predict`` requests (bench_serve's load generator);
medians of the p50s side by side.

Run: ``.venv/bin/python benchmarks/bench_monitor.py`` (about 3 minutes; ``--quick`` for a
short check). Work files go to ``benchmarks/.work/monitor``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "monitor"
sys.path.insert(0, str(ROOT / "benchmarks"))

NANNYML = textwrap.dedent("""
    import json, sys
    import pandas as pd
    import nannyml as nml
    reference = pd.read_parquet(sys.argv[1]); analysis = pd.read_parquet(sys.argv[2]); size = int(sys.argv[3])
    classes = sorted(c[len("proba_"):] for c in reference.columns if c.startswith("proba_"))
    binary = len(classes) == 2
    for frame in (reference, analysis):
        frame["label"] = frame["label"].astype(str); frame["prediction"] = frame["prediction"].astype(str)
        if binary:
            for c in ("label", "prediction"):
                frame[c] = (frame[c] == classes[1]).astype(int)
    estimator = nml.CBPE(
        problem_type="classification_binary" if binary else "classification_multiclass",
        y_pred_proba=f"proba_{classes[1]}" if binary else {c: f"proba_{c}" for c in classes},
        y_pred="prediction", y_true="label", metrics=["accuracy"], chunk_size=size)
    estimator.fit(reference)
    result = estimator.estimate(analysis.drop(columns=["label"])).filter(period="analysis").to_df()
    print(json.dumps(result[("accuracy", "value")].tolist()))
""")


def tables():
    from sklearn.datasets import load_breast_cancer, load_digits

    digits = load_digits(as_frame=True).frame
    digits["target"] = digits["target"].astype(str)
    cancer = load_breast_cancer(as_frame=True).frame
    cancer["target"] = cancer["target"].map({0: "malignant", 1: "benign"})
    return {"digits (10 classes)": (digits, 150, 16, 0.5), "breast cancer (2 classes)": (cancer, 90, 10, 0.8)}


def shifted_chunks(frame, size, n_chunks, strength, seed=1):
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from mlnb import metrics, monitor

    features = [c for c in frame.columns if c != "target"]
    order = np.random.default_rng(seed).permutation(len(frame))
    a, b = int(len(frame) * 0.35), int(len(frame) * 0.65)
    train, ref, pool = frame.iloc[order[:a]], frame.iloc[order[a:b]], frame.iloc[order[b:]]
    result = metrics.train(train, "target", features, "sklearn.linear_model.LogisticRegression", {"max_iter": 5000},
                           0.01, 0)
    reference = monitor.score_reference(result.model, ref, features, "target")
    analysis = monitor.score_reference(result.model, pool, features, "target")
    scaler = StandardScaler().fit(reference[features])
    wrong = (reference["prediction"].astype(str) != reference["label"].astype(str)).astype(int)
    probe = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced").fit(
        scaler.transform(reference[features]), wrong)
    z = probe.decision_function(scaler.transform(analysis[features]))
    z = (z - z.mean()) / z.std()
    rng = np.random.default_rng(seed + 1)
    picked = []
    for c in range(n_chunks):
        w = np.exp((0.0 if c < n_chunks // 2 else (c - n_chunks // 2 + 1) * strength) * z)
        picked.append(analysis.iloc[rng.choice(len(analysis), size, replace=False, p=w / w.sum())])
    chunks = pd.concat(picked, ignore_index=True)
    chunks["time"] = pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(np.arange(len(chunks)), unit="min")
    return features, reference, chunks


def nannyml_estimates(python: str | None, reference, chunks, size) -> tuple[list | None, str]:
    if not python or not Path(python).is_file():
        return None, f"NannyML not run: no interpreter at {python!r} (--nannyml-python)"
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, ana_path, script = Path(tmp, "ref.parquet"), Path(tmp, "ana.parquet"), Path(tmp, "cbpe.py")
        keep = [c for c in reference.columns if c in ("prediction", "label") or c.startswith("proba_")]
        reference[keep].to_parquet(ref_path)
        chunks[keep].to_parquet(ana_path)
        script.write_text(NANNYML)
        done = subprocess.run([python, str(script), str(ref_path), str(ana_path), str(size)], capture_output=True,
                              text=True, timeout=600)
    if done.returncode != 0:
        return None, f"NannyML failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '?'}"
    version = subprocess.run([python, "-c", "import nannyml; print(nannyml.__version__)"], capture_output=True,
                             text=True).stdout.strip()
    return json.loads(done.stdout.strip().splitlines()[-1]), f"NannyML {version}"


def directions(estimated, realized, half):
    import numpy as np

    est, real = np.asarray(estimated, dtype=float), np.asarray(realized, dtype=float)
    base_e, base_r = est[:half].mean(), real[:half].mean()
    vs_base = float(np.mean(np.sign(est[half:] - base_e) == np.sign(real[half:] - base_r)))
    step = float(np.mean(np.sign(np.diff(est[half - 1:])) == np.sign(np.diff(real[half - 1:]))))
    return vs_base, step


def quality(nannyml_python: str | None) -> dict:
    from mlnb import monitor

    out = {}
    for name, (frame, size, n_chunks, strength) in tables().items():
        features, reference, chunks = shifted_chunks(frame, size, n_chunks, strength)
        t0 = time.perf_counter()
        est = monitor.estimate(chunks, reference, task="classification", features=features, chunk=str(size),
                               min_rows=50, metrics=["accuracy"], drift=False)
        seconds = time.perf_counter() - t0
        acc = est.table
        nanny, nanny_name = nannyml_estimates(nannyml_python, reference, chunks, size)
        out[name] = {"realized": acc["realized"].tolist(), "mlnb": acc["estimated"].tolist(),
                     "lower": acc["lower"].tolist(), "upper": acc["upper"].tolist(), "nannyml": nanny,
                     "nannyml_name": nanny_name, "half": n_chunks // 2, "size": size, "seconds": seconds,
                     "reference_rows": len(reference)}
    return out


def report_quality(result: dict) -> None:
    import numpy as np

    for name, r in result.items():
        half, real = r["half"], np.asarray(r["realized"])
        print(f"\n{name}: {len(real)} chunks of {r['size']} rows, shift from chunk {half + 1}; reference "
              f"{r['reference_rows']} rows; mlnb CBPE in {r['seconds']:.2f} s; {r['nannyml_name']}")
        print(f"{'chunk':>5} {'realized':>9} {'mlnb':>7} {'band':>13} {'NannyML':>8}")
        for i in range(len(real)):
            nanny = f"{r['nannyml'][i]:.3f}" if r["nannyml"] else "-"
            print(f"{i + 1:>5} {real[i]:>9.3f} {r['mlnb'][i]:>7.3f} {r['lower'][i]:>6.3f}–{r['upper'][i]:.3f} "
                  f"{nanny:>8}{'   (shifted)' if i >= half else ''}")
        rows = [("mlnb CBPE", r["mlnb"])] + ([("NannyML CBPE", r["nannyml"])] if r["nannyml"] else [])
        for label, est in rows:
            mae = float(np.mean(np.abs(np.asarray(est) - real)))
            vs_base, step = directions(est, real, half)
            print(f"{label:<13} MAE {mae:.4f} (target <= 0.03); same direction as realized after the shift: "
                  f"{100 * vs_base:.0f} % vs the pre-shift mean (target >= 90 %), {100 * step:.0f} % chunk to chunk")
        if r["nannyml"]:
            gap = float(np.max(np.abs(np.asarray(r["mlnb"]) - np.asarray(r["nannyml"]))))
            print(f"largest difference between mlnb's and NannyML's estimate of a chunk: {gap:.2e}")
        covered = np.mean((real >= np.asarray(r["lower"])) & (real <= np.asarray(r["upper"])))
        print(f"realized inside mlnb's band in {100 * covered:.0f} % of chunks")


# -- latency ------------------------------------------------------------------------------------


def latency(seconds: float, repeats: int, concurrencies: list[int]) -> dict:
    import bench_serve

    bench_serve.WORK = WORK  # its trained store, built in this benchmark's work directory
    store = bench_serve.trained_store()
    shutil.rmtree(store / "predictions", ignore_errors=True)
    logged = bench_serve.Server(store, name="log")
    plain = bench_serve.Server(store, name="nolog", env={"MLNB_SERVE_PREDICTION_LOG": "off"})
    results: dict = {}
    try:
        for srv in (logged, plain):
            bench_serve.load(srv.port, 1, 1.0, warmup=0.5)
        for c in concurrencies:
            for _ in range(repeats):
                for name, srv in (("no log", plain), ("prediction log", logged)):
                    results.setdefault((c, name), []).append(bench_serve.load(srv.port, c, seconds))
    finally:
        logged.stop()
        plain.stop()
    from mlnb.predlog import log_dir, read_log

    table = read_log(log_dir(store, "weather"))
    return {"runs": results, "logged_rows": len(table.table), "files": len(table.files), "append": append_cost()}


def append_cost(n: int = 20_000) -> dict:
    """In-process cost of logging one single-row request: building its line and one write."""
    import pandas as pd

    from mlnb import predlog

    rows = pd.read_csv(ROOT / "data" / "batches" / "2013-q1.csv")[["precipitation", "temp_max", "temp_min",
                                                                   "wind"]].to_dict("records")
    features = ("precipitation", "temp_max", "temp_min", "wind")
    classes = ["drizzle", "fog", "rain", "snow", "sun"]
    proba = [[0.05, 0.01, 0.45, 0.01, 0.48]]
    directory = WORK / "append-cost"
    shutil.rmtree(directory, ignore_errors=True)
    out = predlog.PredictionLog(directory)
    t0 = time.perf_counter()
    for i in range(n):
        out.append(predlog.entries(f"r{i}", time.time(), [rows[i % len(rows)]], name="weather", version=1,
                                   uri="weather@production", task="classification", target="weather",
                                   features=features, predictions=["sun"], probabilities=proba, classes=classes))
    seconds = time.perf_counter() - t0
    out.close()
    shutil.rmtree(directory, ignore_errors=True)
    return {"us_per_request": seconds / n * 1e6, "n": n}


def report_latency(result: dict, repeats: int) -> None:
    print(f"\nSingle-row POST /predict, one uvicorn worker, medians of {repeats} alternating runs")
    print(f"{'concurrency':>11}  {'server':<15} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    runs = result["runs"]
    for (c, name), items in runs.items():
        print(f"{c:>11}  {name:<15} {statistics.median(i['rps'] for i in items):>8.0f} "
              f"{statistics.median(i['p50_ms'] for i in items):>8.2f} "
              f"{statistics.median(i['p99_ms'] for i in items):>8.2f} {sum(i['failed'] for i in items):>7}")
    for c in sorted({c for c, _ in runs}):
        base = statistics.median(i["p50_ms"] for i in runs[(c, "no log")])
        logged = statistics.median(i["p50_ms"] for i in runs[(c, "prediction log")])
        print(f"concurrency {c}: the prediction log changes p50 by {100 * (logged - base) / base:+.1f} % "
              "(target <= +5 %)")
    print(f"prediction log rows written: {result['logged_rows']:,} in {result['files']} file(s)")
    cost = result["append"]
    base = statistics.median(i["p50_ms"] for i in runs[(1, "no log")])
    print(f"in process, logging one single-row request costs {cost['us_per_request']:.1f} µs "
          f"(mean of {cost['n']:,}): {100 * cost['us_per_request'] / 1000 / base:.2f} % of the p50 above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nannyml-python", default=os.environ.get("NANNYML_PYTHON", "/tmp/nannyml-venv/bin/python"),
                        help="Python of an environment with nannyml installed (not the project's)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats = 2.0, 1
    WORK.mkdir(parents=True, exist_ok=True)
    report_quality(quality(args.nannyml_python))
    if not args.skip_latency:
        report_latency(latency(args.seconds, args.repeats, [1, 4]), args.repeats)


if __name__ == "__main__":
    main()

"""Drift analysis speed and memory: mlnb.drift.compare against a plain per-column scipy loop.

Every case runs in its own fresh subprocess, which generates its (seeded) data, measures
the resident memory once the data exist, runs the case once, and reports wall time and the
process's peak resident memory (``ru_maxrss``, which includes the input data: the honest
figure for "will this fit"). The parent prints the table; ``--json`` prints it as JSON.

Cases (defaults from issue 4):
- 1,000,000 reference vs 1,000,000 current rows, 20 numerical + 5 categorical columns,
  ``method="auto"``: mlnb, and the scipy loop doing the same tests (normalised
  ``scipy.stats.wasserstein_distance`` and ``scipy.spatial.distance.jensenshannon`` of
  category shares, as Evidently's defaults for references over 1,000 rows).
- 100,000 x 500 columns (450 numerical, 50 categorical): mlnb, and the scipy loop.
- A saved profile of the 1,000,000-row reference, then a fresh process that loads it and
  checks a new 100,000-row batch.
- Optionally (``--evidently-python``), Evidently's data drift preset on the main case.

Run: ``.venv/bin/python benchmarks/bench_drift.py [--rows N] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd


def make_frames(rows: int, n_num: int, n_cat: int, seed: int, current_rows: int | None = None):
    """A reference and a current frame; about a third of the columns drift in current."""
    rng = np.random.default_rng(seed)
    current_rows = rows if current_rows is None else current_rows

    def numerical(i: int, n: int, drift: bool) -> np.ndarray:
        shift = 0.3 if drift else 0.0
        kind = i % 4
        if kind == 0:
            x = rng.normal(10 + shift, 2, n)
        elif kind == 1:
            x = rng.lognormal(1 + shift / 3, 0.5, n)
        elif kind == 2:
            x = rng.uniform(0, 100 + 30 * shift, n)
        else:
            x = rng.exponential(5 + shift * 5, n).round(1)  # many ties, like rounded sensor data
        if i % 7 == 0:
            x[rng.random(n) < 0.01] = np.nan  # some missing values
        return x

    def categorical(i: int, n: int, drift: bool) -> pd.Series:
        k = 3 + 7 * i  # 3, 10, 17, ... categories
        labels = np.array([f"c{i}_{j}" for j in range(k)])
        p = np.linspace(1, 2, k)
        if drift:
            p = p[::-1]
        return pd.Series(labels[rng.choice(k, size=n, p=p / p.sum())])

    ref, cur = {}, {}
    for i in range(n_num):
        ref[f"num_{i}"] = numerical(i, rows, False)
        cur[f"num_{i}"] = numerical(i, current_rows, i % 3 == 0)
    for i in range(n_cat):
        ref[f"cat_{i}"] = categorical(i, rows, False)
        cur[f"cat_{i}"] = categorical(i, current_rows, i % 3 == 0)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def scipy_loop(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    """The straightforward implementation: one scipy call per column, as Evidently's defaults."""
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    out = {}
    for name in reference.columns:
        r, c = reference[name].dropna(), current[name].dropna()
        if pd.api.types.is_numeric_dtype(r):
            r, c = r[np.isfinite(r)], c[np.isfinite(c)]
            out[name] = stats.wasserstein_distance(r, c) / max(np.std(r), 0.001)
        else:
            keys = sorted(set(r.unique()) | set(c.unique()))
            rc = r.value_counts().reindex(keys, fill_value=0)
            cc = c.value_counts().reindex(keys, fill_value=0)
            out[name] = float(jensenshannon(rc / len(r), cc / len(c)))
    return out


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: unlike wall time, hardly moved by
    other processes competing for the cores."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def evidently_report(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float]:
    """Evidently's data drift preset (runs only in an interpreter that has evidently 0.4)."""
    from evidently.metric_preset import DataDriftPreset
    from evidently.report import Report

    report = Report(metrics=[DataDriftPreset()])
    report.run(reference_data=reference, current_data=current)
    result = next(m["result"] for m in report.as_dict()["metrics"] if "drift_by_columns" in m["result"])
    return {k: v["drift_score"] for k, v in result["drift_by_columns"].items()}


def run_case(case: str, args: argparse.Namespace) -> dict:
    """Run one case in this process (called in a fresh subprocess)."""
    if case != "evidently":  # the Evidently interpreter has no mlnb
        from mlnb import drift

    if case in ("mlnb", "scipy", "evidently"):
        ref, cur = make_frames(args.rows, args.numerical, args.categorical, seed=0)
    elif case in ("mlnb_wide", "scipy_wide"):
        n_cat = args.wide_columns // 10
        ref, cur = make_frames(args.wide_rows, args.wide_columns - n_cat, n_cat, seed=1)
    elif case == "profile_build":
        ref, _ = make_frames(args.rows, args.numerical, args.categorical, seed=0, current_rows=0)
    elif case == "profile_check":
        _, cur = make_frames(args.batch_rows, args.numerical, args.categorical, seed=2)
    data_mb = _rss_mb()
    times, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), _cpu_seconds()
        extra: dict = {}
        if case in ("mlnb", "mlnb_wide"):
            report = drift.compare(ref, cur)
            stats_ = dict(zip(report.columns["column"], report.columns["statistic"]))
            extra["drifted"] = f"{report.n_drifted}/{report.n_compared}"
        elif case in ("scipy", "scipy_wide"):
            stats_ = scipy_loop(ref, cur)
        elif case == "evidently":
            stats_ = evidently_report(ref, cur)
        elif case == "profile_build":
            prof = drift.profile(ref, args.profile_path)
            stats_ = {}
            extra["file_mb"] = os.path.getsize(args.profile_path) / 2**20
            extra["max_error"] = max(
                (s.w1_error / max(s.std, drift.WASSERSTEIN_MIN_STD) for s in prof.columns.values() if s.numeric),
                default=0.0,
            )
        else:  # profile_check: load the saved profile and check a new batch
            report = drift.compare(args.profile_path, cur)
            stats_ = {}
            extra["drifted"] = f"{report.n_drifted}/{report.n_compared}"
        times.append(time.perf_counter() - t0)
        cpu.append(_cpu_seconds() - c0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = int(np.argmin(times))
    return {"case": case, "first": times[0], "seconds": times[best], "cpu": cpu[best], "data_mb": data_mb,
            "peak_mb": peak_mb, "stats": stats_, **extra}


def spawn(case: str, argv: list[str], python: str = sys.executable) -> dict:
    out = subprocess.run([python, __file__, "--case", case, *argv], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="reference and current rows (main case)")
    ap.add_argument("--numerical", type=int, default=20)
    ap.add_argument("--categorical", type=int, default=5)
    ap.add_argument("--wide-rows", type=int, default=100_000)
    ap.add_argument("--wide-columns", type=int, default=500)
    ap.add_argument("--batch-rows", type=int, default=100_000, help="rows of the batch checked against a profile")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the table shows the first and the best")
    ap.add_argument("--no-wide-baseline", action="store_true", help="skip the scipy loop on the wide case")
    ap.add_argument(
        "--cases", default="mlnb,scipy,mlnb_wide,scipy_wide,profile_build,profile_check",
        help="comma-separated cases to run (default: all; mlnb and scipy are always run together)",
    )
    ap.add_argument(
        "--evidently-python", metavar="PATH",
        help="also time Evidently's data drift preset with this interpreter (a throwaway venv with "
        "evidently 0.4, never the project's), one run",
    )
    ap.add_argument("--quick", action="store_true", help="a tenth of every size (a smoke run)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--profile-path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args), default=float))
        return
    if args.quick:
        args.rows, args.wide_rows, args.batch_rows = args.rows // 10, args.wide_rows // 10, args.batch_rows // 10
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = os.path.join(tmp, "reference.npz")
        argv = [
            f"--rows={args.rows}", f"--numerical={args.numerical}", f"--categorical={args.categorical}",
            f"--wide-rows={args.wide_rows}", f"--wide-columns={args.wide_columns}",
            f"--batch-rows={args.batch_rows}", f"--profile-path={profile_path}", f"--repeat={args.repeat}",
        ]
        wanted = {"mlnb", "scipy", *args.cases.split(",")}
        if args.no_wide_baseline:
            wanted.discard("scipy_wide")
        if "profile_check" in wanted:
            wanted.add("profile_build")  # it needs the saved profile
        order = ["mlnb", "scipy", "mlnb_wide", "scipy_wide", "profile_build", "profile_check"]
        results = {case: spawn(case, argv) for case in order if case in wanted}
        if args.evidently_python:
            once = [a for a in argv if not a.startswith("--repeat")] + ["--repeat=1"]
            results["evidently"] = spawn("evidently", once, python=args.evidently_python)

    main_shape = f"{args.rows:,} vs {args.rows:,} rows, {args.numerical}+{args.categorical} cols"
    wide_shape = f"{args.wide_rows:,} vs {args.wide_rows:,} rows, {args.wide_columns} cols"
    labels = {
        "mlnb": (main_shape, "mlnb.drift.compare (auto)"),
        "scipy": (main_shape, "per-column scipy loop"),
        "mlnb_wide": (wide_shape, "mlnb.drift.compare (auto)"),
        "scipy_wide": (wide_shape, "per-column scipy loop"),
        "profile_build": (f"profile of {args.rows:,}-row reference", "mlnb.drift.profile + save"),
        "profile_check": (f"{args.batch_rows:,}-row batch vs saved profile", "load profile + compare"),
        "evidently": (main_shape, "Evidently DataDriftPreset"),
    }
    ratio_main = results["scipy"]["seconds"] / results["mlnb"]["seconds"]
    ratio_wide = (
        results["scipy_wide"]["seconds"] / results["mlnb_wide"]["seconds"]
        if {"scipy_wide", "mlnb_wide"} <= set(results) else None
    )
    agree = max(abs(results["mlnb"]["stats"][k] - v) for k, v in results["scipy"]["stats"].items())
    agree_evidently = (
        max(abs(results["mlnb"]["stats"][k] - v) for k, v in results["evidently"]["stats"].items())
        if "evidently" in results else None
    )
    if args.json:
        for r in results.values():
            r.pop("stats")
        print(json.dumps({"results": results, "speedup": ratio_main, "speedup_wide": ratio_wide,
                          "max_abs_difference": agree, "max_abs_difference_evidently": agree_evidently}, indent=2))
        return
    print(f"{'shape':<42} {'implementation':<28} {'first s':>8} {'best s':>8} {'cpu s':>8} {'data MB':>8} "
          f"{'peak MB':>8} {'rise MB':>8}  notes")
    for case, r in results.items():
        shape, impl = labels[case]
        notes = []
        if "drifted" in r:
            notes.append(f"drifted {r['drifted']}")
        if "file_mb" in r:
            notes.append(f"file {r['file_mb']:.1f} MB, sketch error <= {r['max_error']:.1e}")
        print(f"{shape:<42} {impl:<28} {r['first']:>8.2f} {r['seconds']:>8.2f} {r['cpu']:>8.2f} {r['data_mb']:>8.0f} "
              f"{r['peak_mb']:>8.0f} {r['peak_mb'] - r['data_mb']:>8.0f}  {', '.join(notes)}")
    load = os.getloadavg()[0]
    print(f"\nspeed-up over the scipy loop (best times): {ratio_main:.1f}x ({main_shape})", end="")
    print(f", {ratio_wide:.1f}x ({wide_shape})" if ratio_wide else "")
    print(f"largest difference between mlnb's and scipy's statistics: {agree:.1e}")
    if agree_evidently is not None:
        ratio_ev = results["evidently"]["seconds"] / results["mlnb"]["seconds"]
        print(f"Evidently: {ratio_ev:.0f}x mlnb's time; largest difference between their drift scores and "
              f"mlnb's statistics: {agree_evidently:.1e}")
    print(f"first s / best s: wall clock of the first and the fastest of {args.repeat} runs in one process; "
          "cpu s: CPU time (user + system, all threads) of the fastest run; "
          "data MB: resident memory once the data exist; peak MB: the process's peak resident memory "
          f"(ru_maxrss), data included; rise MB: peak - data. Load average at the end: {load:.2f} on {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()

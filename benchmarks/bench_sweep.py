"""Sweeps: N runs of a ~1 s CPU template, three ways, side by side in one run.

* ``papermill`` CLI, called once per run, one after the other (a fresh process each: the
  interpreter, papermill's imports and a kernel per run; no record);
* ``mlnb sweep --workers 1``: one process runs every notebook in turn and commits a record
  of each (imports paid once; a kernel per run; plus the summary record);
* ``mlnb sweep --workers W``: a Dask LocalCluster of W worker processes (one thread each).

The template is ``tests/notebooks/cpu_work.ipynb``: about ``--cpu-seconds`` of CPU time in
pure Python per run, measured with ``time.process_time`` inside the kernel. Each variant
runs ``--repeat`` times, interleaved; medians are reported. The mlnb variants are also
broken down from their records: time to the first run's start (start-up), the runs'
own durations, and the summary record.

Usage: python benchmarks/bench_sweep.py [--runs 20] [--workers 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPLATE = ROOT / "tests" / "notebooks" / "cpu_work.ipynb"


def children_cpu() -> float:
    """CPU seconds used so far by every finished child process and their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def papermill_calls(work: Path, runs: int, cpu: float) -> tuple[float, dict]:
    load, cpu0, t0 = os.getloadavg()[0], children_cpu(), time.perf_counter()
    for seed in range(runs):
        subprocess.run(
            [str(BIN / "papermill"), "--no-progress-bar", "--log-level", "ERROR", str(TEMPLATE),
             str(work / f"pm-{seed}.ipynb"), "-p", "seed", str(seed), "-p", "cpu_seconds", str(cpu)],
            check=True, stdin=subprocess.DEVNULL, capture_output=True, cwd=work,
        )
    return time.perf_counter() - t0, {"cpu": children_cpu() - cpu0, "load": load}


def mlnb_sweep(work: Path, runs: int, cpu: float, workers: int) -> tuple[float, dict]:
    store = work / f"store-{workers}-{time.time_ns()}"
    seeds = ",".join(str(s) for s in range(runs))
    started = datetime.now(timezone.utc)
    load, cpu0, t0 = os.getloadavg()[0], children_cpu(), time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "mlnb"), "sweep", str(TEMPLATE), "--grid", f"seed={seeds}", "-p", "cpu_seconds", str(cpu),
         "--workers", str(workers), "--store", str(store), "--quiet", "--json"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=work,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"mlnb sweep --workers {workers} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    return wall, {**breakdown(store, summary, started, wall), "cpu": children_cpu() - cpu0, "load": load}


def breakdown(store: Path, summary: dict, started: datetime, wall: float) -> dict:
    """Where a sweep's wall time went, from its records."""
    from mlnb.store import Store

    runs = [Store(store).get(row["run_id"]).record for row in summary["runs"]]
    first = min(_t(r["started"]) for r in runs)
    summary_rec = Store(store).get(summary["summary_run"]).record
    return {
        "start-up": (first - started).total_seconds(),
        "mean run": statistics.mean(r["duration_s"] for r in runs),
        "summary": summary_rec["duration_s"],
        "runs": len(runs),
        "wall": wall,
    }


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="runs per variant (default 20)")
    ap.add_argument("--workers", type=int, default=2, help="workers of the LocalCluster variant (default 2)")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions, interleaved; medians reported")
    ap.add_argument("--cpu-seconds", type=float, default=1.0, help="CPU seconds per run (default 1.0)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlnb-bench-sweep-"))
    names = ["papermill CLI, sequential", "mlnb sweep --workers 1", f"mlnb sweep --workers {args.workers}"]
    times: dict[str, list[float]] = {n: [] for n in names}
    parts: dict[str, list[dict]] = {n: [] for n in names}
    try:
        # warm the file cache and .pyc files of every variant
        papermill_calls(work, 1, 0.1)
        mlnb_sweep(work, 1, 0.1, 1)
        for _ in range(args.repeat):
            wall, detail = papermill_calls(work, args.runs, args.cpu_seconds)
            times[names[0]].append(wall)
            parts[names[0]].append(detail)
            for name, w in ((names[1], 1), (names[2], args.workers)):
                wall, detail = mlnb_sweep(work, args.runs, args.cpu_seconds, w)
                times[name].append(wall)
                parts[name].append(detail)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {n: statistics.median(v) for n, v in times.items()}
    base, one, many = (med[n] for n in names)
    print(f"{args.runs} runs of cpu_work.ipynb (~{args.cpu_seconds:g} s CPU each), "
          f"median of {args.repeat}, {_cores()} cores")
    print(f"{'variant':<28} {'wall s':>7} {'min s':>6} {'s/run':>6} {'vs papermill':>13} {'vs --workers 1':>15}"
          f" {'CPU s':>6} {'load':>5}")
    for name in names:
        cpu = statistics.median(d["cpu"] for d in parts[name])
        load = statistics.median(d["load"] for d in parts[name])
        print(f"{name:<28} {med[name]:>7.1f} {min(times[name]):>6.1f} {med[name] / args.runs:>6.2f} "
              f"{base / med[name]:>12.2f}x {one / med[name]:>14.2f}x {cpu:>6.1f} {load:>5.1f}")
    efficiency = one / (args.workers * many)
    print(f"parallel efficiency of {args.workers} workers: {efficiency:.0%} "
          f"(speed-up {one / many:.2f}x of an ideal {args.workers}x)")
    paired = [a / b for a, b in zip(times[names[1]], times[names[2]])]
    print(f"speed-up of --workers {args.workers} over --workers 1 in each repetition (run back to back): "
          + ", ".join(f"{r:.2f}x" for r in paired))
    print("targets: --workers 1 >= 1.5x papermill: "
          f"{'met' if base / one >= 1.5 else 'MISSED'} ({base / one:.2f}x); "
          f"--workers {args.workers} >= 1.7x --workers 1: {'met' if one / many >= 1.7 else 'MISSED'} ({one / many:.2f}x)")
    print("CPU s: CPU time of the whole process tree (kernels included); load: 1-min load average "
          "of the machine when the variant started (other processes compete for the cores)")
    print()
    print("where mlnb's time goes (medians, from the records):")
    print(f"{'variant':<28} {'start-up s':>10} {'mean run s':>11} {'summary s':>10}")
    for name, rows in list(parts.items())[1:]:
        print(f"{name:<28} {statistics.median(r['start-up'] for r in rows):>10.2f} "
              f"{statistics.median(r['mean run'] for r in rows):>11.2f} "
              f"{statistics.median(r['summary'] for r in rows):>10.2f}")
    print("all times:", json.dumps({n: [round(t, 2) for t in v] for n, v in times.items()}))


def _cores() -> int:
    from mlnb.parallel import available_cores

    return available_cores()


if __name__ == "__main__":
    main()

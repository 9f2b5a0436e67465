"""Pipeline wall times with forked and warm kernels against ``--cold``, each a fresh ``mlnb`` process.

On a fresh copy of the example project (``mlnb init``) this times, interleaved forked (the
default: kernels forked from one process that did the imports), warm (``kernels: {fork:
false}``: each kernel started ahead does its own imports) and cold (``--cold``):

* one ``mlnb pipeline run`` with a retrain (batch 2013-q2 after a first model from 2013-q1);
* ``mlnb demo`` (three batches);
* ``mlnb pipeline run --backfill 'data/batches/*.csv'`` over the 12 example batches
  (``--backfill-repeat 0`` leaves it out: it takes minutes);

and prints medians, and where one forked pipeline run's time goes (from its records: the host
before the first step, each step's kernel and imports, the rest of its cells, and what the
host does after the notebook: scraps, HTML, hashes, commit, index).

Usage: python benchmarks/bench_pipeline.py [--repeat 3] [--demo-repeat 1] [--backfill-repeat 1]
    [--modes forked,warm,cold]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BIN = Path(sys.executable).parent
MLNB = str(BIN / "mlnb")


def sh(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode not in (0, 3, 4, 5):  # the pipeline's outcomes; 1 and 2 are failures
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    if args[1] != "init":
        print(f"  {' '.join(a if ' ' not in a else repr(a) for a in args[1:])}: {elapsed:.1f} s", flush=True)
    return elapsed


#: mode: (the command's flags, what mlnb.yaml gets appended)
MODES = {"forked": ([], ""), "warm": ([], "kernels:\n  fork: false\n"), "cold": (["--cold"], "")}


def project(work: Path, name: str, bootstrapped: Path | None = None, mode: str = "forked") -> Path:
    root = work / name
    if bootstrapped is not None:
        shutil.copytree(bootstrapped, root)
    else:
        sh([MLNB, "init", str(root)], work)
    with open(root / "mlnb.yaml", "a") as f:
        f.write(MODES[mode][1])
    return root


def _t(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def breakdown(root: Path) -> list[tuple[str, float]]:
    """Where the newest pipeline run's time went, from its records and executed notebooks."""
    store = root / "runs"
    records = [json.loads(p.read_text()) for p in store.glob("*/record.json")]
    pipeline = max((r for r in records if r["template"]["name"] == "pipeline"), key=lambda r: r["started"])
    children = [r for r in records if r["parent"] == pipeline["id"]]
    first = min(_t(r["started"]) for r in children)
    began = datetime.strptime(pipeline["id"][:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=first.tzinfo)  # 1 s resolution
    out = [("host before the first step (config, preflight checks; ±1 s)", (first - began).total_seconds())]
    for rec in sorted(children, key=lambda r: r["started"]) + [pipeline]:
        nb = json.loads((store / rec["id"] / "notebook.ipynb").read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        durations = [(c["metadata"].get("papermill") or {}).get("duration") or 0.0 for c in code]
        nb_start = _t(nb["metadata"]["papermill"]["start_time"])
        nb_end = _t(nb["metadata"]["papermill"]["end_time"])
        step = rec["tags"].get("pipeline_step", "pipeline record")
        imports = next((d for c, d in zip(code, durations) if "import" in "".join(c["source"])), 0.0)
        out.append((f"{step}: kernel start (after the notebook began)", (nb_end - nb_start).total_seconds() - sum(durations)))
        out.append((f"{step}: first cell with imports", imports))
        out.append((f"{step}: other cells", sum(durations) - imports))
        out.append((f"{step}: host after the notebook (scraps, HTML, hashes, commit)",
                    rec["duration_s"] - (nb_end - _t(rec["started"])).total_seconds()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--demo-repeat", type=int, default=1)
    ap.add_argument("--backfill-repeat", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES), help="which of forked, warm, cold to time (default all)")
    args = ap.parse_args()
    wanted = args.modes.split(",")
    if not set(wanted) <= set(MODES):
        ap.error(f"--modes {args.modes!r}: give some of {', '.join(MODES)}, separated by commas")
    modes = {m: MODES[m] for m in wanted}
    work = Path(tempfile.mkdtemp(prefix="mlnb-bench-pipeline-"))
    base = project(work, "base")
    sh([MLNB, "pipeline", "run", "--current", "data/batches/2013-q1.csv", "-q"], base)

    times: dict[str, list[float]] = {}
    for i in range(args.repeat):
        for mode, (flags, _) in modes.items():
            root = project(work, f"retrain-{mode}-{i}", bootstrapped=base, mode=mode)
            times.setdefault(f"pipeline run with a retrain, {mode}", []).append(
                sh([MLNB, "pipeline", "run", "--current", "data/batches/2013-q2.csv", "-q", *flags], root))
    last = work / f"retrain-{next(iter(modes))}-{args.repeat - 1}"
    for i in range(args.demo_repeat):
        for mode, (flags, _) in modes.items():
            root = project(work, f"demo-{mode}-{i}", mode=mode)
            times.setdefault(f"mlnb demo (3 batches), {mode}", []).append(sh([MLNB, "demo", *flags], root))
    for i in range(args.backfill_repeat):
        for mode, (flags, _) in modes.items():
            root = project(work, f"backfill-{mode}-{i}", mode=mode)
            times.setdefault(f"backfill of 12 batches, {mode}", []).append(
                sh([MLNB, "pipeline", "run", "--backfill", "data/batches/*.csv", "-q", *flags], root))

    print(f"example project, fresh processes, medians (repeats: {args.repeat} / {args.demo_repeat} / "
          f"{args.backfill_repeat}), interleaved {', '.join(modes)}")
    print(f"{'measure':<44} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, values in times.items():
        print(f"{name:<44} {statistics.median(values):>9.1f} {min(values):>7.1f} {max(values):>7.1f}")
    for kind in ("pipeline run with a retrain", "mlnb demo (3 batches)", "backfill of 12 batches"):
        cold = times.get(f"{kind}, cold")
        for mode in ("forked", "warm"):
            some = times.get(f"{kind}, {mode}")
            if some and cold:
                print(f"{kind}: {mode} ÷ cold = {statistics.median(some) / statistics.median(cold):.2f}")

    print("\nwhere one forked pipeline run with a retrain spends its time (seconds; concurrent steps overlap):")
    for name, seconds in breakdown(last):
        print(f"  {name:<72} {seconds:>6.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

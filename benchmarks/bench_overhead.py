"""Overhead of `mlnb run` against the bare papermill CLI, each a fresh process.

Runs a trivial 3-cell template (parameters, compute, one glue) alternately with

* ``papermill in.ipynb out.ipynb -p x 21``: the bare papermill CLI, as installed;
* ``papermill`` with the same import fix mlnb applies (see mlnb/_compat.py), the stricter
  baseline: it shows what mlnb itself adds;
* ``mlnb run``: papermill plus scraps, HTML, hashes, the record and the index; its kernel
  starts (and imports what the template imports) while mlnb prepares the run;
* ``mlnb run --cold``: the same with the kernel started by papermill, from nothing.

and prints median wall times and ratios. Also times ``mlnb --help`` and ``mlnb runs list``
over a store of 1,000 records (fresh processes).

Usage: python benchmarks/bench_overhead.py [--repeat 7] [--records 1000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TRIVIAL = ROOT / "tests" / "notebooks" / "trivial.ipynb"
PAPERMILL_WITH_FIX = (
    "import sys; sys.modules['rfc3987_syntax'] = None; "
    "from papermill.cli import papermill; papermill()"
)


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return time.perf_counter() - t0


def fabricate_store(store: Path, n: int) -> None:
    """n records: one real run, copied with new ids (listing only reads the index)."""
    import json
    import os

    from mlnb import records
    from mlnb.execute import run_template
    from mlnb.store import Store

    run = run_template(TRIVIAL, {}, store)
    src = run.path
    for i in range(n - 1):
        rid = f"20260101T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-trivial-{i:06x}"
        dst = store / rid
        shutil.copytree(src, dst)
        os.chmod(dst, 0o755)
        rec = json.loads((dst / "record.json").read_text())
        rec["id"] = rid
        os.chmod(dst / "record.json", 0o644)
        (dst / "record.json").write_text(json.dumps(records.seal(rec)))
    Store(store).sync_index(force=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--records", type=int, default=1000)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlnb-bench-"))
    nb = work / "trivial.ipynb"
    shutil.copy(TRIVIAL, nb)
    commands = {
        "papermill CLI": [str(BIN / "papermill"), "--no-progress-bar", str(nb), str(work / "out.ipynb"), "-p", "x", "21"],
        "papermill CLI + import fix": [sys.executable, "-c", PAPERMILL_WITH_FIX, "--no-progress-bar", str(nb), str(work / "out2.ipynb"), "-p", "x", "21"],
        "mlnb run": [str(BIN / "mlnb"), "run", str(nb), "-p", "x", "21", "--store", str(work / "store"), "-q"],
        "mlnb run --cold": [str(BIN / "mlnb"), "run", str(nb), "-p", "x", "21", "--store", str(work / "store"), "-q",
                            "--cold"],
    }
    for cmd in commands.values():  # warm the file cache and .pyc files
        timed(cmd, work)
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            times[name].append(timed(cmd, work))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"trivial 3-cell template, fresh processes, median of {args.repeat} (interleaved)")
    print(f"{'command':<30} {'median s':>9} {'min s':>7} {'mlnb run ÷ this':>16}")
    for name in commands:
        print(f"{name:<30} {med[name]:>9.2f} {min(times[name]):>7.2f} {med['mlnb run'] / med[name]:>16.2f}")

    store = work / "big"
    fabricate_store(store, args.records)
    helps = [timed([str(BIN / "mlnb"), "--help"], work) for _ in range(args.repeat)]
    lists = [timed([str(BIN / "mlnb"), "runs", "list", "--store", str(store)], work) for _ in range(args.repeat)]
    print()
    print(f"{'mlnb --help':<30} {statistics.median(helps):>9.3f} s  (target <= 0.3 s)")
    print(f"{'mlnb runs list (' + str(args.records) + ' runs)':<30} {statistics.median(lists):>9.3f} s  (target <= 0.5 s)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: the scraps of 500 drift runs into one DataFrame.

Usage: ``.venv/bin/python benchmarks/bench_scraps.py [--runs 500] [--repeat 5]``

Set-up (reported, not a target): an example project (``mlnb init``) in
``benchmarks/.work/scraps``, one real run of the ``drift`` template on ``2013-q1.csv``, then
``--runs - 1`` copies of that run with new ids, each record re-sealed with
:func:`mlnb.records.seal` (as ``bench_overhead.py`` does), and the store's index rebuilt.

Measured, each in a fresh process (imports included, as a notebook's first cell pays
them), median of ``--repeat``, interleaved, next to ``python -c "import pandas"``:

- **mlnb, index**: ``Store(path).runs(template="drift")``, which reads the SQLite index
  and gives one row per run with a ``scrap.<name>`` column per scalar scrap. This is the
  target: ≤ 2 s.
- **mlnb, records**: the same after ``sync_index(force=True)``, so every ``record.json``
  is read again (what the first call does on a store whose index is missing or stale).
- **mlnb, table scraps**: :func:`mlnb.widgets.table_scraps`, the ``columns`` table of every
  run stacked into one DataFrame (one Parquet file per run).
- **baseline, notebooks**: ``scrapbook.read_notebook`` on every run's ``notebook.ipynb`` and
  a DataFrame of the scalar scraps: what reading scraps costs without records.

The script checks that the index and the notebooks give the same scalar values.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "scraps"
TARGET_S = 2.0

# Each program: (imports, work). The work is also timed inside the process, after the imports
# (pandas included: Store.runs imports it lazily, and a notebook has it loaded already).
INDEX = ("import pandas\nfrom mlnb.store import Store", """
df = Store(STORE).runs(template="drift")
assert len(df) == N, len(df)
""")
RECORDS = ("import pandas\nfrom mlnb.store import Store", """
store = Store(STORE)
store.sync_index(force=True)
df = store.runs(template="drift")
assert len(df) == N, len(df)
""")
TABLES = ("import pandas\nfrom mlnb.widgets import table_scraps", """
df = table_scraps(STORE, "columns", template="drift")
assert df["run_id"].nunique() == N
""")
NOTEBOOKS = ("import os\nimport pandas as pd\nfrom mlnb import _compat  # the fast jsonschema import mlnb uses\nimport scrapbook", """
rows = []
for run_id in sorted(os.listdir(STORE)):
    path = os.path.join(STORE, run_id, "notebook.ipynb")
    if os.path.isfile(path):
        scraps = scrapbook.read_notebook(path).scraps.data_dict
        rows.append({"id": run_id, **{f"scrap.{k}": v for k, v in scraps.items()
                                      if not isinstance(v, (dict, list, pd.DataFrame))}})
df = pd.DataFrame(rows)
assert len(df) == N, len(df)
""")
FLOOR = ("import pandas", "")


def fabricate(store: Path, n: int) -> float:
    """A store of ``n`` drift runs: one real run and its re-sealed copies; return set-up seconds."""
    from mlnb import records
    from mlnb.execute import run_template
    from mlnb.project import init_project
    from mlnb.store import Store

    t0 = time.perf_counter()
    project = store.parent
    init_project(project, force=True)
    run = run_template(project / "templates" / "drift.ipynb",
                       {"current": str(project / "data" / "batches" / "2013-q1.csv")}, store)
    assert run.succeeded, run.record["error"]
    for i in range(n - 1):
        rid = f"20260101T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-drift-{i:06x}"
        dst = store / rid
        shutil.copytree(run.path, dst)
        os.chmod(dst, 0o755)
        rec = json.loads((dst / "record.json").read_text())
        rec["id"] = rid
        rec["started"] = f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
        os.chmod(dst / "record.json", 0o644)
        (dst / "record.json").write_text(json.dumps(records.seal(rec)))
    Store(store).sync_index(force=True)
    return time.perf_counter() - t0


def fresh_processes(programs: dict, store: Path, n: int, repeat: int) -> dict[str, tuple[float, float]]:
    """Per program: median wall time of a new Python process (start-up and imports included)
    and median time of its work alone, measured inside; programs interleaved."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in programs}
    for _ in range(repeat):
        for name, (imports, work) in programs.items():
            program = (f"import time\nSTORE = {str(store)!r}\nN = {n}\n{imports}\n"
                       f"t0 = time.perf_counter()\n{work}\nprint(time.perf_counter() - t0)")
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", program], check=True, cwd=ROOT, capture_output=True, text=True)
            times[name].append((time.perf_counter() - t0, float(done.stdout.strip().splitlines()[-1])))
    return {name: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for name, v in times.items()}


def check_same_values(store: Path) -> None:
    """The index gives the values the notebooks hold (for the first and the last run)."""
    from mlnb.scraps import read_scraps
    from mlnb.store import Store

    df = Store(store).runs(template="drift").set_index("id")
    for run_id in (df.index[0], df.index[-1]):
        from_notebook = read_scraps(str(store / run_id / "notebook.ipynb"))
        for name in ("dataset_drift", "drift_share", "n_drifted"):
            assert df.loc[run_id, f"scrap.{name}"] == from_notebook[name], (run_id, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    if WORK.exists():
        for dirpath, _, _ in os.walk(WORK):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(WORK)
    store = WORK / "runs"
    setup = fabricate(store, args.runs)
    check_same_values(store)
    results = fresh_processes({
        "floor: python -c 'import pandas'": FLOOR,
        "mlnb, index: Store.runs(template='drift')": INDEX,
        "mlnb, records: reindex + Store.runs": RECORDS,
        "mlnb, table scraps: table_scraps('columns')": TABLES,
        "baseline: scrapbook.read_notebook x N": NOTEBOOKS,
    }, store, args.runs, args.repeat)
    baseline = results["baseline: scrapbook.read_notebook x N"]
    print(f"{args.runs} drift runs (set-up {setup:.1f} s); fresh processes, median of {args.repeat}, interleaved")
    print(f"{'what':<46} {'process s':>10} {'work s':>8} {'baseline ÷ this (work)':>23}")
    for name, (wall, work) in results.items():
        ratio = "-" if name.startswith("floor") else f"{baseline[1] / work:.1f}x"
        print(f"{name:<46} {wall:>10.2f} {work:>8.2f} {ratio:>23}")
    wall, work = results["mlnb, index: Store.runs(template='drift')"]
    verdict = "met" if wall <= TARGET_S else "MISSED"
    print(f"\ntarget: scalar scraps of {args.runs} runs into a DataFrame <= {TARGET_S:.0f} s: {verdict} "
          f"({wall:.2f} s with start-up and imports, {work:.2f} s for the load itself)")

if __name__ == "__main__":
    main()

"""Benchmark: validate 1,000,000 rows x 25 columns against a schema inferred from them.

Usage: ``.venv/bin/python benchmarks/bench_validation.py [--rows N] [--repeat R]``

The table is seeded and mixed: 12 float columns (one with 2 % nulls), 6 int columns (one a
unique id), 4 string category columns, a bool, a datetime column and an ISO-date string
column (as a CSV gives it). It is written once to ``benchmarks/.work/`` as Parquet. Each
measurement runs in a fresh subprocess that reads that file, so imports and the data load
are outside the timing and every process starts with the same memory:

- time: wall clock of the call (``time.perf_counter``), median of ``--repeat`` calls;
- peak memory: the process's peak resident set size during the calls (Linux ``VmHWM``
  from ``/proc/self/status``, reset with ``/proc/self/clear_refs`` after the data is
  loaded, so the load's own peak does not hide the call's), and how far it rose above the
  resident size just before the calls: the memory the call itself needed. Where
  ``clear_refs`` is not available the peak is ``resource.getrusage().ru_maxrss`` over the
  whole process and the rise is a lower bound.

Measured side by side, in the same run:

- ``mlnb infer``: :func:`mlnb.validation.infer` on the table;
- ``mlnb validate``: :func:`mlnb.validation.validate` against the inferred schema (read from
  YAML), clean data;
- ``pandera, same checks`` (the baseline): the same checks written directly as a pandera
  ``DataFrameSchema`` and run with ``validate(lazy=True)``, without mlnb's checks table;
- ``mlnb validate, 5 defects``: the same data with 20 % of rows out of range in two
  columns, an unseen category in 20 % of rows, 10 % nulls in a non-nullable column and a
  constant id column (1,000,000 duplicates): the cost of collecting failure cases.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / ".work"
TARGET_S = 5.0


def make_table(n_rows: int, seed: int = 0):
    """The seeded benchmark table (see the module docstring)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(12):
        cols[f"x{i}"] = rng.normal(i, 1 + i, n_rows)
    cols["x0"][rng.random(n_rows) < 0.02] = np.nan
    for i in range(5):
        cols[f"n{i}"] = rng.integers(0, 1000 * (i + 1), n_rows)
    cols["id"] = rng.permutation(n_rows).astype("int64")
    cats = [f"c{j}" for j in range(12)]
    for i in range(4):
        cols[f"k{i}"] = pd.array(rng.choice(cats[: 3 + 2 * i], n_rows), dtype="str")
    cols["flag"] = rng.random(n_rows) < 0.3
    t0 = np.datetime64("2020-01-01T00:00:00")
    cols["ts"] = t0 + rng.integers(0, 86400 * 365 * 3, n_rows).astype("timedelta64[s]")
    days = t0.astype("datetime64[D]") + rng.integers(0, 3650, n_rows).astype("timedelta64[D]")
    cols["day"] = pd.array(days.astype(str), dtype="str")
    return pd.DataFrame(cols)


def with_defects(df, seed: int = 1):
    """Five kinds of defect, each in many rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    bad = df.copy()
    rows = rng.random(len(df)) < 0.2
    bad.loc[rows, "x3"] = 1e9
    bad.loc[rows, "n2"] = -5
    bad.loc[rows, "k1"] = "zzz"
    bad.loc[rng.random(len(df)) < 0.1, "x5"] = np.nan
    bad["id"] = 7
    return bad


def pandera_same_checks(schema_yaml: Path):
    """The baseline: the inferred schema's checks, written directly in pandera."""
    import pandera.pandas as pa
    import yaml

    spec = yaml.safe_load(schema_yaml.read_text())
    cols = spec["columns"]

    def rng(name):
        return [pa.Check.in_range(cols[name]["min"], cols[name]["max"])]

    columns = {}
    for i in range(12):
        name = f"x{i}"
        columns[name] = pa.Column(
            "float64", rng(name), nullable=cols[name]["nullable"] > 0, coerce=True
        )
    for i in range(5):
        columns[f"n{i}"] = pa.Column("Int64", rng(f"n{i}"), coerce=True)
    columns["id"] = pa.Column("Int64", rng("id"), unique=True, coerce=True)
    for i in range(4):
        name = f"k{i}"
        columns[name] = pa.Column(str, pa.Check.isin(cols[name]["categories"]), coerce=True)
    columns["flag"] = pa.Column("bool", coerce=True)
    columns["ts"] = pa.Column("datetime64[ns]", coerce=True)
    columns["day"] = pa.Column("datetime64[ns]", coerce=True)
    return pa.DataFrameSchema(columns, checks=[pa.Check(lambda d: len(d) >= 1)])


def _rss_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in KiB, from /proc (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(phase: str, data: Path, schema_yaml: Path, repeat: int) -> dict:
    """Run one phase ``repeat`` times in this process; return time and memory."""
    import pandas as pd
    from pandera.errors import SchemaErrors

    from mlnb import validation

    df = pd.read_parquet(data)
    if phase == "defects":
        df = with_defects(df)
    schema = validation.load_schema(schema_yaml) if phase != "infer" else None
    baseline = pandera_same_checks(schema_yaml) if phase == "pandera" else None
    validation.validate(df.head(100), schema_yaml)  # warm imports outside the timing
    gc.collect()
    rss_before = _rss_kib("VmRSS")
    exact = _reset_peak()
    times, outcome = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        if phase == "infer":
            outcome = len(validation.infer(df).columns)
        elif phase == "pandera":
            try:
                baseline.validate(df, lazy=True)
                outcome = "passed"
            except SchemaErrors as exc:
                outcome = f"{len(exc.failure_cases)} failure cases"
        else:
            result = validation.validate(df, schema)
            outcome = result.summary()
        times.append(time.perf_counter() - start)
    rss_peak = _rss_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "phase": phase,
        "seconds": statistics.median(times),
        "all_seconds": times,
        "peak_rss_mib": rss_peak / 1024,
        "rise_mib": (rss_peak - rss_before) / 1024,
        "exact_peak": exact,
        "data_mib": df.memory_usage(deep=True).sum() / 2**20,
        "outcome": outcome,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = WORK / f"validation-{args.rows}.parquet"
    schema_yaml = WORK / f"validation-{args.rows}.schema.yaml"
    if args.phase:
        print(json.dumps(measure(args.phase, data, schema_yaml, args.repeat)))
        return 0

    from mlnb import validation

    WORK.mkdir(exist_ok=True)
    df = make_table(args.rows)
    df.to_parquet(data)
    validation.infer(df).to_yaml(schema_yaml)
    shape = df.shape
    del df

    phases = [
        ("infer", "mlnb infer"),
        ("validate", "mlnb validate"),
        ("pandera", "pandera, same checks (baseline)"),
        ("defects", "mlnb validate, 5 defects"),
    ]
    results = {}
    for phase, _label in phases:
        cmd = [
            sys.executable,
            __file__,
            "--rows",
            str(args.rows),
            "--repeat",
            str(args.repeat),
            "--phase",
            phase,
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[phase] = json.loads(out.strip().splitlines()[-1])

    print(
        f"validation benchmark: {shape[0]:,} rows x {shape[1]} columns "
        f"({results['validate']['data_mib']:.0f} MiB in memory), median of {args.repeat}"
    )
    how = "VmHWM reset after load" if results["validate"]["exact_peak"] else "ru_maxrss"
    print(f"{'':34} {'time':>8} {'peak RSS':>10} {'rise':>9}   (peak: {how})")
    for phase, label in phases:
        r = results[phase]
        print(
            f"{label:34} {r['seconds']:7.2f}s {r['peak_rss_mib']:8.0f}MiB {r['rise_mib']:7.0f}MiB"
        )
    for phase, label in phases:
        print(f"  {label}: {results[phase]['outcome']}")
    overhead = results["validate"]["seconds"] / results["pandera"]["seconds"]
    print(f"mlnb validate / pandera baseline: {overhead:.2f}x")
    ok = results["validate"]["seconds"] <= TARGET_S
    print(f"target: validate <= {TARGET_S:.0f} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

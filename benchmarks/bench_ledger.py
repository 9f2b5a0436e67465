"""Benchmark: what the ledger costs (issue 18), its figures side by side in one run.

- commit of one run (notebook, HTML, record, 3 artifacts, through ``staging``/``commit``)
  with the ledger and without it, local store and team store (moto's S3 server +
  PostgreSQL), commits of the two kinds interleaved, medians. "Without" is the same code
  with :func:`mlnb.ledger.append` replaced by a function that appends nothing (what a
  commit did before the ledger, but for the write transaction the local commit now opens,
  and on the team store an empty object uploaded beside the record, concurrently); no
  switch in mlnb turns the ledger off.
- ``mlnb store verify`` over N runs (10,000 by default) of a local store, as a user runs
  it (one new process): the chain, every run's hashes, the index, the links.
- ``mlnb store verify`` of a registry of 1,000 versions (10 models of 100 versions, a tag on
  each, 200 alias moves) registered from 20 training runs.

PostgreSQL must run on 127.0.0.1:5432 (``MLNB_TEST_POSTGRES`` to change); the S3 server is
started here and stopped at the end.

    .venv/bin/python benchmarks/bench_ledger.py [--runs 10000] [--commits 40] [--versions 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMIT_TARGET = 0.05
VERIFY_TARGET_S = 30.0
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _no_ledger(store, db, kind, subject, change, write=True):
    return 0, b""


def _commit_one(writer, i: int) -> float:
    started = time.perf_counter()
    writer.write("train", T0 + timedelta(seconds=i), {"seed": i}, {"metrics": {"accuracy": 0.5}},
                 artifacts={"model.skops": os.urandom(200_000), "report.json": b"{}" * 500, "features.txt": b"a\n" * 500})
    return time.perf_counter() - started


def _commits(store_with, store_without, n: int) -> tuple[float, float]:
    """Median seconds of a commit with and without the ledger, the two interleaved."""
    from mlnb.ui.sample import _Writer

    with_ledger, without = _Writer(store_with), _Writer(store_without)
    _commit_one(with_ledger, -1), _commit_one(without, -1)  # templates rendered, connections warm
    a, b = [], []
    for i in range(n):
        a.append(_commit_one(with_ledger, i))
        with mock.patch("mlnb.ledger.append", _no_ledger):
            b.append(_commit_one(without, i))
    return statistics.median(a), statistics.median(b)


def _verify_seconds(location: str, env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mlnb", "store", "verify", "--store", location], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"store verify failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    return seconds, done.stdout.strip().splitlines()[-1]


def _registry_store(path: Path, versions: int):
    from mlnb.registry import Registry
    from mlnb.store import Store
    from mlnb.ui.sample import _Writer

    store = Store(path)
    writer = _Writer(store)
    runs = [writer.write("train", T0 + timedelta(minutes=i), {"seed": i},
                         {"model_artifact": "model.skops", "metrics": {"f1": i / 20}, "features": ["a", "b"],
                          "target": "y", "task": "classification"},
                         artifacts={"model.skops": bytes([i]) * 4096}) for i in range(20)]
    with Registry(store) as registry:
        for i in range(versions):
            mv = registry.register(runs[i % len(runs)], f"model-{i % 10}", tags={"batch": str(i)})
            if i % 5 == 0:
                registry.promote(mv.name, mv.version)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--versions", type=int, default=1000)
    args = parser.parse_args()

    from mlnb import ledger
    from mlnb.store import Store
    from mlnb.ui.sample import _Writer
    from tests.servers import S3Server, fresh_database, s3_env

    server = S3Server.start()
    try:
        with fresh_database() as url_a, fresh_database() as url_b, tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, **s3_env(server.endpoint_url), "MLNB_CACHE_DIR": str(Path(tmp) / "cache")}
            env.pop("MLNB_STORE", None)
            env.pop("MLNB_DATABASE", None)
            os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "MLNB_"))})
            local = _commits(Store(Path(tmp) / "with"), Store(Path(tmp) / "without"), args.commits)
            from mlnb.store.team import TeamStore

            team_a = TeamStore(f"s3://{server.create_bucket()}/runs", database=url_a)
            team_b = TeamStore(f"s3://{server.create_bucket()}/runs", database=url_b)
            team_a.init(), team_b.init()
            team = _commits(team_a, team_b, max(args.commits // 2, 5))

            big = Store(Path(tmp) / "big")
            writer = _Writer(big)
            started = time.perf_counter()
            for i in range(args.runs):
                writer.write("train", T0 + timedelta(seconds=i), {"seed": i, "lr": i % 7 / 10},
                             {"metrics": {"accuracy": (i % 100) / 100}}, artifacts={"model.bin": bytes([i % 256]) * 256})
            written = time.perf_counter() - started
            assert ledger.current_head(big).count == args.runs
            verify_runs, runs_line = _verify_seconds(big.location, env)

            reg = _registry_store(Path(tmp) / "registry", args.versions)
            verify_registry, reg_line = _verify_seconds(reg.location, env)
            entries = ledger.current_head(reg).count
    finally:
        server.stop()

    def pct(pair):
        return f"{(pair[0] / pair[1] - 1) * 100:+.1f} %"

    print("| measure | with the ledger | without | difference | target |\n| --- | ---: | ---: | ---: | ---: |")
    print(f"| commit of a run with 3 artifacts, local store (median of {args.commits}) | {local[0] * 1000:.1f} ms "
          f"| {local[1] * 1000:.1f} ms | {pct(local)} | ≤ +{COMMIT_TARGET:.0%} |")
    print(f"| commit of a run with 3 artifacts, team store (median of {max(args.commits // 2, 5)}) | "
          f"{team[0] * 1000:.1f} ms | {team[1] * 1000:.1f} ms | {pct(team)} | ≤ +{COMMIT_TARGET:.0%} |")
    print("\n| measure | seconds | target |\n| --- | ---: | ---: |")
    print(f"| `mlnb store verify`, {args.runs:,} runs ({args.runs:,} entries; written in {written:.0f} s) | "
          f"{verify_runs:.1f} | ≤ {VERIFY_TARGET_S:.0f} |")
    print(f"| `mlnb store verify`, registry of {args.versions:,} versions ({entries:,} entries) | "
          f"{verify_registry:.1f} | — |")
    print(f"\nstore verify said: {runs_line!r} / {reg_line!r}")


if __name__ == "__main__":
    main()

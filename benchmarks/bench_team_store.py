"""Benchmark: the team store (moto's S3 server + PostgreSQL) next to the local store.

Two figures of issue 15, side by side in one run:

- ``mlnb runs list`` (the table) and ``mlnb runs list --json`` over N runs (10,000 by default), as a user runs it: a new
  process, median of 5. The local store holds N real run directories written through its
  commit; the team store's index holds the same N records, inserted with the same
  ``index_insert`` a commit uses (listing reads the index only; uploading 10,000 runs'
  files to the test server would take the benchmark half an hour and measure nothing
  listing does).
- commit of one run (notebook, HTML, record, 3 artifacts) through ``staging``/``commit``:
  median of 20, team against local.

PostgreSQL must run on 127.0.0.1:5432 (``MLNB_TEST_POSTGRES`` to change); the S3 server is
started here and stopped at the end.

    .venv/bin/python benchmarks/bench_team_store.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LIST_TARGET_S = 0.5
COMMIT_EXTRA_S = 0.3
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _commit_one(writer, i: int) -> float:
    started = time.perf_counter()
    writer.write("train", T0 + timedelta(seconds=i), {"seed": i}, {"metrics": {"accuracy": 0.5}},
                 artifacts={"model.skops": os.urandom(200_000), "report.json": b"{}" * 500, "features.txt": b"a\n" * 500})
    return time.perf_counter() - started


def _list_seconds(location: str, env: dict, *flags: str) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(5):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "mlnb", "runs", "list", *flags, "--store", location],
                              env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
        count = done.stdout.count('"id"') if flags else len(done.stdout.splitlines()) - 1
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=20)
    args = parser.parse_args()

    from mlnb.store import Store, index_insert
    from mlnb.ui.sample import _Writer
    from tests.servers import S3Server, fresh_database, s3_env

    server = S3Server.start()
    try:
        with fresh_database() as url, tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, **s3_env(server.endpoint_url), "MLNB_DATABASE": url,
                   "MLNB_CACHE_DIR": str(Path(tmp) / "cache")}
            env.pop("MLNB_STORE", None)
            os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "MLNB_"))})
            local = Store(Path(tmp) / "runs")
            team = Store(f"s3://{server.create_bucket()}/runs")
            team.init()

            local_commit = [_commit_one(_Writer(local), i) for i in range(args.commits)]
            team_commit = [_commit_one(_Writer(team), i) for i in range(args.commits)]

            writer = _Writer(local)
            for i in range(args.commits, args.runs):
                writer.write("train", T0 + timedelta(seconds=i), {"seed": i, "lr": i % 7 / 10},
                             {"metrics": {"accuracy": (i % 100) / 100}})
            local.sync_index(force=True)
            with contextlib.closing(team.connect()) as db, db.transaction():
                ids = set(team.run_ids())
                for run_id in local.run_ids():
                    if run_id not in ids:
                        index_insert(db, local.fetch_run(run_id).record)

            listed = {flags: (_list_seconds(local.location, env, *flags), _list_seconds(team.location, env, *flags))
                      for flags in ((), ("--json",))}
    finally:
        server.stop()

    lc, tc = statistics.median(local_commit), statistics.median(team_commit)
    print("| measure | local | team | target |\n| --- | --- | --- | --- |")
    for flags, ((local_list, n_local), (team_list, n_team)) in listed.items():
        command = " ".join(("mlnb runs list", *flags))
        print(f"| `{command}`, {n_local:,} / {n_team:,} runs (median of 5) | {local_list:.2f} s "
              f"| {team_list:.2f} s | ≤ {LIST_TARGET_S} s both |")
    print(f"| commit of a run with 3 artifacts (median of {args.commits}) | {lc * 1000:.0f} ms | {tc * 1000:.0f} ms "
          f"(+{(tc - lc) * 1000:.0f} ms) | ≤ +{COMMIT_EXTRA_S * 1000:.0f} ms |")


if __name__ == "__main__":
    main()

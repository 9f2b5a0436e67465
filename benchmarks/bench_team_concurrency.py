"""Benchmark: concurrent writers and promoters on the team store, next to the local store.

16 writer processes commit 25 runs each; then 8 promoter processes move one alias 50 times
each between two registered versions. Afterwards, on each store: every run is there and
intact, no run id or version number was used twice, and the alias history, replayed from
its first event, ends where the alias table says it is.

PostgreSQL must run on 127.0.0.1:5432; the S3 server is started here.

    .venv/bin/python benchmarks/bench_team_concurrency.py [--writers 16 --runs 25 --promoters 8 --moves 50]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _write(location: str, worker: int, n: int) -> list[str]:
    from mlnb.store import Store
    from mlnb.ui.sample import _Writer

    writer = _Writer(Store(location))
    return [writer.write("train", T0 + timedelta(seconds=worker * 1000 + i), {"worker": worker, "i": i},
                         {"metrics": {"accuracy": 0.5}}, artifacts={"model.bin": os.urandom(4096)}) for i in range(n)]


def _promote(location: str, worker: int, n: int) -> int:
    """Asks for ``n`` moves; returns how many moved the alias (a promote to the version it
    already points at records nothing)."""
    from mlnb.registry import Registry
    from mlnb.store import Store

    moved = 0
    with Registry(Store(location)) as registry:
        for i in range(n):
            event = registry.promote("weather", 1 + (worker + i) % 2, alias="production", reason=f"{worker}/{i}")
            moved += event is not None
    return moved


def _check(store, expected_runs: int, expected_moves: int) -> dict:
    from mlnb.registry import Registry

    ids = store.run_ids()
    problems = store.verify()
    with Registry(store) as registry:
        versions = [v.version for v in registry.versions("weather")]
        events = registry.history("weather", "production")
        alias = registry.aliases("weather").get(("weather", "production"))
    replayed = None
    for event in sorted(events, key=lambda e: e.seq):
        assert event.from_version == replayed, (event, replayed)
        replayed = event.to_version
    return {"runs": len(ids), "unique ids": len(set(ids)) == len(ids), "lost": expected_runs - len(ids),
            "verify problems": len(problems), "versions": versions, "moves made": expected_moves,
            "moves recorded": len(events), "history replays to alias": replayed == alias}


def _bench(label: str, location: str, args) -> dict:
    from mlnb.registry import Registry
    from mlnb.store import Store
    from mlnb.store.copy import copy_store

    store = Store(location)
    if label == "team":
        store.init()
    copy_store(Store(args.trained), store)
    with Registry(store) as registry:
        for run_id in args.train_ids:
            registry.register(run_id, "weather")
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ctx.Pool(args.writers) as pool:
        pool.starmap(_write, [(location, w, args.runs) for w in range(args.writers)])
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    with ctx.Pool(args.promoters) as pool:
        moved = sum(pool.starmap(_promote, [(location, w, args.moves) for w in range(args.promoters)]))
    promote_s = time.perf_counter() - started
    result = _check(Store(location), args.writers * args.runs + len(args.train_ids), moved)
    return {**result, "write s": round(write_s, 1), "promote s": round(promote_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--promoters", type=int, default=8)
    parser.add_argument("--moves", type=int, default=50)
    args = parser.parse_args()

    from mlnb.execute import run_template
    from tests.servers import S3Server, fresh_database, s3_env

    data = ROOT / "data/reference.csv"
    with tempfile.TemporaryDirectory() as tmp:
        args.trained = str(Path(tmp) / "trained")
        args.train_ids = []
        for seed in (0, 1):
            run = run_template("train", {"data": str(data), "hyperparameters": {"max_iter": 20}, "seed": seed},
                               args.trained)
            assert run.succeeded, run.record["error"]
            args.train_ids.append(run.id)
        server = S3Server.start()
        try:
            with fresh_database() as url:
                os.environ.update({**s3_env(server.endpoint_url), "MLNB_CACHE_DIR": str(Path(tmp) / "cache")})
                os.environ.pop("MLNB_STORE", None)
                local = _bench("local", str(Path(tmp) / "local"), args)
                os.environ["MLNB_DATABASE"] = url
                team = _bench("team", f"s3://{server.create_bucket()}/runs", args)
        finally:
            server.stop()
    print(f"{args.writers} writers x {args.runs} runs, {args.promoters} promoters x {args.moves} moves\n")
    print("| | local | team |\n| --- | --- | --- |")
    for key in local:
        print(f"| {key} | {local[key]} | {team[key]} |")


if __name__ == "__main__":
    main()

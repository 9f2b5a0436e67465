"""Benchmark: what the ledger costs (issue 18), its figures side by side in one run.

- commit of one run (notebook, HTML, record, 3 artifacts, through ``staging``/``commit``)
  with the ledger and without it, local store and team store (moto's S3 server +
  PostgreSQL). "Without" is the same code with :func:`mlnb.ledger.append` replaced by a
  function that appends nothing (what a commit did before the ledger, but for the write
  transaction the local commit now opens, and on the team store an empty object uploaded
  beside the record, concurrently); no switch in mlnb turns the ledger off. Commits come in
  pairs, one of each kind, in the order ABBA (with, without; without, with; ...) so that
  neither kind always goes first; the table gives each kind's median and interquartile
  range, and the median of the per-pair differences with its interquartile range and a
  95 % confidence interval (order statistics of the differences, no assumption of shape).
- ``mlnb store verify`` over N runs (10,000 by default) of a local store, as a user runs
  it (one new process): the chain, every run's hashes, the index, the links.
- ``mlnb store verify`` of a registry of 1,000 versions (10 models of 100 versions, a tag on
  each, 200 alias moves) registered from 20 training runs.

PostgreSQL must run on 127.0.0.1:5432 (``MLNB_TEST_POSTGRES`` to change) for the team
store; the S3 server is started here and stopped at the end. ``--only-commits`` times the
commits alone (no verify), ``--team-commits 0`` leaves the team store out.

    .venv/bin/python benchmarks/bench_ledger.py [--only-commits] [--commits 300] [--team-commits 40]
        [--runs 10000] [--versions 1000]
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


def _commits(store_with, store_without, pairs: int) -> tuple[list[float], list[float]]:
    """Seconds of ``pairs`` commits with the ledger and as many without, in pairs ordered ABBA."""
    from mlnb.ui.sample import _Writer

    with_ledger, without = _Writer(store_with), _Writer(store_without)

    def commit_without(i: int) -> float:
        with mock.patch("mlnb.ledger.append", _no_ledger):
            return _commit_one(without, i)

    for i in range(-3, 0):  # templates rendered, connections and caches warm
        _commit_one(with_ledger, i), commit_without(i)
    a, b = [], []
    for i in range(pairs):
        if i % 2 == 0:
            a.append(_commit_one(with_ledger, i))
            b.append(commit_without(i))
        else:
            b.append(commit_without(i))
            a.append(_commit_one(with_ledger, i))
    return a, b


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _median_interval(values: list[float]) -> tuple[float, float]:
    """A 95 % confidence interval of the median: the order statistics the binomial law of
    the count below the median puts around it (normal approximation, n of 20 or more)."""
    ranked = sorted(values)
    n = len(ranked)
    k = max(int((n - 1.96 * n ** 0.5) / 2), 0)
    return ranked[k], ranked[min(n - 1 - k, n - 1)]


def _compare(a: list[float], b: list[float]) -> dict:
    """Each kind's quartiles, the quartiles of the per-pair differences and their median's interval."""
    diffs = [x - y for x, y in zip(a, b)]
    return {"pairs": len(diffs), "with": _quartiles(a), "without": _quartiles(b), "diff": _quartiles(diffs),
            "interval": _median_interval(diffs)}


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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _signed_ms(seconds: float) -> str:
    return f"{seconds * 1000:+.2f} ms".replace("-", "−")


def _pct(part: float, whole: float) -> str:
    return f"{part / whole * 100:+.1f} %".replace("-", "−")


def _commit_rows(name: str, c: dict) -> tuple[str, str]:
    """The two table rows of one store's comparison: each kind's median, then the pairs'."""
    (a1, a, a3), (b1, b, b3), (d1, d, d3) = c["with"], c["without"], c["diff"]
    lo, hi = c["interval"]
    kinds = (f"| commit of a run with 3 artifacts, {name} (median of {c['pairs']}; IQR) | {_ms(a)} ({_ms(a1)}–{_ms(a3)}) "
             f"| {_ms(b)} ({_ms(b1)}–{_ms(b3)}) | {_pct(a - b, b)} | ≤ +{COMMIT_TARGET:.0%} |")
    pairs = (f"| {name}, {c['pairs']} pairs ABBA | {_signed_ms(d)} ({_pct(d, b)}) | {_signed_ms(d1)} … {_signed_ms(d3)} "
             f"| {_signed_ms(lo)} … {_signed_ms(hi)} ({_pct(lo, b)} … {_pct(hi, b)}) | ≤ +{COMMIT_TARGET:.0%} |")
    return kinds, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-commits", action="store_true", help="time the commits alone, no store verify")
    parser.add_argument("--commits", type=int, default=300, help="pairs of local commits (one with, one without)")
    parser.add_argument("--team-commits", type=int, default=40, help="pairs of team commits (0: no team store)")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=1000)
    args = parser.parse_args()

    from mlnb import ledger
    from mlnb.store import Store
    from mlnb.ui.sample import _Writer
    from tests.servers import S3Server, fresh_database, s3_env

    load_before = os.getloadavg()
    team = None
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        env = {**os.environ, "MLNB_CACHE_DIR": str(Path(tmp) / "cache")}
        env.pop("MLNB_STORE", None)
        env.pop("MLNB_DATABASE", None)
        if args.team_commits:
            server = S3Server.start()
            stack.callback(server.stop)
            env.update(s3_env(server.endpoint_url))
        os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "MLNB_"))})
        local = _compare(*_commits(Store(Path(tmp) / "with"), Store(Path(tmp) / "without"), args.commits))
        if args.team_commits:
            from mlnb.store.team import TeamStore

            team_a = TeamStore(f"s3://{server.create_bucket()}/runs", database=stack.enter_context(fresh_database()))
            team_b = TeamStore(f"s3://{server.create_bucket()}/runs", database=stack.enter_context(fresh_database()))
            team_a.init(), team_b.init()
            team = _compare(*_commits(team_a, team_b, args.team_commits))

        if not args.only_commits:
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
    load_after = os.getloadavg()

    rows = [_commit_rows("local store", local)] + ([_commit_rows("team store", team)] if team else [])
    print("| measure | with the ledger | without | difference | target |\n| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(kinds for kinds, _ in rows))
    print("\n| per-pair difference (with − without) | median | IQR | 95 % CI of the median | target |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(pairs for _, pairs in rows))
    if not args.only_commits:
        print("\n| measure | seconds | target |\n| --- | ---: | ---: |")
        print(f"| `mlnb store verify`, {args.runs:,} runs ({args.runs:,} entries; written in {written:.0f} s) | "
              f"{verify_runs:.1f} | ≤ {VERIFY_TARGET_S:.0f} |")
        print(f"| `mlnb store verify`, registry of {args.versions:,} versions ({entries:,} entries) | "
              f"{verify_registry:.1f} | — |")
        print(f"\nstore verify said: {runs_line!r} / {reg_line!r}")
    print(f"\nload average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in load_after)} after; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

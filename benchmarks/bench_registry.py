"""Benchmark: the model registry with 1,000 versions across 20 models.

Usage: ``.venv/bin/python benchmarks/bench_registry.py [--models 20] [--versions 50] [--repeat 7]``

Set-up (not timed as a target, but reported): one real run of the ``train`` template on
``data/reference.csv`` (HistGradientBoostingClassifier, ``max_iter=10``) in a fresh store
under ``benchmarks/.work/registry``; then that run is registered ``--versions`` times under
each of ``--models`` names through :meth:`mlnb.registry.Registry.register` (the real path:
the run record is read and re-verified every time), and every model gets 10 promotions of
``production`` and one ``challenger``. Every version references the same real skops file,
which does not matter for these timings: listing and showing read only SQLite.

Measured, in the same run:

- ``python -c pass`` and ``mlnb --help`` as fresh processes: the interpreter's and the CLI's
  start-up, the floor under every command (baselines);
- ``mlnb models list`` (all versions, text and ``--json``) and ``mlnb models show
  NAME@production`` (text and ``--json``) as fresh processes: median of ``--repeat``;
- ``promote`` and ``rollback`` in-process on an open :class:`~mlnb.registry.Registry`:
  median and 95th percentile over 200 of each, alternating; then ``rollback`` again after the
  alias has 2,000 moves in its history, since rollback replays that alias's history.

Targets: list and show ≤ 0.5 s as fresh processes; promote/rollback ≤ 50 ms in-process.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "registry"
CLI_TARGET_S = 0.5
MOVE_TARGET_S = 0.050


def fresh_process(args: list[str], repeat: int) -> float:
    """Median wall time of ``python ARGS`` in a new process, output discarded."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build(models: int, versions: int) -> tuple[Path, float]:
    """A store with ``models * versions`` versions; return it and seconds per registration."""
    from mlnb.execute import run_template
    from mlnb.registry import Registry

    if WORK.exists():  # run files are read-only: make them removable first
        subprocess.run(["chmod", "-R", "u+w", str(WORK)], check=True)
        shutil.rmtree(WORK)
    store = WORK / "store"
    t0 = time.perf_counter()
    run = run_template("train", {"data": str(ROOT / "data/reference.csv"), "target": "weather",
                                 "hyperparameters": {"max_iter": 10}}, store)
    assert run.succeeded, run.record["error"]
    print(f"train run {run.id}: {time.perf_counter() - t0:.1f} s")
    with Registry(store) as registry:
        t0 = time.perf_counter()
        for m in range(models):
            for _ in range(versions):
                registry.register(run.id, f"model-{m:02d}", tags={"bench": "registry"}, caused_by="bench")
        per_register = (time.perf_counter() - t0) / (models * versions)
        for m in range(models):
            for v in range(versions - 9, versions + 1):
                registry.promote(f"model-{m:02d}", v, reason="bench", caused_by="bench")
            registry.set_alias(f"model-{m:02d}", "challenger", versions - 10, caused_by="bench")
        assert len(registry.versions()) == models * versions
    return store, per_register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--versions", type=int, default=50, help="versions per model")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from mlnb.registry import Registry

    store, per_register = build(args.models, args.versions)
    total = args.models * args.versions
    print(f"registered {total} versions across {args.models} models: {per_register * 1000:.1f} ms per register\n")

    s = ["--store", str(store)]
    rows = [
        ("baseline: python -c pass", fresh_process(["-c", "pass"], args.repeat), None),
        ("baseline: mlnb --help", fresh_process(["-m", "mlnb", "--help"], args.repeat), None),
        (f"mlnb models list ({total} versions)", fresh_process(["-m", "mlnb", "models", "list", *s], args.repeat), CLI_TARGET_S),
        ("mlnb models list --json", fresh_process(["-m", "mlnb", "models", "list", "--json", *s], args.repeat), CLI_TARGET_S),
        ("mlnb models show model-07@production", fresh_process(["-m", "mlnb", "models", "show", "model-07@production", *s], args.repeat), CLI_TARGET_S),
        ("mlnb models show --json", fresh_process(["-m", "mlnb", "models", "show", "model-07@production", "--json", *s], args.repeat), CLI_TARGET_S),
    ]
    print(f"fresh processes, median of {args.repeat}:")
    for label, seconds, target in rows:
        verdict = "" if target is None else ("  ok" if seconds <= target else f"  OVER {target} s")
        print(f"  {label:<42} {seconds * 1000:7.0f} ms{verdict}")

    with Registry(store) as registry:
        name, top = "model-03", args.versions
        promote, rollback = [], []
        start_moves = len(registry.history(name, "production"))
        for i in range(200):
            t0 = time.perf_counter()
            registry.promote(name, top - 20 - i % 5, reason="bench", caused_by="bench")
            promote.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            registry.rollback(name, reason="bench", caused_by="bench")
            rollback.append(time.perf_counter() - t0)
        for i in range(1800):  # grow this alias's history to 2,000+ moves
            registry.promote(name, 1 + i % args.versions, caused_by="bench")
        moves = len(registry.history(name, "production"))
        long_rollback = []
        for _ in range(50):
            t0 = time.perf_counter()
            registry.rollback(name, caused_by="bench")
            long_rollback.append(time.perf_counter() - t0)
        replay = {}
        for event in registry.all_events():
            replay[(event.name, event.alias)] = event.to_version
        assert replay == registry.aliases(), "history replay differs from the alias table"

    print("\nin-process, one open Registry (median / p95):")
    for label, values in (
        ("promote", promote),
        (f"rollback (history of {start_moves}-{start_moves + 400} moves)", rollback),
        (f"rollback (history of {moves} moves)", long_rollback),
    ):
        med, p95 = statistics.median(values), percentile(values, 0.95)
        verdict = "ok" if p95 <= MOVE_TARGET_S else f"OVER {MOVE_TARGET_S * 1000:.0f} ms"
        print(f"  {label:<42} {med * 1000:6.2f} ms / {p95 * 1000:6.2f} ms  {verdict}")


if __name__ == "__main__":
    main()

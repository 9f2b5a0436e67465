"""Benchmark: a sweep on Dask workers with no shared file system into the team store,
next to the same sweep on a LocalCluster into a local store, in one run.

Both variants run ``mlnb sweep`` as a user does (a new process), from a client directory
that holds the template (``tests/notebooks/cpu_work.ipynb``, about ``--cpu-seconds`` of
CPU per run) and a small data file that every run reads (``-p data iris.csv``):

* **team, remote**: a real ``dask scheduler`` and 2 ``dask worker`` processes (one thread
  each), each in its own directory with its own HOME and TMPDIR and only the team store's
  settings in its environment (``tests/dask_cluster.py``); ``--scheduler`` and a team
  store on moto's S3 server + PostgreSQL. The template and the data file travel to the
  workers as content; every record is committed to the team store by the worker. The
  cluster runs before the sweep, as a cluster does; the sweep's time is the command's.
* **local**: ``--workers 2``: the LocalCluster that mlnb starts (its start is in the
  command's time), into a local store.

The workers of the remote cluster get the Dask settings mlnb gives its LocalCluster
(``mlnb.parallel.LOCAL_CLUSTER_CONFIG``, as ``DASK_*`` variables), so the two differ in
where the workers are and where the records go, not in Dask's tuning; ``--dask-defaults``
runs the remote workers with Dask's defaults instead. The variants alternate, ``--repeat``
times; medians and the ratio in each pair are reported.

PostgreSQL must run on 127.0.0.1:5432 (``MLNB_TEST_POSTGRES`` to change); the S3 server and
the Dask cluster are started here and stopped at the end.

    .venv/bin/python benchmarks/bench_team_sweep.py [--runs 20] [--repeat 3] [--cpu-seconds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEMPLATE = ROOT / "tests" / "notebooks" / "cpu_work.ipynb"
TARGET = 0.9  # the remote sweep at least 0.9x the speed of the local one


def _dask_env(config: dict) -> dict[str, str]:
    """Dask settings as the environment variables Dask reads (``DASK_A__B__C``)."""
    env = {}
    for key, value in config.items():
        name = "DASK_" + key.upper().replace(".", "__").replace("-", "_")
        env[name] = str(value)  # Dask reads "False", "1s" back as the values
    return env


def _sweep(client: Path, env: dict, runs: int, cpu: float, where: list[str], store: str) -> tuple[float, dict]:
    seeds = ",".join(str(s) for s in range(runs))
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mlnb", "sweep", "cpu_work.ipynb", "--grid", f"seed={seeds}", "-p", "cpu_seconds",
         str(cpu), "-p", "data", "iris.csv", *where, "--store", store, "--quiet", "--json"],
        cwd=client, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"mlnb sweep {' '.join(where)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def _mean_run(store_location: str, summary: dict) -> float:
    from mlnb.store import Store

    store = Store(store_location)
    return statistics.mean(store.get(r["run_id"]).record["duration_s"] for r in summary["runs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="points of the sweep (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="pairs, alternating; medians reported (default 3)")
    parser.add_argument("--cpu-seconds", type=float, default=1.0, help="CPU seconds per run (default 1.0)")
    parser.add_argument("--dask-defaults", action="store_true",
                        help="run the remote workers with Dask's default settings, not the LocalCluster's")
    args = parser.parse_args()

    import sklearn.datasets

    from mlnb.parallel import LOCAL_CLUSTER_CONFIG
    from mlnb.store import Store
    from tests.dask_cluster import dask_cluster
    from tests.servers import S3Server, fresh_database, s3_env

    work = Path(tempfile.mkdtemp(prefix="mlnb-bench-team-sweep-"))
    server = S3Server.start()
    times: dict[str, list[float]] = {"team, remote": [], "local": []}
    mean_run: dict[str, list[float]] = {"team, remote": [], "local": []}
    try:
        with fresh_database() as url:
            settings = {**s3_env(server.endpoint_url), "MLNB_DATABASE": url}
            client = work / "client"
            client.mkdir()
            shutil.copyfile(TEMPLATE, client / "cpu_work.ipynb")
            shutil.copyfile(Path(sklearn.datasets.__file__).parent / "data" / "iris.csv", client / "iris.csv")
            client_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLNB_", "AWS_"))}
            team_env = {**client_env, **settings, "MLNB_CACHE_DIR": str(work / "client-cache")}
            os.environ.update({k: v for k, v in team_env.items() if k.startswith(("AWS_", "MLNB_"))})
            team = Store(f"s3://{server.create_bucket()}/runs")
            team.init()
            dask_env = {} if args.dask_defaults else _dask_env(LOCAL_CLUSTER_CONFIG)
            with dask_cluster(work / "cluster", [settings, settings], dask_env=dask_env) as cluster:
                remote = ["--scheduler", cluster.address]
                # warm the file cache, the .pyc files and each worker's imports
                _sweep(client, team_env, 2, 0.1, remote, team.location)
                _sweep(client, client_env, 2, 0.1, ["--workers", "2"], str(work / "warm-up"))
                for i in range(args.repeat):
                    wall, out = _sweep(client, team_env, args.runs, args.cpu_seconds, remote, team.location)
                    times["team, remote"].append(wall)
                    mean_run["team, remote"].append(_mean_run(team.location, out))
                    local = str(work / f"local-{i}")
                    wall, out = _sweep(client, client_env, args.runs, args.cpu_seconds, ["--workers", "2"], local)
                    times["local"].append(wall)
                    mean_run["local"].append(_mean_run(local, out))
                problems, n_team = team.verify(), len(team.run_ids())
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    remote_s, local_s = (statistics.median(times[k]) for k in ("team, remote", "local"))
    speed = local_s / remote_s
    pairs = [b / a for a, b in zip(times["team, remote"], times["local"])]
    print(f"sweep of {args.runs} points of cpu_work.ipynb (~{args.cpu_seconds:g} s CPU each) on 2 workers, "
          f"median of {args.repeat} pairs, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; remote workers: "
          f"{'Dask defaults' if args.dask_defaults else 'the LocalCluster settings'}")
    print(f"{'variant':<48} {'wall s':>7} {'min s':>6} {'mean run s':>11}")
    for name, label in (("team, remote", "team store, 2 dask workers, no shared FS"),
                        ("local", "local store, LocalCluster of 2 (--workers 2)")):
        print(f"{label:<48} {statistics.median(times[name]):>7.2f} {min(times[name]):>6.2f} "
              f"{statistics.median(mean_run[name]):>11.2f}")
    print(f"speed of the remote sweep relative to the local one: {speed:.2f}x (local s / remote s); "
          f"in each pair: {', '.join(f'{p:.2f}x' for p in pairs)}")
    print(f"target >= {TARGET}x: {'met' if speed >= TARGET else 'MISSED'}; team store verify: "
          f"{'clean' if not problems else f'{len(problems)} problems'} "
          f"({n_team} runs)")
    print("all times:", json.dumps({n: [round(t, 2) for t in v] for n, v in times.items()}))


if __name__ == "__main__":
    main()

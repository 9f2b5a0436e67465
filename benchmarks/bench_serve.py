"""Serving and batch-prediction benchmark: mlnb serve on loopback, and mlnb predict on 1,000,000 rows.

Online: one uvicorn worker serves ``weather@production`` (the train template's default
gradient boosting); a second server, identical but with ``--shadow weather@challenger``
(logistic regression), shows what shadow scoring costs. A load generator in this process
(raw HTTP/1.1 keep-alive sockets, one thread per connection, so the client costs little
CPU) sends single-row ``POST /predict`` requests in a closed loop for ``--seconds`` at each
concurrency. The two servers are measured alternately, ``--repeats`` times, and the medians
are printed side by side: throughput, p50 and p99 latency. Every response must be a 200.

Batch: a 1,000,000-row Parquet file of real weather rows (the 2012–2015 data resampled with
replacement, seeded) is scored three ways: :func:`mlnb.predict.predict_table` in process,
the baseline ``model.predict`` + ``model.predict_proba`` on the same frame, and the whole
``mlnb predict`` command (template run, record, hashes, HTML, output copy).

Run: ``.venv/bin/python benchmarks/bench_serve.py`` (5 minutes on an idle 2-core machine,
far longer on a busy one; ``--quick`` for a short check). Everything happens on 127.0.0.1;
work files go to ``benchmarks/.work/serve``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "serve"
FEATURES = ["precipitation", "temp_max", "temp_min", "wind"]


# -- set-up ---------------------------------------------------------------------------------------


def trained_store() -> Path:
    """A store with weather/1 (gradient boosting, production) and weather/2 (logistic
    regression, challenger), trained by the train template; reused between runs."""
    from mlnb.execute import run_template
    from mlnb.registry import Registry

    store = WORK / "store"
    with Registry(store) as registry:
        if "weather" in registry.models():
            return store
    data = str(ROOT / "data" / "reference.csv")
    hgb = run_template("train", {"data": data, "target": "weather", "features": FEATURES}, store)
    logreg = run_template("train", {"data": data, "target": "weather", "features": FEATURES,
                                    "estimator": "sklearn.linear_model.LogisticRegression"}, store)
    assert hgb.succeeded and logreg.succeeded
    with Registry(store) as registry:
        registry.register(hgb.id, "weather")
        registry.register(logreg.id, "weather")
        registry.promote("weather", 1)
        registry.set_alias("weather", "challenger", 2)
    return store


class Server:
    """``mlnb serve weather@production ARGS`` in a process of its own, with extra environment."""

    def __init__(self, store: Path, *args: str, name: str | None = None, env: dict | None = None):
        self.log_path = WORK / f"server-{name or len(args)}.log"
        self._log = open(self.log_path, "w")
        env = {**{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}, **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlnb", "serve", "weather@production", *args, "--store", str(store),
             "--port", "0", "--no-access-log"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = re.search(r"running on http://127\.0\.0\.1:(\d+)", self.log_path.read_text())
            if found:
                self.port = int(found.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self._log.close()


# -- the load generator -----------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads the status."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def roundtrip(self, request: bytes) -> int:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return int(head[9:12])

    def close(self) -> None:
        self.sock.close()


def requests_for(port: int) -> list[bytes]:
    import pandas as pd

    rows = pd.read_csv(ROOT / "data" / "batches" / "2013-q1.csv")[FEATURES].to_dict("records")
    out = []
    for row in rows:
        body = json.dumps({"rows": [row]}).encode()
        out.append(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (port, len(body), body))
    return out


def load(port: int, concurrency: int, seconds: float, warmup: float = 1.0) -> dict:
    """Closed-loop single-row requests on ``concurrency`` connections; latencies after warm-up."""
    prepared = requests_for(port)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures = [0] * concurrency
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    def worker(i: int) -> None:
        conn = Connection(port)
        n = i
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
                status = conn.roundtrip(prepared[n % len(prepared)])
                t1 = time.perf_counter()
                n += concurrency
                if t0 >= measure_from:
                    latencies[i].append(t1 - t0)
                    if status != 200:
                        failures[i] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ms = sorted(x * 1000 for lat in latencies for x in lat)
    n = len(all_ms)
    return {
        "requests": n,
        "failed": sum(failures),
        "rps": n / seconds,
        "p50_ms": all_ms[n // 2],
        "p99_ms": all_ms[min(n - 1, int(n * 0.99))],
    }


def online(store: Path, concurrencies: list[int], seconds: float, repeats: int) -> dict:
    plain = Server(store)
    shadowed = Server(store, "--shadow", "weather@challenger")
    results: dict = {}
    try:
        for port in (plain.port, shadowed.port):  # warm both: first requests load lazily
            load(port, 1, 1.0, warmup=0.5)
        for c in concurrencies:
            for _ in range(repeats):
                for name, srv in (("no shadow", plain), ("shadow", shadowed)):
                    results.setdefault((c, name), []).append(load(srv.port, c, seconds))
    finally:
        plain.stop()
        shadowed.stop()
    shadow_log = store / "shadow" / "weather.jsonl"
    logged = sum(1 for _ in open(shadow_log)) if shadow_log.is_file() else 0
    return {"runs": results, "shadow_lines": logged}


def report_online(result: dict, repeats: int) -> None:
    runs = result["runs"]
    print(f"\nSingle-row POST /predict, one uvicorn worker, medians of {repeats} runs")
    print(f"{'concurrency':>11}  {'server':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    for (c, name), items in runs.items():
        med = {k: statistics.median(i[k] for i in items) for k in ("rps", "p50_ms", "p99_ms")}
        failed = sum(i["failed"] for i in items)
        print(f"{c:>11}  {name:<10} {med['rps']:>8.0f} {med['p50_ms']:>8.2f} {med['p99_ms']:>8.2f} {failed:>7}")
    for c in sorted({c for c, _ in runs}):
        base = statistics.median(i["p50_ms"] for i in runs[(c, "no shadow")])
        shadow = statistics.median(i["p50_ms"] for i in runs[(c, "shadow")])
        print(f"concurrency {c}: shadow changes p50 by {100 * (shadow - base) / base:+.1f} % (target <= +10 %)")
    print(f"shadow log lines written: {result['shadow_lines']:,}")


# -- batch ------------------------------------------------------------------------------------------


def batch_file(rows: int) -> Path:
    import numpy as np

    from mlnb.data import seattle_weather

    path = WORK / f"batch-{rows}.parquet"
    if not path.is_file():
        df = seattle_weather()
        df["date"] = df["date"].dt.strftime("%Y-%m-%d")
        pick = np.random.default_rng(0).integers(0, len(df), rows)
        df.iloc[pick].reset_index(drop=True).to_parquet(path)
    return path


def batch(store: Path, rows: int, repeats: int) -> dict:
    import pandas as pd

    from mlnb.predict import predict_table
    from mlnb.registry import Registry

    path = batch_file(rows)
    df = pd.read_parquet(path)
    with Registry(store) as registry:
        model = registry.load("weather@production")
    timings: dict[str, list[float]] = {"predict_table": [], "baseline": [], "mlnb predict": []}
    t0 = time.perf_counter()  # the reference, measured once: on a busy machine a run takes minutes
    model.predict(df[FEATURES])
    model.predict_proba(df[FEATURES])
    timings["baseline"].append(time.perf_counter() - t0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_table(model, df, FEATURES, name="weather", version=1)
        timings["predict_table"].append(time.perf_counter() - t0)
    output = WORK / "predictions.parquet"
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "mlnb", "predict", "weather@production", "--input", str(path),
             "--output", str(output), "--store", str(store), "-q"],
            cwd=ROOT, capture_output=True, text=True,
        )
        timings["mlnb predict"].append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
    return {k: statistics.median(v) for k, v in timings.items()}


def report_batch(result: dict, rows: int, repeats: int) -> None:
    print(f"\nBatch prediction of {rows:,} rows (Parquet), medians of {repeats} (baseline: one run)")
    labels = {
        "predict_table": "mlnb.predict.predict_table (in process)",
        "baseline": "baseline: model.predict + model.predict_proba",
        "mlnb predict": "mlnb predict (template run, record, output file)",
    }
    for key, label in labels.items():
        print(f"  {label:<52} {result[key]:>7.2f} s  {rows / result[key]:>12,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per load run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", default="1,8", help="comma-separated connection counts")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the batch file")
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 repeat, 100,000 rows")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-online", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeats, args.rows = 2.0, 1, 100_000
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "store" / "shadow", ignore_errors=True)
    store = trained_store()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    if not args.skip_online:
        concurrencies = [int(c) for c in args.concurrency.split(",")]
        report_online(online(store, concurrencies, args.seconds, args.repeats), args.repeats)
    if not args.skip_batch:
        report_batch(batch(store, args.rows, args.repeats), args.rows, args.repeats)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

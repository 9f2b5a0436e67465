"""Benchmark: ``mlnb ui`` over 10,000 runs and 1,000 model versions, next to the same pages over ~100 runs.

Usage: ``.venv/bin/python benchmarks/bench_ui.py [--repeat 20] [--keep]``

Set-up (reported, not a target): two synthetic stores written by :mod:`mlnb.ui.sample` under
``benchmarks/.work/ui/`` — real sealed ``mlnb.run/1`` records with nbconvert-rendered
notebooks (lab template, about 280 kB each), written straight into the store and indexed
once, instead of executing 10,000 notebooks:

- large: 2,000 pipeline runs over 10 models with their children (validate, drift with a
  per-column table, evaluate of the production model, and every second batch train and
  evaluate of the challenger), a 50-run sweep: about 10,050 runs and 1,000 versions, each
  registered through :meth:`mlnb.registry.Registry.register` and promoted;
- small: 20 pipeline runs of one model and a 12-run sweep: about 100 runs.

Measured, for each store, against a real ``mlnb ui`` process over HTTP:

- server time per page (the app's ``Server-Timing``, request in to response out), p50, p95
  and the slowest of ``--repeat`` requests; pages about one run use a different run each
  request, so their caches start cold; the other pages are cold only on their first request;
- bytes of the runs page (what is transferred: no compression is configured);
- compare of 50 runs rendered in Chromium, from the browser's own navigation timing
  (``loadEventEnd``), median of 5;
- ``mlnb ui --export`` of the whole store, wall time of the command.

Targets: p95 ≤ 300 ms for every page, runs page ≤ 1 MB, compare of 50 ≤ 1 s, export ≤ 60 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "ui"
PAGE_P95_MS = 300
RUNS_PAGE_BYTES = 1_000_000
COMPARE_MS = 1000
EXPORT_S = 60


def build(name: str, reuse: bool = False, **options) -> tuple[Path, float, dict]:
    from mlnb.ui.sample import generate

    path = WORK / name
    if reuse and (path / "mlnb.sqlite").is_file():
        return path, 0.0, described(path)
    if path.exists():
        shutil.rmtree(path)
    t0 = time.perf_counter()
    made = generate(path, **options)
    return path, time.perf_counter() - t0, made


def described(path: Path) -> dict:
    """What generate() returns, read back from an existing store (for --reuse)."""
    from mlnb.registry import Registry
    from mlnb.store import Store

    store = Store(path)
    sweep = store.list_runs(template="sweep")[0]["id"]
    with Registry(store) as registry:
        versions = len(registry.versions())
    return {"runs": len(store.run_ids()), "versions": versions, "sweep": sweep}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(store: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlnb", "ui", "--store", str(store), "--port", str(port)],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/models", timeout=5).read()
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"mlnb ui did not start: {proc.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.1)
    raise SystemExit("mlnb ui did not answer in 60 s")


def get(url: str) -> tuple[float, int, int]:
    """(server ms from Server-Timing, status, bytes)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            body, status, timing = r.read(), r.status, r.headers.get("Server-Timing", "")
    except urllib.error.HTTPError as exc:
        body, status, timing = exc.read(), exc.code, exc.headers.get("Server-Timing", "")
    ms = float(timing.split("dur=")[1]) if "dur=" in timing else float("nan")
    return ms, status, len(body)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pages(store_path: Path, made: dict, repeat: int) -> dict[str, list[str]]:
    """Each page's URLs, ``repeat`` of them (different runs where a page is about one run)."""
    from mlnb.registry import Registry
    from mlnb.store import Store

    store = Store(store_path)
    items = store.list_runs()
    with Registry(store) as registry:
        versions = registry.versions()
    name = versions[len(versions) // 2].name
    drift = [i["id"] for i in items if i["template"] == "drift"]
    step = max(1, len(items) // repeat)
    spread = [items[k]["id"] for k in range(0, len(items), step)][:repeat]
    newest50 = "&".join(f"run={i['id']}" for i in items[:50])
    q = urllib.parse.quote
    last = (len(items) + 49) // 50
    return {
        "runs (page 1)": ["/runs"] * repeat,
        "runs, filtered": ["/runs?filter=" + q("template = 'train' and metrics.f1 > 0.85 and params.seed >= 0")] * repeat,
        "runs, sorted by a metric": ["/runs?sort=metrics.f1&order=desc"] * repeat,
        "runs, last page": [f"/runs?page={last}"] * repeat,
        "a run": [f"/runs/{i}" for i in spread],
        "a run's report (raw)": [f"/raw/runs/{i}/report.html" for i in spread],
        "compare 50 runs": [f"/compare?{newest50}"] * repeat,
        "compare a sweep": [f"/compare?parent={made['sweep']}"] * repeat,
        "models": ["/models"] * repeat,
        "a model": [f"/models/{name}"] * repeat,
        "a version": [f"/models/{mv.name}/versions/{mv.version}" for mv in versions[:: max(1, len(versions) // repeat)]][:repeat],
        "monitoring, a model": [f"/models/{name}/monitor"] * repeat,
        "monitoring, the store": ["/monitor"] * repeat,
        "a drift run": [f"/runs/{i}" for i in drift[:repeat]],
    }


def measure_pages(base: str, urls: dict[str, list[str]]) -> dict[str, tuple[float, float, int]]:
    out = {}
    for page, paths in urls.items():
        times, size = [], 0
        for path in paths:
            ms, status, n = get(base + path)
            if status != 200:
                raise SystemExit(f"{path}: HTTP {status}")
            times.append(ms)
            size = max(size, n)
        out[page] = (statistics.median(times), percentile(times, 0.95), size, max(times))
    return out


def compare_in_browser(base: str, ids: list[str]) -> float:
    from playwright.sync_api import sync_playwright

    url = base + "/compare?" + "&".join(f"run={i}" for i in ids)
    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        for _ in range(6):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url, wait_until="load")
            nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            import json

            entry = json.loads(nav)
            times.append(entry["loadEventEnd"] - entry["startTime"])
            page.close()
        browser.close()
    return statistics.median(times[1:])  # the first warms the browser


def export_time(store: Path) -> float:
    out = WORK / f"{store.name}-site"
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlnb", "ui", "--store", str(store), "--export", str(out)], check=True,
                   cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="Keep the stores and exports in benchmarks/.work/ui.")
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--reuse", action="store_true", help="Use the stores a --keep run left in benchmarks/.work/ui.")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    stores = {}
    for label, options in (("100 runs", {"batches": 20, "models": 1, "sweep": 12, "retrain_every": 2}),
                           ("10,000 runs", {"batches": args.batches, "models": 10, "sweep": 50, "retrain_every": 2})):
        path, took, made = build("small" if label == "100 runs" else "large", args.reuse, **options)
        stores[label] = (path, made)
        print(f"set-up {label}: {made['runs']:,} runs, {made['versions']:,} versions written in {took:.0f} s", flush=True)
    results = {}
    for label, (path, made) in stores.items():
        from mlnb.store import Store

        proc, base = start(path)
        try:
            results[label] = {"pages": measure_pages(base, pages(path, made, args.repeat))}
            ids = [i["id"] for i in Store(path).list_runs(limit=50)]
            results[label]["compare_ms"] = compare_in_browser(base, ids)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=20)
        results[label]["export_s"] = export_time(path)
        print(f"measured {label}", flush=True)
    small, large = results["100 runs"], results["10,000 runs"]
    print(f"\n| page | 100 runs p50 / p95 / max ms | 10,000 runs p50 / p95 / max ms | bytes (10,000) "
          f"| target p95 ≤ {PAGE_P95_MS} ms |")
    print("| --- | ---: | ---: | ---: | --- |")
    ok = True
    for page in large["pages"]:
        s50, s95, _, smax = small["pages"][page]
        l50, l95, size, lmax = large["pages"][page]
        good = l95 <= PAGE_P95_MS
        ok &= good
        print(f"| {page} | {s50:.1f} / {s95:.1f} / {smax:.1f} | {l50:.1f} / {l95:.1f} / {lmax:.1f} | {size:,} "
              f"| {'met' if good else 'MISSED'} |")
    size = large["pages"]["runs (page 1)"][2]
    ok &= size <= RUNS_PAGE_BYTES and large["compare_ms"] <= COMPARE_MS and large["export_s"] <= EXPORT_S
    print(f"\nruns page: {small['pages']['runs (page 1)'][2]:,} B (100 runs), {size:,} B (10,000 runs); "
          f"target ≤ {RUNS_PAGE_BYTES:,} B")
    print(f"compare 50 runs in Chromium (loadEventEnd): {small['compare_ms']:.0f} ms (100 runs), "
          f"{large['compare_ms']:.0f} ms (10,000 runs); target ≤ {COMPARE_MS} ms")
    print(f"--export of the whole store: {small['export_s']:.1f} s (100 runs), {large['export_s']:.1f} s "
          f"(10,000 runs); target ≤ {EXPORT_S} s")
    print("all targets met" if ok else "a target was missed")
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Prometheus metrics of the server: requests, latency, predictions, versions, shadow, prediction log.

prometheus_client is imported inside the functions that use it.
"""

import os
import time
from typing import Callable

from mlnb.served import ServedModel

#: The ``kind`` label of ``mlnb_predict_errors`` for each failing status.
ERROR_KINDS = {422: "invalid_input", 500: "server_error"}
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServeMetrics:
    """Prometheus metrics of one app, in a registry of its own.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (several workers), prometheus_client keeps the
    values in files of that directory and :meth:`exposition` merges every worker's.
    """

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mlnb_predict_requests", "POST /predict requests by HTTP status.", ["code"], registry=r)
        self.errors = Counter("mlnb_predict_errors",
                              "Failed /predict requests: invalid_input (422) or server_error (500).", ["kind"],
                              registry=r)
        self.latency = Histogram("mlnb_predict_latency_seconds", "Time to answer POST /predict (validation, scoring, "
                                 "encoding), seconds.", registry=r, buckets=_LATENCY_BUCKETS)
        self.rows = Counter("mlnb_predicted_rows", "Rows scored by the served model.", ["name", "version"], registry=r)
        self.predictions = Counter("mlnb_predictions", "Predictions by class (regressors: class=\"-\").",
                                   ["name", "version", "class"], registry=r)
        self.version = Gauge("mlnb_served_version", "Version each role serves (primary, shadow).",
                             ["role", "uri", "name"], registry=r, multiprocess_mode="all")
        self.switches = Counter("mlnb_model_switches", "Times a followed alias moved and the new version took over.",
                                ["role"], registry=r)
        self.load_errors = Counter("mlnb_model_load_errors", "Versions that could not be loaded after a move.",
                                   ["role"], registry=r)
        self.shadow_rows = Counter("mlnb_shadow_rows", "Rows handled by the shadow model: scored, error, dropped.",
                                   ["outcome"], registry=r)
        self.shadow_latency = Histogram("mlnb_shadow_latency_seconds",
                                        "Time of one shadow scoring call (a micro-batch).", registry=r,
                                        buckets=_LATENCY_BUCKETS)
        self.logged = Counter("mlnb_prediction_log_rows", "Rows written to the prediction log: written, error.",
                              ["outcome"], registry=r)
        if not self.multiprocess:
            r.register(ClassShares(self.predictions.collect))
        self.extra: list = []  # collectors added to every exposition (the monitor's gauges)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            files = multiprocess.MultiProcessCollector(merged)
            merged.register(ClassShares(files.collect))
            for collector in self.extra:
                merged.register(collector)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        if not self.extra:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        combined = CollectorRegistry(auto_describe=False)
        for collector in (self.registry, *self.extra):
            combined.register(collector)
        return generate_latest(combined), CONTENT_TYPE_LATEST

    def served(self, role: str, served: ServedModel) -> None:
        self.version.labels(role, served.uri, served.name).set(served.version)

    def answered(self, status: int, started: float) -> None:
        """Count one answered POST /predict (its status, an error kind, its latency since ``started``)."""
        self.requests.labels(str(status)).inc()
        if status in ERROR_KINDS:
            self.errors.labels(ERROR_KINDS[status]).inc()
        self.latency.observe(time.perf_counter() - started)

    def predicted(self, served: ServedModel, predictions: list) -> None:
        """Count the rows one version scored and its predictions by class (regressors: ``"-"``)."""
        version = str(served.version)
        self.rows.labels(served.name, version).inc(len(predictions))
        if served.task == "classification":
            counts: dict = {}
            for p in predictions:
                counts[p] = counts.get(p, 0) + 1
            for label, n in counts.items():
                self.predictions.labels(served.name, version, str(label)).inc(n)
        else:
            self.predictions.labels(served.name, version, "-").inc(len(predictions))


class ClassShares:
    """``mlnb_class_share{name, version, class}``: each class's share of a version's predictions.

    Computed at scrape time from ``mlnb_predictions_total`` (read through ``source``, the
    counter's own ``collect`` or the multiprocess collector's), so it needs no state of its
    own and covers every worker. Shares since the server started; for a recent window,
    divide rates in PromQL (the Grafana dashboard does).
    """

    def __init__(self, source: Callable):
        self.source = source

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        counts: dict[tuple[str, str], dict[str, float]] = {}
        for family in self.source():
            if family.name != "mlnb_predictions":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["name"], sample.labels["version"])
                    per_class = counts.setdefault(key, {})
                    per_class[sample.labels["class"]] = per_class.get(sample.labels["class"], 0.0) + sample.value
        share = GaugeMetricFamily("mlnb_class_share", "Share of each class in a version's predictions since start.",
                                  labels=["name", "version", "class"])
        for (name, version), per_class in counts.items():
            total = sum(per_class.values())
            for label, n in per_class.items():
                if total > 0:
                    share.add_metric([name, version, label], n / total)
        yield share

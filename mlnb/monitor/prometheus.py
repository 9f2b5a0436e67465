"""Prometheus gauges of the newest monitor run of the served model (``mlnb serve``'s ``/metrics``)."""

from __future__ import annotations

import math
import time
from typing import Any


class MonitorCollector:
    """Prometheus gauges from the newest succeeded monitor run of one model in a store.

    Read from the store's index at most every ``refresh`` seconds, at scrape time, so the
    server's request path never touches it: ``mlnb_monitor_estimated_performance``,
    ``..._lower``, ``..._upper``, ``mlnb_monitor_realized_performance``,
    ``mlnb_monitor_threshold`` (``bound``), ``mlnb_monitor_drift_share`` and
    ``mlnb_monitor_run_timestamp_seconds``, labelled by name, version and metric.
    """

    def __init__(self, store: Any, name: str, refresh: float = 30.0):
        self.store_path = store
        self.name = name
        self.refresh = refresh
        self._at = -math.inf
        self._scraps: dict | None = None
        self._started: str | None = None

    def _newest(self) -> None:
        from mlnb.store import Store

        if time.monotonic() - self._at < self.refresh:
            return
        self._at = time.monotonic()
        try:
            for item in Store(self.store_path).list_runs(template="monitor", status="succeeded", limit=50):
                model = (item["scraps"] or {}).get("model") or {}
                if model.get("name") == self.name and not (item["scraps"] or {}).get("demo"):
                    self._scraps, self._started = item["scraps"], item["started"]
                    return
        except Exception:  # a scrape must not fail because the store is briefly unreadable
            import logging

            logging.getLogger(__name__).warning("cannot read monitor runs of %s from %s", self.name, self.store_path)

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        self._newest()
        labels = ["name", "version", "metric"]
        fam = {
            "estimated": GaugeMetricFamily("mlnb_monitor_estimated_performance",
                                           "Estimated performance (CBPE/DLE) of the newest chunk.", labels=labels),
            "lower": GaugeMetricFamily("mlnb_monitor_estimated_performance_lower", "Lower end of the estimate's band.",
                                       labels=labels),
            "upper": GaugeMetricFamily("mlnb_monitor_estimated_performance_upper", "Upper end of the estimate's band.",
                                       labels=labels),
            "realized": GaugeMetricFamily("mlnb_monitor_realized_performance",
                                          "Realized performance of the newest chunk (where labels arrived).",
                                          labels=labels),
        }
        threshold = GaugeMetricFamily("mlnb_monitor_threshold", "Alert thresholds from the reference chunks.",
                                      labels=[*labels, "bound"])
        drift = GaugeMetricFamily("mlnb_monitor_drift_share", "Share of drifted features in the newest chunk.",
                                  labels=["name", "version"])
        stamp = GaugeMetricFamily("mlnb_monitor_run_timestamp_seconds", "Start of the newest monitor run.",
                                  labels=["name", "version"])
        scraps = self._scraps or {}
        version = str((scraps.get("model") or {}).get("version", ""))
        for metric, row in (scraps.get("latest") or {}).items():
            for key, family in fam.items():
                if row.get(key) is not None:
                    family.add_metric([self.name, version, metric], float(row[key]))
            for bound in ("lower", "upper"):
                if row.get(f"threshold_{bound}") is not None:
                    threshold.add_metric([self.name, version, metric, bound], float(row[f"threshold_{bound}"]))
        if scraps.get("drift_share") is not None:
            drift.add_metric([self.name, version], float(scraps["drift_share"]))
        if self._started:
            import pandas as pd

            stamp.add_metric([self.name, version], pd.Timestamp(self._started).timestamp())
        yield from (*fam.values(), threshold, drift, stamp)

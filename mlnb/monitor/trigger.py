"""The pipeline's ``estimated_performance`` trigger: fire when the newest chunk's estimate is past a limit.

From a monitor run (or its scraps, an :class:`~mlnb.monitor.estimation.Estimate`, or its
chunks table), a metric and a minimum or maximum by the metric's direction:
:func:`estimated_performance_trigger` says fired or not, the value, its band and a
sentence that says so. The estimate exists before any label does, so this can fire
before the performance trigger can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlnb.exceptions import ConfigError, DataError, ParameterError
from mlnb.monitor.estimation import ESTIMATED, Estimate, json_value


@dataclass(frozen=True)
class TriggerResult:
    """The verdict of :func:`estimated_performance_trigger`."""

    fired: bool
    metric: str
    value: float | None
    band: tuple[float, float] | None
    reason: str
    chunk: str | None = None
    realized: float | None = None

    def to_dict(self) -> dict:
        return {"fired": self.fired, "metric": self.metric, "value": self.value,
                "band": list(self.band) if self.band else None, "reason": self.reason, "chunk": self.chunk,
                "realized": self.realized}


def _latest_from(source: Any, metric: str) -> dict | None:
    import pandas as pd

    if isinstance(source, Estimate):
        return source.latest().get(metric)
    if isinstance(source, pd.DataFrame):
        rows = source[source["metric"] == metric] if "metric" in source else source.iloc[0:0]
        if rows.empty:
            return None
        last = rows.iloc[-1]
        return {k: json_value(last.get(k)) for k in ("chunk", "rows", "estimated", "lower", "upper", "realized")}
    scraps = source.record["scraps"] if hasattr(source, "record") else source
    if not isinstance(scraps, dict):
        raise ParameterError(f"the trigger reads a monitor run, its scraps or its chunks table, not {type(source).__name__}",
                             name="source")
    latest = scraps.get("latest")
    if not isinstance(latest, dict):
        raise DataError("these scraps hold no 'latest' estimate: are they a monitor run's?")
    return latest.get(metric)


def estimated_performance_trigger(source: Any, metric: str, minimum: float | None = None,
                                  maximum: float | None = None) -> TriggerResult:
    """Whether the estimated ``metric`` of the newest chunk is past its limit.

    Higher-is-better metrics (accuracy, f1...) take a ``minimum`` and fire below it;
    lower-is-better ones (mae, rmse) take a ``maximum`` and fire above it. The estimate
    exists before any label does, so this can fire before the performance trigger can.

    Args:
        source: a monitor run, its scraps (``latest`` is read), an :class:`Estimate`, or
            its chunks table.
        metric: a metric the monitor estimates.

    Raises:
        ConfigError: an unknown metric, a limit on the wrong side for its direction, none
            or both limits.
        DataError: the source holds no estimate of that metric.
    """
    from mlnb.metrics import METRICS

    estimated = sorted({m for ms in ESTIMATED.values() for m in ms})
    if metric not in estimated:
        raise ConfigError(f"estimated_performance: metric {metric!r} is not estimated; allowed: {', '.join(estimated)}")
    direction = METRICS[metric][1]
    need, other = ("min", "max") if direction == "higher" else ("max", "min")
    limit = minimum if direction == "higher" else maximum
    wrong = maximum if direction == "higher" else minimum
    if wrong is not None or limit is None:
        raise ConfigError(f"estimated_performance: {metric} is {direction} is better, so it takes '{need}' "
                          f"(fires past it), not '{other}'" if wrong is not None else
                          f"estimated_performance: give '{need}' for {metric} ({direction} is better)")
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit):
        raise ConfigError(f"estimated_performance: {need} == {limit!r}, must be a number")
    latest = _latest_from(source, metric)
    if latest is None or latest.get("estimated") is None:
        raise DataError(f"the monitor run holds no estimate of {metric}")
    value = float(latest["estimated"])
    band = (float(latest["lower"]), float(latest["upper"])) if latest.get("lower") is not None else None
    realized = latest.get("realized")
    band_text = f"band {band[0]:.3f}–{band[1]:.3f}" if band else "no band"
    where = f" in chunk {latest['chunk']} ({latest.get('rows')} rows)" if latest.get("chunk") is not None else ""
    past = value < limit if direction == "higher" else value > limit
    if past:
        whole = band is not None and (band[1] < limit if direction == "higher" else band[0] > limit)
        side = "below the minimum" if direction == "higher" else "above the maximum"
        reason = (f"estimated {metric} {value:.3f} ({band_text}){where} is {side} {limit:g}"
                  f"{'; the whole band is past it' if whole else '; the band still reaches it'}")
    else:
        side = "at or above the minimum" if direction == "higher" else "at or below the maximum"
        reason = f"estimated {metric} {value:.3f} ({band_text}){where} is {side} {limit:g}"
    if realized is not None:
        reason += f" (realized on its labels: {float(realized):.3f})"
    return TriggerResult(bool(past), metric, value, band, reason, latest.get("chunk"),
                         float(realized) if realized is not None else None)

"""The pipeline's decisions: which triggers fire, whether a challenger is promoted, and the
outcomes a pipeline run ends with.

Pure functions of the child runs' scraps and the registry's numbers, tested without a
kernel: no I/O here (:mod:`mlnb.pipeline.run` gathers the inputs and acts on the result).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mlnb.metrics import higher_is_better, improvement

if TYPE_CHECKING:
    from mlnb.config import Config

#: Exit codes of ``mlnb pipeline run``.
EXIT_NOTHING = 0
EXIT_PROMOTED = 3
EXIT_NOT_PROMOTED = 4
EXIT_REJECTED = 5
EXIT_ERROR = 1

#: Every outcome of a pipeline run: ``{outcome: (exit code of mlnb pipeline run, what it means)}``.
#: Bad usage (2) and an interruption (130) end a run before it has an outcome.
OUTCOMES = {
    "nothing_needed": (EXIT_NOTHING, "nothing needed (no trigger fired)"),
    "skipped": (EXIT_NOTHING, "the batch was processed before"),
    "promoted": (EXIT_PROMOTED, "retrained and promoted"),
    "not_promoted": (EXIT_NOT_PROMOTED, "retrained but not promoted (the champion stays)"),
    "rejected": (EXIT_REJECTED, "data rejected by validation (nothing retrained)"),
    "error": (EXIT_ERROR, "a step failed (error; the pipeline record exists)"),
}

OUTCOME_EXIT = {outcome: code for outcome, (code, _) in OUTCOMES.items()}


@dataclass
class Trigger:
    """One trigger's evaluation: its value, threshold and verdict, with a sentence."""

    name: str
    fired: bool
    value: Any
    threshold: Any
    reason: str


@dataclass
class Decision:
    """Everything the pipeline decided, with the numbers; glued into the pipeline record."""

    outcome: str = "nothing_needed"
    reasons: list[str] = field(default_factory=list)
    triggers: list[dict] = field(default_factory=list)
    batch: dict | None = None
    children: dict[str, str] = field(default_factory=dict)
    registry_changes: list[dict] = field(default_factory=list)
    comparison: dict | None = None
    alerts: list[dict] = field(default_factory=list)
    model: str | None = None
    champion: dict | None = None
    challenger: dict | None = None

    def to_dict(self) -> dict:
        return records_json(asdict(self))


def records_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def evaluate_triggers(
    config: Config,
    *,
    drift: dict | None,
    production: dict | None,
    current_metrics: dict | None,
    now: datetime,
    estimate: Trigger | None = None,
) -> list[Trigger]:
    """Evaluate the drift, performance and schedule triggers; every one is reported.

    Args:
        drift: the drift run's scraps (``dataset_drift``, ``drift_share``) or None.
        production: the production version (``version``, ``metrics``, ``created``) or None.
        current_metrics: the production model's metrics on the current batch, or None when
            the batch has no labels.
        now: the clock (injected, so tests need not wait).
        estimate: the estimated-performance trigger, evaluated on a monitor run (see
            :meth:`mlnb.pipeline.run._Pipeline.estimated_performance`), or None when it is not configured.
    """
    t = config.triggers
    out: list[Trigger] = []
    if production is None:
        out.append(Trigger("bootstrap", True, None, None, f"no {config.promotion.alias} model yet: train the first one"))
    if t.drift and drift is not None:
        share = drift.get("drift_share")
        fired = bool(drift.get("dataset_drift"))
        out.append(Trigger(
            "drift", fired, share, config.drift.drift_share,
            f"drift share {share:.2f} {'≥' if fired else '<'} {config.drift.drift_share:.2f}"
            + (" (dataset drift)" if fired else ""),
        ))
    perf = t.performance
    bounds = [b for b in (perf.min, perf.max, perf.max_drop, perf.max_rise) if b is not None]
    if production is not None and bounds:
        metric = perf.metric
        value = (current_metrics or {}).get(metric)
        if value is None:
            out.append(Trigger("performance", False, None, perf.min if perf.min is not None else perf.max,
                               f"{metric} not measured: the batch has no labels"))
        else:
            where = f"{metric} of v{production['version']} on this batch {value:.3f}"
            if perf.min is not None:
                fired = value < perf.min
                out.append(Trigger("performance_min", fired, value, perf.min,
                                   f"{where} {'<' if fired else '≥'} minimum {perf.min:.3f}"))
            if perf.max is not None:
                fired = value > perf.max
                out.append(Trigger("performance_max", fired, value, perf.max,
                                   f"{where} {'>' if fired else '≤'} maximum {perf.max:.3f} (lower is better)"))
            recorded = (production.get("metrics") or {}).get(metric)
            allowed = perf.max_drop if perf.max_drop is not None else perf.max_rise
            if allowed is not None and recorded is not None:
                worse = -improvement(metric, value, recorded)  # > 0: worse than at training
                name = "performance_drop" if perf.max_drop is not None else "performance_rise"
                fired = worse > allowed
                moved = "worsened" if worse > 0 else "improved"
                out.append(Trigger(
                    name, fired, round(worse, 6), allowed,
                    f"{metric} {moved} by {abs(worse):.3f} since training ({recorded:.3f} → {value:.3f}; "
                    f"{'more than' if fired else 'within'} the {allowed:.3f} allowed)",
                ))
    if estimate is not None:
        out.append(estimate)
    if production is not None and t.schedule.max_age_days is not None:
        created = _parse_time(production["created"])
        age = (now - created).total_seconds() / 86400
        fired = age > t.schedule.max_age_days
        out.append(Trigger(
            "schedule", fired, round(age, 3), t.schedule.max_age_days,
            f"v{production['version']} is {age:.1f} days old ({'>' if fired else '≤'} {t.schedule.max_age_days:g})",
        ))
    return out


def promotion_decision(config: Config, challenger: dict, champion: dict | None, validation_passed: bool) -> tuple[bool, str]:
    """Whether the challenger replaces the champion, and why, from holdout metrics.

    The gain is measured in the metric's direction (for rmse, a lower challenger gains);
    ``promotion.min_gain`` is the least gain that promotes.
    """
    rule = config.promotion
    metric = rule.metric
    direction = "higher is better" if higher_is_better(metric) else "lower is better"
    if rule.require_validation and not validation_passed:
        return False, "validation did not pass and promotion requires it"
    c = challenger.get(metric)
    if c is None:
        return False, f"challenger has no {metric}"
    if champion is None:
        perf = config.triggers.performance
        gate = challenger.get(perf.metric)  # the minimum or maximum is on the performance metric
        if gate is not None and perf.min is not None and gate < perf.min:
            return False, f"first model's {perf.metric} {gate:.3f} is below the minimum {perf.min:.3f}"
        if gate is not None and perf.max is not None and gate > perf.max:
            return False, f"first model's {perf.metric} {gate:.3f} is above the maximum {perf.max:.3f} (lower is better)"
        return True, f"first model: {metric} {c:.3f} on the holdout"
    p = champion.get(metric)
    if p is None:
        return True, f"champion has no {metric} on the holdout"
    gain = improvement(metric, c, p)
    versus = f"challenger {metric} {c:.3f} vs champion {p:.3f} ({direction}): gain {gain:+.3f}"
    # a tie does not replace a champion unless min_gain says ties are welcome
    if gain >= rule.min_gain and (gain > 0 or rule.min_gain < 0):
        return True, f"{versus} ≥ {rule.min_gain:+.3f}"
    if gain == 0:
        return False, f"{versus}: a tie keeps the champion (a negative promotion.min_gain lets ties promote)"
    return False, f"{versus} does not pass min_gain {rule.min_gain:+.3f}"


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

"""The retraining pipeline: validate → drift → evaluate → triggers → retrain → compare → promote.

Every step is a template run, recorded as a child of one pipeline run; the pipeline run
itself is the record of the ``pipeline`` template, which shows the decision. The decisions
are pure functions of the child runs' scraps (:func:`evaluate_triggers`,
:func:`promotion_decision`), tested without a kernel; running templates, writing data and
sending alerts sit at the edges.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from mlnb import records
from mlnb.config import Config
from mlnb.exceptions import ConfigError, DataError, Interrupted, MlnbError, PipelineStepFailed
from mlnb.metrics import higher_is_better, improvement
from mlnb.store import Run, Store, new_run_id

log = logging.getLogger(__name__)

#: Exit codes of ``mlnb pipeline run``.
EXIT_NOTHING = 0
EXIT_PROMOTED = 3
EXIT_NOT_PROMOTED = 4
EXIT_REJECTED = 5
EXIT_ERROR = 1

#: Below this many rows, the holdout that compares challenger and champion is called small.
SMALL_HOLDOUT = 30

OUTCOME_EXIT = {
    "nothing_needed": EXIT_NOTHING,
    "skipped": EXIT_NOTHING,
    "promoted": EXIT_PROMOTED,
    "not_promoted": EXIT_NOT_PROMOTED,
    "rejected": EXIT_REJECTED,
    "error": EXIT_ERROR,
}


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


# -- pure decisions ---------------------------------------------------------------------------


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
            :meth:`_Pipeline.estimated_performance`), or None when it is not configured.
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


# -- data -------------------------------------------------------------------------------------


def batches(config: Config) -> list[Path]:
    """Batch files named by ``data.current`` (a path or a glob), oldest name first."""
    pattern = str(config.path(config.data.current))
    found = sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
    return [p for p in found if p.is_file()]


def check_columns(config: Config, reference: Path, batch: Path) -> None:
    """The columns ``mlnb.yaml`` names exist: target and features in the reference, drift
    columns in the reference or the batch.

    Raises:
        ConfigError: naming the key, the column and the columns that exist.
    """
    from mlnb.data import table_columns

    ref = table_columns(reference)
    cur = table_columns(batch)
    listed = ", ".join(ref)
    if config.model.target not in ref:
        raise ConfigError(f"model.target: {config.model.target!r} is not a column of the reference; columns: {listed}")
    missing = [f for f in config.model.features or () if f not in ref]
    if missing:
        raise ConfigError(f"model.features: {', '.join(map(repr, missing))} not in the reference; columns: {listed}")
    if config.model.target in (config.model.features or ()):
        raise ConfigError(f"model.features: the target {config.model.target!r} cannot be a feature")
    exclude = config.drift.exclude if isinstance(config.drift.exclude, list) else []
    for key, names in (("drift.columns", config.drift.columns or []), ("drift.exclude", exclude)):
        unknown = [c for c in names if c not in ref and c not in cur]
        if unknown:
            raise ConfigError(f"{key}: {', '.join(map(repr, unknown))} in neither the reference nor the batch; "
                              f"columns: {', '.join(dict.fromkeys([*ref, *cur]))}")


def check_estimator(config: Config) -> None:
    """``model.estimator`` imports, fits ``model.task`` and takes ``model.hyperparameters``;
    ``drift.method`` is a method mlnb has.

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """
    from mlnb.drift import METHODS
    from mlnb.metrics import import_estimator, task_of

    m = config.model
    try:
        cls = import_estimator(m.estimator)
    except MlnbError as exc:
        raise ConfigError(f"model.estimator: {exc}") from None
    task = task_of(cls)
    if task != m.task:
        raise ConfigError(f"model.estimator: {m.estimator} is a {'classifier' if task == 'classification' else 'regressor'} "
                          f"but model.task is {m.task!r}; give a {m.task} estimator or change model.task")
    allowed = cls().get_params(deep=False)
    unknown = [k for k in m.hyperparameters if k not in allowed]
    if unknown:
        raise ConfigError(f"model.hyperparameters: {', '.join(map(repr, unknown))} not taken by {cls.__name__}; "
                          f"allowed: {', '.join(sorted(allowed))}")
    try:
        cls(**m.hyperparameters)._validate_params()  # scikit-learn's own check of each value
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model.hyperparameters: {str(exc).splitlines()[0]}") from None
    if config.drift.method != "auto" and config.drift.method not in METHODS:
        raise ConfigError(f"drift.method: {config.drift.method!r} is not a method; allowed: auto, {', '.join(METHODS)}")


def processed_batches(store: Store) -> dict[str, list[dict]]:
    """``{batch sha256: [{"run": id, "config": sha256 or None, "outcome": ...}, ...]}``:
    the succeeded pipeline runs that processed each batch, oldest first."""
    seen: dict[str, list[dict]] = {}
    for item in reversed(store.list_runs(template="pipeline")):
        decision = (item.get("scraps") or {}).get("decision") or {}
        batch = decision.get("batch") or {}
        if batch.get("sha256") and item["status"] == "succeeded" and decision.get("outcome") != "skipped":
            seen.setdefault(batch["sha256"], []).append(
                {"run": item["id"], "config": batch.get("config_sha256"), "outcome": decision.get("outcome")}
            )
    return seen


def write_dataset(store: Store, frame, label: str) -> Path:
    """Write a derived table into ``<store>/data/`` under its content hash (immutable)."""
    directory = store.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".csv", dir=directory)
    os.close(fd)
    frame.to_csv(tmp, index=False)
    digest = records.sha256_file(tmp)
    target = directory / f"{label}-{digest[:16]}.csv"
    if target.exists():
        os.unlink(tmp)
    else:
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    return target


def split_batch(frame, holdout: float, order_by: str | None = None):
    """The newest ``holdout`` share of a batch (by ``order_by`` or row order) and the rest."""
    if order_by and order_by in frame.columns:
        frame = frame.sort_values(order_by, kind="stable")
    n_holdout = max(1, int(round(len(frame) * holdout)))
    return frame.iloc[:-n_holdout], frame.iloc[-n_holdout:]


def history_frames(store: Store, name: str):
    """Tables for the report: model versions with metrics, and drift share per batch."""
    import pandas as pd

    from mlnb.registry import Registry

    versions = pd.DataFrame(Registry(store).versions_table(name)) if name else pd.DataFrame()
    drift = store.runs(template="drift", status="succeeded")
    if not drift.empty:
        drift["batch"] = [Path(p.get("current") or "").name for p in drift["parameters"]]
        keep = [c for c in ("started", "batch", "scrap.drift_share", "scrap.dataset_drift", "id") if c in drift]
        drift = drift[keep].sort_values("started")
    return versions, drift


# -- alerts -----------------------------------------------------------------------------------


def send_webhook(url: str, payload: dict, timeout: float, retries: int, sleep: Callable[[float], None] = time.sleep) -> dict:
    """POST ``payload`` as JSON; retry a bounded number of times; never raise.

    Returns:
        ``{"delivered": bool, "attempts": n, "error": str | None}``.
    """
    body = json.dumps(payload).encode()
    error = None
    for attempt in range(1, retries + 2):
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https only, checked in config)
                if 200 <= response.status < 300:
                    return {"delivered": True, "attempts": attempt, "error": None}
                error = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        if attempt <= retries:
            sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
    return {"delivered": False, "attempts": retries + 1, "error": error}


# -- the pipeline -----------------------------------------------------------------------------


class _Pipeline:
    """One pipeline run: child runs, the registry, the decision. Not reused."""

    def __init__(self, config: Config, store: Store, now: datetime, progress: bool, echo: Callable[[str], None]):
        self.config = config
        self.store = store
        self.now = now
        self.progress = progress
        self.echo = echo
        self.id = new_run_id("pipeline", now=datetime.now(timezone.utc))
        self.decision = Decision(model=config.model.name)
        self.unreadable: str | None = None  # why the batch cannot be read, when it cannot

    def template(self, name: str):
        from mlnb.execute import find_template

        return find_template(name, start=self.config.root)

    def child(self, step: str, template: str, parameters: dict) -> Run:
        from mlnb.execute import run_template

        try:
            run = run_template(self.template(template), parameters, self.store, parent=self.id,
                               progress=self.progress, paths_relative_to=self.config.root,
                               tags={"pipeline_step": step}, config=self.config)
        except Interrupted:
            raise
        except MlnbError as exc:  # checked before the first step; what the data brings later is a step failure
            raise PipelineStepFailed(f"step {step} could not start: {exc}") from exc
        self.decision.children[step] = run.id
        self.echo(f"  {step:<20} {run.status:<9} {run.id}")
        return run

    def evaluate(self, step: str, version: int, data: Path) -> dict | None:
        """Score a registered version on ``data`` with the ``evaluate`` template; its metrics."""
        run = self.child(step, "evaluate", self.evaluate_parameters(version, data))
        if not run.succeeded:
            self.fail(step, run)
        return run.record["scraps"].get("metrics")

    def evaluate_parameters(self, version: int, data: Path) -> dict:
        return {"model": f"{self.config.model.name}/{version}", "data": str(data),
                "target": self.config.model.target, "store": str(self.store.path), "demo": False}

    def monitored(self, production: dict | None) -> bool:
        """Whether the estimated-performance trigger is configured and has a model to watch."""
        ep = self.config.triggers.estimated_performance
        return production is not None and (ep.min is not None or ep.max is not None)

    def monitor_parameters(self) -> dict | None:
        """The monitor run's parameters, or None when the served model has no prediction log."""
        from mlnb import predlog

        cfg = self.config
        if not predlog.log_files(predlog.log_dir(self.store, cfg.model.name)):
            return None
        ep = cfg.triggers.estimated_performance
        return {"model": f"{cfg.model.name}@{cfg.promotion.alias}", "chunk": ep.chunk, "min_rows": ep.min_rows,
                "metric": ep.metric, "store": str(self.store.path), "demo": False}

    def estimated_performance(self, production: dict) -> Trigger:
        """Estimate the production model's performance from its prediction log (a monitor
        run), and whether it is past the configured limit."""
        from mlnb.monitor import estimated_performance_trigger

        ep = self.config.triggers.estimated_performance
        limit = ep.min if ep.min is not None else ep.max
        parameters = self.monitor_parameters()
        if parameters is None:
            return Trigger("estimated_performance", False, None, limit,
                           f"no prediction log of {self.config.model.name}: estimated {ep.metric} not measured")
        run = self.child("monitor", "monitor", parameters)
        if not run.succeeded:
            self.fail("monitor", run)
        result = estimated_performance_trigger(run, ep.metric, minimum=ep.min, maximum=ep.max)
        return Trigger("estimated_performance", result.fired, result.value, limit, result.reason)

    def preflight(self, batch: Path, production: dict | None) -> None:
        """Check every step's parameters and inputs before the first step runs (exit 2 then
        writes nothing): validation and drift on the batch, training and scoring on the
        reference, which has the columns the training table will have (a batch that lacks a
        column is broken data: validation rejects it, exit 5)."""
        from mlnb.execute import prepare_parameters

        from mlnb.data import probe_table

        cfg = self.config
        reference = cfg.path(cfg.data.reference)
        try:
            probe_table(batch)
        except DataError as exc:  # broken data: the validate step's verdict, not a usage error
            self.unreadable = str(exc)
            batch = reference  # the other steps are checked on a table that can be read
        check_columns(cfg, reference, batch)
        check_estimator(cfg)
        steps = [("validate", {"data": str(batch)}), ("drift", {"current": str(batch)}),
                 ("train", {"data": str(reference)})]
        if production is not None:
            # checked on the reference: a batch that lacks a feature is for validation to reject
            steps.append(("evaluate", self.evaluate_parameters(production["version"], reference)))
        if self.monitored(production) and self.monitor_parameters() is not None:
            steps.append(("monitor", self.monitor_parameters()))
        for template, parameters in steps:
            try:
                prepare_parameters(self.template(template), parameters, cfg.root, self.store, cfg)
            except MlnbError as exc:
                raise type(exc)(f"step {template}: {exc}") from exc

    def fail(self, step: str, run: Run) -> None:
        err = run.record["error"] or {}
        raise PipelineStepFailed(f"step {step} failed: {err.get('ename')}: {err.get('evalue')} (run {run.id})")

    def alert(self, event: str, text: str) -> None:
        entry = {"event": event, "text": text}
        self.echo(f"mlnb: alert: {text}", err=True)
        hook = self.config.alerts.webhook
        if hook:
            payload = {
                "text": f"[mlnb] {text}",
                "event": event,
                "model": self.config.model.name,
                "pipeline_run": self.id,
                "outcome": self.decision.outcome,
                "batch": (self.decision.batch or {}).get("path"),
                "reasons": self.decision.reasons,
            }
            entry["webhook"] = send_webhook(hook, payload, self.config.alerts.timeout_s, self.config.alerts.retries)
            if not entry["webhook"]["delivered"]:
                self.echo(f"mlnb: warning: webhook not delivered after {entry['webhook']['attempts']} attempts: "
                          f"{entry['webhook']['error']}", err=True)
        self.decision.alerts.append(entry)

    # -- steps --

    def choose_batch(self, current: str | None, force: bool) -> Path | None:
        processed = processed_batches(self.store)
        config_sha = self.config.fingerprint()
        if current:
            batch = Path(current)
            if not batch.is_absolute():
                batch = Path.cwd() / batch
            if not batch.is_file():
                raise DataError(f"--current {current!r}: no such file")
        else:
            files = batches(self.config)
            if not files:
                raise ConfigError(f"data.current: {self.config.data.current!r} matches no file")
            # the newest batch no configuration has seen; when every one was seen, the newest,
            # which a changed configuration processes once more (older batches stay as they were)
            unseen = [f for f in files if records.sha256_file(f) not in processed]
            batch = (unseen or files)[-1]
        self.decision.batch = {"path": str(batch.resolve()), **records.fingerprint(batch), "config_sha256": config_sha}
        earlier = processed.get(self.decision.batch["sha256"], [])
        same = [r for r in earlier if r["config"] == config_sha]
        name = f"batch {batch.name} (sha256 {self.decision.batch['sha256'][:12]})"
        if same and not force:
            self.decision.outcome = "skipped"
            self.decision.reasons.append(
                f"{name} was already processed under this configuration (sha256 {config_sha[:12]}) by pipeline run "
                f"{same[-1]['run']} ({same[-1]['outcome']}); use --force to process it again")
            return None
        if earlier and not same:
            last = earlier[-1]
            self.decision.reasons.append(
                f"{name} was processed by pipeline run {last['run']} ({last['outcome']}) under another "
                f"configuration (sha256 {(last['config'] or 'unrecorded')[:12]}); the configuration changed since "
                f"(now {config_sha[:12]}): processing it again")
        return batch

    def run(self, current: str | None, force: bool) -> Decision:
        from mlnb.registry import Registry

        with Registry(self.store) as registry:
            batch = self.choose_batch(current, force)
            if batch is None:
                return self.decision
            production = registry.alias_version(self.config.model.name, self.config.promotion.alias)
            self.preflight(batch, production)
            self.store.ensure_writable()
            try:
                return self.steps(registry, batch, production)
            except (PipelineStepFailed, Interrupted):
                raise
            except MlnbError as exc:
                raise PipelineStepFailed(str(exc)) from exc

    def steps(self, registry, batch: Path, production: dict | None) -> Decision:
        cfg = self.config
        self.echo(f"pipeline {self.id}: batch {batch.name}")
        if self.unreadable:
            self.decision.outcome = "rejected"
            self.decision.reasons.append(f"data rejected: {self.unreadable}")
            self.alert("data_rejected", f"{cfg.model.name}: batch {batch.name}: {self.unreadable}")
            return self.decision
        v = self.child("validate", "validate", {"data": str(batch)})
        scraps = v.record["scraps"]
        validation_passed = v.succeeded and scraps.get("passed") is not False
        if not v.succeeded:
            if scraps.get("accepted") is not False:
                self.fail("validate", v)
            summary = v.record["error"]["evalue"] if v.record["error"] else "data rejected"
            self.decision.outcome = "rejected"
            self.decision.reasons.append(summary)
            self.alert("data_rejected", f"{cfg.model.name}: batch {batch.name}: {summary}")
            return self.decision
        if scraps.get("errors"):
            self.decision.reasons.append(f"schema checks failed but reject_on is {cfg.validation.reject_on!r}: "
                                         + "; ".join(scraps["errors"]))
        if scraps.get("warnings"):
            text = "; ".join(scraps["warnings"])
            self.decision.reasons.append(f"validation warnings (expectations, not rejected): {text}")
            self.alert("data_warnings", f"{cfg.model.name}: batch {batch.name} accepted with warnings: {text}")

        d = self.child("drift", "drift", {"current": str(batch)})
        if not d.succeeded:
            self.fail("drift", d)

        alias = cfg.promotion.alias
        current_metrics = None
        from mlnb.data import read_table

        frame = read_table(batch)
        labelled = cfg.model.target in frame.columns and frame[cfg.model.target].notna().any()
        if production is not None and labelled:
            current_metrics = self.evaluate("evaluate_production", production["version"], batch)
        if production is not None:
            self.decision.champion = {"version": production["version"], "metrics_at_training": production.get("metrics"),
                                      "metrics_on_batch": current_metrics}

        estimate = self.estimated_performance(production) if self.monitored(production) else None
        triggers = evaluate_triggers(cfg, drift=d.record["scraps"], production=production,
                                     current_metrics=current_metrics, now=self.now, estimate=estimate)
        self.decision.triggers = [asdict(t) for t in triggers]
        fired = [t for t in triggers if t.fired]
        for t in triggers:
            self.decision.reasons.append(("FIRED " if t.fired else "ok    ") + f"{t.name}: {t.reason}")
        if not fired:
            self.decision.outcome = "nothing_needed"
            return self.decision
        if not labelled:
            self.decision.outcome = "nothing_needed"
            self.decision.reasons.append(f"cannot retrain: the batch has no labels in {cfg.model.target!r}")
            self.alert("no_labels", f"{cfg.model.name}: {', '.join(t.name for t in fired)} fired on batch "
                                    f"{batch.name}, which has no labels to retrain on")
            return self.decision

        # retrain: reference (+ earlier batches) + the older part of this batch; the newest
        # part is the holdout on which challenger and champion are compared
        labelled_rows = frame[frame[cfg.model.target].notna()]
        train_part, holdout = split_batch(labelled_rows, cfg.training.holdout)
        parts = [read_table(cfg.path(cfg.data.reference))] if cfg.training.policy == "all" else []
        earlier = self.earlier_batches()
        if cfg.training.policy == "window":
            earlier = earlier[-(cfg.training.window - 1):] if cfg.training.window > 1 else []
        parts += [read_table(p) for p in earlier] + [train_part]
        import pandas as pd

        train_path = write_dataset(self.store, pd.concat(parts, ignore_index=True), "train")
        holdout_path = write_dataset(self.store, holdout, "holdout")
        labels = sum(int(p[cfg.model.target].notna().sum()) for p in parts if cfg.model.target in p)
        n_earlier = f"{len(earlier)} earlier batch{'' if len(earlier) == 1 else 'es'}"
        self.decision.reasons.append(
            f"challenger trained on {labels} labelled rows (policy {cfg.training.policy}: "
            f"{'reference + ' if cfg.training.policy == 'all' else ''}{n_earlier} + "
            f"{len(train_part)} rows of this batch); {len(holdout)} newest rows held out"
            + (" (a small holdout: the comparison below is noisy)" if len(holdout) < SMALL_HOLDOUT else "")
        )
        t = self.child("train", "train", {"data": str(train_path)})
        if not t.succeeded:
            self.fail("train", t)
        new = registry.register(t.id, cfg.model.name, caused_by=self.id).version
        self.decision.registry_changes.append({"action": "register", "model": cfg.model.name, "version": new, "run": t.id})

        challenger_metrics = self.evaluate("evaluate_challenger", new, holdout_path) or {}
        champion_metrics = None
        if production is not None:
            champion_metrics = self.evaluate("evaluate_champion", production["version"], holdout_path)
        self.decision.challenger = {"version": new, "metrics_on_holdout": challenger_metrics}
        if self.decision.champion is not None:
            self.decision.champion["metrics_on_holdout"] = champion_metrics
        promote, why = promotion_decision(cfg, challenger_metrics, champion_metrics, validation_passed)
        self.decision.comparison = {"metric": cfg.promotion.metric, "min_gain": cfg.promotion.min_gain,
                                    "challenger": challenger_metrics.get(cfg.promotion.metric),
                                    "champion": (champion_metrics or {}).get(cfg.promotion.metric),
                                    "promote": promote, "reason": why}
        self.decision.reasons.append(("promote: " if promote else "keep champion: ") + why)
        fired_names = ", ".join(t.name for t in fired)
        if promote:
            registry.promote(cfg.model.name, new, alias=alias, reason=f"pipeline: {why}", caused_by=self.id)
            self.decision.registry_changes.append({"action": "set_alias", "alias": alias, "model": cfg.model.name,
                                                   "from": production["version"] if production else None, "to": new})
            self.decision.outcome = "promoted"
            self.alert("promoted", f"{cfg.model.name} v{new} promoted to {alias} ({fired_names} fired): {why}")
        else:
            registry.set_alias(cfg.model.name, "challenger", new, reason=f"pipeline: not promoted: {why}", caused_by=self.id)
            self.decision.registry_changes.append({"action": "set_alias", "alias": "challenger", "model": cfg.model.name, "to": new})
            self.decision.outcome = "not_promoted"
            self.alert("not_promoted", f"{cfg.model.name} v{new} trained ({fired_names} fired) but not promoted: {why}")
        return self.decision

    def earlier_batches(self) -> list[Path]:
        """Batches accepted by earlier pipeline runs, oldest first, that still exist."""
        accepted = {}
        for item in self.store.list_runs(template="pipeline", status="succeeded"):
            dec = (item.get("scraps") or {}).get("decision") or {}
            batch = dec.get("batch") or {}
            if dec.get("outcome") not in ("rejected", "skipped", "error") and batch.get("path"):
                accepted[batch["sha256"]] = (item["started"], Path(batch["path"]))
        current = (self.decision.batch or {}).get("sha256")
        ordered = sorted((v for k, v in accepted.items() if k != current), key=lambda x: x[0])
        return [p for _, p in ordered if p.is_file()]

    def record(self) -> Run:
        from mlnb.execute import find_template, run_template

        tpl = find_template("pipeline", start=self.config.root)
        failed = self.decision.outcome == "error"
        return run_template(
            tpl,
            {"decision": self.decision.to_dict(), "store": str(self.store.path.resolve()), "fail_on_error": failed},
            self.store, run_id=self.id, progress=self.progress, paths_relative_to=self.config.root,
        )


def run_pipeline(
    config: Config,
    store: Store | None = None,
    *,
    current: str | None = None,
    now: datetime | None = None,
    force: bool = False,
    progress: bool = False,
    echo: Callable[..., None] | None = None,
) -> tuple[Decision, Run]:
    """Run the retraining pipeline once and record it.

    Args:
        config: the parsed ``mlnb.yaml``.
        store: the run store (default: ``store:`` of the config).
        current: a batch file to process instead of the newest unseen batch.
        now: the clock for the schedule trigger (default: now, UTC).
        force: process a batch even if an earlier pipeline run processed it.
        echo: receives progress lines (``echo(text, err=False)``).

    Returns:
        The decision and the pipeline's own run record. The exit code for the outcome is
        ``OUTCOME_EXIT[decision.outcome]``.
    """
    store = store or Store(config.path(config.store))
    pipe = _Pipeline(config, store, now or datetime.now(timezone.utc), progress, echo or (lambda *a, **k: None))
    try:
        pipe.run(current, force)
    except PipelineStepFailed as exc:
        pipe.decision.outcome = "error"
        pipe.decision.reasons.append(str(exc))
        pipe.alert("error", f"{config.model.name}: pipeline error: {exc}")
    except Interrupted:
        if not pipe.decision.children and not pipe.decision.registry_changes:
            raise  # nothing was written: nothing to record
        # steps ran (and maybe a version was registered): the pipeline record says so, so that
        # no step points at a parent that never was and no version lacks its decision
        steps = ", ".join(pipe.decision.children)
        pipe.decision.outcome = "error"
        pipe.decision.reasons.append(f"interrupted after step(s) {steps}")
        record = pipe.record()
        raise Interrupted(f"pipeline {pipe.id} interrupted after step(s) {steps}; recorded as an error: "
                          f"{record.path / 'record.json'}") from None
    return pipe.decision, pipe.record()


__all__ = [
    "Decision", "Trigger", "evaluate_triggers", "promotion_decision", "run_pipeline", "send_webhook",
    "OUTCOME_EXIT",
]

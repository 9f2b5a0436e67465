"""One pipeline run: validate → drift → evaluate → triggers → retrain → compare → promote.

Every step is a template run, recorded as a child of the pipeline run; the registry
changes and the alerts follow from the pure decisions of :mod:`mlnb.pipeline.decisions`.
The pipeline run itself is the record of the ``pipeline`` template, which shows the decision.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mlnb import records
from mlnb.execute import run_template, sigterm_as_interrupt
from mlnb.exceptions import ConfigError, DataError, Interrupted, MlnbError, PipelineStepFailed, RunDiscarded
from mlnb.pipeline.alerts import send_webhook
from mlnb.pipeline.data import batches, check_columns, check_estimator, processed_batches, split_batch, write_dataset
from mlnb.pipeline.decisions import Decision, Trigger, evaluate_triggers, promotion_decision
from mlnb.store import Run, Store, new_run_id

if TYPE_CHECKING:
    from mlnb.config import Config
    from mlnb.kernels import KernelPool

#: Below this many rows, the holdout that compares challenger and champion is called small.
SMALL_HOLDOUT = 30


class _Pipeline:
    """One pipeline run: child runs, the registry, the decision. Not reused."""

    def __init__(self, config: Config, store: Store, now: datetime, progress: bool, echo: Callable[[str], None],
                 kernels: KernelPool | None = None):
        self.config = config
        self.store = store
        self.now = now
        self.progress = progress
        self.echo = echo
        self.kernels = kernels
        self.stopping = threading.Event()  # set on Ctrl-C: steps still running discard their runs
        self.id = new_run_id("pipeline", now=datetime.now(timezone.utc))
        self.decision = Decision(model=config.model.name)
        self.unreadable: str | None = None  # why the batch cannot be read, when it cannot

    def template(self, name: str):
        from mlnb.catalog import find_template

        return find_template(name, start=self.config.root)

    def child(self, step: str, template: str, parameters: dict) -> Run:
        run = self.execute(step, template, parameters)
        self.note(step, run)
        return run

    def execute(self, step: str, template: str, parameters: dict, keep: Callable[[], bool] | None = None) -> Run:
        """Run one step's template; ``keep`` decides, once it ran, whether it is committed."""
        def committing() -> bool:
            return not self.stopping.is_set() and (keep is None or keep())

        try:
            return run_template(self.template(template), parameters, self.store, parent=self.id,
                                progress=self.progress, paths_relative_to=self.config.root,
                                tags={"pipeline_step": step}, config=self.config, kernels=self.kernels,
                                before_commit=committing)
        except (Interrupted, RunDiscarded):
            raise
        except MlnbError as exc:  # checked before the first step; what the data brings later is a step failure
            raise PipelineStepFailed(f"step {step} could not start: {exc}") from exc

    def prepare(self) -> None:
        """Have the kernels' fork server import what every step may need, before the first fork."""
        if self.kernels is not None:
            ep = self.config.triggers.estimated_performance
            names = ["validate", "drift", "evaluate", "train", "pipeline",
                     *(["monitor"] if ep.min is not None or ep.max is not None else [])]
            self.kernels.prepare(*map(self.template, names))

    def warm(self, *templates: str) -> None:
        """Start kernels for the steps that come next while this one runs."""
        if self.kernels is not None:
            for name in templates:
                self.kernels.warm(self.template(name))

    def note(self, step: str, run: Run) -> None:
        self.decision.children[step] = run.id
        self.echo(f"  {step:<20} {run.status:<9} {run.id}")

    def together(self, steps: list[tuple[str, str, dict]], first_decides: bool = False) -> dict[str, Run]:
        """Run independent steps at once, each on its own kernel; their runs, noted in the
        order given (whatever order they finish in). With ``first_decides``, the other
        steps are committed only if the first one's run succeeded, else discarded and left out."""
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="mlnb-step")
        (step, template, parameters), *rest = steps
        first = pool.submit(self.execute, step, template, parameters)

        def first_succeeded() -> bool:
            try:
                return first.result().succeeded
            except BaseException:  # the first step could not run: nothing after it is kept
                return False

        futures = {step: first}
        for step, template, parameters in rest:
            futures[step] = pool.submit(self.execute, step, template, parameters,
                                        first_succeeded if first_decides else None)
        interrupted = None
        with sigterm_as_interrupt():
            try:
                pool.shutdown(wait=True)
            except KeyboardInterrupt as exc:
                interrupted = exc
                self.stopping.set()  # the steps still running discard their runs when they end
                pool.shutdown(wait=True, cancel_futures=True)
        runs: dict[str, Run] = {}
        failure: BaseException | None = None
        # steps the first one's failure makes moot do not fail the pipeline either (a batch
        # that lacks a column is rejected by validation; scoring it cannot even start)
        moot = first_decides and not first_succeeded()
        for step, future in futures.items():
            try:
                runs[step] = future.result()
            except (RunDiscarded, Interrupted):
                continue
            except BaseException as exc:  # raised below, once every committed run is noted
                if not (moot and future is not first):
                    failure = failure or exc
                continue
            self.note(step, runs[step])
        if interrupted is not None:
            raise Interrupted(f"pipeline {self.id} interrupted") from interrupted
        if failure is not None:
            raise failure
        return runs

    def metrics(self, step: str, run: Run) -> dict | None:
        """The metrics of an ``evaluate`` step's run (a failed run fails the pipeline)."""
        if not run.succeeded:
            self.fail(step, run)
        return run.record["scraps"].get("metrics")

    def evaluate_parameters(self, version: int, data: Path) -> dict:
        return {"model": f"{self.config.model.name}/{version}", "data": str(data),
                "target": self.config.model.target, "store": self.store.location, "demo": False}

    def monitored(self, production: dict | None) -> bool:
        """Whether the estimated-performance trigger is configured and has a model to watch."""
        ep = self.config.triggers.estimated_performance
        return production is not None and (ep.min is not None or ep.max is not None)

    def monitor_parameters(self) -> dict | None:
        """The monitor run's parameters, or None when the served model has no prediction log."""
        from mlnb import predlog

        cfg = self.config
        if not predlog.log_files(predlog.synced_log_dir(self.store, cfg.model.name)):
            return None
        ep = cfg.triggers.estimated_performance
        return {"model": f"{cfg.model.name}@{cfg.promotion.alias}", "chunk": ep.chunk, "min_rows": ep.min_rows,
                "metric": ep.metric, "store": self.store.location, "demo": False}

    def estimated_performance(self, run: Run | None) -> Trigger:
        """Whether the production model's performance, estimated from its prediction log by
        the ``monitor`` step's run (None: there is no log), is past the configured limit."""
        from mlnb.monitor import estimated_performance_trigger

        ep = self.config.triggers.estimated_performance
        limit = ep.min if ep.min is not None else ep.max
        if run is None:
            return Trigger("estimated_performance", False, None, limit,
                           f"no prediction log of {self.config.model.name}: estimated {ep.metric} not measured")
        if not run.succeeded:
            self.fail("monitor", run)
        result = estimated_performance_trigger(run, ep.metric, minimum=ep.min, maximum=ep.max)
        return Trigger("estimated_performance", result.fired, result.value, limit, result.reason)

    def preflight(self, batch: Path, production: dict | None) -> None:
        """Check every step's parameters and inputs before the first step runs (exit 2 then
        writes nothing): validation and drift on the batch, training and scoring on the
        reference, which has the columns the training table will have (a batch that lacks a
        column is broken data: validation rejects it, exit 5)."""
        from mlnb.data import probe_table
        from mlnb.inputs import prepare_parameters

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
                raise DataError(f"`current` {current!r}: no such file", parameters=("current",))
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
        from mlnb.data import read_table

        frame = read_table(batch)
        labelled = cfg.model.target in frame.columns and frame[cfg.model.target].notna().any()
        # validation, drift, and what the production model does on the batch do not depend on
        # each other: they run at once, and what follows validation is kept only when it
        # accepts the batch (a rejected batch has its validation run alone, as in sequence)
        steps = [("validate", "validate", {"data": str(batch)}), ("drift", "drift", {"current": str(batch)})]
        if production is not None and labelled:
            steps.append(("evaluate_production", "evaluate", self.evaluate_parameters(production["version"], batch)))
        monitor = self.monitor_parameters() if self.monitored(production) else None
        if monitor is not None:
            steps.append(("monitor", "monitor", monitor))
        # the kernels of what may come next start as soon as these leave the pool: training
        # (when the batch could retrain a model) and the pipeline's own record
        self.warm(*(["train"] if labelled else []), "pipeline")
        runs = self.together(steps, first_decides=True)
        v = runs["validate"]
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

        d = runs["drift"]
        if not d.succeeded:
            self.fail("drift", d)

        alias = cfg.promotion.alias
        current_metrics = None
        if "evaluate_production" in runs:
            current_metrics = self.metrics("evaluate_production", runs["evaluate_production"])
        if production is not None:
            self.decision.champion = {"version": production["version"], "metrics_at_training": production.get("metrics"),
                                      "metrics_on_batch": current_metrics}

        estimate = self.estimated_performance(runs.get("monitor")) if self.monitored(production) else None
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
        self.warm(*["evaluate"] * (1 if production is None else 2))  # while training runs
        t = self.child("train", "train", {"data": str(train_path)})
        if not t.succeeded:
            self.fail("train", t)
        new = registry.register(t.id, cfg.model.name, caused_by=self.id).version
        self.decision.registry_changes.append({"action": "register", "model": cfg.model.name, "version": new, "run": t.id})

        compared = [("evaluate_challenger", "evaluate", self.evaluate_parameters(new, holdout_path))]
        if production is not None:
            compared.append(("evaluate_champion", "evaluate", self.evaluate_parameters(production["version"], holdout_path)))
        scored = self.together(compared)
        challenger_metrics = self.metrics("evaluate_challenger", scored["evaluate_challenger"]) or {}
        champion_metrics = None
        if production is not None:
            champion_metrics = self.metrics("evaluate_champion", scored["evaluate_champion"])
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
        tpl = self.template("pipeline")
        failed = self.decision.outcome == "error"
        return run_template(
            tpl,
            {"decision": self.decision.to_dict(), "store": self.store.location, "fail_on_error": failed},
            self.store, run_id=self.id, progress=self.progress, paths_relative_to=self.config.root,
            kernels=self.kernels,
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
    kernels: KernelPool | None = None,
    cold: bool = False,
) -> tuple[Decision, Run]:
    """Run the retraining pipeline once and record it.

    Args:
        config: the parsed ``mlnb.yaml``.
        store: the run store (default: ``store:`` of the config).
        current: a batch file to process instead of the newest unseen batch.
        now: the clock for the schedule trigger (default: now, UTC).
        force: process a batch even if an earlier pipeline run processed it.
        echo: receives progress lines (``echo(text, err=False)``).
        kernels: the warm kernels to run the steps on (a backfill shares one pool over its
            batches); by default a pool as ``mlnb.yaml``'s ``kernels`` section says, for this run.
        cold: every step's kernel starts from nothing (``--cold``); ``kernels`` is then ignored.

    Returns:
        The decision and the pipeline's own run record. The exit code for the outcome is
        ``OUTCOME_EXIT[decision.outcome]``.
    """
    from mlnb.kernels import KernelPool

    own = None
    if cold:
        kernels = None
    elif kernels is None:
        kernels = own = KernelPool.for_config(config)
    try:
        return _run_once(config, store, current, now, force, progress, echo, kernels)
    finally:
        if own is not None:
            own.close()


def _run_once(config, store, current, now, force, progress, echo, kernels) -> tuple[Decision, Run]:
    store = store or Store(config.path(config.store))
    pipe = _Pipeline(config, store, now or datetime.now(timezone.utc), progress, echo or (lambda *a, **k: None),
                     kernels)
    pipe.prepare()
    pipe.warm("validate", "drift")
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

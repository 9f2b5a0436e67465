"""The retraining pipeline: validate → drift → evaluate → triggers → retrain → compare → promote.

Every step is a template run, recorded as a child of one pipeline run; the pipeline run
itself is the record of the ``pipeline`` template, which shows the decision. The decisions
are pure functions of the child runs' scraps (:mod:`mlnb.pipeline.decisions`: triggers,
comparison, outcomes), tested without a kernel; reading batches and writing data
(:mod:`mlnb.pipeline.data`), sending alerts (:mod:`mlnb.pipeline.alerts`) and running the
templates (:mod:`mlnb.pipeline.run`) sit at the edges.
"""

from mlnb.exceptions import PipelineStepFailed
from mlnb.pipeline.alerts import send_webhook
from mlnb.pipeline.data import (
    batches,
    check_columns,
    check_estimator,
    history_frames,
    processed_batches,
    split_batch,
    write_dataset,
)
from mlnb.pipeline.decisions import (
    EXIT_ERROR,
    EXIT_NOT_PROMOTED,
    EXIT_NOTHING,
    EXIT_PROMOTED,
    EXIT_REJECTED,
    OUTCOME_EXIT,
    OUTCOMES,
    Decision,
    Trigger,
    evaluate_triggers,
    promotion_decision,
    records_json,
)
from mlnb.pipeline.run import SMALL_HOLDOUT, run_pipeline
from mlnb.pipeline.run import _Pipeline  # noqa: F401  (the tests drive one step of it)

__all__ = [
    "Decision", "Trigger", "evaluate_triggers", "promotion_decision", "run_pipeline", "send_webhook",
    "OUTCOME_EXIT", "OUTCOMES", "EXIT_NOTHING", "EXIT_PROMOTED", "EXIT_NOT_PROMOTED", "EXIT_REJECTED", "EXIT_ERROR",
    "PipelineStepFailed", "SMALL_HOLDOUT", "records_json",
    "batches", "check_columns", "check_estimator", "history_frames", "processed_batches", "split_batch", "write_dataset",
]

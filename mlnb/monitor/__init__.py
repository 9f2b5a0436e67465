"""Performance of a served model while labels are late: realized where they exist, estimated where not.

What the ``monitor`` template computes, as pure functions, one concept per module:

- :mod:`.chunks`: the analysis cut by time (``"7d"``, ``"12h"``, ``"1w"``) or by count
  (``"500"``); a chunk under ``min_rows`` rows is merged into its neighbour and the merge
  is reported.
- :mod:`.cbpe`: for classifiers, the model's probabilities calibrated on a labelled
  reference (:class:`Calibration`), as NannyML does it, and stored with the model version.
- :mod:`.confusion`: accuracy and macro precision, recall and F1 from a realized or an
  expected confusion matrix (CBPE's estimate).
- :mod:`.dle`: for regressors, a model of the absolute and squared error (:class:`LossModel`).
- :mod:`.estimation`: :func:`estimate`, chunk by chunk, with bands and thresholds from the
  reference.
- :mod:`.reference`: the reference (the training run's holdout, scored) and the prediction
  log with its labels joined.
- :mod:`.trigger`: the pipeline's :func:`estimated_performance_trigger`.
- :mod:`.prometheus`: :class:`MonitorCollector`, the newest monitor run as Prometheus gauges.
- :mod:`.demo`: a model and a prediction log made from the bundled example.

numpy, pandas and scikit-learn are imported inside the functions.
"""

from mlnb.monitor.cbpe import (CALIBRATION_SCHEMA, CALIBRATION_TAG, Calibration, fit_calibration, needs_calibration,
                               stored_calibration)
from mlnb.monitor.chunks import DEFAULT_MIN_ROWS, Chunks, ChunkSpec, chunk_rows, parse_chunk, reference_chunks
from mlnb.monitor.confusion import (CLASSIFICATION_METRICS, class_text, confusion_metrics, encode_classes,
                                    expected_confusion, realized_confusion)
from mlnb.monitor.demo import DemoInputs, demo_inputs
from mlnb.monitor.dle import REGRESSION_METRICS, LossModel, loss_metric, realized_regression
from mlnb.monitor.estimation import BAND, ESTIMATED, THRESHOLD_STD, Estimate, estimate, json_value
from mlnb.monitor.prometheus import MonitorCollector
from mlnb.monitor.reference import attach_labels, frame_sha256, holdout_of, score_reference
from mlnb.monitor.trigger import TriggerResult, estimated_performance_trigger

__all__ = [
    "BAND", "CALIBRATION_SCHEMA", "CALIBRATION_TAG", "CLASSIFICATION_METRICS", "DEFAULT_MIN_ROWS", "ESTIMATED",
    "REGRESSION_METRICS", "THRESHOLD_STD", "Calibration", "ChunkSpec", "Chunks", "DemoInputs", "Estimate",
    "LossModel", "MonitorCollector", "TriggerResult", "attach_labels", "chunk_rows", "class_text",
    "confusion_metrics", "demo_inputs", "encode_classes", "estimate", "estimated_performance_trigger",
    "expected_confusion", "fit_calibration", "frame_sha256", "holdout_of", "json_value", "loss_metric",
    "needs_calibration", "parse_chunk", "realized_confusion", "realized_regression", "reference_chunks",
    "score_reference", "stored_calibration",
]

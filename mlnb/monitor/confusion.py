"""Classification metrics from confusion matrices, realized from labels or expected from probabilities.

CBPE's estimate of a chunk is read off its **expected** confusion matrix (the calibrated
probability of each true class, summed over the rows predicted as each class); the
realized value off the ordinary one. Both give accuracy and macro precision, recall and
F1 (:func:`confusion_metrics`). Labels and predictions enter as class positions
(:func:`encode_classes`), a label written as the model logs its classes (:func:`class_text`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError

if TYPE_CHECKING:
    import numpy as np

#: Metrics read off a confusion matrix (what CBPE estimates).
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1")


def class_text(value: Any) -> str:
    """A label as the text of a class: 1.0 read from a CSV is class "1", as the model logs it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    item = getattr(value, "item", None)
    return class_text(item()) if item is not None and not isinstance(value, str) else str(value)


def expected_confusion(calibrated: "np.ndarray", predicted: "np.ndarray", k: int) -> "np.ndarray":
    """``C[i, j]``: expected rows of true class i predicted as j (sum of calibrated p_i over rows predicted j)."""
    import numpy as np

    onehot = np.zeros((len(predicted), k))
    onehot[np.arange(len(predicted)), predicted] = 1.0
    return calibrated.T @ onehot


def realized_confusion(truth: "np.ndarray", predicted: "np.ndarray", k: int) -> "np.ndarray":
    import numpy as np

    matrix = np.zeros((k, k))
    np.add.at(matrix, (truth, predicted), 1.0)
    return matrix


def confusion_metrics(matrix: "np.ndarray") -> dict[str, float]:
    """accuracy and macro precision, recall, F1 of a (possibly expected) confusion matrix.

    Macro averages run over the classes that occur as truth or prediction (as scikit-learn's
    do over the labels present); 0/0 counts as 0, as with ``zero_division=0``.
    """
    import numpy as np

    total = matrix.sum()
    if total <= 0:
        return {m: math.nan for m in CLASSIFICATION_METRICS}
    tp = np.diag(matrix)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    present = (predicted + actual) > 1e-9
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)
    return {"accuracy": float(tp.sum() / total), "precision": float(precision[present].mean()),
            "recall": float(recall[present].mean()), "f1": float(f1[present].mean())}


def encode_classes(values, classes: list[str]) -> "np.ndarray":
    """Positions of ``values`` in ``classes``.

    Raises:
        DataError: a value that is not a class of the model.
    """
    import numpy as np

    lookup = {c: i for i, c in enumerate(classes)}
    text = np.array([class_text(v) for v in values], dtype=object)  # 1.0 (a label column with gaps) is "1"
    out = np.array([lookup.get(v, -1) for v in text], dtype=np.int64)
    if (out < 0).any():
        bad = sorted(set(text[out < 0]))[:5]
        raise DataError(f"value(s) {', '.join(map(repr, bad))} are not classes of the model ({', '.join(classes)})")
    return out

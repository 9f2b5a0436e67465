"""Calibration for CBPE: a classifier's probabilities made to mean what they say on a reference.

As NannyML does it, the model's probabilities are calibrated on a labelled reference (the
training run's holdout by default) with isotonic regression, one class against the rest,
kept for a class only when it lowers the expected calibration error in a 10-split
cross-validation, then renormalised. A :class:`Calibration` is plain JSON: it is stored as
a monitor run's artifact, and the model version's :data:`CALIBRATION_TAG` names it so a
later run on the same reference reuses it (:func:`stored_calibration`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlnb import records
from mlnb.exceptions import DataError

if TYPE_CHECKING:
    import numpy as np

CALIBRATION_SCHEMA = records.CALIBRATION


def _isotonic(scores, hits):
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(out_of_bounds="clip", increasing=True, y_min=0.0, y_max=1.0)
    model.fit(scores, hits)
    return model.X_thresholds_.astype(float), model.y_thresholds_.astype(float)


def _ece(hits, scores, bins: int = 10) -> float:
    """Expected calibration error over equal-count bins of sorted scores (NannyML's)."""
    import numpy as np

    order = np.argsort(scores, kind="stable")
    s, h = np.asarray(scores)[order], np.asarray(hits)[order]
    bins = min(bins, max(len(s) // 2, 1))
    edges = np.linspace(0, len(s), bins + 1).astype(int)
    return float(sum((b - a) / len(s) * abs(s[a:b].mean() - h[a:b].mean()) for a, b in zip(edges[:-1], edges[1:])
                     if b > a))


def needs_calibration(hits, scores, splits: int = 10, seed: int = 42) -> bool:
    """Whether isotonic calibration lowers the expected calibration error on held-out rows.

    As NannyML decides: no when one class only or the scores separate the classes almost
    perfectly (ROC AUC > 0.999); else calibrate on 90 % and measure on 10 % of the rows,
    ``splits`` times (stratified), and compare the ECE of the pooled held-out scores.
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit

    hits, scores = np.asarray(hits, dtype=int), np.asarray(scores, dtype=float)
    if len(np.unique(hits)) < 2 or np.bincount(hits).min() < 2:
        return False
    if roc_auc_score(hits, scores) > 0.999:
        return False
    before, after, truth = [], [], []
    for fit, test in StratifiedShuffleSplit(n_splits=splits, test_size=0.1, random_state=seed).split(scores, hits):
        x, y = _isotonic(scores[fit], hits[fit])
        before.append(scores[test])
        after.append(np.interp(scores[test], x, y))
        truth.append(hits[test])
    truth = np.concatenate(truth)
    return _ece(truth, np.concatenate(before)) > _ece(truth, np.concatenate(after))


@dataclass
class Calibration:
    """Isotonic maps of a classifier's probabilities, one class against the rest, fitted on a reference.

    ``maps[cls]`` is ``(x, y)``: the isotonic fit's thresholds (applied with linear
    interpolation, clipped at the ends, as scikit-learn's ``IsotonicRegression`` predicts),
    or None where calibration did not lower the calibration error. Binary models have one
    map, for ``classes[1]``; the other class's probability is its complement. It is plain
    JSON (:meth:`to_dict`), so it is stored as a run artifact and reused, never pickled.
    """

    classes: list[str]
    maps: dict[str, tuple[list[float], list[float]] | None]
    reference: dict = field(default_factory=dict)  # rows, sha256 of what it was fitted on

    def apply(self, proba: "np.ndarray") -> "np.ndarray":
        """Calibrated probabilities (rows sum to 1), columns in the order of ``classes``."""
        import numpy as np

        proba = np.asarray(proba, dtype=float)
        if len(self.classes) == 2:
            m = self.maps.get(self.classes[1])
            p1 = np.interp(proba[:, 1], *m) if m else proba[:, 1]
            return np.column_stack([1 - p1, p1])
        out = np.column_stack([
            np.interp(proba[:, k], *self.maps[c]) if self.maps.get(c) else proba[:, k]
            for k, c in enumerate(self.classes)
        ])
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1 / len(self.classes))
        return np.divide(out, total, out=uniform, where=total > 0)

    def to_dict(self) -> dict:
        return {"schema": CALIBRATION_SCHEMA, "classes": self.classes, "reference": self.reference,
                "maps": {c: (None if m is None else {"x": list(map(float, m[0])), "y": list(map(float, m[1]))})
                         for c, m in self.maps.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        if not isinstance(data, dict) or data.get("schema") != CALIBRATION_SCHEMA:
            raise DataError(f"not a calibration of schema {CALIBRATION_SCHEMA}")
        maps = {c: (None if m is None else (m["x"], m["y"])) for c, m in data["maps"].items()}
        return cls(list(data["classes"]), maps, dict(data.get("reference") or {}))


def fit_calibration(y_true, proba, classes: list, reference: dict | None = None) -> Calibration:
    """Fit a :class:`Calibration` on labelled reference rows.

    Raises:
        DataError: the labels hold classes the model does not know, or too few rows.
    """
    import numpy as np

    names = [str(c) for c in classes]
    y = np.asarray(y_true).astype(str)
    unknown = sorted(set(y) - set(names))
    if unknown:
        raise DataError(f"reference labels {', '.join(map(repr, unknown[:5]))} are not classes of the model "
                        f"({', '.join(names)})")
    if len(y) < 20:
        raise DataError(f"the reference has {len(y)} labelled rows; calibration needs at least 20")
    proba = np.asarray(proba, dtype=float)
    targets = names[1:] if len(names) == 2 else names
    maps = {}
    for c in targets:
        k = names.index(c)
        hits = (y == c).astype(int)
        maps[c] = _isotonic(proba[:, k], hits) if needs_calibration(hits, proba[:, k]) else None
        if maps[c] is not None:
            maps[c] = (maps[c][0].tolist(), maps[c][1].tolist())
    return Calibration(names, maps, dict(reference or {}, rows=int(len(y))))


# -- calibration stored with the model version -----------------------------------------------------

#: Tag on a model version naming the monitor run whose artifact holds its CBPE calibration.
CALIBRATION_TAG = "monitor.calibration"


def stored_calibration(store: Any, version: Any, reference_sha256: str) -> tuple[Calibration, str] | None:
    """The calibration stored with ``version`` for this reference, and the run holding it, or None.

    The version's :data:`CALIBRATION_TAG` names ``<run id>:<reference sha256>``; the run's
    ``calibration.json`` artifact must exist, match its recorded sha256 and the reference.
    """
    from mlnb import records
    from mlnb.exceptions import RunNotFound

    tag = (version.tags or {}).get(CALIBRATION_TAG)
    if not tag or ":" not in tag:
        return None
    run_id, sha = tag.split(":", 1)
    if sha != reference_sha256:
        return None
    from mlnb.store import as_store

    store = as_store(store)
    try:
        run = store.get(run_id)
        path = run.artifact("calibration.json")
    except (RunNotFound, KeyError):
        return None
    entry = next(a for a in run.record["artifacts"] if a["path"] == "calibration.json")
    if not run.succeeded or records.sha256_file(path) != entry["sha256"]:
        return None
    return Calibration.from_dict(json.loads(path.read_text())), run.id

"""DLE (direct loss estimation) for regressors: a model of the served model's error.

A gradient-boosting model of the absolute (MAE) and squared (RMSE) error, fitted on the
reference's features and predictions; a chunk's estimate is the mean predicted loss (the
square root of it for RMSE). Its estimates on the reference itself are cross-fitted, so
the thresholds are not fitted to rows the loss model saw.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Metrics DLE estimates.
REGRESSION_METRICS = ("mae", "rmse")


class LossModel:
    """Direct loss estimation: gradient boosting of a regressor's absolute and squared error.

    The loss model is kept shallow (depth 2, leaves of at least a tenth of the reference,
    L2-regularised): a reference of a few hundred rows is noisy, and a deep model of its
    losses overstates the error of every unusual row.

    Fitted on reference rows (features, the model's prediction, the true value); predicts
    each row's expected loss from its features and prediction alone. Estimates for the
    reference rows themselves are cross-fitted (``folds``), never in-sample.
    """

    def __init__(self, features: list[str], seed: int = 0, folds: int = 5):
        self.features = list(features)
        self.seed = seed
        self.folds = folds
        self.models: dict[str, Any] = {}
        self.reference_estimates: dict[str, "np.ndarray"] = {}

    def _frame(self, X: "pd.DataFrame", prediction) -> "pd.DataFrame":
        frame = X[self.features].reset_index(drop=True).copy()
        frame["__prediction__"] = list(prediction)
        return frame

    def _pipeline(self, frame):
        from mlnb.metrics import build_pipeline

        return build_pipeline("sklearn.ensemble.HistGradientBoostingRegressor",
                              {"max_iter": 100, "learning_rate": 0.03, "max_depth": 2,
                               "min_samples_leaf": max(20, len(frame) // 10), "l2_regularization": 1.0}, frame, seed=self.seed)

    def fit(self, X: "pd.DataFrame", prediction, y_true) -> "LossModel":
        import numpy as np
        from sklearn.model_selection import KFold

        from mlnb.metrics import _threads_for

        frame = self._frame(X, prediction)
        error = np.asarray(y_true, dtype=float) - np.asarray(prediction, dtype=float)
        targets = {"mae": np.abs(error), "rmse": error ** 2}
        with _threads_for(len(frame)):
            for metric, target in targets.items():
                self.models[metric] = self._pipeline(frame).fit(frame, target)
                out = np.zeros(len(frame))
                folds = KFold(n_splits=min(self.folds, len(frame)), shuffle=True, random_state=self.seed)
                for fit, held in folds.split(frame):
                    part = self._pipeline(frame.iloc[fit]).fit(frame.iloc[fit], target[fit])
                    out[held] = part.predict(frame.iloc[held])
                self.reference_estimates[metric] = np.clip(out, 0, None)
        return self

    def row_losses(self, X: "pd.DataFrame", prediction) -> dict[str, "np.ndarray"]:
        import numpy as np

        from mlnb.metrics import _threads_for

        frame = self._frame(X, prediction)
        with _threads_for(len(frame)):
            return {m: np.clip(model.predict(frame), 0, None) for m, model in self.models.items()}


def loss_metric(metric: str, losses: "np.ndarray") -> float:
    import numpy as np

    mean = float(np.mean(losses)) if len(losses) else math.nan
    return math.sqrt(mean) if metric == "rmse" else mean


def realized_regression(metric: str, y_true, prediction) -> float:
    import numpy as np

    error = np.asarray(y_true, dtype=float) - np.asarray(prediction, dtype=float)
    return float(np.mean(np.abs(error))) if metric == "mae" else float(np.sqrt(np.mean(error ** 2)))

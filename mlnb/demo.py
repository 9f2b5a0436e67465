"""The explicit demo mode of the model templates, for a fresh checkout with no registry yet.

``evaluate``, ``predict`` and ``shadow`` take a registered model (or a shadow log). So that
they still run top to bottom in JupyterLab on a fresh checkout, each has ``demo = True`` in
its parameters cell: with no model given (``model = None``) *and* only the bundled example's
data as input, it fits a demo model on the example's reference year instead, says DEMO in
its output and glues ``"demo": true``. A run on any other data can never enter it: mlnb
refuses such a run before the kernel starts (:func:`check_allowed`), and the templates
check again. A model that is named but does not resolve is always an error.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable

from mlnb.exceptions import ParameterError

if TYPE_CHECKING:
    import pandas as pd

#: What the demo model is: the train template's default estimator on the example's 2012.
DEMO_ESTIMATOR = "sklearn.ensemble.HistGradientBoostingClassifier"
DEMO_TARGET = "weather"


def check_allowed(demo: Any, tables: Iterable[str | os.PathLike | pd.DataFrame], what: str, known: str) -> None:
    """Refuse the demo unless ``demo`` is true and every table given is the bundled example's.

    Args:
        demo: the template's ``demo`` parameter.
        tables: the template's data inputs (paths or frames).
        what: the parameter that was left out (``model``), for the message.
        known: what exists instead (``registered models in store …: a, b``).

    Raises:
        ParameterError: one line naming the parameter and what to give instead.
    """
    from mlnb.data import is_example

    tables = list(tables)
    if demo is not True:
        raise ParameterError(
            f"parameter {what!r} is required: a registered model as NAME@ALIAS or NAME/VERSION ({known})", what
        )
    # a demo that brings its own data (no table given) runs as it is; given tables must be the example's
    if not all(is_example(t) for t in tables):
        raise ParameterError(
            f"parameter {what!r} is not given and demo mode runs on the bundled example data only; "
            f"give a registered model as NAME@ALIAS or NAME/VERSION ({known})",
            what,
        )


def example_target(what: str, table: "str | os.PathLike | pd.DataFrame") -> str:
    """The example's label column when ``table`` is the bundled example; else "required".

    Raises:
        ParameterError: ``table`` is the user's data, which names its own label column.
    """
    from mlnb.data import is_example, table_columns

    if is_example(table):
        return DEMO_TARGET
    columns = list(map(str, table.columns)) if hasattr(table, "columns") else table_columns(table)
    raise ParameterError(f"parameter {what!r} is required: name the label column; columns: {', '.join(columns)}", what)


def example_reference() -> "pd.DataFrame":
    """The example's reference year (2012), as ``data/reference.csv`` holds it."""
    from mlnb.data import seattle_weather

    df = seattle_weather()
    df["date"] = df["date"].dt.strftime("%Y-%m-%d")
    return df[df["date"] < "2013"].reset_index(drop=True)


def example_batch() -> "pd.DataFrame":
    """The example's first batch (2013, first quarter), as ``data/batches/2013-q1.csv`` holds it."""
    from mlnb.data import seattle_weather

    df = seattle_weather()
    df["date"] = df["date"].dt.strftime("%Y-%m-%d")
    return df[(df["date"] >= "2013") & (df["date"] < "2013-04")].reset_index(drop=True)


def demo_model(estimator: str = DEMO_ESTIMATOR, hyperparameters: dict | None = None):
    """A model fitted on the example's reference year; a :class:`mlnb.metrics.TrainResult`."""
    from mlnb import metrics

    return metrics.train(example_reference(), DEMO_TARGET, None, estimator, hyperparameters or {}, 0.25, 0)


def model_info(result) -> dict:
    """What the templates glue as ``model`` for the demo model."""
    return {"uri": None, "name": "demo", "version": None, "run_id": None, "sha256": None,
            "demo": True, "estimator": result.estimator}

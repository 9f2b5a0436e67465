"""Feature kinds: which features a model treats as numbers and which as categories.

:func:`column_kinds` decides it from the data before fitting (the pipeline's numeric and
categorical branches); :func:`feature_kinds` reads it back from a fitted pipeline, so the
server can type its request schema the way the model was trained (numeric → float,
categorical → text).

pandas is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: Feature kinds and the JSON types a request must use for them.
KINDS = ("numeric", "categorical", "boolean", "any")


def column_kinds(X: "pd.DataFrame") -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` column names; booleans and text are categorical."""
    import pandas as pd

    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    return numeric, categorical


def feature_kinds(model: Any, features: list[str]) -> dict[str, str]:
    """``{feature: kind}`` in ``features`` order, read from a fitted mlnb pipeline.

    ``numeric`` columns went through the pipeline's numeric branch; categorical columns are
    ``categorical`` when every category the encoder learnt is text, ``boolean`` when every
    one is a bool. A feature the pipeline does not describe (a model not built by
    :func:`mlnb.model.build.build_pipeline`) is ``any``: a number, a text or a bool.
    """
    kinds: dict[str, str] = {}
    prepare = getattr(model, "named_steps", {}).get("prepare") if hasattr(model, "named_steps") else None
    for name, transformer, columns in getattr(prepare, "transformers_", []):
        if name == "remainder" or isinstance(transformer, str):
            continue
        for index, column in enumerate(columns):
            if name == "numeric":
                kinds[str(column)] = "numeric"
            elif name == "categorical":
                kinds[str(column)] = _category_kind(transformer, index)
    return {f: kinds.get(f, "any") for f in features}


def _category_kind(transformer: Any, index: int) -> str:
    encoder = transformer[-1] if hasattr(transformer, "steps") else transformer
    categories = getattr(encoder, "categories_", None)
    if categories is None or index >= len(categories):
        return "any"
    values = list(categories[index])
    if values and all(isinstance(v, str) for v in values):
        return "categorical"
    if values and all(type(v).__name__ in ("bool", "bool_") for v in values):
        return "boolean"
    return "any"

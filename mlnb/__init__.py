"""mlnb: parameterised notebooks as immutable run records, a model registry and a
retraining pipeline.

Importing ``mlnb`` is cheap; heavy libraries load when the function that needs them runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlnb.execute import run_template
    from mlnb.store import Run, Store

__all__ = ["Run", "Store", "run_template", "__version__"]


def __getattr__(name: str):
    if name in ("Store", "Run"):
        from mlnb import store

        return getattr(store, name)
    if name == "run_template":
        from mlnb.execute import run_template

        return run_template
    raise AttributeError(f"module 'mlnb' has no attribute {name!r}")

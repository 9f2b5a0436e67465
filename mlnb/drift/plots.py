"""Distributions and plots for reports: one column's shares on both sides, and their panels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlnb.drift.comparison import _load_current
from mlnb.drift.kernels import _aligned_counts, _bin_counts
from mlnb.drift.methods import AUTO_MAX_VALUES_AS_CATEGORICAL
from mlnb.drift.profiles import ReferenceProfile, load_reference
from mlnb.drift.summaries import summarize


def distribution(reference: Any, current: Any, column: Any, *, bins: int = 30, top: int = 12) -> pd.DataFrame:
    """Shares of one column on both sides, ready to plot or show.

    Numerical columns: ``bins`` equal-width bins over both sides' range (columns ``left``,
    ``right``); categorical: the ``top`` most frequent values plus "(other)" (column
    ``value``). Both have ``reference`` and ``current`` shares of non-missing rows.
    """
    ref = load_reference(reference)
    cur = _load_current(current)
    r = ref.columns[column] if isinstance(ref, ReferenceProfile) else summarize(ref[column])
    c = summarize(cur[column])
    if r.n == 0 or c.n == 0:
        return pd.DataFrame({"value": [], "reference": [], "current": []})
    if r.numeric and c.numeric and r.n_unique + c.n_unique > 2 * AUTO_MAX_VALUES_AS_CATEGORICAL:
        lo, hi = min(r.vmin, c.vmin), max(r.vmax, c.vmax)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        return pd.DataFrame(
            {
                "left": edges[:-1],
                "right": edges[1:],
                "reference": _bin_counts(r, edges) / r.n,
                "current": _bin_counts(c, edges) / c.n,
            }
        )
    keys, rc, cc = _aligned_counts(r, c)
    table = pd.DataFrame({"value": [str(k) for k in keys], "reference": rc / r.n, "current": cc / c.n})
    table = table.sort_values("reference", ascending=False, kind="stable").reset_index(drop=True)
    if len(table) > top:
        rest = table.iloc[top:][["reference", "current"]].sum()
        table = pd.concat(
            [table.iloc[:top], pd.DataFrame({"value": ["(other)"], **{k: [v] for k, v in rest.items()}})],
            ignore_index=True,
        )
    return table


def plot_distributions(reference: Any, current: Any, columns: Sequence[Any], *, bins: int = 30, ncols: int = 2):
    """Overlaid histograms (numerical) or paired bars (categorical), one panel per column.

    Returns:
        A matplotlib Figure (static, so it renders in HTML).
    """
    import matplotlib.pyplot as plt

    ref = load_reference(reference)
    cur = _load_current(current)
    columns = list(columns)
    nrows = max(1, math.ceil(len(columns) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(columns):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, columns):
        table = distribution(ref, cur, name, bins=bins)
        if "left" in table:
            width = table["right"] - table["left"]
            ax.bar(table["left"], table["reference"], width=width, align="edge", alpha=0.5, label="reference")
            ax.bar(table["left"], table["current"], width=width, align="edge", alpha=0.5, label="current")
        else:
            x = np.arange(len(table))
            ax.bar(x - 0.2, table["reference"], width=0.4, label="reference")
            ax.bar(x + 0.2, table["current"], width=0.4, label="current")
            ax.set_xticks(x, table["value"], rotation=30, ha="right")
        ax.set_title(str(name))
        ax.set_ylabel("share of rows")
        ax.legend(frameon=False)
    fig.tight_layout()
    return fig

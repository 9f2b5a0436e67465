"""Per-column views of a table and its validation: the profile, column scores, the plot.

:func:`profile` summarises each column (dtype, nulls, distinct values, range or top
values); :func:`column_scores` ranks columns by the share of rows failing their worst check;
:func:`plot_worst_columns` draws that ranking. matplotlib is imported only when plotting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlnb.validation.checks import _show

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.validation.result import ValidationResult
    from mlnb.validation.schema import Schema


def profile(df: pd.DataFrame, schema: Schema | None = None, top: int = 3) -> pd.DataFrame:
    """Per-column profile: dtype, null share, distinct values, min/max or top categories.

    Args:
        df: the table.
        schema: when given, string columns the schema calls datetime are profiled as dates.
        top: how many most frequent values to show for non-numeric columns.

    Returns:
        A DataFrame with columns ``column, dtype, null_share, n_unique, min, max, top``;
        min and max are text so numbers and dates share the columns.
    """
    import pandas as pd

    rows = []
    for name in df.columns:
        s = df[name]
        spec = schema.columns.get(str(name)) if schema is not None else None
        n = len(s)
        if (
            spec is not None
            and spec.dtype == "datetime"
            and not pd.api.types.is_datetime64_any_dtype(s)
        ):
            # parse each distinct text once (a date column repeats its days on many rows);
            # text that is no date counts as null, as it would once parsed
            text = pd.Series(s.dropna().unique())
            parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
            unparsed = text[parsed.isna().to_numpy()]
            n_null = int(s.isna().sum()) + (int(s.isin(unparsed).sum()) if len(unparsed) else 0)
            values = parsed.dropna()
            s = values  # distinct dates: what the min, max and distinct count need
        else:
            n_null = int(s.isna().sum())
            values = s.dropna()
        lo = hi = top_text = ""
        if len(values) and (
            pd.api.types.is_numeric_dtype(s)
            and not pd.api.types.is_bool_dtype(s)
            or pd.api.types.is_datetime64_any_dtype(s)
        ):
            lo, hi = _show(values.min()), _show(values.max())
            if pd.api.types.is_datetime64_any_dtype(s):
                lo, hi = f"{values.min():%Y-%m-%d}", f"{values.max():%Y-%m-%d}"
        elif len(values):
            counts = values.astype(str).value_counts().head(top)
            top_text = ", ".join(f"{k} {v / len(values):.0%}" for k, v in counts.items())
        rows.append(
            {
                "column": str(name),
                "dtype": str(df[name].dtype),
                "null_share": n_null / n if n else 0.0,
                "n_unique": int(values.nunique()),
                "min": lo,
                "max": hi,
                "top": top_text,
            }
        )
    return pd.DataFrame(
        rows, columns=["column", "dtype", "null_share", "n_unique", "min", "max", "top"]
    )


def column_scores(result: ValidationResult, profile_table: pd.DataFrame) -> pd.DataFrame:
    """Per column: share of rows failing its worst check, and share of nulls; worst first."""
    import pandas as pd

    n = max(result.n_rows, 1)
    checks = result.checks[result.checks["column"].notna()]
    failing = (
        checks[~checks["passed"]].groupby("column")["n_failed"].max().div(n).clip(upper=1.0)
        if len(checks)
        else pd.Series(dtype=float)
    )
    scores = pd.DataFrame(
        {"column": profile_table["column"], "null_share": profile_table["null_share"]}
    )
    scores["failing_share"] = scores["column"].map(failing).fillna(0.0)
    extra = sorted(set(failing.index) - set(scores["column"]))  # missing columns
    if extra:
        scores = pd.concat(
            [
                scores,
                pd.DataFrame(
                    {"column": extra, "null_share": 0.0, "failing_share": failing[extra].values}
                ),
            ]
        )
    return scores.sort_values(
        ["failing_share", "null_share"], ascending=False, kind="stable"
    ).reset_index(drop=True)


def plot_worst_columns(scores: pd.DataFrame, top: int = 10):
    """Horizontal bars of the worst columns: failing-row share and null share.

    Args:
        scores: the table from :func:`column_scores`.
        top: how many columns to show.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    worst = scores.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(worst) + 1.2))
    y = range(len(worst))
    ax.barh(
        [i + 0.2 for i in y],
        worst["failing_share"],
        height=0.4,
        color="#c0392b",
        label="rows failing a check",
    )
    ax.barh(
        [i - 0.2 for i in y], worst["null_share"], height=0.4, color="#95a5a6", label="null share"
    )
    ax.set_yticks(list(y), worst["column"])
    ax.set_xlim(0, max(0.05, float(worst[["failing_share", "null_share"]].to_numpy().max()) * 1.1))
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
    title = (
        "Worst columns"
        if (worst["failing_share"] > 0).any()
        else "No failing rows; null share per column"
    )
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig

"""Tables shown in a notebook: capped to what a reader reads, saying what was left out.

A template shows its tables with :func:`show`: a table longer than :data:`MAX_SHOWN_ROWS`
shows its first rows and a line saying how many there are and where the whole table is (the
run record holds every glued table in full), and the cap is noted in a dict that the
template glues as the ``capped`` scrap. A 500-column table then renders as a page, not as
thousands of HTML rows that nobody scrolls through and every run pays to render and store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import pandas as pd

#: Rows of a table that a notebook shows; the rest are in the run record.
MAX_SHOWN_ROWS = 50


def cap(table: pd.DataFrame, max_rows: int = MAX_SHOWN_ROWS) -> tuple[pd.DataFrame, dict | None]:
    """The rows of ``table`` to show, and ``{"shown", "rows"}`` when some were left out.

    Pure: the caller displays the rows and records the cap.
    """
    if len(table) <= max_rows:
        return table, None
    return table.head(max_rows), {"shown": int(max_rows), "rows": int(len(table))}


def show(
    table: pd.DataFrame,
    name: str,
    caps: dict[str, Any],
    *,
    where: str | None = None,
    max_rows: int = MAX_SHOWN_ROWS,
    render: Callable[[pd.DataFrame], Any] | None = None,
) -> None:
    """Display ``table`` capped to ``max_rows`` rows; note a cap in ``caps[name]``.

    Args:
        table: the table to show.
        name: what the table is called in ``caps`` (and in the note).
        caps: the dict the template glues as the ``capped`` scrap.
        where: where the whole table is, for the note (e.g. "the scrap `checks`").
        max_rows: how many rows to show.
        render: turns the shown rows into what is displayed (a pandas Styler, say).
    """
    from IPython.display import Markdown, display

    shown, capped = cap(table, max_rows)
    display(render(shown) if render is not None else shown)
    if capped is not None:
        caps[name] = capped
        display(Markdown(
            f"*The first {capped['shown']:,} of {capped['rows']:,} rows of {name}*"
            + (f"*; all of them are in the run record ({where}).*" if where else ".*")
        ))

"""The run comparison: two runs side by side (``mlnb runs diff``), changed values marked."""

from __future__ import annotations

import html
import os

import ipywidgets as w

from mlnb import records
from mlnb.diff import diff_runs
from mlnb.exceptions import MlnbError
from mlnb.store import Store, as_store
from mlnb.widgets.render import STYLE, html_table


def comparison_html(rows: list, a_id: str, b_id: str, only_changed: bool = False) -> str:
    """``runs diff`` as an HTML table: changed rows highlighted and marked ``≠``."""
    shown = [r for r in rows if r.changed or not only_changed]
    n = sum(r.changed for r in rows)
    body = html_table(
        ("", "section", "name", "A", "B"),
        ((("≠" if r.changed else ""), r.section, r.name, records.display_text(r.a, 60), records.display_text(r.b, 60)) for r in shown),
        ["mlnb-changed" if r.changed else "" for r in shown],
    )
    return (STYLE + f"<p>A = {html.escape(a_id)}<br>B = {html.escape(b_id)}</p>"
            + f"<p>{n} of {len(rows)} values differ (marked ≠)</p>" + body)


class RunComparison(w.VBox):
    """Two runs side by side (``mlnb runs diff``), changed values highlighted and marked ``≠``.

    Args:
        store: a :class:`~mlnb.store.Store` or its path.
        a, b: run ids (or unique prefixes) to compare first; default: the two newest runs
            of the newest run's template.

    Attributes:
        a, b: Dropdown of run ids.
        only_changed: Checkbox, hide the values that are equal.
        table: HTML, the comparison.
        rows: the :func:`mlnb.diff.diff_runs` rows shown.
    """

    def __init__(self, store: Store | str | os.PathLike, a: str | None = None, b: str | None = None):
        self.store = as_store(store)
        self.rows: list = []
        items = self.store.list_runs()
        options = [(f"{i['id']}  ({i['status']})", i["id"]) for i in items]
        if a is None and b is None and items:
            same = [i["id"] for i in items if i["template"] == items[0]["template"]]
            a, b = (same[1], same[0]) if len(same) > 1 else (same[0], same[0])
        a = self.store.resolve_id(a) if a else None
        b = self.store.resolve_id(b) if b else None
        self.a = w.Dropdown(description="A", options=options, value=a, layout=w.Layout(width="60%"))
        self.b = w.Dropdown(description="B", options=options, value=b, layout=w.Layout(width="60%"))
        self.only_changed = w.Checkbox(description="only changed values", value=False)
        self.table = w.HTML()
        super().__init__(children=[self.a, self.b, self.only_changed, self.table])
        for control in (self.a, self.b, self.only_changed):
            control.observe(lambda _: self._update(), names="value")
        self._update()

    def __repr__(self) -> str:
        return f"RunComparison: {sum(r.changed for r in self.rows)} of {len(self.rows)} values differ"

    def _update(self) -> None:
        if not self.a.value or not self.b.value:
            self.rows = []
            self.table.value = "<p><i>Choose two runs.</i></p>"
            return
        try:
            run_a, run_b = self.store.get(self.a.value), self.store.get(self.b.value)
            self.rows = diff_runs(run_a, run_b)
        except (MlnbError, OSError) as exc:
            self.rows = []
            self.table.value = f'<p class="mlnb-failed">{html.escape(str(exc))}</p>'
            return
        self.table.value = comparison_html(self.rows, run_a.id, run_b.id, self.only_changed.value)

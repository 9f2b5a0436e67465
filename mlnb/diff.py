"""Comparing two runs value by value (parameters, scraps, nested metrics)."""

from __future__ import annotations

from typing import Any, NamedTuple

from mlnb.records import canonical, flatten, is_table, table_text


class Row(NamedTuple):
    section: str
    name: str
    a: Any
    b: Any
    changed: bool


_MISSING = "—"


def diff_runs(a, b) -> list[Row]:
    """Rows for every parameter and scrap of two runs, with whether it changed."""
    rows: list[Row] = []
    for section, va, vb in (
        ("template", {"sha256": a.record["template"]["sha256"]}, {"sha256": b.record["template"]["sha256"]}),
        ("parameters", flatten(a.parameters), flatten(b.parameters)),
        ("scraps", flatten(a.record["scraps"]), flatten(b.record["scraps"])),
        ("status", {"status": a.status}, {"status": b.status}),
    ):
        for name in dict.fromkeys([*va, *vb]):
            x, y = va.get(name, _MISSING), vb.get(name, _MISSING)
            if is_table(x) and is_table(y):
                changed = not a.scrap(name).equals(b.scrap(name))
                x, y = table_text(x), table_text(y)
            else:
                changed = canonical(x) != canonical(y)
                x, y = (table_text(v) if is_table(v) else v for v in (x, y))
            rows.append(Row(section, name, x, y, changed))
    return rows


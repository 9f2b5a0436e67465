"""Comparing two runs value by value (parameters, scraps, nested metrics)."""

from __future__ import annotations

from typing import Any, NamedTuple

from mlnb.records import canonical


class Row(NamedTuple):
    section: str
    name: str
    a: Any
    b: Any
    changed: bool


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts (metrics) become dotted names; tables and lists stay whole."""
    if isinstance(value, dict) and "$artifact" not in value and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


_MISSING = "—"


def diff_runs(a, b) -> list[Row]:
    """Rows for every parameter and scrap of two runs, with whether it changed."""
    rows: list[Row] = []
    for section, va, vb in (
        ("template", {"sha256": a.record["template"]["sha256"]}, {"sha256": b.record["template"]["sha256"]}),
        ("parameters", _flatten(a.parameters, ""), _flatten(b.parameters, "")),
        ("scraps", _flatten(a.record["scraps"], ""), _flatten(b.record["scraps"], "")),
        ("status", {"status": a.status}, {"status": b.status}),
    ):
        for name in dict.fromkeys([*va, *vb]):
            x, y = va.get(name, _MISSING), vb.get(name, _MISSING)
            if _is_table(x) and _is_table(y):
                changed = not a.scrap(name).equals(b.scrap(name))
                x, y = _table_text(x), _table_text(y)
            else:
                changed = canonical(x) != canonical(y)
                x, y = (_table_text(v) if _is_table(v) else v for v in (x, y))
            rows.append(Row(section, name, x, y, changed))
    return rows


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and "$artifact" in value


def _table_text(value: dict) -> str:
    return f"table {value['rows']}×{len(value['columns'])}"

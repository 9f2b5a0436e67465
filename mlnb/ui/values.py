"""How ``mlnb ui`` shows a value: one short line, nested dicts as dotted keys.

The UI's settings of :func:`mlnb.records.display_text` and :func:`mlnb.records.flatten`
(four significant digits, tables as their shape, two levels of nesting), and the model
version a run used, read from its index row.
"""

from __future__ import annotations

from typing import Any

from mlnb import records


def flatten(values: dict, prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Nested dicts as dotted keys (``metrics.f1``); tables and lists stay one value."""
    return records.flatten(values, prefix, depth)


def text(value: Any, width: int = 80) -> str:
    """A value as one short line."""
    return records.display_text(value, width, digits=4, long_tables=False)


def model_of(item: dict) -> tuple[str, int] | None:
    """``(name, version)`` a run used, from its ``model`` scrap (evaluate, predict)."""
    model = item["scraps"].get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("version"), int):
        return model["name"], model["version"]
    return None

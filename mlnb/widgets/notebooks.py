"""Helpers for notebooks: one table scrap of many runs stacked into one DataFrame."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlnb import records
from mlnb.store import Store, as_store

if TYPE_CHECKING:
    import pandas as pd


def table_scraps(store: Store | str | os.PathLike, name: str, template: str | None = None,
                 status: str | None = "succeeded") -> "pd.DataFrame":
    """One table scrap of many runs stacked into one DataFrame, oldest run first.

    Reads the run list from the index and each run's Parquet artifact (never the
    notebooks). Columns ``run_id`` and ``started`` come first; runs without that scrap are
    skipped. The tables are joined in Arrow and converted to pandas once, which is about
    twice as fast as one ``pd.read_parquet`` per run (``benchmarks/bench_scraps.py``).

    Args:
        store: a store or its path.
        name: the scrap, e.g. ``"columns"`` of drift runs.
        template, status: filters, as in :meth:`Store.list_runs`.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    s = as_store(store)
    tables = []
    for item in reversed(s.list_runs(template=template, status=status)):
        value = item["scraps"].get(name)
        if isinstance(value, dict) and "$artifact" in value:
            table = pq.read_table(s.path / item["id"] / records.ARTIFACTS_DIR / value["$artifact"])
            tables.append((item["id"], item["started"], table))
    if not tables:
        return pd.DataFrame(columns=["run_id", "started"])
    if all(_plain_pandas_table(table) for _, _, table in tables):
        try:
            joined = pa.concat_tables(
                [_with_run(table.replace_schema_metadata(None), run_id, started) for run_id, started, table in tables],
                promote_options="permissive",
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # columns whose types cannot be unified
            joined = None
        if joined is not None:
            out = joined.to_pandas()
            out["started"] = pd.to_datetime(out["started"])
            return out
    frames = []
    for run_id, started, table in tables:
        frame = table.to_pandas()
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()  # a meaningful index becomes columns
        frame.insert(0, "started", started)
        frame.insert(0, "run_id", run_id)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out["started"] = pd.to_datetime(out["started"])
    return out


def _plain_pandas_table(table) -> bool:
    """True when a Parquet table holds a DataFrame with a default index and text column names,
    so its pandas metadata can be dropped without losing anything."""
    import json

    meta = (table.schema.metadata or {}).get(b"pandas")
    if meta is None:
        return True
    meta = json.loads(meta)
    range_index = all(isinstance(i, dict) and i.get("kind") == "range" for i in meta.get("index_columns", []))
    text_names = all(isinstance(c.get("name"), str) or c.get("name") is None for c in meta.get("columns", []))
    return range_index and text_names


def _with_run(table, run_id: str, started: str):
    import pyarrow as pa

    n = table.num_rows
    table = table.add_column(0, "started", pa.array([started] * n, pa.string()))
    return table.add_column(0, "run_id", pa.array([run_id] * n, pa.string()))

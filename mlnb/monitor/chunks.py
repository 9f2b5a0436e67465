"""Chunks: the analysis rows cut by time (``"7d"``, ``"12h"``, ``"1w"``) or by count (``"500"``).

``"auto"`` makes about ten count chunks. A chunk with fewer than ``min_rows`` rows is
**merged** into its neighbour and the merge is reported: a metric of three rows is never
shown as if it meant something. The reference is cut by count into chunks of the analysis
chunks' size (:func:`reference_chunks`), so its thresholds compare like with like.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError, ParameterError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Chunks smaller than this are merged into a neighbour, and realized metrics need this many labels.
DEFAULT_MIN_ROWS = 100
_SPAN = re.compile(r"^\s*(\d+)\s*(min|h|d|w)\s*$")
_COUNT = re.compile(r"^\s*(\d+)\s*(rows)?\s*$")
_UNITS = {"min": "min", "h": "h", "d": "D", "w": "W"}


@dataclass(frozen=True)
class ChunkSpec:
    """A parsed ``chunk`` parameter: ``kind`` is ``time``, ``count`` or ``auto``."""

    kind: str
    size: Any = None  # a pandas Timedelta for time, a row count for count
    text: str = "auto"


def parse_chunk(spec: Any) -> ChunkSpec:
    """Parse ``"7d"``, ``"12h"``, ``"30min"``, ``"2w"`` (time), ``"500"`` or 500 (rows), or ``"auto"``.

    Raises:
        ParameterError: anything else, naming the forms allowed.
    """
    import pandas as pd

    allowed = "allowed: a period such as '7d', '12h', '30min', '1w', a row count such as '500', or 'auto'"
    if isinstance(spec, bool):
        raise ParameterError(f"chunk == {spec!r}; {allowed}", name="chunk")
    if isinstance(spec, int):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ParameterError(f"chunk == {spec!r}; {allowed}", name="chunk")
    if spec.strip() == "auto":
        return ChunkSpec("auto")
    found = _SPAN.match(spec)
    if found and int(found.group(1)) > 0:
        return ChunkSpec("time", pd.Timedelta(int(found.group(1)), unit=_UNITS[found.group(2)]), spec.strip())
    found = _COUNT.match(spec)
    if found and int(found.group(1)) > 0:
        return ChunkSpec("count", int(found.group(1)), spec.strip())
    raise ParameterError(f"chunk == {spec!r}; {allowed}", name="chunk")


@dataclass
class Chunks:
    """Which chunk each row belongs to, the chunks themselves, and what was merged.

    Attributes:
        index: per row, the position of its chunk in ``table``.
        table: ``chunk`` (a readable key), ``start``, ``end``, ``rows``.
        merged: one sentence per merge.
    """

    index: "np.ndarray"
    table: "pd.DataFrame"
    merged: list[str] = field(default_factory=list)


def chunk_rows(times: "pd.Series", spec: Any = "auto", min_rows: int = DEFAULT_MIN_ROWS) -> Chunks:
    """Cut rows (sorted by ``times``) into chunks, merging any chunk under ``min_rows`` rows.

    A time chunk starts at the first row's day (midnight UTC) plus a whole number of periods;
    periods without rows are not chunks. Count chunks hold ``size`` consecutive rows. A
    chunk under ``min_rows`` rows joins the previous chunk (the first one joins the next),
    and ``merged`` says so; with fewer than ``min_rows`` rows in all there is one chunk.

    Raises:
        ParameterError: a bad spec or ``min_rows``.
        DataError: no rows.
    """
    import numpy as np
    import pandas as pd

    chunk = parse_chunk(spec)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise ParameterError(f"min_rows == {min_rows!r}, must be a whole number >= 1", name="min_rows")
    n = len(times)
    if n == 0:
        raise DataError("no predictions to cut into chunks")
    times = pd.to_datetime(pd.Series(times).reset_index(drop=True), utc=True)
    if chunk.kind == "auto":
        chunk = ChunkSpec("count", max(min_rows, math.ceil(n / 10)), "auto")
    if chunk.kind == "time":
        origin = times.min().floor("D")
        raw = ((times - origin) // chunk.size).to_numpy(dtype=np.int64)
        keys = [origin + k * chunk.size for k in range(int(raw.max()) + 1)]
    else:
        raw = np.arange(n) // chunk.size
        keys = None
    # groups in order, each a list of raw ids; merge the small ones
    ids, counts = np.unique(raw, return_counts=True)
    groups = [[int(i)] for i in ids]
    sizes = [int(c) for c in counts]
    merged: list[str] = []

    def label(g):
        if keys is not None:
            return keys[g[0]].strftime("%Y-%m-%d %H:%M") if chunk.size < pd.Timedelta(1, "D") else keys[g[0]].strftime(
                "%Y-%m-%d")
        return f"rows {g[0] * chunk.size}–{min(n, (g[-1] + 1) * chunk.size) - 1}"

    i = 0
    while len(groups) > 1 and i < len(groups):
        if sizes[i] >= min_rows:
            i += 1
            continue
        into = i - 1 if i > 0 else i + 1
        merged.append(f"chunk {label(groups[i])} has {sizes[i]} rows (fewer than {min_rows}): merged into "
                      f"the {'previous' if into < i else 'next'} chunk")
        lo, hi = sorted((i, into))
        groups[lo:hi + 1] = [groups[lo] + groups[hi]]
        sizes[lo:hi + 1] = [sizes[lo] + sizes[hi]]
        i = lo
    position = {raw_id: k for k, g in enumerate(groups) for raw_id in g}
    index = np.array([position[int(r)] for r in raw], dtype=np.int64) if n else np.array([], dtype=np.int64)
    starts = pd.Series(times).groupby(index).min()
    ends = pd.Series(times).groupby(index).max()
    table = pd.DataFrame({
        "chunk": [label(g) for g in groups],
        "start": starts.to_numpy(),
        "end": ends.to_numpy(),
        "rows": np.bincount(index, minlength=len(groups)),
    })
    if sizes and min(sizes) < min_rows:
        merged.append(f"only {n} rows in all (fewer than {min_rows}): one chunk, and its metrics are uncertain")
    return Chunks(index, table, merged)


def reference_chunks(n_reference: int, size: int, min_rows: int = DEFAULT_MIN_ROWS) -> "np.ndarray":
    """Chunk positions of reference rows cut by count (``size`` rows, the last small one merged)."""
    import numpy as np

    size = max(int(size), 1)
    index = np.arange(n_reference) // size
    n_chunks = int(index.max()) + 1 if n_reference else 0
    if n_chunks > 1 and (n_reference - (n_chunks - 1) * size) < min(min_rows, size):
        index[index == n_chunks - 1] = n_chunks - 2
    return index

"""Reference profiles: the reference summarised once, saved as ``.npz`` and read back.

:func:`profile` summarises every column of a reference (a quantile :func:`sketch` above
``max_atoms`` distinct values), so a monitor does not reread and re-sort the reference for
every batch; :func:`load_reference` takes a reference as :func:`~mlnb.drift.compare` does,
data or a profile.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlnb import records
from mlnb.drift.inputs import _check_not_empty, _map_columns, _names
from mlnb.drift.kernels import _ks_and_w1
from mlnb.drift.report import _json_value
from mlnb.drift.summaries import ColumnSummary, summarize
from mlnb.exceptions import DriftError

#: Format tag of a saved reference profile.
PROFILE_SCHEMA = records.DRIFT_PROFILE
#: Distinct values a profile keeps exactly per numerical column; above, a quantile sketch.
DEFAULT_MAX_ATOMS = 32_768


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """The reference side of drift tests, computed once (see :func:`profile`)."""

    columns: dict[str, ColumnSummary]
    n_rows: int
    max_atoms: int

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (roughly the file size)."""
        return sum(s.values.nbytes + s.counts.nbytes for s in self.columns.values())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the profile to ``path`` (``.npz``), atomically."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise DriftError(f"profile path {str(path)!r} must end in .npz")
        meta = {"schema": PROFILE_SCHEMA, "n_rows": self.n_rows, "max_atoms": self.max_atoms, "columns": []}
        arrays = {}
        for i, (name, s) in enumerate(self.columns.items()):
            meta["columns"].append(
                {
                    "name": name,
                    "numeric": s.numeric,
                    "integer": s.integer,
                    "dtype": s.dtype,
                    "datetime": s.datetime,
                    "n": s.n,
                    "n_missing": s.n_missing,
                    "n_infinite": s.n_infinite,
                    "n_unique": s.n_unique,
                    "std": _json_value(s.std),
                    "vmin": _json_value(s.vmin),
                    "vmax": _json_value(s.vmax),
                    "exact": s.exact,
                    "w1_error": s.w1_error,
                    "ks_error": s.ks_error,
                }
            )
            arrays[f"values_{i}"] = s.values
            top = int(s.counts.max()) if s.counts.size else 0
            arrays[f"counts_{i}"] = s.counts.astype(np.min_scalar_type(top))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def load_profile(path: str | os.PathLike) -> ReferenceProfile:
    """Read a profile saved by :func:`profile` or :meth:`ReferenceProfile.save`."""
    p = Path(path)
    if not p.is_file():
        raise DriftError(f"cannot read drift profile {str(p)!r}: no such file")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("schema") != PROFILE_SCHEMA:
                raise DriftError(
                    f"{str(p)!r} is not an mlnb drift profile (schema {meta.get('schema')!r}, "
                    f"expected {PROFILE_SCHEMA!r}); create one with mlnb.drift.profile()"
                )
            columns = {}
            for i, c in enumerate(meta["columns"]):
                values = z[f"values_{i}"]
                columns[c["name"]] = ColumnSummary(
                    numeric=c["numeric"], integer=c["integer"], dtype=c["dtype"], values=values,
                    counts=z[f"counts_{i}"].astype(np.int64), n=c["n"], n_missing=c["n_missing"],
                    n_infinite=c["n_infinite"], n_unique=c["n_unique"], std=_nan(c["std"]),
                    vmin=_nan(c["vmin"]), vmax=_nan(c["vmax"]), datetime=c["datetime"],
                    exact=c["exact"], w1_error=c["w1_error"], ks_error=c["ks_error"],
                )
    except DriftError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DriftError(f"cannot read drift profile {str(p)!r}: {first}") from exc
    return ReferenceProfile(columns=columns, n_rows=int(meta["n_rows"]), max_atoms=int(meta["max_atoms"]))


def sketch(summary: ColumnSummary, max_atoms: int) -> ColumnSummary:
    """Shrink a numerical summary to at most ``max_atoms`` weighted values.

    The sorted data are cut into ``max_atoms`` blocks of equal row count; each block becomes
    one value, its mean (its exact value when the block is constant), weighted by its rows.
    The error this makes is measured, not guessed: ``w1_error`` is the Wasserstein distance
    and ``ks_error`` the largest CDF gap between the data and the sketch, so by the triangle
    inequality a statistic computed from the sketch is within that much of the exact one.
    """
    if not summary.numeric or summary.values.size <= max_atoms:
        return summary
    data = np.repeat(summary.values, summary.counts)
    bounds = np.unique(np.round(np.linspace(0, data.size, max_atoms + 1)).astype(np.int64))
    starts, ends = bounds[:-1], bounds[1:]
    sizes = ends - starts
    means = np.add.reduceat(data, starts) / sizes
    first, last = data[starts], data[ends - 1]
    # Keep constant blocks exact and every mean inside its block despite rounding.
    atoms = np.where(first == last, first, np.clip(means, first, last))
    merged = np.concatenate(([True], atoms[1:] != atoms[:-1]))
    group = np.cumsum(merged) - 1
    values = atoms[merged]
    counts = np.bincount(group, weights=sizes).astype(np.int64)
    ks_error, w1_error = _ks_and_w1(summary.values, summary.counts, values, counts)
    return ColumnSummary(
        numeric=True, integer=summary.integer, dtype=summary.dtype, values=values, counts=counts,
        n=summary.n, n_missing=summary.n_missing, n_infinite=summary.n_infinite,
        n_unique=summary.n_unique, std=summary.std, vmin=summary.vmin, vmax=summary.vmax,
        exact=False, w1_error=w1_error, ks_error=ks_error,
    )

def profile(
    reference: Any,
    path: str | os.PathLike | None = None,
    *,
    columns: Sequence[Any] | None = None,
    max_atoms: int = DEFAULT_MAX_ATOMS,
    n_jobs: int | None = None,
) -> ReferenceProfile:
    """Summarise a reference once, for every later :func:`compare`.

    Per numerical column the profile keeps the sorted distinct values and their counts, the
    standard deviation, min and max, so every test gives exactly the result it gives on the
    raw reference. A column with more than ``max_atoms`` distinct values keeps a quantile
    sketch of ``max_atoms`` values instead (see :func:`sketch`): about 12 bytes per value, so
    at most ~400 KB per column by default, whatever the row count; results then carry a
    measured error bound (``max_error`` in the report), typically far below 1e-3.
    Categorical columns keep their category counts.

    Args:
        reference: a DataFrame or a CSV/Parquet path.
        path: also save the profile there (``.npz``).
        columns: the columns to keep (default all).
        max_atoms: distinct values kept exactly per numerical column (at least 100).
        n_jobs: threads (default 1, see :func:`compare`).
    """
    if isinstance(max_atoms, bool) or not isinstance(max_atoms, int) or max_atoms < 100:
        raise DriftError(f"max_atoms {max_atoms!r} must be an integer >= 100")
    data = load_reference(reference)
    if isinstance(data, ReferenceProfile):
        raise DriftError("reference is already a profile")
    _check_not_empty("reference", len(data), len(data.columns))
    names = list(data.columns) if columns is None else list(columns)
    for c in names:
        if c not in data.columns:
            raise DriftError(f"columns names {str(c)!r}, which is not in reference: {_names(list(data.columns), 20)}")

    def one(name):
        return sketch(summarize(data[name]), max_atoms)

    summaries = _map_columns(one, names, n_jobs, len(data) * len(names))
    result = ReferenceProfile(
        columns={str(n): s for n, s in zip(names, summaries)}, n_rows=len(data), max_atoms=max_atoms
    )
    if path is not None:
        result.save(path)
    return result


def load_reference(source: Any) -> pd.DataFrame | ReferenceProfile:
    """A reference as :func:`compare` takes it: a DataFrame, a profile, or a path to either.

    ``.npz`` paths are read as saved profiles, anything else with :func:`mlnb.data.read_table`.
    """
    if isinstance(source, (pd.DataFrame, ReferenceProfile)):
        return source
    if isinstance(source, (str, os.PathLike)):
        if Path(source).suffix.lower() == ".npz":
            return load_profile(source)
        from mlnb.data import read_table

        return read_table(source)
    raise DriftError(f"reference must be a DataFrame, a saved profile or a path, not {type(source).__name__}")


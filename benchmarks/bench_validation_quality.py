"""Benchmark: how often an inferred schema rejects good data and catches broken data.

Usage: ``.venv/bin/python benchmarks/bench_validation_quality.py [--batches 20]
[--defect-batches 10] [--seed 0] [--tables cars,wine]``

Seven real tables that ship with installed packages (none is the bundled weather example):
scikit-learn's breast cancer, wine, diabetes (unscaled) and digits sets, and vega_datasets'
local cars, airports and stocks. The breast cancer and wine targets are stored as their
class names, as a labelled table would hold them, so both tables have a text category. For
each table, a seeded random half is the reference, and every batch is drawn from the other
half, without replacement. Measured, in the same run:

- ``mlnb``: :func:`mlnb.validation.infer` on the reference (default options), then
  :func:`mlnb.validation.validate`; a batch is rejected when ``result.rejected("schema")``.
- ``plain min/max`` (the baseline): what pandera's and Great Expectations' profilers infer.
  It is ``pandera.infer_schema(reference)``: observed dtypes (coerced), observed min and max
  of numbers and dates, nullable as observed. An ``isin`` check of the observed values is
  added to each text column that mlnb's rule makes a category (at most 50 distinct values,
  at most half as many as rows). It is run with ``validate(lazy=True)``; a batch is rejected
  when it raises ``SchemaErrors``.

The batches, per table:

1. In-distribution (``--batches``, 20): sizes spaced geometrically from 50 to 1,000 rows,
   capped at the rows of the other half. Reported: the share rejected (target ≤ 1 %). The same batches are also
   written as CSV and read back with :func:`mlnb.data.read_table`, as a file would arrive
   (dates come back as text, for instance), and checked again by mlnb. The baseline skips
   them to keep the run short: when it was run on them too, its verdicts were the same as
   on the batches in memory.
2. Defects, each injected into copies of ``--defect-batches`` (10) of those batches, spread
   over the sizes from the smallest to the largest, in a column drawn at random from the
   columns the defect applies to. A defect touches 2 % of the batch's rows (at
   least one row). It is *detected* when the batch is rejected and a failed check names the
   defect's column (target 100 %).

   - ``missing column``: the column is dropped. Applies to every column.
   - ``wrong type``: the text ``"unknown"`` replaces values of a numeric column.
   - ``nulls``: nulls replace values of a column with no null in the reference.
   - ``unseen category``: a value of a category column is replaced by a value the
     reference never has. That value is a seen value in upper case, or, if that one was
     seen too, the seen value followed by ``" (new)"``. It applies to text columns with at
     most 50 distinct values, at most half as many as rows, and no value seen only once in
     the reference (a closed list; in an open list, such as airports' countries, where four
     countries have one airport each, mlnb expects an unseen value now and then and only
     warns). The diabetes, digits and airports tables have none, and they are skipped.
   - ``10x out of range``: values are set to ``max + 10 * (max - min)`` of the reference's
     column in every other batch, and to ``min - 10 * (max - min)`` in the others. It applies to
     numeric columns that are not constant in the reference.
   - ``duplicated column``: the batch is written as CSV with the column's header and
     values twice, then read back with :func:`mlnb.data.read_table`, the real path.
     pandas renames the copy ``x.1``. For the baseline, any failure naming ``x.1`` counts.

   Each defect counts only when the check that reports it fired (``REPORTED_BY``): a batch
   rejected for another reason is not a detection.

3. Region batches (``--batches``, 20): all rows of the other half in the upper quarter of a numeric feature
   (even batches) or in its lower quarter (odd ones). The quarter is taken by rank, with
   ties broken at random. The feature is drawn from the numeric columns that are not
   constant in the other half, and the batch is capped at 1,000 rows. Reported: the share
   NOT rejected (target ≥ 95 %).

Every failing mlnb case is listed after the tables: the table, the batch, the defect, and
the schema checks that fired with their details. Everything is seeded (``--seed``); each
table's seed depends on its place in the list, so ``--tables`` gives the same batches.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

MAX_CATEGORIES = 50
DEFECT_SHARE = 0.02
MIN_BATCH, MAX_BATCH = 50, 1000
TARGET_FALSE_REJECTIONS = 0.01
TARGET_DETECTION = 1.0
TARGET_REGION_ACCEPTED = 0.95
DEFECTS = (
    "missing column",
    "wrong type",
    "nulls",
    "unseen category",
    "10x out of range",
    "duplicated column",
)
METHODS = ("mlnb", "plain min/max")
#: The checks that report each defect: a batch rejected for another reason is not a detection.
REPORTED_BY = {
    "mlnb": {
        "missing column": ("column_present",),
        "wrong type": ("dtype",),
        "nulls": ("nulls",),
        "unseen category": ("categories",),
        "10x out of range": ("in_range",),
        "duplicated column": ("unique_columns",),
    },
    "plain min/max": {
        "missing column": ("column_in_dataframe",),
        "wrong type": ("dtype(", "coerce_dtype("),
        # a null in an int column fails the int64 coercion before the nullable check
        "nulls": ("not_nullable", "dtype(", "coerce_dtype("),
        "unseen category": ("isin(",),
        "10x out of range": ("greater_than_or_equal_to(", "less_than_or_equal_to("),
        # no check of the baseline looks at the header: a failure naming the copy counts
        "duplicated column": ("",),
    },
}
TABLES = ("breast_cancer", "wine", "diabetes", "digits", "cars", "airports", "stocks")


# -- the tables --------------------------------------------------------------------------------


def load_tables() -> dict[str, pd.DataFrame]:
    """The real tables, from scikit-learn's and vega_datasets' bundled files (no download)."""
    from sklearn import datasets
    from vega_datasets import local_data

    def labelled(bunch) -> pd.DataFrame:
        frame = bunch.frame.copy()
        frame["target"] = pd.array(np.asarray(bunch.target_names)[bunch.target], dtype="str")
        return frame

    return {
        "breast_cancer": labelled(datasets.load_breast_cancer(as_frame=True)),
        "wine": labelled(datasets.load_wine(as_frame=True)),
        "diabetes": datasets.load_diabetes(as_frame=True, scaled=False).frame,
        "digits": datasets.load_digits(as_frame=True).frame,
        "cars": local_data.cars(),
        "airports": local_data.airports(),
        "stocks": local_data.stocks(),
    }


def _numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _text(s: pd.Series) -> bool:
    return not (
        pd.api.types.is_numeric_dtype(s)
        or pd.api.types.is_bool_dtype(s)
        or pd.api.types.is_datetime64_any_dtype(s)
    )


def closed_category_columns(ref: pd.DataFrame) -> list[str]:
    """The category columns whose reference holds no value only once: closed lists, where
    mlnb's schema rejects an unseen value (in an open list it only warns)."""
    return [c for c in category_columns(ref) if not ref[c].dropna().astype(str).value_counts().eq(1).any()]


def category_columns(ref: pd.DataFrame) -> list[str]:
    """Text columns with few distinct values: mlnb's rule in ``infer``, used by the baseline."""
    out = []
    for name in ref.columns:
        values = ref[name].dropna()
        if _text(ref[name]):
            n = values.astype(str).nunique()
            if 0 < n <= MAX_CATEGORIES and n <= max(1, len(values) // 2):
                out.append(name)
    return out


# -- the two validators ------------------------------------------------------------------------


@dataclass
class Outcome:
    """One batch checked by one method: rejected or not, and the failed checks as
    ``(check, column, detail)``."""

    rejected: bool
    failed: list[tuple[str, str, str]] = field(default_factory=list)

    def names(self, checks: tuple[str, ...], columns: set[str]) -> bool:
        """Whether a failed check whose name starts with one of ``checks`` names a column."""
        return any(check.startswith(checks) and col in columns for check, col, _ in self.failed)


class Mlnb:
    name = "mlnb"

    def __init__(self, ref: pd.DataFrame):
        from mlnb import validation

        self._validation = validation
        self.schema = validation.infer(ref)

    def check(self, batch: pd.DataFrame) -> Outcome:
        result = self._validation.validate(batch, self.schema)
        errors = result.errors
        failed = []
        for check, column, detail in zip(errors["check"], errors["column"], errors["detail"]):
            # unique_columns names every duplicated column in one row
            names = [c.strip() for c in column.split(",")] if check == "unique_columns" else [column]
            failed += [(check, str(c), detail) for c in names]
        return Outcome(result.rejected("schema"), failed)


class PlainMinMax:
    name = "plain min/max"

    def __init__(self, ref: pd.DataFrame):
        import pandera.pandas as pa

        schema = pa.infer_schema(ref)
        for name in category_columns(ref):
            seen = sorted(ref[name].dropna().astype(str).unique().tolist())
            schema = schema.update_column(name, checks=[pa.Check.isin(seen)])
        self.schema = schema

    def check(self, batch: pd.DataFrame) -> Outcome:
        from pandera.errors import SchemaErrors

        try:
            self.schema.validate(batch, lazy=True)
        except SchemaErrors as exc:
            fc = exc.failure_cases
            structural = fc["check"].isin(["column_in_dataframe", "column_in_schema"])
            columns = fc["column"].where(~structural, fc["failure_case"]).astype(str)
            rows = pd.DataFrame({"check": fc["check"].astype(str), "column": columns})
            failed = [(c, col, "") for c, col in rows.drop_duplicates().itertuples(index=False)]
            return Outcome(True, failed)
        return Outcome(False)


# -- batches and defects -----------------------------------------------------------------------


def batch_sizes(n_batches: int, available: int) -> list[int]:
    """Sizes from 50 to 1,000 rows, spaced geometrically, capped at the rows available."""
    top = min(MAX_BATCH, available)
    low = min(MIN_BATCH, top)
    return [int(round(x)) for x in np.geomspace(low, top, n_batches)]


def _rows(batch: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    k = max(1, int(round(DEFECT_SHARE * len(batch))))
    mask = np.zeros(len(batch), dtype=bool)
    mask[rng.choice(len(batch), size=k, replace=False)] = True
    return mask


def eligible(defect: str, ref: pd.DataFrame) -> list[str]:
    """The columns a defect applies to."""
    cols = list(ref.columns)
    if defect in ("missing column", "duplicated column"):
        return cols
    if defect == "wrong type":
        return [c for c in cols if _numeric(ref[c])]
    if defect == "nulls":
        return [c for c in cols if not ref[c].isna().any()]
    if defect == "unseen category":
        return closed_category_columns(ref)
    if defect == "10x out of range":
        return [c for c in cols if _numeric(ref[c]) and ref[c].min() < ref[c].max()]
    raise ValueError(defect)


def unseen_value(seen: set[str]) -> str:
    first = sorted(seen)[0]
    return first.upper() if first.upper() not in seen else f"{first} (new)"


def inject(defect: str, batch: pd.DataFrame, ref: pd.DataFrame, column: str, j: int,
           rng: np.random.Generator, tmp: Path) -> pd.DataFrame:
    """A copy of ``batch`` with ``defect`` in ``column``; ``j`` counts this defect's batches
    (out-of-range values go above the range when it is even, below when odd)."""
    bad = batch.copy()
    if defect == "missing column":
        return bad.drop(columns=[column])
    if defect == "duplicated column":
        at = list(bad.columns).index(column) + 1
        doubled = pd.concat([bad.iloc[:, :at], bad[[column]], bad.iloc[:, at:]], axis=1)
        return through_csv(doubled, tmp / f"doubled-{j}.csv")
    mask = _rows(bad, rng)
    if defect == "wrong type":
        s = bad[column].astype(object)
        s[mask] = "unknown"
        bad[column] = s
    elif defect == "nulls":
        bad[column] = bad[column].where(~mask)
    elif defect == "unseen category":
        s = bad[column].astype(object)
        s[mask] = unseen_value(set(ref[column].dropna().astype(str)))
        bad[column] = pd.array(s, dtype=batch[column].dtype)
    elif defect == "10x out of range":
        lo, hi = float(ref[column].min()), float(ref[column].max())
        value = hi + 10 * (hi - lo) if j % 2 == 0 else lo - 10 * (hi - lo)
        s = bad[column].astype("float64")
        s[mask] = value
        bad[column] = s
    return bad


def through_csv(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame`` written as CSV and read back with :func:`mlnb.data.read_table`."""
    from mlnb.data import read_table

    frame.to_csv(path, index=False)
    return read_table(path)


def region_batch(other: pd.DataFrame, i: int, rng: np.random.Generator) -> tuple[pd.DataFrame, str]:
    """Rows of ``other`` in the upper (even ``i``) or lower quarter of a random numeric feature."""
    features = [c for c in other.columns if _numeric(other[c]) and other[c].nunique() > 1]
    column = features[rng.integers(len(features))]
    # rank with ties broken at random: a feature with many equal values still gives a quarter
    values = other[column].to_numpy(dtype="float64", na_value=np.nan)
    order = np.lexsort((rng.permutation(len(other)), values))
    order = order[~np.isnan(values[order])]  # rows without a value are in neither quarter
    quarter = max(1, len(order) // 4)
    picked = (order[-quarter:] if i % 2 == 0 else order[:quarter])[:MAX_BATCH]
    side = "upper" if i % 2 == 0 else "lower"
    return other.iloc[np.sort(picked)], f"{side} quarter of {column}"


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Case:
    table: str
    kind: str  # "in-distribution", "in-distribution, CSV", a defect, or "region"
    batch: str  # what the batch is
    column: str | None
    outcome: dict[str, Outcome]

    def good(self, method: str) -> bool:
        """Whether the method did what the target asks for on this batch."""
        o = self.outcome[method]
        if self.kind in ("in-distribution", "in-distribution, CSV", "region"):
            return not o.rejected
        names = {self.column}
        if self.kind == "duplicated column" and method != "mlnb":
            # pandas renamed the copy; the original column fails only what it fails anyway
            names = {f"{self.column}.1"}
        return o.rejected and o.names(REPORTED_BY[method][self.kind], names)


def run_table(name: str, df: pd.DataFrame, n_batches: int, n_defect_batches: int, seed,
              tmp: Path) -> tuple[list[Case], dict]:
    # one stream per kind of batch: changing how many of one kind leaves the others alone
    split, sampling, defects, regions = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    ref = df.sample(frac=0.5, random_state=int(split.integers(2**31)))
    other = df.drop(index=ref.index)
    methods = {"mlnb": Mlnb(ref), "plain min/max": PlainMinMax(ref)}

    def run(batch: pd.DataFrame, only: str | None = None) -> dict[str, Outcome]:
        return {m: v.check(batch) for m, v in methods.items() if only in (None, m)}

    cases = []
    batches = []
    for i, size in enumerate(batch_sizes(n_batches, len(other))):
        batch = other.sample(n=size, replace=False, random_state=int(sampling.integers(2**31)))
        batches.append(batch)
        what = f"batch {i}, {size} rows"
        cases.append(Case(name, "in-distribution", what, None, run(batch)))
        # mlnb's read path only: the baseline's verdicts on these equal the ones above
        read = through_csv(batch, tmp / f"batch-{i}.csv")
        cases.append(Case(name, "in-distribution, CSV", what, None, run(read, only="mlnb")))
    # defects go into batches spread over the sizes, smallest and largest included
    spread = np.unique(np.linspace(0, len(batches) - 1, min(n_defect_batches, len(batches))).round())
    for defect in DEFECTS:
        columns = eligible(defect, ref)
        if not columns:
            continue
        for j, i in enumerate(spread.astype(int)):
            column = columns[defects.integers(len(columns))]
            bad = inject(defect, batches[i], ref, column, j, defects, tmp)
            what = f"batch {i}, {len(batches[i])} rows"
            cases.append(Case(name, defect, what, column, run(bad)))
    for i in range(n_batches):
        batch, what = region_batch(other, i, regions)
        cases.append(Case(name, "region", f"{what}, {len(batch)} rows", None, run(batch)))
    sizes = [len(b) for b in batches]
    info = {
        "rows": len(df),
        "cols": df.shape[1],
        "numeric": sum(_numeric(df[c]) for c in df.columns),
        "category": len(category_columns(ref)),
        "with nulls": int(df.isna().any().sum()),
        "ref rows": len(ref),
        "batch rows": f"{min(sizes)}–{max(sizes)}",
    }
    return cases, info


def _share(cases: list[Case], method: str, kind: str, count_good: bool) -> tuple[int, int]:
    chosen = [c for c in cases if c.kind == kind and method in c.outcome]
    good = sum(c.good(method) for c in chosen)
    return (good if count_good else len(chosen) - good), len(chosen)


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} % ({k}/{n})" if n else "–"


MEASURES = (
    # (label, kind, count the good ones?, target text, target met?)
    ("in-distribution batches rejected", "in-distribution", False, "≤ 1 %",
     lambda k, n: k <= TARGET_FALSE_REJECTIONS * n),
    ("the same, written as CSV, read back", "in-distribution, CSV", False, "≤ 1 %",
     lambda k, n: k <= TARGET_FALSE_REJECTIONS * n),
    *((f"detected: {d}", d, True, "100 %", lambda k, n: k >= TARGET_DETECTION * n) for d in DEFECTS),
    ("region batches NOT rejected", "region", True, "≥ 95 %",
     lambda k, n: k >= TARGET_REGION_ACCEPTED * n),
)


def report(info: dict[str, dict], cases: list[Case]) -> None:
    print("Tables (reference: a seeded random half; batches: the other half, without replacement)")
    heads = ("rows", "cols", "numeric", "category", "with nulls", "ref rows", "batch rows")
    print(f"{'table':<15}" + "".join(f"{h:>11}" for h in heads))
    for name, row in info.items():
        print(f"{name:<15}" + "".join(f"{row[h]:>11}" for h in heads))

    print("\nSummary over all tables")
    print(f"{'measure':<36} {'target':>7}  {'mlnb':>19}  {'plain min/max':>19}  {'mlnb meets':>10}")
    for label, kind, count_good, target, met in MEASURES:
        cells = [_share(cases, m, kind, count_good) for m in METHODS]
        print(f"{label:<36} {target:>7}  {_pct(*cells[0]):>19}  {_pct(*cells[1]):>19}  "
              f"{('yes' if met(*cells[0]) else 'NO') if cells[0][1] else '–':>10}")

    print("\nPer table: mlnb | plain min/max (count of the measure / batches; – : not applicable)")
    names = list(info)
    print(f"{'measure':<36} " + " ".join(f"{n:>14}" for n in names))
    for label, kind, count_good, _, _ in MEASURES:
        cells = []
        for n in names:
            mine = [c for c in cases if c.table == n]
            (k1, t), (k2, t2) = (_share(mine, m, kind, count_good) for m in METHODS)
            cells.append(f"{k1}|{k2 if t2 else '–'} of {t}" if t else "–")
        print(f"{label:<36} " + " ".join(f"{c:>14}" for c in cells))

    print("\nWhy plain min/max rejected good batches (batches in which each kind of check failed)")
    for kind in ("in-distribution", "region"):
        counts: dict[str, int] = {}
        for c in cases:
            if c.kind == kind and c.outcome["plain min/max"].rejected:
                fired = {check.split("(")[0] for check, _, _ in c.outcome["plain min/max"].failed}
                for check in fired:
                    counts[check] = counts.get(check, 0) + 1
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        print(f"- {kind}: {shown or 'none'}")

    failing = [c for c in cases if not c.good("mlnb")]
    print(f"\nmlnb's failing cases ({len(failing)})")
    for c in failing:
        o = c.outcome["mlnb"]
        where = f" in {c.column!r}" if c.column is not None else ""
        verdict = "rejected" if o.rejected else "accepted"
        print(f"- {c.table}, {c.kind}{where}, {c.batch}: {verdict}")
        for check, column, detail in o.failed:
            print(f"    {check} {column}: {detail}")
        if not o.failed:
            print("    no schema check failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20,
                        help="in-distribution and region batches per table")
    parser.add_argument("--defect-batches", type=int, default=10,
                        help="in-distribution batches each defect is injected into, per table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", default=None, help="comma-separated subset of the tables")
    args = parser.parse_args()

    # pandera warns about nothing that matters here (e.g. the index's inferred dtype)
    warnings.filterwarnings("ignore", module="pandera")
    chosen = args.tables.split(",") if args.tables else TABLES
    start = time.perf_counter()
    cases: list[Case] = []
    info = {}
    with tempfile.TemporaryDirectory(prefix="mlnb-bench-") as tmp:
        for index, (name, df) in enumerate(load_tables().items()):
            if name not in chosen:
                continue
            t0 = time.perf_counter()
            # each table's seed depends on its place in the full list, not on --tables
            found, info[name] = run_table(name, df, args.batches, args.defect_batches,
                                         [args.seed, index], Path(tmp))
            cases += found
            print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"\n{len(cases)} batches, each checked by both methods, in "
          f"{time.perf_counter() - start:.0f} s\n")
    report(info, cases)


if __name__ == "__main__":
    main()

"""Reading tables from files, and the bundled example data.

Every template and library function that takes a data path reads it through
:func:`read_table`, so every file format and every way a file can be unreadable gives the
same clear error.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlnb.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd

#: File extensions :func:`read_table` understands.
TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _table_format(p: Path) -> str:
    """The format of a table file by extension, once it is known to exist and have bytes."""
    fmt = TABLE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise DataError(
            f"cannot read {str(p)!r}: unknown extension {p.suffix!r}; "
            f"allowed: {', '.join(sorted(TABLE_FORMATS))}"
        )
    try:
        if not p.is_file():
            raise DataError(f"cannot read {_shown(p)!r}: no such file")
        size = p.stat().st_size
    except (OSError, ValueError) as exc:  # a name longer than the system allows, a NUL byte
        raise DataError(f"cannot read {_shown(p)!r}: {getattr(exc, 'strerror', None) or exc}") from exc
    if size == 0:
        raise DataError(f"cannot read {str(p)!r}: the file is empty")
    return fmt


def _shown(p: Path, width: int = 120) -> str:
    """A path for a message: whole, or its start and end when it is very long."""
    text = str(p)
    return text if len(text) <= width else text[: width // 2] + "…" + text[-(width // 2):]


def read_table(path: str | os.PathLike, **kwargs) -> "pd.DataFrame":
    """Read a CSV or Parquet file into a DataFrame, chosen by extension.

    Args:
        path: a ``.csv``, ``.parquet`` or ``.pq`` file.
        **kwargs: passed to :func:`pandas.read_csv` or :func:`pandas.read_parquet`.

    Raises:
        DataError: the file is missing, empty, of another format, or cannot be decoded.
    """
    import pandas as pd

    p = Path(path)
    fmt = _table_format(p)
    try:
        if fmt == "csv":
            df = pd.read_csv(p, **kwargs)
        else:
            df = pd.read_parquet(p, **kwargs)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {str(p)!r}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "re-save it as UTF-8 or pass encoding=..."
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"cannot read {str(p)!r}: no columns to parse") from exc
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {str(p)!r} as CSV: {first}") from exc
    except (OSError, ValueError) as exc:
        # pyarrow raises ArrowInvalid (a ValueError) for files that are not Parquet.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {str(p)!r} as {fmt}: {first}") from exc
    if df.shape[1] == 0:
        raise DataError(f"cannot read {str(p)!r}: no columns")
    if fmt == "csv":
        duplicated = _duplicated_header(p, df, kwargs)
        if duplicated:
            # pandas renames the copies (wind, wind.1): validation reports the original names
            df.attrs["duplicated_columns"] = duplicated
    return df


def _duplicated_header(p: Path, df: "pd.DataFrame", kwargs: dict) -> list[str]:
    """Names that the CSV header holds more than once (pandas renamed the copies ``x.1``)."""
    import re

    names = {str(c) for c in df.columns}
    if not any(m and m.group(1) in names for m in (re.match(r"^(.*)\.\d+$", n) for n in names)):
        return []
    if kwargs.get("header", "infer") not in ("infer", 0) or kwargs.get("names") is not None:
        return []
    with open(p, newline="", encoding=kwargs.get("encoding") or "utf-8", errors="replace") as f:
        header = next(csv.reader(f, delimiter=kwargs.get("sep") or ","), [])
    return _repeated(header)


def probe_table(path: str | os.PathLike, sample_bytes: int = 1 << 16) -> None:
    """Check cheaply that ``path`` can be read as a table, without reading all of it.

    Checks what :func:`read_table` would trip on first: the extension, that the file exists
    and is not empty, that a CSV's first block is UTF-8 text with a header, that a Parquet
    file has a readable footer.

    Raises:
        DataError: one line saying what is wrong with the file.
    """
    p = Path(path)
    fmt = _table_format(p)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            pq.read_metadata(p)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...: all mean "not Parquet"
            raise DataError(f"cannot read {str(p)!r} as parquet: {str(exc).splitlines()[0]}") from exc
        return
    with open(p, "rb") as f:
        block = f.read(sample_bytes)
    if len(block) == sample_bytes and b"\n" in block:
        block = block[: block.rindex(b"\n")]  # do not cut a character in two
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {str(p)!r}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from exc
    if "\x00" in text:
        raise DataError(f"cannot read {str(p)!r} as CSV: it is binary, not text")
    if not text.strip():
        raise DataError(f"cannot read {str(p)!r}: no columns to parse")
    duplicated = _repeated(next(csv.reader(io.StringIO(text)), []))
    if duplicated:
        # pandas would rename the copies (wind, wind.1) and every step would read another column
        raise DataError(f"cannot read {str(p)!r}: column {', '.join(map(repr, duplicated))} appears more than "
                        "once in the header; give each column its own name")


def _repeated(names: list[str]) -> list[str]:
    """The names that occur more than once, in order of their second occurrence."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def table_columns(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV or Parquet file, reading only its header or schema."""
    probe_table(path)
    if TABLE_FORMATS[Path(path).suffix.lower()] == "parquet":
        import pyarrow.parquet as pq

        return [str(c) for c in pq.read_schema(path).names if not str(c).startswith("__index_level_")]
    return [str(c) for c in read_table(path, nrows=0).columns]


def seattle_weather() -> "pd.DataFrame":
    """Seattle's daily weather 2012–2015, as shipped (offline) by ``vega_datasets``.

    Columns: ``date`` (datetime), ``precipitation``, ``temp_max``, ``temp_min``, ``wind``
    (floats) and ``weather`` (drizzle, fog, rain, snow, sun).
    """
    from vega_datasets import local_data

    return local_data.seattle_weather()


#: Columns of the bundled example (Seattle's daily weather), as :func:`write_example_data` writes them.
EXAMPLE_COLUMNS = ("date", "precipitation", "temp_max", "temp_min", "wind", "weather")


def is_example(table: "str | os.PathLike | pd.DataFrame") -> bool:
    """Whether a table holds rows of the bundled example only (Seattle's weather, as
    :func:`write_example_data` writes it): the same columns, and every row equal to the
    example's row of that date. Demo modes of templates run on it and on nothing else.
    """
    import pandas as pd

    if isinstance(table, (str, os.PathLike)):
        p = Path(table)
        # the whole example is 1,461 rows (about 50 kB): a larger file is not the example
        try:
            if not p.is_file() or p.stat().st_size > 200_000:
                return False
        except (OSError, ValueError):  # a name no file can have
            return False
        try:
            table = read_table(p)
        except DataError:
            return False
    if tuple(map(str, table.columns)) != EXAMPLE_COLUMNS or table.empty:
        return False
    example = seattle_weather()
    example["date"] = example["date"].dt.strftime("%Y-%m-%d")
    rows = table.assign(date=pd.to_datetime(table["date"], errors="coerce").dt.strftime("%Y-%m-%d"))
    joined = rows.merge(example, on="date", how="left", suffixes=("", "_example"), indicator=True)
    if len(joined) != len(rows) or (joined["_merge"] != "both").any():
        return False
    for column in EXAMPLE_COLUMNS[1:]:
        a, b = joined[column], joined[f"{column}_example"]
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            same = (pd.to_numeric(a, errors="coerce") - pd.to_numeric(b, errors="coerce")).abs() < 1e-9
        else:
            same = a.astype(str) == b.astype(str)
        if not bool(same.all()):
            return False
    return True


def write_example_data(directory: str | os.PathLike) -> list[Path]:
    """Write the example project's data: a reference year and quarterly batches.

    ``reference.csv`` holds 2012; ``batches/YYYY-qN.csv`` hold each quarter of 2013–2015, so
    a pipeline that takes the newest unseen batch meets seasonal drift as it goes.

    Returns:
        The paths written, reference first.
    """
    out = Path(directory)
    (out / "batches").mkdir(parents=True, exist_ok=True)
    written = []
    for rel, content in example_files().items():
        (out / rel).write_bytes(content)
        written.append(out / rel)
    return written


def example_files() -> dict[str, bytes]:
    """The example's data files by path relative to ``data/``, reference first (see
    :func:`write_example_data`)."""
    df = seattle_weather()
    df["date"] = df["date"].dt.strftime("%Y-%m-%d")
    files = {"reference.csv": df[df["date"] < "2013"].to_csv(index=False).encode()}
    year_quarter = df["date"].str[:4] + "-q" + ((df["date"].str[5:7].astype(int) + 2) // 3).astype(str)
    for key, part in df[df["date"] >= "2013"].groupby(year_quarter):
        files[f"batches/{key}.csv"] = part.to_csv(index=False).encode()
    return files

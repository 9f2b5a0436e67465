"""Gluing values inside a notebook and reading them back: mlnb's one door to scrapbook.

Templates call :func:`glue`. It writes outputs in scrapbook's own format (the
``application/scrapbook.scrap.<encoder>+json`` media type, payload version 1), so
``scrapbook.read_notebook`` reads every mlnb notebook, but it does so without importing
scrapbook inside the kernel: that import pulls in papermill, nbformat and jsonschema and
costs seconds per run. The host reads scraps back with scrapbook itself
(:func:`read_scraps`). Scrapbook has been unmaintained since 2021, so no other module
imports it.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

from mlnb.records import check_scrap_name

GLUE_PAYLOAD_FMT = "application/scrapbook.scrap.{encoder}+json"


def to_jsonable(value: Any, _path: str = "value") -> Any:
    """Return ``value`` as plain JSON data, converting numpy and pandas scalars.

    Raises:
        TypeError: for values JSON cannot represent (objects, NaN, infinity), naming where.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{_path} is {value!r}; JSON allows only finite numbers (use None)")
        return float(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{_path} has key {k!r}; JSON object keys must be strings")
            out[k] = to_jsonable(v, f"{_path}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{_path}[{i}]") for i, v in enumerate(value)]
    # numpy scalars and arrays, without importing numpy when it is not loaded
    item = getattr(value, "item", None)
    tolist = getattr(value, "tolist", None)
    if type(value).__module__ == "numpy":
        if getattr(value, "ndim", 0) == 0 and item is not None:
            return to_jsonable(item(), _path)
        if tolist is not None:
            return to_jsonable(tolist(), _path)
    raise TypeError(
        f"{_path} is a {type(value).__name__}; glue JSON values (str, int, float, bool, None, "
        "list, dict) or a pandas DataFrame"
    )


def encode(name: str, value: Any) -> tuple[dict, dict]:
    """Build the display data and metadata that glue ``value`` as scrap ``name``.

    Pure: returns what :func:`glue` displays, so it can be tested without a kernel.
    Strings use scrapbook's ``text`` encoder, DataFrames its ``pandas`` encoder (Parquet,
    base64), everything else ``json``.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"scrap name {name!r} must be a non-empty string")
    check_scrap_name(name)
    if value is None:
        # scrapbook's payload schema has no null: a bare None would make the notebook
        # unreadable to scrapbook (and so to mlnb), so refuse it where it is glued
        raise TypeError(f"scrap {name!r} is None; scrapbook cannot store a bare null: glue a value or skip it")
    if isinstance(value, str):
        encoder, data = "text", value
    elif _is_dataframe(value):
        buf = io.BytesIO()
        value.to_parquet(buf, engine="pyarrow")
        encoder, data = "pandas", base64.b64encode(buf.getvalue()).decode()
    else:
        encoder, data = "json", to_jsonable(value, f"scrap {name!r}")
    payload = {"name": name, "data": data, "encoder": encoder, "version": 1}
    metadata = {"scrapbook": {"name": name, "data": True, "display": False}}
    return {GLUE_PAYLOAD_FMT.format(encoder=encoder): payload}, metadata


def glue(name: str, value: Any, display: bool = False) -> None:
    """Record ``value`` under ``name`` in the running notebook, for the run record.

    Args:
        name: the scrap's name, as it will appear in ``record.json``.
        value: JSON data (numpy scalars are converted) or a pandas DataFrame (stored as a
            Parquet artifact of the run).
        display: also show the value in the notebook.
    """
    from IPython.display import display as ip_display

    data, metadata = encode(name, value)
    ip_display(data, metadata=metadata, raw=True)
    if display:
        ip_display(value)


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas")


def read_scraps(notebook_path: str) -> dict[str, Any]:
    """Read every glued scrap of an executed notebook with scrapbook.

    Returns:
        ``{name: value}`` in glue order; DataFrames come back as DataFrames. A name glued
        twice keeps its last value, as scrapbook does.
    """
    from mlnb import _compat  # noqa: F401  (fast jsonschema import)

    import scrapbook

    nb = scrapbook.read_notebook(notebook_path)
    scraps = dict(nb.scraps.data_dict)
    for name in scraps:
        check_scrap_name(name)  # glued by other means than glue(): the same rule
    return scraps

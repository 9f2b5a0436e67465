"""Labels that arrive late, joined to the predictions they belong to (``mlnb labels add FILE``).

A labels file is a table with a request id column (``request_id``), optionally ``row``
(the row of a multi-row request, 0 by default) and a label column (``label``, or the
served model's target). Adding it runs the ``labels`` template, so the labels are stored
**immutably as a run record**: the file's sha256 is the run's input fingerprint, the
normalised labels are its artifact, and the join with the prediction log is counted in
its scraps: labels matched, labels whose request id the log does not hold (``unknown``),
rows labelled more than once in the file (``duplicates``; the last one counts, and
conflicting values are counted apart). Nothing is dropped silently.

Before the run (exit 2, nothing written) :func:`check_file` refuses a file without the id
column or the label column, a label of the wrong type (text for a regressor, a class the
model never predicts), and a model with no prediction log.

The ``monitor`` template reads every labels run of a model (:func:`stored_labels`); a
later run's label for the same (request id, row) replaces an earlier one, and is counted
as relabelled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import DataError, ParameterError

if TYPE_CHECKING:
    import pandas as pd

    from mlnb.store import Run

ID_COLUMN = "request_id"


def models_with_logs(store: Any) -> list[str]:
    """Names of the models that have a prediction log in ``store`` (every host's files of a
    team store's logs are downloaded first, so the logs read next are whole)."""
    from mlnb.predlog import log_files
    from mlnb.store import Store

    store = store if isinstance(store, Store) else Store(store)
    root = store.sync_logs(store.predictions_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and log_files(p)) if root.is_dir() else []


def log_of(store: Any, model: str | None) -> tuple[str, Path]:
    """The model whose prediction log the labels belong to, and that log's directory.

    Args:
        model: a model name (an alias or version is accepted and ignored: labels belong to
            every version's predictions); None: the only model with a log.

    Raises:
        DataError: the model has no prediction log, or several do and none is named.
    """
    from mlnb.predlog import log_dir, log_files
    from mlnb.registry import parse_uri, validate_name

    have = models_with_logs(store)
    listed = ", ".join(have) or "none"
    if model is None:
        if len(have) == 1:
            return have[0], log_dir(store, have[0])
        raise DataError(f"name the model the labels belong to (`model` NAME); models with a prediction log: {listed}",
                        parameters=("model",))
    name = parse_uri(model).name if ("@" in model or "/" in model) else validate_name(model)
    path = log_dir(store, name)
    if not log_files(path):
        raise DataError(f"model {name!r} has no prediction log at {str(path)!r} ('mlnb serve {name}@production' "
                        f"writes it); models with a prediction log: {listed}")
    return name, path


@dataclass
class LabelsFile:
    """A labels table, normalised: ``request_id`` (text), ``row`` (int), ``label``, and ``time`` if given."""

    table: "pd.DataFrame"
    label_column: str
    id_column: str


def _label_column(columns: list[str], label_column: str | None, target: str | None) -> str:
    if label_column is not None:
        if label_column not in columns:
            raise DataError(f"label column {label_column!r} is not in the labels file; columns: {', '.join(columns)}")
        return label_column
    for candidate in ("label", target):
        if candidate and candidate in columns:
            return candidate
    wanted = "'label'" + (f" or the model's target {target!r}" if target else "")
    raise DataError(f"the labels file has no label column ({wanted}); name it with `label_column`; "
                    f"columns: {', '.join(columns)}", parameters=("label_column",))


def read_labels(path: str | os.PathLike, *, label_column: str | None = None, id_column: str = ID_COLUMN,
                target: str | None = None, task: str | None = None, classes: list[str] | None = None) -> LabelsFile:
    """Read and check a labels file.

    Raises:
        DataError: no id column, no label column, an empty label, a label of the wrong type
            (not a number for a regressor, not one of ``classes`` for a classifier).
    """
    import pandas as pd

    from mlnb.data import read_table
    from mlnb.monitor.confusion import class_text

    df = read_table(path)
    columns = [str(c) for c in df.columns]
    if id_column not in columns:
        raise DataError(f"the labels file has no request id column {id_column!r}; columns: {', '.join(columns)}")
    column = _label_column(columns, label_column, target)
    if df.empty:
        raise DataError(f"the labels file {str(path)!r} holds no rows")
    ids = df[id_column]
    if ids.isna().any():
        raise DataError(f"row {int(ids.isna().to_numpy().argmax())} of the labels file has no {id_column}")
    labels = df[column]
    if labels.isna().any():
        raise DataError(f"row {int(labels.isna().to_numpy().argmax())} of the labels file has no {column!r} value; "
                        "leave rows without a label out of the file")
    if task == "regression":
        numbers = pd.to_numeric(labels, errors="coerce")
        if numbers.isna().any():
            bad = labels[numbers.isna()].iloc[0]
            raise DataError(f"label {bad!r} in column {column!r} is not a number; the model is a regressor")
        labels = numbers.astype(float)
    elif task == "classification":
        labels = labels.map(class_text)
        if classes:
            unknown = sorted(set(labels) - set(map(str, classes)))
            if unknown:
                raise DataError(f"label(s) {', '.join(map(repr, unknown[:5]))} in column {column!r} are not classes "
                                f"of the model; allowed: {', '.join(map(str, classes))}")
    if "row" in columns:
        rows = pd.to_numeric(df["row"], errors="coerce")
        if rows.isna().any() or (rows < 0).any() or (rows % 1 != 0).any():
            raise DataError("column 'row' of the labels file must hold whole numbers >= 0 (the row of the request)")
        rows = rows.astype(int)
    else:
        rows = 0
    table = pd.DataFrame({"request_id": ids.astype(str).to_numpy(), "row": rows, "label": labels.to_numpy()})
    if "time" in columns:
        table["time"] = pd.to_datetime(df["time"], utc=True, errors="coerce").to_numpy()
    return LabelsFile(table, column, id_column)


@dataclass
class Join:
    """Labels joined to a prediction log, and what did not join.

    Attributes:
        labels: the labels kept (the last of each duplicated key): request_id, row, label.
        counts: labels, matched, unknown, duplicates (extra rows for a key already
            labelled in the file), conflicting (keys whose duplicates disagree), logged
            (rows in the log).
        unknown: labels whose (request id, row) is not in the log (at most 20 shown).
        duplicates: keys labelled more than once: request_id, row, times, values.
    """

    labels: "pd.DataFrame"
    counts: dict
    unknown: "pd.DataFrame"
    duplicates: "pd.DataFrame"
    matched: "pd.DataFrame" = field(default=None)  # the labelled log rows: request_id, row, prediction, label


def join(log: "pd.DataFrame", labels: "pd.DataFrame") -> Join:
    """Join labels (``request_id, row, label``) to a prediction table by (request id, row)."""

    keys = ["request_id", "row"]
    counted = labels.groupby(keys, sort=False)["label"].agg(["size", "nunique"]).reset_index()
    dup = counted[counted["size"] > 1]
    values = labels[labels.set_index(keys).index.isin(dup.set_index(keys).index)]
    dup_table = (values.groupby(keys, sort=False)["label"].agg(lambda s: ", ".join(map(str, s))).reset_index()
                 .rename(columns={"label": "values"}).merge(dup[keys + ["size"]].rename(columns={"size": "times"}),
                                                            on=keys))
    kept = labels.drop_duplicates(keys, keep="last").reset_index(drop=True)
    logged = log[keys].drop_duplicates()
    flagged = kept.merge(logged.assign(_in_log=True), on=keys, how="left")
    in_log = flagged["_in_log"].fillna(False).astype(bool).to_numpy()
    unknown = kept[~in_log]
    cols = [c for c in ("request_id", "row", "time", "model_name", "model_version", "prediction") if c in log]
    matched = log[cols].merge(kept[keys + ["label"]], on=keys, how="inner")
    counts = {"labels": int(len(labels)), "matched": int(in_log.sum()), "unknown": int((~in_log).sum()),
              "duplicates": int((dup["size"] - 1).sum()), "conflicting": int((dup["nunique"] > 1).sum()),
              "logged": int(len(logged))}
    return Join(kept, counts, unknown.head(20).reset_index(drop=True), dup_table.reset_index(drop=True),
                matched.reset_index(drop=True))


def stored_labels(store: Any, name: str) -> tuple["pd.DataFrame", dict]:
    """Every label stored for model ``name`` by ``labels`` runs, newest run winning.

    Returns:
        ``(table, info)``: request_id, row, label, labels_run; info holds runs (their ids,
        oldest first), labels, relabelled (keys a later run labelled again).
    """
    import pandas as pd

    from mlnb.store import Store

    store = store if isinstance(store, Store) else Store(store)
    runs = [r for r in store.list_runs(template="labels", status="succeeded")
            if (r["scraps"] or {}).get("model") == name and not (r["scraps"] or {}).get("demo")]
    runs.reverse()  # oldest first, so later labels replace earlier ones
    frames = []
    for item in runs:
        run = store.get(item["id"])
        frames.append(run.scrap("labels")[["request_id", "row", "label"]].assign(labels_run=run.id))
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "label", "labels_run"]), {"runs": [], "labels": 0,
                                                                                   "relabelled": 0}
    table = pd.concat(frames, ignore_index=True)
    total = len(table)
    table = table.drop_duplicates(["request_id", "row"], keep="last").reset_index(drop=True)
    return table, {"runs": [r["id"] for r in runs], "labels": int(len(table)), "relabelled": int(total - len(table))}


# -- mlnb labels add ----------------------------------------------------------------------------


@dataclass
class AddOutcome:
    """What :func:`add_file` did: the recorded run, and its join counts when it succeeded."""

    run: "Run"
    model: str
    counts: dict = field(default_factory=dict)


def model_facts(store: Any, name: str, log_path: Path) -> tuple[str | None, str | None, list[str] | None]:
    """(task, target, classes) of a model's predictions, from its newest log lines."""
    from mlnb.predlog import read_log

    table = read_log(log_path)
    if table.table.empty:
        raise DataError(f"the prediction log of {name!r} at {str(log_path)!r} holds no predictions yet")
    last = table.table.iloc[-1]
    return last["task"], last["target"], table.classes or None


def check_file(path: str | os.PathLike, store: Any = None, model: str | None = None, *,
               label_column: str | None = None, id_column: str = ID_COLUMN) -> tuple[str, LabelsFile]:
    """Everything ``mlnb labels add`` refuses before a run: returns the model name and the labels.

    Raises:
        DataError, ParameterError, RegistryError: as :func:`log_of` and :func:`read_labels`.
    """
    from mlnb.data import probe_table

    if not isinstance(id_column, str) or not id_column:
        raise ParameterError(f"id column == {id_column!r}; give a column name", name="id_column")
    probe_table(path)
    name, log_path = log_of(store, model)
    task, target, classes = model_facts(store, name, log_path)
    return name, read_labels(path, label_column=label_column, id_column=id_column, target=target, task=task,
                             classes=classes)


def add_file(path: str | os.PathLike, store: Any = None, model: str | None = None, *,
             label_column: str | None = None, id_column: str = ID_COLUMN, timeout: float | None = None,
             progress: bool = False) -> AddOutcome:
    """Store a labels file as a run of the ``labels`` template, joined to the model's prediction log.

    Raises:
        DataError, ParameterError, RegistryError, StoreError: before the run (nothing written).
    """
    from mlnb.execute import run_template
    from mlnb.store import Store

    store = store if isinstance(store, Store) else Store(store)
    name, checked = check_file(path, store, model, label_column=label_column, id_column=id_column)
    store.ensure_writable()
    parameters = {"labels": str(Path(path).expanduser().resolve()), "model": name,
                  "label_column": checked.label_column, "id_column": id_column,
                  "store": store.location, "demo": False}
    run = run_template("labels", parameters, store, timeout=timeout, progress=progress)
    return AddOutcome(run, name, dict(run.record["scraps"].get("counts") or {}) if run.succeeded else {})

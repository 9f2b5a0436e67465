"""A project: ``mlnb init`` (the example — config, real data, templates — or one for the user's
table) and ``mlnb demo`` (the example's batches fed to the pipeline, one after the other)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mlnb.config import CONFIG_FILE, MODEL_NAME
from mlnb.exceptions import ConfigError, DataError

EXAMPLE_CONFIG = """\
# The example project: Seattle's daily weather. A model is trained on 2012; each quarter of
# 2013-2015 arrives as a batch in data/batches/. `mlnb pipeline run` takes the newest
# unseen batch, validates it, checks drift and performance, and retrains when needed.
model:
  name: weather
  task: classification
  target: weather
  features: [precipitation, temp_max, temp_min, wind]
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  hyperparameters: {max_iter: 100}
data:
  reference: data/reference.csv
  current: data/batches/*.csv     # a path or a glob; the pipeline takes the newest unseen batch
training:
  policy: all                     # all: reference + every batch seen; window: the last N batches
  window: 4
  holdout: 0.5                    # newest share of the batch kept to compare challenger and champion
validation:
  schema: null                    # a YAML schema, or null to infer it from the reference
  reject_on: schema               # schema: broken data is rejected, expectations warn; any; none
  slack: 0.25                     # expectations: share of a reference range a batch may exceed it by
drift:
  method: auto
  drift_share: 0.5
  exclude: auto                   # dates and identifiers are left out; or a list of columns
triggers:
  drift: true
  # accuracy, not macro F1: with five classes, two of them rare, macro F1 on a 45-row holdout
  # swings by 0.2 from one batch to the next
  performance: {metric: accuracy, min: 0.6, max_drop: 0.1}
  schedule: {max_age_days: 30}
promotion:
  metric: accuracy
  min_gain: 0.0
  require_validation: true
alerts:
  webhook: null
store: runs
"""


def init_project(
    directory: str | os.PathLike,
    force: bool = False,
    data: str | os.PathLike | None = None,
    target: str | None = None,
) -> list[Path]:
    """Write a project into ``directory``; return what was written.

    Without ``data``, the example project (Seattle's weather, its batches, templates). With
    ``data`` and ``target``, a project for the user's table: an ``mlnb.yaml`` whose task,
    features, estimator and metrics fit that table (see :func:`config_for`), the table as
    the reference (copied into ``data/`` unless it already lies inside ``directory``), an
    empty ``data/batches/`` for new batches, and the templates.

    Raises:
        ConfigError: ``directory`` already has an ``mlnb.yaml`` (unless ``force``), or
            ``data`` is given without ``target`` (or the reverse).
        DataError: ``data`` cannot be read, or ``target`` is not one of its columns.
    """
    root = Path(directory)
    config = root / CONFIG_FILE
    if (data is None) != (target is None):
        raise ConfigError("`data` and `target` go together: the table and the column to predict",
                          parameters=("data", "target"))
    if os.path.lexists(config) and not force:
        raise ConfigError(f"{config} exists; use `force` to overwrite the example files", parameters=("force",))
    if data is None:
        from mlnb.data import example_files

        files = {CONFIG_FILE: EXAMPLE_CONFIG.encode()}
        files.update({f"data/{rel}": content for rel, content in example_files().items()})
        return _write_project(root, files, force, schemas=True)
    from mlnb.data import read_table

    source = Path(data).expanduser().resolve()
    df = read_table(source)  # before anything is written: an unreadable table writes nothing
    text = config_for(df, target, reference=str(source), name=_model_name(root, source))
    files = {}
    if root.resolve() in source.parents:
        reference = source.relative_to(root.resolve()).as_posix()
    else:
        reference = f"data/reference{source.suffix.lower()}"
        files[reference] = source.read_bytes()
    files[CONFIG_FILE] = text.replace("reference: ''", f"reference: {json.dumps(reference)}").encode()
    return _write_project(root, files, force, schemas=False, folders=("data/batches",))


def _write_project(root: Path, files: dict[str, bytes], force: bool, schemas: bool,
                   folders: tuple[str, ...] = ()) -> list[Path]:
    """Write ``files`` (path relative to ``root`` → bytes) and the templates, after checking
    every one: nothing is written through a symbolic link, a data file that differs is
    never replaced, and another file that differs only with ``force``.

    Raises:
        ConfigError: naming the first file that stands in the way; nothing was written.
    """
    from mlnb.execute import shipped_templates

    source = shipped_templates()
    files = dict(files)
    for nb in sorted(source.glob("*.ipynb")):
        files[f"templates/{nb.name}"] = nb.read_bytes()
    if schemas and (source / "schemas").is_dir():
        for schema in sorted((source / "schemas").iterdir()):
            if schema.is_file():
                files[f"templates/schemas/{schema.name}"] = schema.read_bytes()
    ignore = ".gitignore"
    if not os.path.lexists(root / ignore):
        files[ignore] = b"runs/\nartifacts/\n.ipynb_checkpoints/\n"
    for rel, content in files.items():
        path = root / rel
        parts = Path(rel).parts
        for part in (root.joinpath(*parts[: i + 1]) for i in range(len(parts))):
            if part.is_symlink():
                raise ConfigError(f"{part} is a symbolic link; mlnb init writes only into plain files and folders")
        if path.is_dir():
            raise ConfigError(f"{path} is a folder; mlnb init would write a file there")
        if not path.exists() or path.read_bytes() == content:
            continue
        if rel.startswith("data/"):
            raise ConfigError(f"{path} exists and is not the file mlnb init writes; mlnb init never replaces data: "
                              "move it, or init another directory")
        if not force and rel != CONFIG_FILE:
            raise ConfigError(f"{path} exists and differs from what mlnb init writes; use `force` to replace it",
                              parameters=("force",))
    written = []
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    for folder in ("runs", *folders):
        (root / folder).mkdir(parents=True, exist_ok=True)
    # mlnb.yaml first, then the data (reference first), then the rest
    return sorted(written, key=lambda p: (p.name != CONFIG_FILE, not str(p.relative_to(root)).startswith("data/")))


def _model_name(root: Path, source: Path) -> str:
    """A registry name from the project's folder (or the file's), lower case."""
    for candidate in (root.resolve().name, source.stem):
        name = re.sub(r"[^a-z0-9._-]+", "-", candidate.lower()).strip("-._")
        if name and MODEL_NAME.match(name):
            return name
    return "model"


def config_for(df, target: str, reference: str, name: str) -> str:
    """The text of an ``mlnb.yaml`` for a table: the task from the target, the features,
    an estimator and metrics that fit the task, with comments saying why.

    Raises:
        DataError: ``target`` is not a column of ``df``, or no feature column is left.
    """
    import yaml

    from mlnb.metrics import DEFAULT_ESTIMATOR, DEFAULT_METRIC, infer_task, select_features

    columns = [str(c) for c in df.columns]
    if target not in columns:
        import difflib

        close = difflib.get_close_matches(target, columns, n=1) or [c for c in columns if c.lower() == target.lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"`target` {target!r} is not a column of the data; columns: {', '.join(columns)}{hint}",
                        parameters=("target",))
    task, why = infer_task(df[target])
    features = select_features(df, target)
    left_out = [c for c in columns if c != target and c not in features]
    metric = DEFAULT_METRIC[task]
    if task == "classification":
        performance = {"metric": metric, "max_drop": 0.05}
        perf_comment = "retrain when accuracy on a labelled batch falls 0.05 below its value at training"
    else:
        spread = float(df[target].std()) if df[target].notna().sum() > 1 else 1.0
        rise = float(f"{0.1 * spread:.3g}") or 1.0
        performance = {"metric": metric, "max_rise": rise}
        perf_comment = (f"retrain when RMSE on a labelled batch rises more than {rise:g} (a tenth of the target's "
                        "standard deviation) above its value at training; rmse is lower-is-better, so max/max_rise")

    def flow(value) -> str:
        if not isinstance(value, (list, dict)):
            return flow([value])[1:-1]
        return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()

    lines = [
        f"# mlnb project for {name}: the model predicts {target!r}.",
        "# `mlnb pipeline run --current FILE` validates a new batch, checks drift and performance,",
        "# and retrains when needed; new batches go into data/batches/.",
        "model:",
        f"  name: {name}",
        f"  task: {task}  # {why}",
        f"  target: {flow(target)}",
        f"  features: {flow(features)}"
        + (f"  # left out (identifiers, dates): {', '.join(left_out)}" if left_out else ""),
        f"  estimator: {DEFAULT_ESTIMATOR[task]}",
        "  hyperparameters: {}",
        "data:",
        "  reference: ''",
        f"  current: data/batches/*{'.parquet' if reference.endswith('.parquet') else '.csv'}"
        "  # a path or a glob; the pipeline takes the newest unseen batch",
        "training:",
        "  policy: all  # all: reference + every batch seen; window: the last N batches",
        "  window: 4",
        "  holdout: 0.3  # newest share of a batch kept to compare challenger and champion",
        "validation:",
        "  schema: null  # a YAML schema, or null to infer it from the reference",
        "  reject_on: schema  # schema: broken data is rejected, expectations warn; any; none",
        "  slack: 0.25",
        "drift:",
        "  method: auto",
        "  drift_share: 0.5",
        "  exclude: auto  # dates and identifiers are left out; or a list of columns",
        "triggers:",
        "  drift: true",
        f"  # {perf_comment}",
        f"  performance: {flow(performance)}",
        "  schedule: {max_age_days: 30}",
        "promotion:",
        f"  metric: {metric}  # {'higher' if metric != 'rmse' else 'lower'} is better",
        "  min_gain: 0.0",
        "  require_validation: true",
        "alerts:",
        "  webhook: null",
        "store: runs",
    ]
    return "\n".join(lines) + "\n"


#: The example's batches that ``mlnb demo`` feeds to the pipeline, in order.
DEMO_BATCHES = ("2013-q1", "2013-q2", "2013-q3")


def run_demo(config, batches=DEMO_BATCHES, store=None, echo=None, each=None, cold=False) -> list:
    """Run the pipeline of ``config`` on each named batch of its ``data.current`` folder.

    Args:
        config: a loaded :class:`~mlnb.config.Config` (the example project's).
        batches: batch names (files ``<name>.csv`` beside ``data.current``), in order.
        echo: told a header line per batch and what the pipeline says while it runs.
        each: called with ``(name, decision, record)`` after each batch.
        cold: start every kernel from nothing (else the batches share one pool of warm kernels).

    Returns:
        ``[(name, decision, record), ...]``.

    Raises:
        DataError: a named batch does not exist (before any batch runs).
    """
    from mlnb.kernels import KernelPool
    from mlnb.pipeline import run_pipeline

    folder = config.path(config.data.current).parent
    paths = [(name, folder / f"{name}.csv") for name in batches]
    missing = [name for name, path in paths if not path.is_file()]
    if missing:
        known = ", ".join(sorted(p.stem for p in folder.glob("*.csv"))) or "none"
        raise DataError(f"batches {', '.join(missing)}: no such batch in {folder}; batches: {known}")
    done = []
    pool = KernelPool.for_config(config, cold=cold)
    try:
        for name, path in paths:
            if echo:
                echo(f"\n== batch {name} arrives")
            decision, record = run_pipeline(config, store, current=str(path), echo=echo, kernels=pool, cold=cold)
            if each:
                each(name, decision, record)
            done.append((name, decision, record))
    finally:
        if pool is not None:
            pool.close()
    return done

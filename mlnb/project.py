"""``mlnb init``: a working example project (config, real data, templates, a store)."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlnb.config import CONFIG_FILE
from mlnb.exceptions import ConfigError

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
  stop_on_failure: true
drift:
  method: auto
  drift_share: 0.5
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


def init_project(directory: str | Path, force: bool = False) -> list[Path]:
    """Write an example project into ``directory``; return what was written.

    Raises:
        ConfigError: ``directory`` already has an ``mlnb.yaml`` (unless ``force``).
    """
    from mlnb.data import write_example_data
    from mlnb.execute import shipped_templates

    root = Path(directory)
    config = root / CONFIG_FILE
    if config.exists() and not force:
        raise ConfigError(f"{config} exists; use --force to overwrite the example files")
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(EXAMPLE_CONFIG)
    written = [config, *write_example_data(root / "data")]
    templates = root / "templates"
    templates.mkdir(exist_ok=True)
    source = shipped_templates()
    for nb in sorted(source.glob("*.ipynb")):
        shutil.copyfile(nb, templates / nb.name)
        written.append(templates / nb.name)
    if (source / "schemas").is_dir():
        shutil.copytree(source / "schemas", templates / "schemas", dirs_exist_ok=True)
    (root / "runs").mkdir(exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("runs/\nartifacts/\n.ipynb_checkpoints/\n")
        written.append(ignore)
    return written

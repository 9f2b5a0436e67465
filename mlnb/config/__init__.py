"""``mlnb.yaml``: the project file that drives the retraining pipeline.

This module is light (the CLI reads the store's name from it); the sections are pydantic
models in :mod:`mlnb.config.sections`, loaded when a file is parsed. Paths in the file are
relative to its directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.exceptions import ConfigError

if TYPE_CHECKING:
    from mlnb.config.sections import Config

CONFIG_FILE = "mlnb.yaml"
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def __getattr__(name: str) -> Any:
    """``mlnb.config.Config`` and the other sections, imported on first use."""
    if name.startswith("_") or name == "sections":
        raise AttributeError(name)
    import importlib

    sections = importlib.import_module("mlnb.config.sections")
    try:
        return getattr(sections, name)
    except AttributeError:
        raise AttributeError(f"module 'mlnb.config' has no attribute {name!r}") from None


def parse_config(data: Any, where: str = CONFIG_FILE, root: Path | None = None) -> "Config":
    """Build a :class:`Config` from parsed YAML, or raise ConfigError naming the key."""
    from mlnb.config.sections import parse_config as parse

    return parse(data, where=where, root=root)


def load_config(path: str | Path = CONFIG_FILE) -> Config:
    """Read and check ``mlnb.yaml``.

    Raises:
        ConfigError: the file is missing, not YAML, or a key is missing, unknown or wrong.
    """
    from mlnb import yamlfile

    path = Path(path)
    try:
        data = yamlfile.read(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; create one with 'mlnb init'") from None
    except yamlfile.YamlRefused as exc:
        if exc.problem is not None:
            raise ConfigError(f"{path}: not YAML{f' (line {exc.line})' if exc.line else ''}") from None
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data, where=str(path), root=path.resolve().parent)


def find_config(start: str | Path | None = None) -> Path | None:
    """The ``mlnb.yaml`` of the project around ``start`` (default: the working directory):
    the nearest one in ``start`` or a directory above it, or None."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_FILE).is_file():
            return d / CONFIG_FILE
    return None


def default_store() -> str:
    """The store named by ``MLNB_STORE``, else ``store:`` of ``./mlnb.yaml``, else ``runs``."""
    if os.environ.get("MLNB_STORE"):
        return os.environ["MLNB_STORE"]
    config = Path(CONFIG_FILE)
    if config.is_file():
        from mlnb import yamlfile

        try:
            data = yamlfile.read(config)
        except (OSError, yamlfile.YamlRefused):
            data = None  # reported by whatever reads the project; the store is not its business
        if isinstance(data, dict) and isinstance(data.get("store"), str):
            store = data["store"]
            return store if "://" in store else str(config.parent / store)
    return "runs"

"""The template catalog: where templates are found by name or path.

A name (``drift``) is looked up in the project's ``templates/`` directory, then in the
templates that ship with mlnb (package ``mlnb.templates``, hence not ``templates.py``);
a path loads that notebook. Nothing here runs a template (:mod:`mlnb.execute` does).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlnb import params as params_mod
from mlnb import records
from mlnb.exceptions import TemplateNotFound
from mlnb.params import Template

TEMPLATES_DIR = "templates"


def template_dirs(start: str | os.PathLike | None = None) -> list[Path]:
    """Where templates are looked up by name: ``templates/`` of the project, then mlnb's own.

    The project is the nearest directory, from ``start`` (default: the working directory)
    upwards, holding ``mlnb.yaml`` or a ``templates/`` directory.
    """
    dirs = []
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "mlnb.yaml").is_file() or (d / TEMPLATES_DIR).is_dir():
            if (d / TEMPLATES_DIR).is_dir():
                dirs.append(d / TEMPLATES_DIR)
            break
    shipped = shipped_templates()
    if shipped.is_dir() and shipped.resolve() not in [p.resolve() for p in dirs]:
        dirs.append(shipped)
    return dirs


def shipped_templates() -> Path:
    """The directory of the templates that ship with mlnb (package ``mlnb.templates``)."""
    from importlib.resources import files

    return Path(str(files("mlnb.templates")))


def available_templates(start: str | os.PathLike | None = None) -> list[str]:
    names: list[str] = []
    for d in template_dirs(start):
        names += [p.stem for p in sorted(d.glob("*.ipynb")) if p.stem not in names]
    return names


def find_template(name_or_path: str | os.PathLike, start: str | os.PathLike | None = None) -> Template:
    """Load a template by name (``drift``) or by path (``path/to/nb.ipynb``).

    Raises:
        TemplateNotFound: listing the templates that exist.
    """
    text = str(name_or_path)
    if text.endswith(".ipynb") or os.sep in text or Path(text).is_file():
        return params_mod.load_template(Path(text))
    for d in template_dirs(start):
        candidate = d / f"{text}.ipynb"
        if candidate.is_file():
            return params_mod.load_template(candidate, name=text)
    known = ", ".join(available_templates(start)) or "none found"
    raise TemplateNotFound(f"unknown template {text!r}; available: {known} (or give a path to an .ipynb)")


def find_by_content(name: str, sha256: str, start: str | os.PathLike | None = None) -> Template:
    """The template ``name`` whose file has ``sha256``, looked up where a name is
    (:func:`template_dirs`: the project's ``templates/`` from ``start``, then mlnb's own):
    a recorded template found again by its content after its file moved or changed.

    Raises:
        TemplateNotFound: no such file in any of those directories, naming each directory
            looked in and the sha256 of a same-named file that differs.
    """
    plain = Path(name).name == name and name not in ("", ".", "..")  # a record's name, never a path
    looked = []
    for d in template_dirs(start):
        candidate = d / f"{name}.ipynb"
        if not plain or not candidate.is_file():
            looked.append(str(d))
            continue
        found = records.sha256_file(candidate)
        if found == sha256:
            return params_mod.load_template(candidate, name=name)
        looked.append(f"{d} (its {candidate.name} has sha256 {found[:12]}…)")
    raise TemplateNotFound(
        f"no template {name!r} with sha256 {sha256[:12]}… in {', '.join(looked) or 'no template directory'}")

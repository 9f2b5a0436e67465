"""Set-up contract: environment.yml equals the pip install, the Makefile and CI entry hold."""

from __future__ import annotations

import re
import tomllib

import yaml

from .conftest import ROOT



def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # every extra: a conda user gets what `pip install mlnb[ui,team,signing,...]` would give
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    out = {}
    for req in reqs:
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?(.*)$", req)
        name, extras, spec = m.group(1), m.group(2), m.group(3).strip()
        out[_norm(name)] = spec
        if _norm(name) == "dask" and extras and "distributed" in extras:
            out["distributed"] = spec
    return out


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            m = re.match(r"^([A-Za-z0-9_.\-]+)(.*)$", dep)
            out[_norm(m.group(1))] = m.group(2).strip()
    out.pop("python")
    out.pop("pip")
    return out


def test_environment_yml_lists_the_same_dependencies_extras_and_bounds_as_pyproject():
    assert _conda_requirements() == _pip_requirements()


def test_no_upper_bounds_without_a_reason():
    assert not [r for r, spec in _pip_requirements().items() if "<" in spec]


def test_ci_runs_make_test_and_readme_starts_with_the_two_commands():
    assert "make test" in (ROOT / ".ci/run").read_text()
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```(?:\w+)?\n(.*?)```", readme, re.S).group(1).split("\n")
    assert [c.split("#")[0].strip() for c in code if c.strip()][:2] == ["make demo", "make test"]


def test_run_store_contents_are_ignored_by_git():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "/runs/*" in ignore


def test_every_subpackage_ships_in_the_wheel():
    """A package folder missing from pyproject's list works in the checkout and breaks installs."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mlnb").rglob("__init__.py")}
    assert found - listed == set()

"""Every shipped template gives the same scraps on a warm kernel and on a forked one as on a
cold one, and shows the same figures.

Each template runs with its defaults (the example, as nbval runs them), once on a kernel
started from nothing, once on a warm kernel from a pool, and once on a kernel forked from a
pool's fork server. Scraps that hold the clock (demo
prediction logs stamped with the time they were made, latencies) differ between any two
runs; for those the test compares everything but the clock.
"""

from __future__ import annotations

import pytest

from mlnb.catalog import shipped_templates
from mlnb.execute import changed_scraps, find_template, run_template
from mlnb.kernels import KernelPool

TEMPLATES = sorted(p.stem for p in shipped_templates().glob("*.ipynb"))

#: {template: {scrap: what to compare}}: the parts of clock-dependent scraps that are not the clock.
CLOCKED = {
    "labels": {"log": lambda v: {k: v[k] for k in ("files", "rows", "skipped")}},
    "monitor": {"log": lambda v: {k: v[k] for k in ("files", "rows", "skipped")}},
    "shadow": {
        "log": lambda v: {k: v[k] for k in ("rows", "skipped", "pairs", "demo")},
        "latency": lambda v: {side: {k: v[side][k] for k in ("calls", "rows_per_call")} for side in v},
        "pairs": lambda v: v.drop(columns=["first", "last"]).to_dict("list"),
        "disagreements": lambda v: v.drop(columns=["time"]).to_dict("list"),
    },
}


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> dict:
    store = tmp_path_factory.mktemp("warm-cold") / "store"
    out = {name: {"cold": run_template(name, {}, store)} for name in TEMPLATES}
    for mode, fork in (("warm", False), ("forked", True)):
        with KernelPool(size=2, fork=fork) as pool:
            pool.warm(find_template(TEMPLATES[0]))
            for i, name in enumerate(TEMPLATES):
                if i + 1 < len(TEMPLATES):  # the next one's kernel starts while this one runs
                    pool.warm(find_template(TEMPLATES[i + 1]))
                out[name][mode] = run_template(name, {}, store, kernels=pool)
    return out


def _figures(run) -> list[str]:
    """The kinds of rich output the executed notebook shows, cell by cell (figures are PNGs)."""
    import nbformat

    nb = nbformat.read(run.path / "notebook.ipynb", as_version=4)
    return [kind for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
            for kind in sorted(out.get("data", {})) if kind.startswith("image/")]


@pytest.mark.parametrize("mode", ["warm", "forked"])
@pytest.mark.parametrize("name", TEMPLATES)
def test_a_template_gives_equal_scraps_and_figures_warm_forked_and_cold(both, name, mode):
    cold, other = both[name]["cold"], both[name][mode]
    assert cold.succeeded and other.succeeded, (cold.record["error"], other.record["error"])
    assert cold.record["environment"]["kernel_preparation"]["mode"] == "cold"
    assert other.record["environment"]["kernel_preparation"]["mode"] == mode
    clocked = CLOCKED.get(name, {})
    assert [s for s in changed_scraps(cold, other) if s not in clocked] == []
    for scrap, part in clocked.items():
        assert part(cold.scrap(scrap)) == part(other.scrap(scrap)), scrap
    assert _figures(other) == _figures(cold)  # matplotlib's inline backend draws in every kind of kernel

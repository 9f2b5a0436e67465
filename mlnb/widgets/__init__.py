"""JupyterLab widgets over a run store: browse runs, compare two, manage the model registry.

Three ipywidgets panels, each an ``ipywidgets.VBox`` that displays itself in a notebook and
exposes its controls as attributes, so code (and tests) can drive it exactly as a person
clicking would::

    from mlnb.widgets import RunBrowser, RunComparison, RegistryView
    browser = RunBrowser("runs")          # filter by template, status, dates; pick a run
    browser.template.value = "drift"
    browser.select.value = browser.select.options[0][1]
    RunComparison("runs", a, b)           # two runs side by side, changed values marked
    RegistryView("runs", "weather")       # versions, aliases, history; promote and roll back

They are built from the calls the CLI makes (``Store.list_runs`` for ``mlnb runs list``,
``Store.get`` for ``runs show``, :func:`mlnb.diff.diff_runs` for ``runs diff``, and
:class:`mlnb.registry.Registry` for ``mlnb models``), so a widget shows what the CLI prints.
Every view is rendered by a pure ``*_html`` function of the data, which is what the
widgets put on screen. Buttons that move an alias refuse to act without a reason and
record ``caused_by="widget:<user>"``.

Two helpers for notebooks sit here as well: :func:`table_scraps` stacks one table scrap
(such as drift's ``columns``) of many runs into a DataFrame, and :func:`lineage` follows a
model version back to the data it was trained on.

One module per panel: ``runs`` (the run browser), ``compare`` (the run comparison),
``registry_view`` (the registry view and lineage), ``notebooks`` (table scraps); ``render``
holds the HTML pieces they share.
"""

from mlnb.widgets.compare import RunComparison, comparison_html
from mlnb.widgets.notebooks import table_scraps
from mlnb.widgets.registry_view import (
    COMMON_ALIASES as COMMON_ALIASES,
    RegistryView,
    history_html,
    lineage,
    lineage_html,
    versions_html,
)
from mlnb.widgets.render import html_href
from mlnb.widgets.runs import ALL as ALL, STATUSES as STATUSES
from mlnb.widgets.runs import RunBrowser, filter_runs, run_details_html, runs_table_html

__all__ = [
    "RegistryView", "RunBrowser", "RunComparison", "comparison_html", "filter_runs", "history_html",
    "html_href", "lineage", "lineage_html", "run_details_html", "runs_table_html", "table_scraps",
    "versions_html",
]

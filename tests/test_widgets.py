"""The JupyterLab widgets, driven as a person would: set controls, click buttons, read the screen.

One store per module holds real runs: two runs of the echo fixture with different
parameters, a run of the raises fixture (failed), a trivial run, and one training run of the
train template. Registry tests work on a private copy of that store.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import date, timedelta

import pytest

from mlnb.registry import Registry
from mlnb.store import Store
from mlnb.widgets import RegistryView, RunBrowser, RunComparison, html_href, lineage, table_scraps

from .conftest import NOTEBOOKS, ROOT


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A store with five real runs; returns (store, {label: run})."""
    from mlnb.execute import run_template

    base = tmp_path_factory.mktemp("widgets")
    data = base / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    store = Store(base / "store")
    made = {
        "echo5": run_template(NOTEBOOKS / "echo.ipynb", {"n": 5, "data": str(data)}, store),
        "echo7": run_template(NOTEBOOKS / "echo.ipynb", {"n": 7, "name": "other", "data": str(data)}, store),
        "raises": run_template(NOTEBOOKS / "raises.ipynb", {"x": 3}, store),
        "trivial": run_template(NOTEBOOKS / "trivial.ipynb", {}, store),
        "train": run_template("train", {"data": str(ROOT / "data/reference.csv"), "hyperparameters": {"max_iter": 20}}, store),
    }
    assert made["train"].succeeded, made["train"].record["error"]
    assert not made["raises"].succeeded
    return store, made


@pytest.fixture
def registry_store(runs, tmp_path):
    """A writable copy of the module's store with model ``weather`` at versions 1 and 2."""
    store, made = runs
    shutil.copytree(store.path, tmp_path / "store")
    copy = Store(tmp_path / "store")
    with Registry(copy) as reg:
        reg.register(made["train"].id, "weather")
        reg.register(made["train"].id, "weather")
        reg.promote("weather", 1, "production", "first deployment", caused_by="test")
    return copy, made


def ids_in(html: str) -> list[str]:
    return re.findall(r"\d{8}T\d{6}Z-[a-z0-9-]+-[0-9a-f]{6}", html)


# -- RunBrowser -------------------------------------------------------------------------------


def test_browser_lists_every_run_newest_first(runs):
    store, made = runs
    browser = RunBrowser(store)
    assert browser.template.options == ("all", "echo", "raises", "train", "trivial")
    shown = [run_id for _, run_id in browser.select.options]
    assert shown == [r["id"] for r in store.list_runs()]
    assert set(shown) == {r.id for r in made.values()}
    assert "5 runs" in browser.table.value
    assert ids_in(browser.table.value) == shown


def test_browser_filters_by_template_and_status(runs):
    store, made = runs
    browser = RunBrowser(store)
    browser.template.value = "echo"
    assert {v for _, v in browser.select.options} == {made["echo5"].id, made["echo7"].id}
    assert "2 runs" in browser.table.value and made["trivial"].id not in browser.table.value
    browser.template.value = "all"
    browser.status.value = "failed"
    assert [v for _, v in browser.select.options] == [made["raises"].id]
    assert "failed" in browser.table.value
    browser.template.value = "echo"
    assert browser.select.options == ()
    assert "No runs match" in browser.table.value


def test_browser_filters_by_date(runs):
    store, made = runs
    day = date.fromisoformat(made["echo5"].record["started"][:10])
    browser = RunBrowser(store)
    browser.since.value = day + timedelta(days=1)
    assert browser.select.options == ()
    browser.since.value = day
    browser.until.value = day + timedelta(days=1)
    assert len(browser.select.options) == 5
    browser.since.value = None
    browser.until.value = day - timedelta(days=1)
    assert browser.select.options == ()


def test_selecting_a_run_shows_parameters_scraps_artifacts_and_a_link(runs, tmp_path):
    store, made = runs
    run = made["echo7"]
    browser = RunBrowser(store)
    assert browser.details_html == ""
    browser.select.value = run.id
    html = browser.details_html
    assert f"<h4>{run.id}</h4>" in html
    assert ">succeeded<" in html
    # parameters, with their values
    assert "<td>n</td><td>7</td>" in html and "<td>name</td><td>other</td>" in html
    # scalar and table scraps: the glued table's rows are shown
    assert "<td>data_lines</td><td>3</td>" in html
    assert "table 3 rows × 2 columns (scraps/table.parquet)" in html
    assert "<td>z</td>" in html
    # artifacts, by path
    assert "<td>out.txt</td>" in html and "<td>scraps/table.parquet</td>" in html
    # a working link to the rendered notebook
    href = re.search(r'<a href="([^"]+)">Open the rendered notebook', html).group(1)
    assert href == run.html_path.resolve().as_uri()  # the store is outside this project
    assert os.path.isfile(run.html_path)


def test_details_of_a_failed_run_show_the_error(runs):
    store, made = runs
    browser = RunBrowser(store)
    browser.select.value = made["raises"].id
    assert "error: exception in cell" in browser.details_html
    assert "ValueError: bad value 3" in browser.details_html


def test_filtering_away_the_selected_run_clears_the_details(runs):
    store, made = runs
    browser = RunBrowser(store)
    browser.select.value = made["trivial"].id
    assert made["trivial"].id in browser.details_html
    browser.template.value = "echo"
    assert browser.select.value is None and browser.details_html == ""


def test_refresh_shows_runs_recorded_after_the_browser_was_built(runs, tmp_path):
    from mlnb.execute import run_template

    store, _ = runs
    private = tmp_path / "store"
    shutil.copytree(store.path, private)
    browser = RunBrowser(private)
    assert len(browser.select.options) == 5
    new = run_template(NOTEBOOKS / "trivial.ipynb", {"x": 1}, private)
    browser.refresh_button.click()
    assert browser.select.options[0][1] == new.id
    assert "6 runs" in browser.table.value


@pytest.mark.parametrize("inside", [True, False])
def test_html_href_is_relative_inside_the_project(tmp_path, inside):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "mlnb.yaml").write_text("store: runs\n")
    target = (project if inside else tmp_path / "elsewhere") / "runs" / "r 1" / "notebook.html"
    target.parent.mkdir(parents=True)
    target.write_text("<html></html>")
    href = html_href(target, project / "notebooks")
    if inside:
        assert href == "../runs/r%201/notebook.html"
    else:
        assert href == target.as_uri()


# -- RunComparison ----------------------------------------------------------------------------


def test_comparison_marks_the_changed_values(runs):
    store, made = runs
    a, b = made["echo5"], made["echo7"]
    view = RunComparison(store, a.id, b.id)
    assert view.a.value == a.id and view.b.value == b.id
    rows = {(r.section, r.name): r for r in view.rows}
    assert rows[("parameters", "n")].changed and not rows[("parameters", "ratio")].changed
    html = view.table.value
    changed_row = re.search(r'<tr class="mlnb-changed"><td>≠</td><td>parameters</td><td>n</td><td>5</td><td>7</td></tr>', html)
    assert changed_row, html
    assert "<tr><td></td><td>parameters</td><td>ratio</td><td>0.5</td><td>0.5</td></tr>" in html
    n = sum(r.changed for r in view.rows)
    assert f"{n} of {len(view.rows)} values differ" in html


def test_comparison_can_hide_equal_values_and_follows_the_dropdowns(runs):
    store, made = runs
    view = RunComparison(store, made["echo5"].id, made["echo7"].id)
    view.only_changed.value = True
    assert "<td>ratio</td>" not in view.table.value and "<td>n</td>" in view.table.value
    view.b.value = made["echo5"].id
    assert "0 of" in view.table.value and '<tr class="mlnb-changed"' not in view.table.value
    view.b.value = made["raises"].id
    assert re.search(r"<td>status</td><td>succeeded</td><td>failed</td>", view.table.value)


def test_comparison_defaults_to_the_two_newest_runs_of_a_template(runs):
    store, _ = runs
    newest = store.list_runs()[0]
    same = [r["id"] for r in store.list_runs(template=newest["template"])]
    view = RunComparison(store)
    assert view.b.value == same[0]
    assert view.a.value == (same[1] if len(same) > 1 else same[0])


# -- RegistryView -----------------------------------------------------------------------------


def test_registry_view_shows_versions_aliases_history_and_lineage(registry_store):
    store, made = registry_store
    view = RegistryView(store, "weather")
    assert view.model.value == "weather"
    assert [v for _, v in view.version.options] == [2, 1]
    assert view.version.options[1][0] == "1 (production)"
    assert "accuracy" in view.versions_table.value and made["train"].id in view.versions_table.value
    assert "first deployment" in view.history_table.value
    view.version.value = 1
    assert made["train"].id in view.lineage.value
    assert "reference.csv" in view.lineage.value and "✗" not in view.lineage.value


def test_promote_refuses_an_empty_reason(registry_store):
    store, _ = registry_store
    view = RegistryView(store, "weather")
    view.version.value = 2
    view.reason.value = "   "
    view.promote_button.click()
    assert "Give a reason" in view.message.value
    with Registry(store) as reg:
        assert reg.aliases("weather") == {("weather", "production"): 1}
        assert len(reg.history("weather")) == 1


def test_promote_with_a_reason_moves_the_alias_and_records_who_and_why(registry_store):
    store, _ = registry_store
    view = RegistryView(store, "weather", user="ana")
    view.version.value = 2
    view.alias.value = "production"
    view.reason.value = "better recall on 2013 data"
    view.promote_button.click()
    assert "weather@production: 1 → 2" in view.message.value
    with Registry(store) as reg:
        assert reg.aliases("weather") == {("weather", "production"): 2}
        event = reg.history("weather")[-1]
    assert (event.action, event.from_version, event.to_version) == ("promote", 1, 2)
    assert event.reason == "better recall on 2013 data" and event.caused_by == "widget:ana"
    # the screen follows: the reason is cleared, the table and history are re-read
    assert view.reason.value == ""
    assert view.version.options[0][0] == "2 (production)"
    assert "better recall on 2013 data" in view.history_table.value and "widget:ana" in view.history_table.value


def test_promote_to_a_new_alias_and_to_the_current_version(registry_store):
    store, _ = registry_store
    view = RegistryView(store, "weather", user="ana")
    view.version.value = 1
    view.reason.value = "already there"
    view.promote_button.click()
    assert "already points at version 1; nothing recorded" in view.message.value
    view.alias.value = "challenger"
    view.version.value = 2
    view.reason.value = "shadow it"
    view.promote_button.click()
    with Registry(store) as reg:
        assert reg.aliases("weather")[("weather", "challenger")] == 2


def test_rollback_asks_for_a_reason_then_undoes_the_latest_move(registry_store):
    store, _ = registry_store
    with Registry(store) as reg:
        reg.promote("weather", 2, "production", "try v2", caused_by="test")
    view = RegistryView(store, "weather")
    view.rollback_button.click()
    assert "Give a reason" in view.message.value
    with Registry(store) as reg:
        assert reg.aliases("weather") == {("weather", "production"): 2}
    view.reason.value = "v2 misclassifies snow"
    view.rollback_button.click()
    assert "weather@production: 2 → 1 (rollback" in view.message.value
    with Registry(store) as reg:
        assert reg.aliases("weather") == {("weather", "production"): 1}
        event = reg.history("weather")[-1]
    assert (event.action, event.reason) == ("rollback", "v2 misclassifies snow")
    assert event.caused_by.startswith("widget:")


def test_rollback_past_the_first_assignment_says_why_and_changes_nothing(registry_store):
    store, _ = registry_store
    view = RegistryView(store, "weather")
    view.reason.value = "go back"
    view.rollback_button.click()
    assert "mlnb-failed" in view.message.value and "earlier version" in view.message.value
    with Registry(store) as reg:
        assert reg.aliases("weather") == {("weather", "production"): 1}


def test_registry_view_of_an_empty_store(tmp_path):
    view = RegistryView(tmp_path / "store")
    assert view.model.value is None
    assert "No model is registered" in view.versions_table.value
    view.reason.value = "x"
    view.promote_button.click()
    assert "No model" in view.message.value


def test_lineage_flags_changed_training_data(registry_store, tmp_path):
    store, made = registry_store
    # a training run of its own, on a data file we may change afterwards
    from mlnb.execute import run_template

    data = tmp_path / "train.csv"
    shutil.copy(ROOT / "data/reference.csv", data)
    run = run_template("train", {"data": str(data), "hyperparameters": {"max_iter": 10}}, store)
    with Registry(store) as reg:
        reg.register(run.id, "tampered")
        steps = lineage(reg, "tampered/1")
        assert [s["step"] for s in steps] == ["model version", "training run", "training data (data)"]
        assert all(s["intact"] for s in steps)
        data.write_text(data.read_text().replace("rain", "snow", 1))
        steps = lineage(reg, "tampered/1")
    assert steps[-1]["intact"] is False and steps[-1]["what"] == str(data.resolve())


# -- table_scraps ------------------------------------------------------------------------------


def test_table_scraps_stacks_one_table_of_many_runs(runs):
    store, made = runs
    frame = table_scraps(store, "table", template="echo")
    assert list(frame.columns) == ["run_id", "started", "a", "b"]
    assert list(frame["run_id"]) == [made["echo5"].id] * 3 + [made["echo7"].id] * 3
    assert str(frame["started"].dtype).startswith("datetime64")
    assert table_scraps(store, "nothing").empty


def test_table_scraps_keeps_a_meaningful_index(runs, tmp_path):
    import pandas as pd

    store, made = runs
    shutil.copytree(store.path, tmp_path / "store")
    table = tmp_path / "store" / made["echo7"].id / "artifacts" / "scraps" / "table.parquet"
    os.chmod(table.parent, 0o755)
    os.chmod(table, 0o644)
    pd.DataFrame({"a": [7, 8], "b": ["p", "q"]}).set_index("b").to_parquet(table)
    frame = table_scraps(tmp_path / "store", "table", template="echo")
    assert list(frame.columns) == ["run_id", "started", "a", "b"]
    assert frame[frame["run_id"] == made["echo7"].id][["a", "b"]].values.tolist() == [[7, "p"], [8, "q"]]
    assert len(frame) == 5

"""The run filter language: what each expression keeps, and the one-line errors of bad ones.

Every filter runs on both stores — SQLite's ``json_extract`` in the local one, PostgreSQL's
jsonb operators in a team store — and must keep the same runs on each.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone

import pytest

from mlnb.filters import FilterError, compile_filter, parse
from mlnb.store import Store, new_run_id

from .servers import fresh_database, s3_env, s3_server  # noqa: F401  (fixture)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

# name -> (template, started day, parameters, scraps, parent name, status)
RUNS = {
    "t1": ("train", 1, {"max_iter": 100, "lr": 0.1, "estimator": "sklearn.ensemble.RandomForestClassifier"},
           {"metrics": {"accuracy": 0.91, "f1": 0.88}, "n_train": 900}, "p", "succeeded"),
    "t2": ("train", 2, {"max_iter": 50, "lr": 0.3, "estimator": "sklearn.linear_model.LogisticRegression"},
           {"metrics": {"accuracy": 0.72, "f1": 0.70}, "n_train": 900}, "p", "succeeded"),
    "t3": ("train", 3, {"max_iter": 400, "lr": 0.1, "estimator": "sklearn.ensemble.RandomForestClassifier"},
           {"metrics": {"accuracy": "n/a"}}, None, "failed"),
    "d1": ("drift", 4, {"current": "q1.csv", "drift_share": 0.5}, {"dataset_drift": True, "drift_share": 0.6}, "p",
           "succeeded"),
    "d2": ("drift", 5, {"current": "q2.csv", "drift_share": 0.5}, {"dataset_drift": False, "drift_share": 0.2}, None,
           "succeeded"),
    "p": ("pipeline", 0, {"current": "q1.csv"}, {"outcome": "promoted", "decision": {"outcome": "promoted"}}, None,
          "succeeded"),
}


@pytest.fixture(scope="module", params=["local", "team"])
def runs(request, tmp_path_factory):
    """A store with the runs above, local or team; returns (store, {name: run id})."""
    with contextlib.ExitStack() as stack:
        if request.param == "local":
            store = Store(tmp_path_factory.mktemp("filters") / "store")
            store.path.mkdir()
        else:
            store = stack.enter_context(_team_store(request, tmp_path_factory))
        yield _write(store)


@contextlib.contextmanager
def _team_store(request, tmp_path_factory):
    server = request.getfixturevalue("s3_server")
    with fresh_database() as url, pytest.MonkeyPatch.context() as env:
        for key, value in {**s3_env(server.endpoint_url), "MLNB_DATABASE": url,
                           "MLNB_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}.items():
            env.setenv(key, value)
        store = Store(f"s3://{server.create_bucket()}/runs")
        store.init()
        yield store


def _write(store):
    from mlnb.ui.sample import _Writer

    writer = _Writer(store)
    ids = {name: new_run_id(spec[0], now=T0.replace(day=spec[1] + 1)) for name, spec in RUNS.items()}
    for name, (template, day, params, scraps, parent, status) in RUNS.items():
        writer.write(template, T0.replace(day=day + 1), params, scraps, parent=ids[parent] if parent else None,
                     status=status, run_id=ids[name], tags={"point": day})
    store.sync_index(force=True)
    return store, ids


KEEPS = [
    ("template = 'train'", {"t1", "t2", "t3"}),
    ("template == \"drift\"", {"d1", "d2"}),
    ("template != 'train'", {"d1", "d2", "p"}),
    ("template = 'train' and metrics.accuracy > 0.8", {"t1"}),
    ("metrics.f1 >= 0.70", {"t1", "t2"}),
    # a text scrap is not a number: it neither passes nor fails a numeric comparison
    ("metrics.accuracy < 1", {"t1", "t2"}),
    ("metrics.accuracy = 'n/a'", {"t3"}),
    ("params.max_iter >= 100 and params.lr = 0.1", {"t1", "t3"}),
    ("params.estimator ~ 'forest'", {"t1", "t3"}),
    ("params.max_iter in (50, 400)", {"t2", "t3"}),
    ("status = 'failed'", {"t3"}),
    ("status = 'succeeded' and template = 'train'", {"t1", "t2"}),
    ("scrap.dataset_drift = true", {"d1"}),
    ("scrap.dataset_drift = false", {"d2"}),
    ("scrap.drift_share > 0.5 or metrics.f1 < 0.75", {"d1", "t2"}),
    ("not template = 'train'", {"d1", "d2", "p"}),
    ("template = 'drift' and not (scrap.drift_share < 0.5)", {"d1"}),
    ("scrap.decision.outcome = 'promoted'", {"p"}),
    ("scrap.n_train = null", {"d1", "d2", "p", "t3"}),
    ("scrap.n_train != null", {"t1", "t2"}),
    # a missing parameter is never equal to a value, so != keeps it
    ("params.lr != 0.1", {"t2", "d1", "d2", "p"}),
    ("parent = null", {"t3", "d2", "p"}),
    ("started >= '2026-03-04' and started < '2026-03-06'", {"t3", "d1"}),
    ("time < '2026-03-02'", {"p"}),
    ("duration > 100", set()),
    ("tags.point = 4", {"d1"}),
    ("TEMPLATE = 'train' AND metrics.f1 > 0.8", {"t1"}),
    ("   ", {"t1", "t2", "t3", "d1", "d2", "p"}),
]


@pytest.mark.parametrize("expr, expected", KEEPS)
def test_filter_keeps_exactly_the_matching_runs(runs, expr, expected):
    store, ids = runs
    got = {i["id"] for i in store.list_runs(filter=expr)}
    assert got == {ids[n] for n in expected}


def test_filter_on_parent_names_the_pipeline(runs):
    store, ids = runs
    got = {i["id"] for i in store.list_runs(filter=f"parent = '{ids['p']}'")}
    assert got == {ids["t1"], ids["t2"], ids["d1"]}


def test_store_runs_dataframe_takes_the_same_filter(runs):
    store, ids = runs
    frame = store.runs(filter="template = 'train' and metrics.f1 > 0.5")
    assert set(frame["id"]) == {ids["t1"], ids["t2"]}


ERRORS = [
    ("template = ", 12, "expected a value"),
    ("template = 'train", 12, "no closing quote"),
    ("foo = 1", 1, r"expected a field \(template, status"),
    ("params = 1", 1, "a name after 'params.'"),
    ("metrics.f1 >", 13, "expected a value"),
    ("metrics.f1 0.5", 12, r"expected an operator"),
    ("template = 'train' metrics.f1 > 0.5", 20, "expected 'and', 'or' or the end"),
    ("(template = 'train'", 20, r"expected '\)'"),
    ("status = 'ok'", 10, "'succeeded' or 'failed' for status"),
    ("duration > 'long'", 12, "a number of seconds for duration"),
    ("template = 3", 12, "'text' for template"),
    ("metrics.f1 > true", 14, "a number or 'text' after >"),
    ("params.name ~ 3", 15, "'text' after ~"),
    ("params.x in 1", 13, r"'\(' and a list of values"),
    ("template = 'a' and", 19, "expected a field"),
    ("metrics.f1 > 0.5 $", 18, "found '\\$'"),
    ("", 1, "expected a field"),
]


@pytest.mark.parametrize("expr, position, message", ERRORS)
def test_bad_filter_is_one_line_naming_the_position_and_what_was_expected(expr, position, message):
    with pytest.raises(FilterError, match=message) as info:
        parse(expr)
    assert info.value.position == position
    assert f"at position {position}:" in str(info.value)
    assert "\n" not in str(info.value)


def test_values_are_bound_never_spliced_into_sql(runs):
    store, ids = runs
    assert store.list_runs(filter="template = 'x\\' OR 1=1 --'") == []
    assert {i["id"] for i in store.list_runs(filter="params.current = 'q\\1.csv'")} == {ids["d1"], ids["p"]}
    assert store.list_runs(filter="params.current = \"q1.csv') OR ('1'='1\"") == []


def test_runs_list_filter_from_the_command_line(runs, cli):
    store, ids = runs
    done = cli("runs", "list", "--store", store.location, "--json", "--filter",
               "template = 'train' and metrics.accuracy > 0.8 and params.max_iter >= 100")
    assert done.returncode == 0, done.stderr
    assert [i["id"] for i in json.loads(done.stdout)] == [ids["t1"]]


def test_runs_list_bad_filter_exits_2_with_one_line(runs, cli):
    store, _ = runs
    done = cli("runs", "list", "--store", store.location, "--filter", "metrics.f1 >> 0.5")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mlnb: error: filter 'metrics.f1 >> 0.5' at position 13: expected a value")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_compiled_sql_binds_every_value_and_holds_no_placeholder_characters(dialect):
    sql, args = compile_filter("params.note ~ '50% off?' and template = 'a?b' and metrics.f1 > 0.5", dialect)
    assert "50% off?" in args and "a?b" in args and 0.5 in args
    assert "%" not in sql and sql.count("?") == len(args)


def test_an_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="unknown SQL dialect 'mysql'; known: sqlite, postgresql"):
        compile_filter("template = 'a'", "mysql")

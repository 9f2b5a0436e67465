"""Pipeline decisions without a kernel: triggers, the promotion rule, config errors, webhooks."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from mlnb.config import load_config, parse_config
from mlnb.exceptions import ConfigError
from mlnb.pipeline import evaluate_triggers, promotion_decision, send_webhook
from mlnb.project import EXAMPLE_CONFIG

from .conftest import ROOT

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def config(**sections):
    data = {
        "model": {"name": "weather", "target": "weather"},
        "data": {"reference": "r.csv", "current": "b/*.csv"},
        "triggers": {"drift": True, "performance": {"metric": "f1", "min": 0.6, "max_drop": 0.05},
                     "schedule": {"max_age_days": 30}},
        "promotion": {"metric": "f1", "min_gain": 0.01},
    }
    data.update(sections)
    return parse_config(data)


def production(age_days=1.0, f1=0.8):
    return {"version": 3, "metrics": {"f1": f1}, "created": (NOW - timedelta(days=age_days)).isoformat()}


def fired(triggers):
    return sorted(t.name for t in triggers if t.fired)


@pytest.mark.parametrize(
    "drift, prod, current, expected",
    [
        ({"dataset_drift": False, "drift_share": 0.2}, production(), {"f1": 0.79}, []),
        ({"dataset_drift": True, "drift_share": 0.6}, production(), {"f1": 0.79}, ["drift"]),
        ({"dataset_drift": False, "drift_share": 0.2}, production(), {"f1": 0.55}, ["performance_drop", "performance_min"]),
        ({"dataset_drift": False, "drift_share": 0.2}, production(), {"f1": 0.74}, ["performance_drop"]),
        ({"dataset_drift": False, "drift_share": 0.2}, production(age_days=31), {"f1": 0.8}, ["schedule"]),
        ({"dataset_drift": False, "drift_share": 0.2}, production(age_days=29.9), {"f1": 0.8}, []),
        ({"dataset_drift": False, "drift_share": 0.0}, None, None, ["bootstrap"]),
    ],
)
def test_each_trigger_fires_on_its_own_numbers(drift, prod, current, expected):
    triggers = evaluate_triggers(config(), drift=drift, production=prod, current_metrics=current, now=NOW)
    assert fired(triggers) == expected
    for t in triggers:
        assert t.reason  # every verdict says why


def test_unlabelled_batch_reports_performance_as_not_measured():
    triggers = evaluate_triggers(config(), drift={"dataset_drift": False, "drift_share": 0.1},
                                 production=production(), current_metrics=None, now=NOW)
    perf = [t for t in triggers if t.name == "performance"]
    assert perf and not perf[0].fired and "no labels" in perf[0].reason


def test_disabled_drift_trigger_is_not_evaluated():
    cfg = config(triggers={"drift": False})
    triggers = evaluate_triggers(cfg, drift={"dataset_drift": True, "drift_share": 1.0},
                                 production=production(), current_metrics={"f1": 0.8}, now=NOW)
    assert "drift" not in [t.name for t in triggers]


@pytest.mark.parametrize(
    "challenger, champion, passed, promote, why",
    [
        ({"f1": 0.82}, {"f1": 0.80}, True, True, "gain +0.020"),
        ({"f1": 0.805}, {"f1": 0.80}, True, False, "does not pass min_gain +0.010"),
        ({"f1": 0.80}, {"f1": 0.80}, True, False, "gain +0.000"),
        ({"f1": 0.70}, None, True, True, "first model"),
        ({"f1": 0.50}, None, True, False, "below the minimum 0.600"),
        ({"f1": 0.99}, {"f1": 0.80}, False, False, "validation did not pass"),
    ],
)
def test_promotion_rule(challenger, champion, passed, promote, why):
    ok, reason = promotion_decision(config(), challenger, champion, passed)
    assert ok is promote
    assert why in reason


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": {"name": "Weather", "target": "w"}}, "model.name: must match"),
        ({"model": {"name": "w"}}, "model.target: required key is missing"),
        ({"model": {"name": "w", "target": "t", "task": "ranking"}}, "model.task: 'ranking' is not allowed"),
        ({"model": {"name": "w", "target": "t", "estimator": "os.system"}}, "model.estimator: must be a scikit-learn import path"),
        ({"drift": {"drift_share": 1.5}}, "drift.drift_share"),
        ({"alerts": {"webhook": "ftp://x"}}, "alerts.webhook: must be an http"),
        ({"triggers": {"drfit": True}}, "triggers.drfit: unknown key; allowed: drift, performance, estimated_performance, schedule"),
        ({"validation": {"stop_on_failure": True}}, "validation.stop_on_failure: unknown key; allowed: schema, reject_on"),
        ({"validation": {"reject_on": "warnings"}}, "validation.reject_on: 'warnings' is not allowed"),
        ({"promotion": {"metric": "rmse"}}, "promotion.metric: 'rmse' is not a classification metric; allowed: accuracy"),
        ({"model": {"name": "w", "target": "t", "task": "regression"}, "promotion": {"metric": "f1"}},
         "promotion.metric: 'f1' is not a regression metric; allowed: r2, mae, rmse"),
        ({"model": {"name": "w", "target": "t", "task": "regression"},
          "triggers": {"performance": {"metric": "rmse", "min": 3.0}}},
         "triggers.performance.min: rmse is a metric where lower is better; use max instead"),
        ({"model": {"name": "w", "target": "t", "task": "regression"},
          "triggers": {"performance": {"metric": "mae", "max_drop": 0.1}}},
         "triggers.performance.max_drop: mae is a metric where lower is better; use max_rise instead"),
        ({"triggers": {"performance": {"metric": "accuracy", "max": 0.9}}},
         "triggers.performance.max: accuracy is a metric where higher is better; use min instead"),
        ({"model": {"name": "w", "target": "t", "features": []}}, "model.features: must name at least one column"),
        ({"training": {"policy": "some"}}, "training.policy: 'some' is not allowed"),
    ],
)
def test_config_errors_name_the_key(change, message):
    base = {"model": {"name": "w", "target": "t"}, "data": {"reference": "r", "current": "c"}}
    base.update(change)
    with pytest.raises(ConfigError, match=message):
        parse_config(base)


def test_repository_config_is_the_example_that_init_writes():
    assert (ROOT / "mlnb.yaml").read_text() == EXAMPLE_CONFIG
    cfg = load_config(ROOT / "mlnb.yaml")
    assert cfg.model.name == "weather" and cfg.path(cfg.data.reference).is_file()


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    handler = type("Hook", (_Hook,), {"received": [], "status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_webhook_is_posted_as_slack_compatible_json(hook_server):
    server, handler = hook_server
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    result = send_webhook(url, {"text": "hello", "event": "promoted"}, timeout=2, retries=1)
    assert result == {"delivered": True, "attempts": 1, "error": None}
    assert handler.received == [{"text": "hello", "event": "promoted"}]


def test_webhook_retries_a_bounded_number_of_times_then_gives_up(hook_server):
    server, handler = hook_server
    handler.status = 503
    sleeps = []
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    result = send_webhook(url, {"text": "x"}, timeout=2, retries=2, sleep=sleeps.append)
    assert result["delivered"] is False and result["attempts"] == 3 and result["error"] == "HTTP 503"
    assert len(handler.received) == 3 and sleeps == [0.5, 1.0]


def test_webhook_that_is_down_never_raises():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = send_webhook(f"http://127.0.0.1:{port}/", {"text": "x"}, timeout=1, retries=1, sleep=lambda s: None)
    assert result["delivered"] is False and result["attempts"] == 2 and result["error"]


def test_ci_workflow_example_runs_the_pipeline_on_a_schedule():
    import yaml

    workflow = yaml.safe_load((ROOT / ".github/workflows/retrain.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"] == "0 6 * * *"
    steps = workflow["jobs"]["pipeline"]["steps"]
    script = next(s["run"] for s in steps if s.get("id") == "pipeline")
    assert "mlnb pipeline run" in script
    # every documented outcome code is handled: 0, 3, 4, 5 pass; anything else fails the job
    assert "0|3|4|5) exit 0" in script
    from mlnb.pipeline import OUTCOME_EXIT

    assert {0, 3, 4, 5} == {code for outcome, code in OUTCOME_EXIT.items() if outcome != "error"}


def test_every_outcome_has_one_exit_code_and_a_description_the_cli_can_show():
    from mlnb.pipeline import OUTCOME_EXIT, OUTCOMES

    assert {outcome: code for outcome, (code, _) in OUTCOMES.items()} == OUTCOME_EXIT
    assert set(OUTCOMES) == {"nothing_needed", "skipped", "promoted", "not_promoted", "rejected", "error"}
    assert all(text and "\n" not in text for _, text in OUTCOMES.values())


def test_readme_shows_cron_and_ci_scheduling():
    readme = (ROOT / "README.md").read_text()
    assert "crontab" in readme and "mlnb pipeline run" in readme
    assert ".github/workflows/retrain.yml" in readme


def regression(**sections):
    data = {
        "model": {"name": "houses", "task": "regression", "target": "price"},
        "data": {"reference": "r.csv", "current": "b/*.csv"},
        "triggers": {"performance": {"metric": "rmse", "max": 2.0, "max_rise": 0.5}},
        "promotion": {"metric": "rmse", "min_gain": 0.0},
    }
    data.update(sections)
    return parse_config(data)


def test_regression_defaults_are_the_tasks_own():
    cfg = parse_config({"model": {"name": "h", "task": "regression", "target": "y"},
                        "data": {"reference": "r", "current": "c"}})
    assert cfg.promotion.metric == cfg.triggers.performance.metric == "rmse"
    assert cfg.model.estimator == "sklearn.ensemble.HistGradientBoostingRegressor"


@pytest.mark.parametrize(
    "challenger, champion, promote, why",
    [
        (1.0, 5.0, True, "gain +4.000"),  # a lower RMSE is better
        (5.0, 1.0, False, "gain -4.000 does not pass"),
        (2.0, 2.0, False, "gain +0.000: a tie keeps the champion (a negative promotion.min_gain lets ties promote)"),
    ],
)
def test_promotion_of_a_regressor_follows_rmse_downwards(challenger, champion, promote, why):
    ok, reason = promotion_decision(regression(), {"rmse": challenger}, {"rmse": champion}, True)
    assert ok is promote, reason
    assert why in reason and "lower is better" in reason


def test_first_regressor_above_the_maximum_is_not_promoted():
    ok, reason = promotion_decision(regression(), {"rmse": 2.5}, None, True)
    assert not ok and "above the maximum 2.000" in reason


@pytest.mark.parametrize(
    "current, expected",
    [
        ({"rmse": 1.2}, []),
        ({"rmse": 1.6}, ["performance_rise"]),  # 0.6 worse than 1.0 at training
        ({"rmse": 2.4}, ["performance_max", "performance_rise"]),
        ({"rmse": 0.5}, []),  # better than at training: nothing fires
    ],
)
def test_regression_triggers_fire_when_the_loss_rises(current, expected):
    prod = {"version": 2, "metrics": {"rmse": 1.0}, "created": NOW.isoformat()}
    triggers = evaluate_triggers(regression(), drift=None, production=prod, current_metrics=current, now=NOW)
    assert fired(triggers) == expected


def test_a_check_across_sections_is_one_short_line_naming_its_key():
    data = {"model": {"name": "h", "task": "regression", "target": "y"}, "data": {"reference": "r", "current": "c"},
            "triggers": {"performance": {"metric": "rmse", "min": 3.0}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert str(info.value) == ("mlnb.yaml: triggers.performance.min: rmse is a metric where lower is better; "
                               "use max instead")


def test_a_misspelt_section_is_named_before_the_section_it_hides():
    with pytest.raises(ConfigError, match=r"^mlnb.yaml: modle: unknown key; allowed: model, data, training, "
                                          r"validation, drift, triggers, promotion, alerts, kernels, http, store \(and 1 more\)$"):
        parse_config({"modle": {"name": "h", "target": "y"}, "data": {"reference": "r", "current": "c"}})

"""mlnb serve against a real uvicorn server on 127.0.0.1, started by the tests as a user would.

Two models are trained once per session by the train template and registered as
``weather/1`` (gradient boosting; ``challenger``) and ``weather/2`` (logistic regression;
``production``, promoted after version 1, so a rollback returns to 1). Each server gets a
private copy of that store.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from mlnb import serve
from mlnb.registry import Registry

from .conftest import ROOT

pytestmark = pytest.mark.xdist_group("serve")

REFERENCE = ROOT / "data/reference.csv"
BATCH = ROOT / "data/batches/2013-q1.csv"
FEATURES = ["precipitation", "temp_max", "temp_min", "wind"]


# -- the trained store and servers ---------------------------------------------------------------


def _train_and_register(path: Path) -> None:
    from mlnb.execute import run_template

    hgb = run_template("train", {"data": str(REFERENCE), "features": FEATURES, "hyperparameters": {"max_iter": 30}},
                       path)
    logreg = run_template("train", {"data": str(REFERENCE), "features": FEATURES,
                                    "estimator": "sklearn.linear_model.LogisticRegression"}, path)
    assert hgb.succeeded and logreg.succeeded, (hgb.record["error"], logreg.record["error"])
    with Registry(path) as registry:
        registry.register(hgb.id, "weather")
        registry.register(logreg.id, "weather")
        registry.promote("weather", 1)
        registry.promote("weather", 2)
        registry.set_alias("weather", "challenger", 1)
    with sqlite3.connect(path / "mlnb.sqlite") as db:  # one self-contained file, safe to copy
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def shared_trained_store(tmp_path_factory, worker_id) -> Path:
    """The session's trained and registered store; under xdist the first worker makes it."""
    if worker_id == "master":
        path = tmp_path_factory.getbasetemp() / "serve-trained" / "store"
        if not path.is_dir():
            _train_and_register(path)
        return path
    shared = tmp_path_factory.getbasetemp().parent / "serve-trained"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").is_file():
            _train_and_register(shared / "store")
            (shared / "done").write_text("ok")
    return shared / "store"


def copy_store(source: Path, target: Path) -> Path:
    """A private, writable copy of a trained store (run files stay read-only)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".staging", "shadow"))
    for name in os.listdir(target):
        if name.startswith("mlnb.sqlite"):
            os.chmod(target / name, 0o644)
    return target


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, worker_id) -> Path:
    return shared_trained_store(tmp_path_factory, worker_id)


@pytest.fixture(scope="session")
def models(trained_store):
    with Registry(trained_store) as registry:
        return {1: registry.load("weather/1"), 2: registry.load("weather/2")}


@pytest.fixture(scope="session")
def rows() -> pd.DataFrame:
    return pd.read_csv(BATCH)[FEATURES]


class Server:
    """``mlnb serve`` in a subprocess, on a free port of 127.0.0.1."""

    def __init__(self, store: Path, *args: str, log_path: Path):
        self.store = store
        self.log_path = log_path
        self._log = open(log_path, "w")
        env = {k: v for k, v in os.environ.items() if k not in ("MLNB_STORE", "PROMETHEUS_MULTIPROC_DIR")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlnb", "serve", *args, "--store", str(store), "--port", "0", "--no-access-log"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.url = self._wait_ready()
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def _wait_ready(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mlnb serve exited with {self.proc.returncode}:\n{self.log}")
            if url is None:
                found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", self.log)
                url = found.group(1) if found else None
            if url is not None:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        return url
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"mlnb serve not ready after {timeout} s:\n{self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def predict(self, frame: pd.DataFrame, **kwargs) -> httpx.Response:
        return self.client.post("/predict", json={"rows": frame.to_dict("records")}, **kwargs)

    def metrics(self) -> dict:
        """``{(sample name, sorted labels): value}`` from /metrics."""
        text = self.client.get("/metrics").text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
        }


@pytest.fixture(scope="session")
def server(trained_store, tmp_path_factory):
    """One server with a shadow, shared by the read-only tests (session scope: started once
    per worker even when xdist interleaves other modules' tests)."""
    base = tmp_path_factory.mktemp("served")
    store = copy_store(trained_store, base / "store")
    srv = Server(store, "weather@production", "--shadow", "weather@challenger", log_path=base / "server.log")
    yield srv
    srv.stop()


# -- answers -------------------------------------------------------------------------------------


def test_predictions_equal_model_predict_on_the_same_rows(server, models, rows):
    batch = rows.head(60)
    response = server.predict(batch)
    assert response.status_code == 200, response.text
    body = response.json()
    from mlnb.registry import Registry

    with Registry(server.store) as registry:
        run_id = registry.get("weather/2").run_id
    assert body["model"] == {"uri": "weather@production", "name": "weather", "version": 2, "run_id": run_id}
    assert response.headers["x-model-version"] == "2" and response.headers["x-model-name"] == "weather"
    expected = models[2].predict(batch)
    proba = models[2].predict_proba(batch)
    assert [p["prediction"] for p in body["predictions"]] == expected.tolist()
    got = np.array([[p["probabilities"][str(c)] for c in models[2].classes_] for p in body["predictions"]])
    np.testing.assert_array_equal(got, proba)  # JSON floats round-trip exactly
    # one row at a time gives the same answers
    for i in range(5):
        single = server.predict(batch.iloc[[i]]).json()
        assert single["predictions"][0]["prediction"] == expected[i]


def test_fields_that_are_not_features_are_ignored(server, models, rows):
    record = {**rows.iloc[0].to_dict(), "date": "2013-01-01", "id": 17}
    response = server.client.post("/predict", json={"rows": [record]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["prediction"] == models[2].predict(rows.head(1))[0]


def test_health_names_both_versions_and_the_client_request_id_is_echoed(server, rows):
    health = server.client.get("/health").json()
    assert health["model"]["version"] == 2 and health["shadow"]["version"] == 1
    assert health["shadow"]["uri"] == "weather@challenger"
    response = server.predict(rows.head(1), headers={"X-Request-Id": "order-42"})
    assert response.headers["x-request-id"] == "order-42" and response.json()["request_id"] == "order-42"


GOOD = {"precipitation": 0.0, "temp_max": 12.8, "temp_min": 5.0, "wind": 4.7}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"rows": [{k: v for k, v in GOOD.items() if k != "wind"}]}, "wind"),  # missing
        ({"rows": [{**GOOD, "temp_max": "12.8"}]}, "temp_max"),  # a number as text
        ({"rows": [{**GOOD, "temp_min": None}]}, "temp_min"),  # null
        ({"rows": [{**GOOD, "precipitation": True}]}, "precipitation"),  # a bool
        ({"rows": [{**GOOD, "wind": {"speed": 3}}]}, "wind"),  # an object
        ({"rows": [GOOD, {**GOOD, "wind": [1]}]}, "wind"),  # second row wrong
        ({"rows": []}, "rows"),
        ({"rows": GOOD}, "rows"),
        ({"data": [GOOD]}, "rows"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(server, body, field):
    response = server.client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    locations = [e["loc"] for e in response.json()["detail"]]
    assert any(field in loc for loc in locations), locations
    assert all(loc[0] == "body" for loc in locations)


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"[1, 2]", b'{"rows": [{"wind": 1e999}]}', b"\xff\xfe"])
def test_malformed_bodies_are_422_not_500(server, raw):
    response = server.client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_metrics_counters_move(server, rows):
    before = server.metrics()
    answers = [server.predict(rows.iloc[[i]]).json()["predictions"][0]["prediction"] for i in range(3)]
    assert server.client.post("/predict", json={"rows": [{}]}).status_code == 422
    after = server.metrics()

    def delta(sample, **labels):
        key = (sample, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("mlnb_predict_requests_total", code="200") == 3
    assert delta("mlnb_predict_requests_total", code="422") == 1
    assert delta("mlnb_predict_errors_total", kind="invalid_input") == 1
    assert delta("mlnb_predict_latency_seconds_count") == 4
    assert delta("mlnb_predicted_rows_total", name="weather", version="2") == 3
    for label in set(answers):
        labels = {"class": label, "name": "weather", "version": "2"}
        assert delta("mlnb_predictions_total", **labels) == answers.count(label)
    version = "mlnb_served_version"
    assert after[(version, (("name", "weather"), ("role", "primary"), ("uri", "weather@production")))] == 2
    assert after[(version, (("name", "weather"), ("role", "shadow"), ("uri", "weather@challenger")))] == 1


def _log_lines(path: Path, ids: set[str], expected: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while time.monotonic() < deadline:
        if path.is_file():
            found = [e for e in map(json.loads, path.read_text().splitlines()) if e["request_id"] in ids]
            if len(found) >= expected:
                return found
        time.sleep(0.1)
    raise AssertionError(f"{len(found)} of {expected} shadow lines after {timeout} s")


def test_shadow_log_rows_match_the_requests(server, models, rows):
    sent = {}
    for n in (1, 3, 2):
        request_id = f"test-{uuid.uuid4().hex[:8]}"
        batch = rows.sample(n, random_state=n)
        response = server.predict(batch, headers={"X-Request-Id": request_id})
        assert response.status_code == 200
        sent[request_id] = (batch, response.json())
    log_path = server.store / "shadow" / "weather.jsonl"
    lines = _log_lines(log_path, set(sent), expected=6)
    assert len(lines) == 6
    for entry in lines:
        batch, answer = sent[entry["request_id"]]
        row = batch.iloc[entry["row"]]
        assert entry["features"] == {f: float(row[f]) for f in FEATURES}
        assert entry["primary"]["version"] == 2 and entry["shadow"]["version"] == 1
        assert entry["primary"]["prediction"] == answer["predictions"][entry["row"]]["prediction"]
        assert entry["shadow"]["prediction"] == models[1].predict(batch.iloc[[entry["row"]]])[0]
        assert entry["shadow"]["error"] is None
        assert entry["primary"]["latency_ms"] > 0 and entry["shadow"]["latency_ms"] > 0
        assert entry["primary"]["rows"] == len(batch)
    table = serve.read_shadow_log(log_path).table
    assert set(sent) <= set(table["request_id"])


# -- no input makes a 500 -------------------------------------------------------------------------


def _json_values():
    scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
               | st.text(max_size=20))
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )


def _rows_strategy(features: list[str], kinds: dict[str, str]):
    right = {"number": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**6, 10**6),
             "string": st.text(max_size=20)}

    def value(feature):
        return right.get(kinds[feature], _json_values()) | _json_values()

    row = st.fixed_dictionaries({}, optional={f: value(f) for f in features}).flatmap(
        lambda r: st.dictionaries(st.text(max_size=8), _json_values(), max_size=2).map(lambda extra: {**extra, **r})
    )
    return st.one_of(
        st.fixed_dictionaries({"rows": st.lists(row, min_size=0, max_size=4)}),
        st.lists(st.fixed_dictionaries({f: right.get(kinds[f], _json_values()) for f in features}),
                 min_size=1, max_size=3).map(lambda rs: {"rows": rs}),
        _json_values(),
    )


def test_generated_requests_from_the_openapi_document_never_get_a_500(server):
    document = server.client.get("/openapi.json").json()
    ref = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    body_schema = schemas[ref.rsplit("/", 1)[1]]
    row_schema = schemas[body_schema["properties"]["rows"]["items"]["$ref"].rsplit("/", 1)[1]]
    features = row_schema["required"]
    assert features == FEATURES
    kinds = {f: row_schema["properties"][f]["type"] for f in features}
    seen = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(_rows_strategy(features, kinds))
    def check(body):
        response = server.client.post("/predict", json=body)
        seen.add(response.status_code)
        assert response.status_code in (200, 422), (body, response.status_code, response.text)
        if response.status_code == 200:
            assert len(response.json()["predictions"]) == len(body["rows"])
            assert response.json()["model"]["version"] == 2
        else:
            assert all(e["loc"][0] == "body" for e in response.json()["detail"])

    check()
    assert seen == {200, 422}  # the generator reached both answers


# -- following the registry ------------------------------------------------------------------------


def test_rollback_during_a_stream_switches_versions_within_5_s_without_failing_a_request(
    trained_store, tmp_path, models, rows, cli
):
    store = copy_store(trained_store, tmp_path / "store")
    srv = Server(store, "weather@production", log_path=tmp_path / "server.log")
    # a row the two versions answer differently, so the prediction itself shows who answered
    preds = {v: m.predict(rows) for v, m in models.items()}
    differ = int(np.flatnonzero(preds[1] != preds[2])[0])
    probe = rows.iloc[[differ]]
    results: list[tuple[float, int, int, str]] = []  # (sent at, status, version, prediction)
    stop = threading.Event()

    def stream():
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    r = client.post("/predict", json={"rows": probe.to_dict("records")})
                except httpx.HTTPError as exc:
                    results.append((t, -1, -1, repr(exc)))
                    continue
                body = r.json() if r.status_code == 200 else {}
                results.append((t, r.status_code, body.get("model", {}).get("version", -1),
                                body.get("predictions", [{}])[0].get("prediction")))

    threads = [threading.Thread(target=stream) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while sum(1 for r in results if r[2] == 2) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        rolled = cli("models", "rollback", "weather", "--store", str(store), "--reason", "test")
        assert rolled.returncode == 0, rolled.stderr
        moved_at = time.monotonic()
        while time.monotonic() < moved_at + 8:
            if sum(1 for r in results if r[0] > moved_at and r[2] == 1) >= 20:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        srv.stop()
    failed = [r for r in results if r[1] != 200]
    assert not failed, failed[:5]
    first_new = min(r[0] for r in results if r[2] == 1)
    assert first_new - moved_at < 5, f"version 1 answered {first_new - moved_at:.2f} s after the rollback"
    assert all(r[3] == preds[r[2]][differ] for r in results), "a response named a version that did not answer"
    switch = max(r[0] for r in results if r[2] == 2)
    assert switch < first_new + 1, "version 2 kept answering after version 1 took over"
    assert "moved: now serving weather/1 (was weather/2)" in srv.log


def test_a_version_that_cannot_be_loaded_is_not_served(trained_store, tmp_path):
    store = copy_store(trained_store, tmp_path / "store")
    with Registry(store) as registry:
        primary = serve.ModelSlot("primary", serve.load_served(registry, "weather@production"))
        errors = []
        follower = serve.RegistryFollower(store, [primary], on_error=lambda slot, v, exc: errors.append((v, exc)))
        artifact = registry.artifact_path(registry.get("weather/1"))
        os.chmod(artifact.parent, 0o755)
        os.chmod(artifact, 0o644)
        artifact.write_bytes(artifact.read_bytes() + b"tampered")
        registry.rollback("weather")  # production -> 1, whose file no longer matches
        assert follower.check(registry) == []
        assert primary.current.version == 2
        assert errors and errors[0][0] == 1 and "changed since it was registered" in str(errors[0][1])
        registry.promote("weather", 2)  # back to a loadable version: nothing to switch
        assert follower.check(registry) == [] and primary.current.version == 2


def test_serve_refuses_an_unknown_model_with_exit_2(trained_store, cli):
    result = cli("serve", "weather@staging", "--store", str(trained_store), "--port", "0")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and "has no alias 'staging'" in lines[0] and "production -> 2" in lines[0]


# -- request size and token --------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_a_token_is_needed_except_for_health(trained_store, tmp_path, rows):
    """--max-request-bytes: a declared Content-Length over it is refused at once, a chunked
    body as soon as it passes it; --token-file: 401 without the token or with a wrong one
    (any bytes), /health stays open for load balancers."""
    from fastapi.testclient import TestClient

    store = copy_store(trained_store, tmp_path / "store")
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    app = serve.create_app("weather@production", store=str(store), prediction_log="off", max_request_bytes=2000,
                           token_file=str(token))
    good = {"Authorization": "Bearer s3cret-token"}
    body = {"rows": rows.head(2).to_dict("records")}
    with TestClient(app) as client:
        assert client.post("/predict", json=body, headers=good).status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": b"Bearer \xc3\xa9t\xc3\xa9"},
                        {"Authorization": "Basic czNjcmV0LXRva2Vu"}):
            refused = client.post("/predict", json=body, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert client.get("/metrics", headers=headers).status_code == 401
            assert client.get("/openapi.json", headers=headers).status_code == 401
            assert client.get("/health", headers=headers).status_code == 200
        large = {"rows": rows.head(100).to_dict("records")}
        declared = client.post("/predict", json=large, headers=good)
        assert declared.status_code == 413 and "limit of 2000 bytes" in declared.json()["detail"]

        def chunks():
            text = json.dumps(large).encode()
            for i in range(0, len(text), 500):
                yield text[i:i + 500]

        streamed = client.post("/predict", content=chunks(), headers={**good, "Content-Type": "application/json"})
        assert "content-length" not in {k.lower() for k in streamed.request.headers}
        assert streamed.status_code == 413
        assert client.post("/predict", json=body, headers=good).status_code == 200


def test_the_limit_and_the_token_file_reach_every_worker():
    settings = serve.ServeSettings("weather@production", max_request_bytes=1234, token_file="/run/token")
    again = serve.ServeSettings.from_env(settings.to_env())
    assert (again.max_request_bytes, again.token_file) == (1234, "/run/token")
    with pytest.raises(Exception, match="max_request_bytes == 0, must be a whole number of bytes >= 1"):
        serve.ServeSettings("weather@production", max_request_bytes=0)

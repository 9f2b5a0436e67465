"""What the model registry must do on every store: numbering, aliases, rollback, lineage,
append-only history enforced by the database, tamper checks and concurrent writers.

:class:`AbstractRegistryTests` is subclassed for the local store (``tests/test_registry.py``,
SQLite) and the team store (``tests/test_team_store.py``, PostgreSQL and an S3 server). A
subclass gives ``store`` (a store holding the three training runs of ``run_ids``) and the
hooks ``overwrite`` and ``remove`` that change a run's file behind the store's back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from mlnb import audit, ledger, metrics, records
from mlnb.exceptions import ArtifactTampered, ModelNotFound, RegistryError
from mlnb.registry import Registry, replay

from ..conftest import ROOT

REFERENCE = ROOT / "data/reference.csv"
BATCH = ROOT / "data/batches/2013-q1.csv"

_MOVER = """
import json, sys, time
from mlnb.exceptions import RegistryError
from mlnb.registry import Registry
store, start, me = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
registry = Registry(store)
while time.time() < start:
    time.sleep(0.001)
seqs, noops, refused = [], 0, 0
for i in range(50):
    event = registry.promote("weather", 2 + (me + i) % 4, caused_by=f"proc-{me}")
    if event is None:
        noops += 1
    else:
        seqs.append(event.seq)
    try:
        seqs.append(registry.rollback("weather", caused_by=f"proc-{me}").seq)
    except RegistryError:
        refused += 1
print(json.dumps({"seqs": seqs, "noops": noops, "refused": refused}))
"""

_REGISTRAR = """
import json, sys, time
from mlnb.registry import Registry
store, start, run_id = sys.argv[1], float(sys.argv[2]), sys.argv[3]
registry = Registry(store)
while time.time() < start:
    time.sleep(0.001)
print(json.dumps([registry.register(run_id, "weather").version for _ in range(8)]))
"""


def _race(script: str, args) -> list:
    """Start 4 interpreters that begin work at the same instant; return their JSON outputs.

    ``args(i, start)`` gives the command-line arguments of process ``i``.
    """
    start = str(time.time() + 1.5)  # after every interpreter has imported mlnb.registry
    procs = [
        subprocess.Popen([sys.executable, "-c", script, *args(i, start)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


class AbstractRegistryTests:
    """The registry's behaviour, whatever database and file store hold it."""

    def overwrite(self, store, run_id: str, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def remove(self, store, run_id: str, rel: str) -> None:
        raise NotImplementedError

    def delete_run(self, store, run_id: str) -> None:
        raise NotImplementedError

    @pytest.fixture
    def registry(self, store):
        with Registry(store) as reg:
            yield reg

    def test_register_promote_rollback_load_round_trip(self, registry, run_ids):
        v1 = registry.register(run_ids["hgb"], "weather")
        v2 = registry.register(run_ids["logreg"], "weather")
        assert (v1.version, v2.version) == (1, 2)
        X = pd.read_csv(BATCH)[v1.features]
        first, second = registry.load("weather/1").predict(X), registry.load("weather/2").predict(X)
        assert (first != second).any()  # two different models, so the alias moves are visible

        assert registry.promote("weather", 1, reason="first model", caused_by="run-a").to_version == 1
        assert registry.promote("weather", 2, reason="better f1", caused_by="run-b").from_version == 1
        np.testing.assert_array_equal(registry.load("weather@production").predict(X), second)
        back = registry.rollback("weather", reason="f1 dropped in production", caused_by="cli:ops")
        assert (back.from_version, back.to_version, back.action) == (2, 1, "rollback")
        assert registry.get("weather@production").version == 1
        np.testing.assert_array_equal(registry.load("weather@production").predict(X), first)
        with pytest.raises(RegistryError, match="cannot roll back weather@production: it points at version 1, its first assignment"):
            registry.rollback("weather")

        history = registry.history("weather")
        assert [(e.action, e.from_version, e.to_version, e.reason, e.caused_by) for e in history] == [
            ("promote", None, 1, "first model", "run-a"),
            ("promote", 1, 2, "better f1", "run-b"),
            ("rollback", 2, 1, "f1 dropped in production", "cli:ops"),
        ]
        assert history[2].undoes == history[1].seq
        assert all(e.at.endswith("Z") for e in history)

    def test_repeated_rollbacks_walk_back_through_earlier_versions(self, registry, run_ids):
        for _ in range(4):
            registry.register(run_ids["hgb"], "weather")
        for version in (1, 2, 3, 2, 4):
            registry.promote("weather", version)
        assert registry.promote("weather", 4) is None  # already there: not a move, not recorded
        walked = [registry.rollback("weather").to_version for _ in range(4)]
        assert walked == [2, 3, 2, 1]  # undoes 4, then 2, then 3, then 2 — never flip-flops
        registry.promote("weather", 3)
        assert registry.rollback("weather").to_version == 1
        with pytest.raises(RegistryError, match="no earlier version"):
            registry.rollback("weather")
        assert len(registry.history("weather")) == 5 + 4 + 2

    def test_aliases_are_independent_and_set_alias_records_its_action(self, registry, run_ids):
        registry.register(run_ids["hgb"], "weather")
        registry.register(run_ids["logreg"], "weather")
        registry.promote("weather", 1)
        event = registry.set_alias("weather", "challenger", 2, reason="not promoted yet")
        assert event.action == "set" and event.alias == "challenger"
        assert registry.aliases("weather") == {("weather", "production"): 1, ("weather", "challenger"): 2}
        assert registry.get("weather/2").aliases == ["challenger"]
        assert registry.alias_version("weather", "production")["version"] == 1
        assert registry.alias_version("weather", "champion") is None
        assert registry.alias_version("nothing-yet") is None
        with pytest.raises(RegistryError, match="no earlier version"):
            registry.rollback("weather", "challenger")

    def test_latest_and_unknown_uris(self, registry, run_ids):
        registry.register(run_ids["hgb"], "weather")
        registry.register(run_ids["logreg"], "weather")
        assert registry.get("weather/latest").version == 2
        with pytest.raises(ModelNotFound, match="model 'weather' has no version 3; its versions are 1 to 2"):
            registry.get("weather/3")
        with pytest.raises(ModelNotFound, match="model 'weather' has no alias 'production'; its aliases: none"):
            registry.load("weather@production")
        with pytest.raises(ModelNotFound, match="no model named 'wether' in store .*; registered models: weather"):
            registry.promote("wether", 1)
        with pytest.raises(ModelNotFound, match="model 'weather' has no version 7"):
            registry.promote("weather", 7)

    def test_a_version_carries_the_lineage_of_its_training_run(self, registry, store, run_ids):
        mv = registry.register(run_ids["hgb"], "weather", tags={"owner": "forecasting"}, caused_by="test")
        run = store.get(run_ids["hgb"])
        rec = run.record
        assert mv.run_id == run.id
        assert mv.metrics == rec["scraps"]["metrics"] and set(mv.metrics) >= {"accuracy", "f1", "roc_auc"}
        assert mv.hyperparameters == {"max_iter": 30} == rec["parameters"]["hyperparameters"]
        assert mv.features == ["precipitation", "temp_max", "temp_min", "wind"]
        assert (mv.target, mv.task) == ("weather", "classification")
        assert mv.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
        assert mv.data == rec["inputs"]
        assert [(d["parameter"], d["path"], d["sha256"]) for d in mv.data] == [
            ("data", str(REFERENCE), records.sha256_file(REFERENCE))
        ]
        assert mv.sklearn_version == rec["environment"]["packages"]["scikit-learn"]
        assert mv.artifact == "model.skops"
        assert mv.sha256 == records.sha256_file(run.artifact("model.skops")) == next(
            a["sha256"] for a in rec["artifacts"] if a["path"] == "model.skops"
        )
        assert mv.code["template"] == "train" and mv.code["record_digest"] == rec["digest"]
        assert mv.code["template_sha256"] == rec["template"]["sha256"]
        assert mv.tags == {"owner": "forecasting"} and mv.created_by == "test"

    def test_the_loaded_model_reproduces_the_metrics_its_run_recorded(self, registry, store, run_ids):
        mv = registry.register(run_ids["hgb"], "weather")
        params = store.get(run_ids["hgb"]).parameters
        df = pd.read_csv(params["data"])
        X, y = df[mv.features], df[mv.target]
        _, X_holdout, _, y_holdout, _ = metrics.split(X, y, mv.task, params["test_size"], params["seed"])
        assert metrics.evaluate(registry.load("weather/1"), X_holdout, y_holdout).metrics == pytest.approx(mv.metrics)

    def test_tags_are_added_and_versions_never_change(self, registry, run_ids):
        registry.register(run_ids["hgb"], "weather", tags={"stage": "candidate"})
        before = {k: v for k, v in registry.get("weather/1").to_dict().items() if k not in ("tags", "aliases")}
        registry.add_tags("weather/1", {"stage": "approved", "ticket": "ML-12"})
        registry.promote("weather", 1)
        registry.register(run_ids["logreg"], "weather")
        after = registry.get("weather/1")
        assert after.tags == {"stage": "approved", "ticket": "ML-12"}
        assert {k: v for k, v in after.to_dict().items() if k not in ("tags", "aliases")} == before

    def test_versions_tags_and_history_are_append_only_in_the_database(self, registry, store, run_ids):
        registry.register(run_ids["hgb"], "weather", tags={"a": "b"})
        registry.promote("weather", 1)
        db = store.connect()
        statements = [
            "UPDATE alias_events SET to_version = 9",
            "DELETE FROM alias_events",
            "UPDATE model_versions SET sha256 = 'x'",
            "DELETE FROM model_versions",
            "UPDATE model_tags SET value = 'c'",
            "DELETE FROM model_tags",
            "UPDATE ledger SET hash = 'x'",
            "DELETE FROM ledger",
        ] + (["TRUNCATE model_versions", "TRUNCATE alias_events", "TRUNCATE model_tags", "TRUNCATE ledger"]
             if db.dialect == "postgresql" else [])
        for sql in statements:
            with pytest.raises(db.database.errors, match="never|append-only"):
                db.execute(sql)
        db.close()
        assert len(registry.history("weather")) == 1 and registry.get("weather/1").sha256

    def test_a_tampered_artifact_is_refused(self, registry, store, run_ids):
        registry.register(run_ids["hgb"], "weather")
        registry.promote("weather", 1)
        data = store.get(run_ids["hgb"]).artifact("model.skops").read_bytes()
        self.overwrite(store, run_ids["hgb"], "artifacts/model.skops", data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(ArtifactTampered, match=r"weather/1: model artifact .*model.skops changed since it was registered \(sha256 [0-9a-f]{12}…, registered [0-9a-f]{12}…\); refusing to load"):
            registry.load("weather@production")
        with pytest.raises(ArtifactTampered, match="changed since it was recorded"):
            registry.register(run_ids["hgb"], "weather")  # and a tampered run cannot be registered again
        self.remove(store, run_ids["hgb"], "artifacts/model.skops")
        with pytest.raises(ArtifactTampered, match="weather/1: model (artifact|file) .* is missing"):
            registry.load("weather/1")

    def test_a_swapped_artifact_with_its_registry_row_edited_to_match_is_refused(self, registry, store, run_ids):
        import hashlib

        registry.register(run_ids["hgb"], "weather")
        other = store.get(run_ids["logreg"]).artifact("model.skops").read_bytes()  # a valid model, not this one
        self.overwrite(store, run_ids["hgb"], "artifacts/model.skops", other)
        with store.connect() as db:
            self._drop_immutability(db, "model_versions")
            db.execute("UPDATE model_versions SET sha256 = ? WHERE version = 1", (hashlib.sha256(other).hexdigest(),))
        with pytest.raises(ArtifactTampered, match=r"weather/1: the registry's sha256 [0-9a-f]{12}… of 'model.skops' "
                                                   r"is not what training run .* recorded \(sha256 [0-9a-f]{12}…\); "
                                                   "refusing to load it"):
            registry.load("weather/1")
        with pytest.raises(ArtifactTampered, match="is not what training run"):
            registry.read_artifact(registry.get("weather/1"))

    def test_concurrent_promotions_and_rollbacks_leave_a_consistent_history(self, registry, store, run_ids):
        for _ in range(5):
            registry.register(run_ids["hgb"], "weather")
        registry.promote("weather", 1, caused_by="setup")
        results = _race(_MOVER, lambda i, start: [store.location, start, str(i)])

        history = registry.history("weather")
        reported = sorted(seq for r in results for seq in r["seqs"])
        assert reported == [e.seq for e in history[1:]]  # every move recorded once, none lost
        assert sum(r["noops"] + len(r["seqs"]) + r["refused"] for r in results) == 4 * 100
        assert sum(1 for e in history if e.action == "rollback") > 20
        # replaying the history gives exactly the alias table
        replayed = {}
        for event in history:
            assert event.from_version == replayed.get((event.name, event.alias)), event
            replayed[(event.name, event.alias)] = event.to_version
        assert replayed == registry.aliases() == replay(history)
        # and every rollback undid the latest move not yet undone
        stack = []
        for event in history:
            if event.action == "rollback":
                undone = stack.pop()
                assert (event.undoes, event.to_version) == (undone.seq, undone.from_version)
            else:
                stack.append(event)

    def test_concurrent_registrations_get_distinct_consecutive_versions(self, store, run_ids):
        results = _race(_REGISTRAR, lambda i, start: [store.location, start, run_ids["hgb"]])
        got = sorted(v for r in results for v in r)
        assert got == list(range(1, 33))
        assert all(r == sorted(r) for r in results)
        assert [mv.version for mv in Registry(store).versions("weather")] == list(range(1, 33))

    # -- the ledger ----------------------------------------------------------------------------

    def _new_entries(self, store, before: int) -> list[tuple[str, str]]:
        files = store.ledger_files()
        return [(e["kind"], e["subject"]) for e in (ledger.decode(files[s]) for s in sorted(files) if s > before)]

    def test_a_version_a_tag_and_an_alias_move_each_append_an_entry(self, registry, store, run_ids):
        before = ledger.current_head(store).count
        assert before == 3  # the three training runs
        registry.register(run_ids["hgb"], "weather", tags={"owner": "forecasting"})
        registry.promote("weather", 1)
        registry.add_tags("weather/1", {"stage": "approved"})
        assert self._new_entries(store, before) == [("version", "weather/1"), ("tag", "weather/1"),
                                                    ("alias", "weather@production"), ("tag", "weather/1")]
        assert audit.verify_store(store).problems == []

    def _drop_immutability(self, db, table: str) -> None:
        if db.dialect == "postgresql":
            db.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        else:
            db.execute(f"DROP TRIGGER {table}_no_update")

    def test_a_registry_row_edited_after_dropping_its_trigger_is_named(self, registry, store, run_ids):
        registry.register(run_ids["hgb"], "weather")
        registry.register(run_ids["logreg"], "weather")
        registry.promote("weather", 1)
        forged = "ab" * 32
        with store.connect() as db:
            self._drop_immutability(db, "model_versions")
            db.execute("UPDATE model_versions SET sha256 = ? WHERE version = 2", (forged,))
            self._drop_immutability(db, "alias_events")
            db.execute("UPDATE alias_events SET to_version = 2")
        found = {(p.kind, p.run_id, p.where, p.what) for p in audit.verify_store(store).problems}
        seq = ledger.current_head(store).count
        sha = next(what for _, _, where, what in found if where == "registry:sha256")
        assert sha.startswith(f"is {forged[:12]}…, but run {run_ids['logreg']}'s record says ")
        assert sha.endswith("… for model.skops")
        assert found == {
            ("registry", "weather/2", "registry:version", f"version weather/2 disagrees with its ledger entry {seq - 1}: "
                                                          "sha256"),
            ("registry", "weather/2", "registry:sha256", sha),
            ("registry", "weather@production", "registry:move", "alias move weather@production #1 disagrees with its "
                                                                f"ledger entry {seq}: to_version"),
            ("registry", "weather@production", "registry:alias", "points at version 1, its history says 2"),
        }
        assert audit.verify_store(store, registry=False).problems == []  # runs verify leaves the registry out

    def test_a_version_whose_training_run_was_deleted_is_named(self, registry, store, run_ids):
        registry.register(run_ids["hgb"], "weather")
        self.delete_run(store, run_ids["hgb"])
        found = {(p.kind, p.run_id, p.what) for p in audit.verify_store(store).problems}
        assert ("link", "weather/1", f"points at run {run_ids['hgb']}, which is not in the store") in found
        assert any(kind == "deleted" and subject == run_ids["hgb"] for kind, subject, _ in found)

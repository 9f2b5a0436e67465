"""What every store must do, wherever its files and its index live.

:class:`AbstractStoreTests` is subclassed once per implementation — the local store
(``tests/test_store.py``) and the team store on a real S3 server and PostgreSQL
(``tests/test_team_store.py``) — with a ``store`` fixture giving an empty store and two
hooks that change a committed run behind the store's back, as a careless or hostile user
would (``overwrite``, ``remove``).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from mlnb import records
from mlnb.exceptions import RunNotFound, StoreError
from mlnb.store import LocalStore, Store, new_run_id
from mlnb.ui.sample import _Writer

from ..conftest import NOTEBOOKS

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)


def write_runs(store: Store, n: int, template: str = "train", **kwargs) -> list[str]:
    """``n`` synthetic runs committed through the store's own staging and commit."""
    writer = _Writer(store)
    return [writer.write(template, T0 + timedelta(minutes=i), {"seed": i}, {"metrics": {"accuracy": i / 10}},
                         artifacts={"model.bin": bytes([i]) * 64}, **kwargs) for i in range(n)]


class AbstractStoreTests:
    """Commit, list, filter, read, verify, reindex and copy: the same behaviour on every store."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("an implementation's test class gives an empty, initialised store")

    def overwrite(self, store: Store, run_id: str, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def remove(self, store: Store, run_id: str, rel: str) -> None:
        raise NotImplementedError

    # -- commit and read ---------------------------------------------------------------------

    def test_an_empty_store_lists_nothing(self, store):
        assert store.list_runs() == [] and store.run_ids() == [] and store.verify() == []
        with pytest.raises(RunNotFound, match="run '2026' not found"):
            store.get("2026")

    def test_an_executed_notebook_is_committed_listed_read_and_intact(self, store):
        from mlnb.execute import run_template

        run = run_template(NOTEBOOKS / "echo.ipynb", {"n": 3}, store)
        assert run.succeeded, run.record["error"]
        assert [r["id"] for r in store.list_runs()] == [run.id] == store.run_ids()
        again = store.get(run.id[:22])
        assert again.record == run.record and again.record["parameters"]["n"] == 3
        assert again.notebook_path.read_bytes().startswith(b"{") and b"<html" in again.html_path.read_bytes()
        assert store.verify() == []
        assert again.location.endswith(run.id) and store.location in again.location

    def test_list_filters_and_orders_newest_first(self, store):
        ids = write_runs(store, 4)
        write_runs(store, 1, template="drift")
        assert [r["id"] for r in store.list_runs(template="train")] == ids[::-1]
        kept = store.list_runs(filter="template = 'train' and metrics.accuracy >= 0.2 and params.seed < 3")
        assert [r["id"] for r in kept] == [ids[2]]
        assert kept[0]["scraps"] == {"metrics": {"accuracy": 0.2}} and kept[0]["parameters"] == {"seed": 2}
        assert len(store.list_runs(limit=2)) == 2
        frame = store.runs(template="train")
        assert list(frame["id"]) == ids[::-1]

    def test_a_brief_listing_holds_what_the_table_shows_and_agrees_with_the_full_one(self, store):
        write_runs(store, 3)
        keys = {"id", "template", "status", "started", "finished", "duration_s", "parent"}
        brief = store.list_runs(details=False)
        assert [set(item) for item in brief] == [keys] * 3
        assert brief == [{k: item[k] for k in keys} for item in store.list_runs()]
        assert [r["id"] for r in store.list_runs(details=False, filter="params.seed = 1")] == [
            r["id"] for r in store.list_runs(filter="params.seed = 1")] != []

    def test_scraps_and_artifacts_read_back(self, store):
        (run_id,) = write_runs(store, 1)
        run = store.get(run_id)
        assert run.artifact("model.bin").read_bytes() == bytes([0]) * 64
        with pytest.raises(KeyError, match="has no artifact 'nope'; it has: model.bin"):
            run.artifact("nope")

    def test_a_failed_commit_leaves_nothing_visible(self, store, monkeypatch):
        run_id = new_run_id("train")
        with pytest.raises(RuntimeError, match="disk went away"):
            with store.staging(run_id) as staged:
                (staged / "notebook.ipynb").write_text("{}")
                raise RuntimeError("disk went away")
        assert store.list_runs() == [] and store.run_ids() == []
        with pytest.raises(RunNotFound):
            store.get(run_id)

    def test_two_writers_never_commit_the_same_run_id(self, store):
        (first,) = write_runs(store, 1)
        record = store.get(first).record
        with pytest.raises(StoreError, match=f"cannot commit run {first}"):
            with store.staging(first) as staged:
                (staged / "notebook.ipynb").write_text("{}")
                store.commit(staged, record)
        assert store.run_ids() == [first] and store.verify() == []

    def test_concurrent_writers_lose_nothing(self, store):
        errors = []

        def writer():
            try:
                write_runs(store, 5)
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(store.run_ids()) == 20 == len(store.list_runs()) and store.verify() == []

    # -- tampering -------------------------------------------------------------------------

    def test_verify_names_a_changed_a_removed_and_an_added_file(self, store):
        a, b, c = write_runs(store, 3)
        self.overwrite(store, a, "artifacts/model.bin", b"changed")
        self.remove(store, b, "notebook.html")
        self.overwrite(store, c, "artifacts/extra.txt", b"added later")
        found = {(p.run_id, p.where, p.what) for p in store.verify()}
        assert found == {
            (a, "artifacts/model.bin", "content changed (sha256 differs from the record)"),
            (b, "notebook.html", "file is missing"),
            (c, "artifacts/extra.txt", "file is not in the record (added after the run)"),
        }
        assert [p.where for p in store.verify(a)] == ["artifacts/model.bin"]

    def test_verify_names_an_edited_record(self, store):
        (run_id,) = write_runs(store, 1)
        record = store.get(run_id).record
        record["scraps"]["metrics"]["accuracy"] = 0.99
        self.overwrite(store, run_id, records.RECORD_FILE, records.canonical(record))
        assert {(p.where, p.what) for p in store.verify(run_id)} >= {
            ("record.json:scraps", "value changed"), ("record.json:digest", "digest does not match the record")}

    # -- index and copies ------------------------------------------------------------------

    def test_reindex_rebuilds_the_index_from_the_records(self, store):
        ids = write_runs(store, 3)
        with store.connect() as db:
            db.execute("DELETE FROM runs")
        store.sync_index(force=True)
        assert sorted(r["id"] for r in store.list_runs()) == sorted(ids)

    def test_a_copy_keeps_ids_files_and_digests(self, store, tmp_path):
        from mlnb.store.copy import copy_store

        source = LocalStore(tmp_path / "source")
        ids = write_runs(source, 3)
        report = copy_store(source, store)
        assert sorted(report.copied) == sorted(ids) and report.present == []
        for run_id in ids:
            assert store.get(run_id).record["digest"] == source.get(run_id).record["digest"]
        assert store.verify() == []
        again = copy_store(source, store)  # an interrupted copy started again skips what is there
        assert again.copied == [] and sorted(again.present) == sorted(ids)

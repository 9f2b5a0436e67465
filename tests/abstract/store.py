"""What every store must do, wherever its files and its index live.

:class:`AbstractStoreTests` is subclassed once per implementation — the local store
(``tests/test_store.py``) and the team store on a real S3 server and PostgreSQL
(``tests/test_team_store.py``) — with a ``store`` fixture giving an empty store and two
hooks that change a committed run behind the store's back, as a careless or hostile user
would (``overwrite``, ``remove``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from mlnb import audit, ledger, records
from mlnb.exceptions import RunNotFound, StoreError
from mlnb.store import LocalStore, Store, new_run_id
from mlnb.ui.sample import _Writer

from ..conftest import NOTEBOOKS, ROOT

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)


def write_runs(store: Store, n: int, template: str = "train", **kwargs) -> list[str]:
    """``n`` synthetic runs committed through the store's own staging and commit."""
    writer = _Writer(store)
    return [writer.write(template, T0 + timedelta(minutes=i), {"seed": i}, {"metrics": {"accuracy": i / 10}},
                         artifacts={"model.bin": bytes([i]) * 64}, **kwargs) for i in range(n)]


_WRITER = """
import sys, time
from datetime import datetime, timedelta, timezone
from mlnb.store import Store
from mlnb.ui.sample import _Writer
store, start, me = Store(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
writer = _Writer(store)
writer.files("train", {})  # rendered before the start: the commits race, not nbconvert
while time.time() < start:
    time.sleep(0.001)
for i in range(5):
    writer.write("train", datetime(2026, 5, 1, tzinfo=timezone.utc) + timedelta(minutes=10 * me + i), {"seed": i}, {})
"""


def problems(store: Store, **kwargs) -> set[tuple[str, str, str]]:
    """What verify finds in the whole store: ``(kind, subject, what)``."""
    return {(p.kind, p.run_id, p.what) for p in audit.verify_store(store, **kwargs).problems}


def chain(store: Store) -> list[dict]:
    """The ledger's entries as the store holds them, in order."""
    files = store.ledger_files()
    return [ledger.decode(files[seq]) for seq in sorted(files)]


class AbstractStoreTests:
    """Commit, list, filter, read, verify, reindex and copy: the same behaviour on every store."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("an implementation's test class gives an empty, initialised store")

    def overwrite(self, store: Store, run_id: str, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def remove(self, store: Store, run_id: str, rel: str) -> None:
        raise NotImplementedError

    def delete_run(self, store: Store, run_id: str) -> None:
        """Remove a whole run behind the store's back (``rm -rf`` of it, its objects deleted)."""
        raise NotImplementedError

    def remove_ledger_entry(self, store: Store, seq: int) -> None:
        """Remove one ledger entry's file (object) behind the store's back."""
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

    # -- the ledger --------------------------------------------------------------------------

    def test_each_commit_appends_an_entry_that_seals_the_one_before(self, store):
        ids = write_runs(store, 3)
        entries = chain(store)
        assert [(e["seq"], e["kind"], e["subject"]) for e in entries] == [(1, "run", ids[0]), (2, "run", ids[1]),
                                                                         (3, "run", ids[2])]
        assert [e["change"]["record"] for e in entries] == [store.get(i).record["digest"] for i in ids]
        assert [e["prev"] for e in entries] == [ledger.GENESIS, entries[0]["hash"], entries[1]["hash"]]
        assert all("signature" not in e and "key" not in e for e in entries)  # no key configured: none
        assert ledger.current_head(store) == ledger.Head(3, entries[2]["hash"])
        with store.connect() as db:  # mirrored in the index, byte for byte
            mirrored = [row[0].encode() for row in db.execute("SELECT entry FROM ledger ORDER BY seq")]
        assert mirrored == [store.ledger_files()[seq] for seq in (1, 2, 3)]
        report = audit.verify_store(store)
        assert report.problems == [] and report.head == ledger.current_head(store) and report.started is None

    def test_a_deleted_run_is_named_though_it_leaves_the_listing(self, store):
        ids = write_runs(store, 3)
        self.delete_run(store, ids[1])
        assert problems(store) >= {("deleted", ids[1], "deleted: ledger entry 2 records it, the store has no such run")}
        assert {p.run_id for p in audit.verify_store(store).problems} <= {ids[1]}

    def test_a_record_replaced_by_a_resealed_one_passes_its_own_check_but_not_the_ledger(self, store):
        (run_id,) = write_runs(store, 1)
        record = store.get(run_id).record
        forged = records.seal({**record, "scraps": {"metrics": {"accuracy": 0.99}}})
        self.overwrite(store, run_id, records.RECORD_FILE, records.canonical(forged))
        assert store.verify(run_id) == []  # every hash of the forged record holds
        found = audit.verify_store(store).problems
        assert [(p.kind, p.where) for p in found if p.kind != "index"] == [("replaced", "record.json")]
        assert "that ledger entry 1 sealed" in found[0].what

    def test_an_index_row_edited_in_sql_is_named_and_repaired_from_the_record(self, store):
        ids = write_runs(store, 2)
        with store.connect() as db:
            db.execute("UPDATE runs SET status = 'failed' WHERE id = ?", (ids[0],))
        assert problems(store) == {("index", ids[0], "is 'failed', the record says 'succeeded'")}
        report = audit.verify_store(store, repair=True)
        assert report.problems == [] and [p.where for p in report.repaired] == ["index:status"]
        assert store.list_runs(status="failed") == [] and problems(store) == set()

    def test_a_removed_ledger_entry_is_named(self, store):
        write_runs(store, 3)
        self.remove_ledger_entry(store, 2)
        assert ("ledger", "ledger", "missing from the store (the index's mirror still has it): removed after it "
                                    "was written") in problems(store)

    def test_reordered_ledger_entries_are_named(self, store):
        write_runs(store, 3)
        files = store.ledger_files()
        store.ledger_put(2, files[3])
        store.ledger_put(3, files[2])
        found = {(p.where, p.what) for p in audit.verify_store(store).problems if p.kind == "ledger"}
        assert {("entry 2", "holds entry 3: entries out of order"),
                ("entry 3", "holds entry 2: entries out of order")} <= found
        assert any(what.startswith("does not follow entry") for _, what in found)

    def test_an_entry_changed_after_it_was_written_is_named(self, store):
        ids = write_runs(store, 2)
        entry = chain(store)[0]
        entry["change"]["record"] = "0" * 64
        store.ledger_put(1, ledger.encode(entry))
        found = {(p.kind, p.where, p.what) for p in audit.verify_store(store).problems}
        assert ("ledger", "entry 1", f"(run {ids[0]}) changed after it was written (its hash does not match its "
                                     "content)") in found

    def test_a_parent_or_a_child_that_is_no_run_is_named(self, store):
        ghost, lost = "20260101T000000Z-pipeline-abcdef", "20260101T000001Z-train-abcdef"
        (run_id,) = write_runs(store, 1, parent=ghost)
        (child,) = write_runs(store, 1)
        pipeline = _Writer(store).write("pipeline", T0, {"decision": {"children": {"train": lost, "drift": child}}}, {})
        found = {(p.kind, p.run_id, p.where, p.what) for p in audit.verify_store(store).problems}
        assert found == {
            ("link", run_id, "record.json:parent", f"points at run {ghost}, which is not in the store"),
            ("link", pipeline, "record.json:parameters.decision.children.train",
             f"points at run {lost}, which is not in the store"),
        }

    def test_an_old_head_verifies_after_more_commits_and_a_forged_one_does_not(self, store):
        write_runs(store, 2)
        old = ledger.current_head(store)
        write_runs(store, 2)
        assert ledger.current_head(store).count == 4
        assert problems(store, since=old) == set()
        forged = ledger.Head(2, "f" * 64)
        assert {(k, w) for k, _, w in problems(store, since=forged)} == {
            ("ledger", "is not the given head's (ffffffffffff…, the store has "
                       f"{old.hash[:12]}…): the ledger was rewritten since that head, or the head is not this store's")}
        assert any("fewer than the 9 of the given head" in w for _, _, w in problems(store, since=ledger.Head(9, old.hash)))

    def test_concurrent_writer_processes_keep_one_unbroken_chain(self, store):
        start = str(time.time() + 3)  # after every interpreter has imported the store
        procs = [subprocess.Popen([sys.executable, "-c", _WRITER, store.location, start, str(i)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
        for proc in procs:
            _, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
        entries = chain(store)
        assert [e["seq"] for e in entries] == list(range(1, 21))
        assert sorted(e["subject"] for e in entries) == sorted(store.run_ids()) and len(store.run_ids()) == 20
        report = audit.verify_store(store)
        assert report.problems == [] and report.head.count == 20

    def test_signed_entries_verify_with_their_key_and_fail_with_another(self, store, tmp_path, monkeypatch):
        _, public, fp = ledger.keygen(tmp_path / "signing.pem")
        _, other, _ = ledger.keygen(tmp_path / "other.pem")
        write_runs(store, 1)  # before the key: unsigned
        monkeypatch.setenv("MLNB_SIGNING_KEY", str(tmp_path / "signing.pem"))
        write_runs(store, 2)
        entries = chain(store)
        assert ["key" in e for e in entries] == [False, True, True] and entries[1]["key"] == fp
        report = audit.verify_store(store, public_key=ledger.PublicKey(public))
        assert report.signed == 2
        assert [(p.kind, p.where, p.what) for p in report.problems] == [("signature", "entry 1", "not signed")]
        wrong = audit.verify_store(store, public_key=ledger.PublicKey(other)).problems
        assert sorted(p.where for p in wrong) == ["entry 1", "entry 2", "entry 3"]
        assert next(p for p in wrong if p.where == "entry 2").what.startswith(f"signed by key {fp}, not by the given key ")
        assert audit.verify_store(store).problems == []  # without --public-key signatures are not asked for

    def test_a_run_its_ledger_vouches_for_still_has_every_file_hashed(self, store):
        a, b = write_runs(store, 2)
        self.overwrite(store, a, "artifacts/model.bin", b"changed")
        self.overwrite(store, b, "artifacts/extra.txt", b"added later")
        assert problems(store) == {
            ("changed", a, "content changed (sha256 differs from the record)"),
            ("changed", b, "file is not in the record (added after the run)"),
        }

"""The local store: layout, commit, staging, the index and reading runs (no kernels)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
from datetime import datetime, timedelta, timezone

import pytest

from mlnb import audit, ledger, records
from mlnb.exceptions import RunNotFound, StoreError
from mlnb.store import STAGING, LocalStore, Store, as_store, new_run_id

from .abstract.store import AbstractStoreTests

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def commit_run(store: Store, template: str = "echo", *, started: datetime = T0, status: str = "succeeded",
               parent: str | None = None, parameters: dict | None = None, scraps: dict | None = None,
               artifact: bytes | None = None):
    """A run committed through the store's own staging and commit, as execute does."""
    run_id = new_run_id(template, now=started)
    notebook, html = b'{"cells": []}\n', b"<html></html>\n"
    with store.staging(run_id) as staged:
        (staged / records.NOTEBOOK_FILE).write_bytes(notebook)
        (staged / records.HTML_FILE).write_bytes(html)
        artifacts = []
        if artifact is not None:
            (staged / records.ARTIFACTS_DIR / "model.bin").write_bytes(artifact)
            artifacts.append({"path": "model.bin", "sha256": records.sha256_bytes(artifact), "bytes": len(artifact)})
        stamp = started.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = records.seal({
            "schema": records.SCHEMA, "id": run_id,
            "template": {"name": template, "path": f"templates/{template}.ipynb", "sha256": "0" * 64},
            "parameters": parameters or {}, "inputs": [], "scraps": scraps or {},
            "files": {records.NOTEBOOK_FILE: {"sha256": records.sha256_bytes(notebook), "bytes": len(notebook)},
                      records.HTML_FILE: {"sha256": records.sha256_bytes(html), "bytes": len(html)}},
            "artifacts": artifacts, "status": status,
            "error": None if status == "succeeded" else {"kind": "exception", "cell_index": 1, "ename": "ValueError",
                                                         "evalue": "bad"},
            "started": stamp, "finished": stamp, "duration_s": 1.0,
            "environment": {"python": "3.11", "platform": "Linux", "kernel": "python3", "packages": {}},
            "git": None, "parent": parent, "tags": {}, "reproduces": None,
        })
        return store.commit(staged, record)


def test_layout_is_named_by_the_store(tmp_path):
    store = Store(tmp_path / "runs")
    assert store.database.path == tmp_path / "runs" / "mlnb.sqlite"
    assert store.data_dir == tmp_path / "runs" / "data"
    assert store.shadow_dir == tmp_path / "runs" / "shadow"
    assert store.predictions_dir == tmp_path / "runs" / "predictions"
    assert as_store(store) is store
    assert as_store(tmp_path / "runs").path == store.path
    assert not store.has_database()


def test_reading_an_empty_store_creates_nothing(tmp_path):
    store = Store(tmp_path / "absent")
    assert store.list_runs() == []
    assert store.run_ids() == []
    assert store.runs().empty
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("path, message", [
    ("s3://bucket/runs", "is a team store and needs its database: set MLNB_DATABASE=postgresql://"),
    ("file", "is a file; give a directory"),
])
def test_a_store_that_is_not_a_directory_is_refused(tmp_path, monkeypatch, path, message):
    monkeypatch.delenv("MLNB_DATABASE", raising=False)
    (tmp_path / "file").write_text("x")
    target = path if "://" in path else tmp_path / path
    with pytest.raises(StoreError, match=message):
        Store(target)


def test_a_committed_run_is_sealed_indexed_and_readable(tmp_path):
    store = Store(tmp_path / "runs")
    run = commit_run(store, scraps={"accuracy": 0.91}, parameters={"seed": 3}, artifact=b"weights")
    assert run.path == store.run_path(run.id)
    assert not os.access(run.path / records.RECORD_FILE, os.W_OK) or os.geteuid() == 0
    assert stat.S_IMODE(os.stat(run.path).st_mode) == 0o555
    again = store.get(run.id[:-2])  # a unique prefix
    assert again.id == run.id and again.scraps == {"accuracy": 0.91}
    assert again.artifact("model.bin").read_bytes() == b"weights"
    with pytest.raises(KeyError, match="has no artifact 'nope'; it has: model.bin"):
        again.artifact("nope")
    [row] = store.list_runs()
    assert (row["id"], row["template"], row["status"], row["parameters"]) == (run.id, "echo", "succeeded", {"seed": 3})
    assert store.verify() == []
    assert os.listdir(store.path / STAGING) == []


def test_a_block_that_raises_leaves_no_run_and_no_staging(tmp_path):
    store = Store(tmp_path / "runs")
    with pytest.raises(RuntimeError):
        with store.staging(new_run_id("echo")) as staged:
            (staged / records.NOTEBOOK_FILE).write_text("half")
            raise RuntimeError("kernel died")
    assert store.run_ids() == []
    assert os.listdir(store.path / STAGING) == []


def test_only_staging_of_dead_processes_on_this_host_is_cleaned(tmp_path):
    store = Store(tmp_path / "runs")
    store.ensure_writable()
    host = socket.gethostname()
    dead = store.path / STAGING / f"{host}-999999999-20260101T000000Z-echo-abcdef"
    alive = store.path / STAGING / f"{host}-{os.getpid()}-20260101T000000Z-echo-abcdef"
    other = store.path / STAGING / "another-host-1-20260101T000000Z-echo-abcdef"
    for d in (dead, alive, other):
        d.mkdir()
    assert store.clean_stale() == [dead]
    assert not dead.exists() and alive.exists() and other.exists()


def test_runs_are_listed_newest_first_and_filtered(tmp_path):
    store = Store(tmp_path / "runs")
    parent = commit_run(store, "pipeline", started=T0)
    child = commit_run(store, "drift", started=T0 + timedelta(minutes=1), parent=parent.id)
    failed = commit_run(store, "train", started=T0 + timedelta(minutes=2), status="failed",
                        scraps={"f1": 0.5})
    assert [r["id"] for r in store.list_runs()] == [failed.id, child.id, parent.id]
    assert [r["id"] for r in store.list_runs(template="drift")] == [child.id]
    assert [r["id"] for r in store.list_runs(status="failed")] == [failed.id]
    assert [r["id"] for r in store.list_runs(parent=parent.id)] == [child.id]
    assert [r["id"] for r in store.list_runs(limit=1)] == [failed.id]
    assert [r["id"] for r in store.list_runs(filter="scraps.f1 < 0.6")] == [failed.id]
    frame = store.runs(template="train")
    assert list(frame["scrap.f1"]) == [0.5]


def test_the_index_follows_the_run_directories(tmp_path):
    store = Store(tmp_path / "runs")
    kept = commit_run(store, started=T0)
    gone = commit_run(store, started=T0 + timedelta(minutes=1))
    store.database.path.unlink()  # derived data: rebuilt from the records
    fresh = Store(store.path)
    assert {r["id"] for r in fresh.list_runs()} == {kept.id, gone.id}
    os.chmod(gone.path, 0o755)
    for p in gone.path.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    import shutil

    shutil.rmtree(gone.path)
    assert Store(store.path).sync_index() == 1
    assert [r["id"] for r in Store(store.path).list_runs()] == [kept.id]


def test_a_changed_file_is_found_by_verify(tmp_path):
    store = Store(tmp_path / "runs")
    run = commit_run(store, artifact=b"weights")
    target = run.path / records.ARTIFACTS_DIR / "model.bin"
    os.chmod(target.parent, 0o755)
    os.chmod(target, 0o644)
    target.write_bytes(b"swapped")
    [problem] = store.verify(run.id)
    assert str(problem) == f"{run.id}: artifacts/model.bin: content changed (sha256 differs from the record)"


def test_unknown_and_ambiguous_ids_say_so(tmp_path):
    store = Store(tmp_path / "runs")
    a = commit_run(store, started=T0)
    commit_run(store, started=T0)
    with pytest.raises(RunNotFound, match="prefix matches 2 runs; give more"):
        store.resolve_id(a.id[:16])
    with pytest.raises(RunNotFound):
        store.get("20990101T000000Z-nothing-000000")


def test_connect_gives_the_index_in_wal_mode(tmp_path):
    store = Store(tmp_path / "runs")
    commit_run(store)
    db = store.connect()
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    finally:
        db.close()
    assert isinstance(db.raw, sqlite3.Connection) and db.dialect == "sqlite"


def test_default_store_comes_from_environment_then_project_file(tmp_path, monkeypatch):
    from mlnb.config import default_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLNB_STORE", raising=False)
    assert default_store() == "runs"
    (tmp_path / "mlnb.yaml").write_text("store: team-runs\n")
    assert default_store() == "team-runs"
    assert Store().path == tmp_path / "team-runs"
    monkeypatch.setenv("MLNB_STORE", str(tmp_path / "from-env"))
    assert default_store() == str(tmp_path / "from-env")


def test_record_of_a_commit_is_the_json_read_back(tmp_path):
    store = Store(tmp_path / "runs")
    run = commit_run(store, scraps={"note": "ünïcode"})
    assert json.loads((run.path / records.RECORD_FILE).read_text())["scraps"] == {"note": "ünïcode"}


def test_a_read_only_store_is_listed_and_its_stale_index_named(tmp_path, monkeypatch):
    """Read-only media (a mounted archive): WAL cannot be opened for reading the usual way."""
    from mlnb.registry import Registry

    store = Store(tmp_path / "runs")
    run = commit_run(store)
    monkeypatch.setattr(LocalStore, "read_only", property(lambda self: True))
    assert [r["id"] for r in Store(store.path).list_runs()] == [run.id]
    with Registry(Store(store.path)) as registry:
        assert registry.models() == []
    with pytest.raises(StoreError, match="is read-only and its index does not match its runs"):
        Store(store.path).sync_index(force=True)
    store.database.path.unlink()
    with pytest.raises(StoreError, match=r"is read-only and has no index \(mlnb.sqlite\)"):
        Store(store.path).list_runs()


class TestLocalStore(AbstractStoreTests):
    """The shared store behaviour on a directory with its SQLite index."""

    @pytest.fixture
    def store(self, tmp_path) -> Store:
        store = Store(tmp_path / "runs")
        assert isinstance(store, LocalStore)
        return store

    def _writable(self, path):
        for parent in (path.parent, *path.parent.parents):
            if parent.name == STAGING or not parent.exists():
                break
            os.chmod(parent, 0o755)
            if (parent / records.RECORD_FILE).exists():
                break
        if path.exists():
            os.chmod(path, 0o644)

    def overwrite(self, store, run_id, rel, data):
        path = store.path / run_id / rel
        self._writable(path)
        path.write_bytes(data)

    def remove(self, store, run_id, rel):
        path = store.path / run_id / rel
        self._writable(path)
        path.unlink()

    def delete_run(self, store, run_id):
        import shutil

        for path in (store.path / run_id, *(store.path / run_id).rglob("*")):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        shutil.rmtree(store.path / run_id)

    def remove_ledger_entry(self, store, seq):
        name, line = ledger.segment_of(seq)
        path = store.path / "ledger" / name
        kept = [entry for i, entry in enumerate(ledger.lines(path.read_bytes())) if i != line]
        os.chmod(path, 0o644)
        path.write_bytes(b"".join(kept))


def _died_before_its_transaction_committed(store, monkeypatch, placed: bool):
    """Commit one run as a writer that died after writing its ledger entry's file (and, if
    ``placed``, renaming the run into place) but before its transaction committed."""
    def commit(staged, record):
        entry = ledger.make_entry(ledger.current_head(store), *ledger.run_change(record))
        store.ledger_put(entry["seq"], ledger.encode(entry))
        records.write_record(staged, record)
        if placed:
            os.rename(staged, store.path / record["id"])
        return entry

    with monkeypatch.context() as m:
        m.setattr(store, "commit", commit)
        return commit_run(store)


def test_the_entry_of_a_writer_that_died_after_placing_its_run_is_taken_over(tmp_path, monkeypatch):
    store = Store(tmp_path / "runs")
    first = commit_run(store)
    left = _died_before_its_transaction_committed(store, monkeypatch, placed=True)
    assert ledger.current_head(store).count == 1  # the mirror never had it
    last = commit_run(store)
    entries = [ledger.decode(data) for _, data in sorted(store.ledger_files().items())]
    assert [e["subject"] for e in entries] == [first.id, left["subject"], last.id]
    assert entries[1] == left and entries[2]["prev"] == left["hash"]
    report = audit.verify_store(store)
    assert report.problems == [] and report.head.count == 3


def test_the_entry_of_a_writer_that_died_before_placing_its_run_is_written_over(tmp_path, monkeypatch):
    store = Store(tmp_path / "runs")
    first = commit_run(store)
    left = _died_before_its_transaction_committed(store, monkeypatch, placed=False)
    last = commit_run(store)
    entries = [ledger.decode(data) for _, data in sorted(store.ledger_files().items())]
    assert [e["subject"] for e in entries] == [first.id, last.id] and left["subject"] not in store.run_ids()
    report = audit.verify_store(store)
    assert report.problems == [] and report.head.count == 2


def test_a_mirror_made_with_a_bigint_key_is_written_and_verified_as_before(tmp_path):
    store = Store(tmp_path / "runs")
    store.path.mkdir()
    db = sqlite3.connect(store.path / "mlnb.sqlite", isolation_level=None)  # the mirror as stores had it first
    db.execute("CREATE TABLE ledger (seq BIGINT PRIMARY KEY, hash TEXT NOT NULL, kind TEXT NOT NULL, "
               "subject TEXT NOT NULL, entry TEXT NOT NULL)")
    db.close()
    ids = [commit_run(store, started=T0 + timedelta(minutes=i)).id for i in range(3)]
    assert [e["subject"] for e in (ledger.decode(d) for _, d in sorted(store.ledger_files().items()))] == ids
    report = audit.verify_store(store)
    assert report.problems == [] and report.head == ledger.current_head(store) and report.head.count == 3
    db = sqlite3.connect(store.path / "mlnb.sqlite")
    assert "BIGINT" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'ledger'").fetchone()[0]
    db.close()


def test_a_store_on_a_network_file_system_is_refused(tmp_path, monkeypatch):
    import mlnb.fstype

    monkeypatch.setattr(mlnb.fstype, "network_filesystem", lambda path: "nfs4")
    store = Store(tmp_path / "runs")
    with pytest.raises(StoreError, match=r"is on a network file system \(nfs4\), where SQLite's write-ahead log "
                                         r"corrupts the index; use a team store \(MLNB_STORE=s3://"):
        commit_run(store)
    assert store.run_ids() == [] and not (tmp_path / "runs" / "mlnb.sqlite").exists()


def _segments(store) -> dict[str, tuple[int, int]]:
    """The ledger's segment files: {name: (entries, permission bits)}."""
    return {p.name: (len(ledger.lines(p.read_bytes())), stat.S_IMODE(p.stat().st_mode))
            for p in sorted((store.path / "ledger").glob("*.jsonl"))}


def test_entries_are_lines_of_segments_and_a_full_segment_is_made_read_only(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "SEGMENT", 3)
    store = Store(tmp_path / "runs")
    ids = [commit_run(store, started=T0 + timedelta(minutes=i)).id for i in range(7)]
    assert _segments(store) == {"000000000001.jsonl": (3, 0o444), "000000000004.jsonl": (3, 0o444),
                                "000000000007.jsonl": (1, 0o644)}
    assert not list((store.path / "ledger").glob("*.json"))
    assert [ledger.decode(d)["subject"] for _, d in sorted(store.ledger_files().items())] == ids
    report = audit.verify_store(store)
    assert report.problems == [] and report.head == ledger.current_head(store) and report.head.count == 7


def test_a_store_with_a_file_per_entry_goes_on_and_moves_to_segments_at_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "SEGMENT", 3)
    store = Store(tmp_path / "runs")
    ids = [commit_run(store, started=T0 + timedelta(minutes=i)).id for i in range(2)]
    segment = store.path / "ledger" / "000000000001.jsonl"  # the layout of stores written before segments
    for seq, line in enumerate(ledger.lines(segment.read_bytes()), 1):
        (store.path / "ledger" / ledger.file_name(seq)).write_bytes(line)
    segment.unlink()
    ids += [commit_run(store, started=T0 + timedelta(minutes=i)).id for i in range(2, 5)]
    assert sorted(p.name for p in (store.path / "ledger").iterdir()) == [
        "000000000001.json", "000000000002.json", "000000000003.json", "000000000004.jsonl"]
    assert _segments(store) == {"000000000004.jsonl": (2, 0o644)}
    assert [ledger.decode(d)["subject"] for _, d in sorted(store.ledger_files().items())] == ids
    assert audit.verify_store(store).problems == []


def test_a_ledger_line_made_unreadable_is_named_once_and_its_run_stays_ledgered(tmp_path):
    store = Store(tmp_path / "runs")
    ids = [commit_run(store, started=T0 + timedelta(minutes=i)).id for i in range(3)]
    segment = store.path / "ledger" / "000000000001.jsonl"
    lines = ledger.lines(segment.read_bytes())
    lines[1] = lines[1].replace(b'{"at"', b'{Xat"', 1)  # entry 2 no longer JSON
    segment.write_bytes(b"".join(lines))
    found = [(p.kind, p.where, p.what) for p in audit.verify_store(store).problems]
    # entry 2 recorded ids[1], as the index's mirror says: no run is called unledgered, and
    # entry 3 still follows entry 2
    assert found == [("ledger", "entry 2", "is not a ledger entry (not JSON of mlnb.ledger/1)")], found
    assert ids[1] in store.run_ids()


def test_a_line_a_writer_left_unfinished_is_written_over(tmp_path):
    store = Store(tmp_path / "runs")
    first = commit_run(store).id
    segment = store.path / "ledger" / "000000000001.jsonl"
    with open(segment, "ab") as f:  # a writer killed in the middle of its line
        f.write(b'{"at":"2026-')
    assert audit.verify_store(store).problems  # until the next write, verify names it
    last = commit_run(store, started=T0 + timedelta(minutes=1)).id
    assert _segments(store) == {"000000000001.jsonl": (2, 0o644)}
    assert [ledger.decode(d)["subject"] for _, d in sorted(store.ledger_files().items())] == [first, last]
    assert audit.verify_store(store).problems == []


def test_a_line_added_past_a_full_segment_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger, "SEGMENT", 2)
    store = Store(tmp_path / "runs")
    for i in range(3):
        commit_run(store, started=T0 + timedelta(minutes=i))
    segment = store.path / "ledger" / "000000000001.jsonl"
    os.chmod(segment, 0o644)
    with open(segment, "ab") as f:
        f.write(ledger.lines(segment.read_bytes())[0])
    found = {(p.where, p.what) for p in audit.verify_store(store).problems if p.kind == "ledger"}
    assert ("entry 3", "holds entry 1: entries out of order") in found


@pytest.mark.parametrize("segment", [ledger.SEGMENT, 2], ids=["inside-a-segment", "a-segments-last-line"])
def test_a_run_whose_rename_fails_takes_its_entry_back(tmp_path, monkeypatch, segment):
    monkeypatch.setattr(ledger, "SEGMENT", segment)
    store = Store(tmp_path / "runs")
    first = commit_run(store).id
    rename = os.rename

    def failing(src, dst):
        if str(src).startswith(str(store.path / STAGING)):
            raise OSError(28, "No space left on device")
        return rename(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "rename", failing)  # with segments of 2, entry 2 fills one, which is made read-only
        with pytest.raises(StoreError, match="No space left on device"):
            commit_run(store, started=T0 + timedelta(minutes=1))
    assert _segments(store) == {"000000000001.jsonl": (1, 0o644)}  # not full: writable
    last = commit_run(store, started=T0 + timedelta(minutes=2)).id
    assert _segments(store) == {"000000000001.jsonl": (2, 0o444 if segment == 2 else 0o644)}
    assert [ledger.decode(d)["subject"] for _, d in sorted(store.ledger_files().items())] == [first, last]
    assert audit.verify_store(store).problems == [] and store.run_ids() == sorted([first, last])


def test_the_entry_file_of_a_dead_writer_of_an_older_mlnb_is_taken_over_after_a_segment(tmp_path, monkeypatch):
    store = Store(tmp_path / "runs")
    first = commit_run(store)
    left = _died_before_its_transaction_committed(store, monkeypatch, placed=True)
    segment = store.path / "ledger" / "000000000001.jsonl"
    *kept, line = ledger.lines(segment.read_bytes())  # that writer wrote a file per entry, as mlnb did before segments
    segment.write_bytes(b"".join(kept))
    (store.path / "ledger" / ledger.file_name(2)).write_bytes(line)
    last = commit_run(store, started=T0 + timedelta(minutes=1))
    entries = [ledger.decode(data) for _, data in sorted(store.ledger_files().items())]
    assert [e["subject"] for e in entries] == [first.id, left["subject"], last.id]
    assert audit.verify_store(store).problems == []


def test_the_quick_check_of_an_entry_reads_its_own_seq_not_one_nested_in_its_change():
    head = ledger.Head(11, "a" * 64)
    nested = {"name": "m", "meta": {"schema": ledger.SCHEMA, "seq": 11, "x": 1}}
    line = ledger.encode(ledger.make_entry(head, "tag", "m/1", nested))
    assert ledger.is_entry(line, 12) and not ledger.is_entry(line, 11)


@pytest.mark.parametrize("signed", [False, True])
def test_an_entry_is_written_as_its_canonical_json_whatever_its_change_holds(tmp_path, signed):
    signer = ledger.Signer(ledger.keygen(tmp_path / "key.pem")[0]) if signed else None
    head = ledger.Head(4, "a" * 64)
    for change in ({"id": "x", "record": "b" * 64}, {"digest": "d", "hash": "h", "subject": ',"subject":"x'},
                   {"name": "é\u2028\n", "nested": {"signature": "s", "seq": 1}}, {}):
        entry = ledger.make_entry(head, "tag", 'm/1 "quoted"', change, signer)
        _, data = ledger._made(head, "tag", 'm/1 "quoted"', change, signer, at=entry["at"])
        assert data == ledger.encode(entry) and ledger.decode(data) == entry
        assert entry["hash"] == ledger.entry_hash(entry) and ("signature" in entry) is signed

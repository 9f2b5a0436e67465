"""Run records: schema checks on read and write, digest, and tamper detection."""

from __future__ import annotations

import json

import pytest

from mlnb import records
from mlnb.exceptions import RecordError


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] = (data[middle] + 1) % 256
    path.write_bytes(bytes(data))


def _edit_record(run, change):
    path = run.path / "record.json"
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec))


@pytest.mark.parametrize(
    "tamper, where, what",
    [
        (lambda run: _flip_one_byte(run.path / "notebook.ipynb"), "notebook.ipynb", "content changed"),
        (lambda run: _flip_one_byte(run.path / "notebook.html"), "notebook.html", "content changed"),
        (lambda run: _flip_one_byte(run.artifact("out.txt")), "artifacts/out.txt", "content changed"),
        (lambda run: _flip_one_byte(run.artifact("scraps/table.parquet")), "artifacts/scraps/table.parquet", "content changed"),
        (lambda run: run.artifact("out.txt").unlink(), "artifacts/out.txt", "file is missing"),
        (lambda run: (run.path / "artifacts" / "extra.txt").write_text("x"), "artifacts/extra.txt", "not in the record"),
        (lambda run: _edit_record(run, lambda r: r["scraps"]["values"].update(n=6)), "record.json:scraps.values", "value changed"),
        (lambda run: _edit_record(run, lambda r: r["parameters"].update(n=6)), "record.json:parameters", "value changed"),
        (lambda run: _edit_record(run, lambda r: r.update(status="failed")), "record.json:status", "value changed"),
    ],
)
def test_verify_names_what_was_tampered_with(run_copy, tamper, where, what):
    assert records.verify(run_copy.path) == []
    tamper(run_copy)
    problems = records.verify(run_copy.path)
    assert any(p.where == where and what in p.what for p in problems), problems


def test_rewritten_field_hashes_are_still_caught_by_the_digest(run_copy):
    def forge(rec):
        rec["scraps"]["values"]["n"] = 6
        rec["field_sha256"] = records._field_hashes(rec)

    _edit_record(run_copy, forge)
    problems = records.verify(run_copy.path)
    assert [p.where for p in problems] == ["record.json:digest"]


def test_record_that_is_not_json_or_of_unknown_schema_is_refused(run_copy):
    path = run_copy.path / "record.json"
    rec = json.loads(path.read_text())
    path.write_text("{not json")
    with pytest.raises(RecordError, match="not JSON"):
        records.read_record(run_copy.path)
    path.write_text(json.dumps({**rec, "schema": "mlnb.run/9"}))
    with pytest.raises(RecordError, match=r"unknown schema 'mlnb.run/9'; this reader knows 'mlnb.run/1'"):
        records.read_record(run_copy.path)
    del rec["schema"]
    path.write_text(json.dumps(rec))
    with pytest.raises(RecordError, match="no 'schema' field"):
        records.read_record(run_copy.path)


def test_writing_a_record_that_breaks_the_schema_is_refused(run_copy, tmp_path):
    rec = dict(run_copy.record)
    rec["status"] = "maybe"
    with pytest.raises(RecordError, match="field status: 'maybe' is not one of"):
        records.write_record(tmp_path, rec)
    assert not (tmp_path / "record.json").exists()


def test_digest_is_over_canonical_json_without_the_digest(run_copy):
    rec = run_copy.record
    body = {k: v for k, v in rec.items() if k != "digest"}
    expected = records.sha256_bytes(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    assert rec["digest"] == expected


def test_json_lines_keeps_the_logs_own_entries_and_counts_the_rest():
    data = b'{"schema": "x/1", "a": 1}\n\n{"schema": "y/1"}\n[1, 2]\n{"schema": "x/1", "a": 2}\n{"schema": "x/1", "a"'
    entries, skipped = records.json_lines(data, "x/1")
    assert [e["a"] for e in entries] == [1, 2]
    assert skipped == 3  # another format, not an object, a torn last line; the blank line is no entry

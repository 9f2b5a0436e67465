"""The mlnb command as a user runs it: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from mlnb.store import Store

from .conftest import ROOT

NB = str(ROOT / "tests/notebooks/echo.ipynb")


def _one_line_error(result, code, *fragments):
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlnb: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _nothing_written(store_path):
    assert not store_path.exists() or Store(store_path).run_ids() == []


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["run", "nope"], ["unknown template 'nope'; available:", "drift"]),
        (["run", NB, "-p", "nope", "1"], ["unknown parameter 'nope' for template 'echo'; valid: n (int, default 3)"]),
        (["run", NB, "-p", "n", "abc"], ["parameter 'n' must be int, got str \"abc\""]),
        (["run", NB, "-p", "flag", "3"], ["parameter 'flag' must be bool, got int 3"]),
        (["run", NB, "-p", "x=1;import os;y", "1"], ["unknown parameter 'x=1;import os;y'"]),
        (["run", NB, "-p", "run_id", "x"], ["parameter 'run_id' is set by mlnb"]),
        (["run", NB, "-p", "ratio", ".nan"], ["parameter 'ratio' must be float, got str \".nan\""]),
    ],
)
def test_bad_run_input_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, args, fragments):
    store_path = tmp_path / "store"
    result = cli(*args, "--store", str(store_path))
    _one_line_error(result, 2, *fragments)
    _nothing_written(store_path)


def test_malformed_notebook_params_file_and_bad_store(cli, tmp_path):
    store_path = tmp_path / "store"
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{")
    _one_line_error(cli("run", str(broken), "--store", str(store_path)), 2, "is not a Jupyter notebook")
    params = tmp_path / "p.yaml"
    params.write_text("n: [1,\n")
    _one_line_error(cli("run", NB, "-f", str(params), "--store", str(store_path)), 2, "is not YAML")
    _nothing_written(store_path)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    _one_line_error(cli("run", NB, "--store", str(a_file)), 2, "is a file; give a directory")
    _one_line_error(cli("run", NB, "--store", "/proc/mlnb-store"), 2, "cannot create store '/proc/mlnb-store'")


def test_params_file_and_p_override(cli, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("n: 4\nname: from-file\n")
    store_path = tmp_path / "store"
    result = cli("run", NB, "-f", str(params), "-p", "n", "9", "--store", str(store_path), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["parameters"]["n"] == 9 and record["parameters"]["name"] == "from-file"


def test_failed_run_exits_1_with_the_error_and_where_to_read_it(cli, tmp_path):
    store_path = tmp_path / "store"
    result = cli("run", str(ROOT / "tests/notebooks/raises.ipynb"), "--store", str(store_path))
    assert result.returncode == 1
    assert "failed: exception in cell" in result.stderr and "ValueError: bad value 1" in result.stderr
    (run_id,) = Store(store_path).run_ids()
    assert f"{run_id}/notebook.html" in result.stdout
    listed = json.loads(cli("runs", "list", "--status", "failed", "--json", "--store", str(store_path)).stdout)
    assert [r["id"] for r in listed] == [run_id]


@pytest.mark.parametrize("command", [["runs", "show", "X"], ["runs", "verify", "X"], ["runs", "reproduce", "X"], ["runs", "diff", "X", "X"]])
def test_unknown_run_id_is_exit_2(cli, echo_run, command):
    store_path = echo_run.path.parent
    result = cli(*command, "--store", str(store_path))
    _one_line_error(result, 2, "run 'X' not found in store")


def test_reading_commands_on_a_real_run(cli, echo_run):
    store = str(echo_run.path.parent)
    listed = json.loads(cli("runs", "list", "--json", "--store", store).stdout)
    assert listed[0]["id"] == echo_run.id
    assert {"id", "template", "status", "started", "parameters"} <= set(listed[0])
    assert json.loads(cli("runs", "list", "--template", "other", "--json", "--store", store).stdout) == []
    shown = cli("runs", "show", echo_run.id, "--store", store)
    assert shown.returncode == 0
    assert "parameters" in shown.stdout and "out.txt" in shown.stdout and "notebook.html" in shown.stdout
    record = json.loads(cli("runs", "show", echo_run.id, "--json", "--store", store).stdout)
    assert record == echo_run.record
    verified = cli("runs", "verify", "--store", store)
    assert verified.returncode == 0 and "1 runs checked, 1 intact, 0 changed" in verified.stdout


def test_verify_exits_1_and_names_the_changed_file(cli, run_copy):
    (run_copy.path / "notebook.ipynb").write_text("{}")
    result = cli("runs", "verify", "--store", str(run_copy.path.parent))
    assert result.returncode == 1
    assert f"CHANGED {run_copy.id}: notebook.ipynb: content changed" in result.stdout


def test_show_refuses_a_record_that_is_not_json(cli, run_copy):
    (run_copy.path / "record.json").write_text("not json")
    result = cli("runs", "show", run_copy.id, "--store", str(run_copy.path.parent))
    _one_line_error(result, 2, "record.json: not JSON")


def test_diff_marks_changed_values(cli, echo_run, tmp_path):
    store_path = tmp_path / "store"
    shutil.copytree(echo_run.path, store_path / echo_run.id)
    other = cli("run", NB, "-p", "n", "8", "--store", str(store_path), "--json")
    other_id = json.loads(other.stdout)["id"]
    result = cli("runs", "diff", echo_run.id, other_id, "--store", str(store_path), "--json")
    rows = {(r["section"], r["name"]): r for r in json.loads(result.stdout)}
    assert rows[("parameters", "n")]["changed"] and rows[("parameters", "n")]["b"] == 8
    assert rows[("scraps", "values.n")]["changed"]
    assert not rows[("parameters", "ratio")]["changed"]
    assert not rows[("scraps", "table")]["changed"]  # same table content
    text = cli("runs", "diff", echo_run.id, other_id, "--store", str(store_path)).stdout
    assert "* n" in text and "values differ" in text


def test_index_is_rebuilt_when_missing_or_stale(cli, echo_run, tmp_path):
    store_path = tmp_path / "store"
    shutil.copytree(echo_run.path, store_path / echo_run.id)
    assert [r["id"] for r in json.loads(cli("runs", "list", "--json", "--store", str(store_path)).stdout)] == [echo_run.id]
    (store_path / "mlnb.sqlite").unlink()
    assert len(json.loads(cli("runs", "list", "--json", "--store", str(store_path)).stdout)) == 1
    shutil.rmtree(store_path / echo_run.id)
    assert json.loads(cli("runs", "list", "--json", "--store", str(store_path)).stdout) == []
    assert cli("runs", "reindex", "--store", str(store_path)).returncode == 0


def test_store_comes_from_environment_variable(cli, echo_run):
    result = cli("runs", "list", "--json", env={"MLNB_STORE": str(echo_run.path.parent)})
    assert json.loads(result.stdout)[0]["id"] == echo_run.id


def test_help_documents_exit_codes(cli):
    result = cli("--help")
    assert result.returncode == 0
    assert "Exit codes:" in result.stdout and "130" in result.stdout


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", b"", "the file is empty"),
        ("latin1.csv", "date,weather\n2013-01-01,soleil é\n".encode("latin-1"), "not UTF-8 text"),
        ("binary.csv", b"\x00\x01\x02\x03", "binary, not text"),
        ("table.xlsx", b"PK\x03\x04", "unknown extension '.xlsx'"),
        ("broken.parquet", b"not parquet at all", "as parquet"),
    ],
)
def test_unreadable_data_is_exit_2_before_anything_runs(cli, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    store_path = tmp_path / "store"
    result = cli("run", "validate", "-p", "data", str(path), "--store", str(store_path))
    _one_line_error(result, 2, "parameter 'data': cannot read", message)
    _nothing_written(store_path)


def test_validate_gates_with_exit_codes(cli, tmp_path):
    import pandas as pd

    store_path = tmp_path / "store"
    good = cli("run", "validate", "--store", str(store_path), "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["scraps"]["passed"] is True
    batch = pd.read_csv(ROOT / "data/batches/2013-q1.csv")
    batch.loc[0:4, "temp_max"] = 99.0
    batch.loc[5, "weather"] = "hail"
    bad = tmp_path / "bad.csv"
    batch.to_csv(bad, index=False)
    result = cli("run", "validate", "-p", "data", str(bad), "--store", str(store_path), "--json")
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["status"] == "failed" and record["error"]["ename"] == "ValidationFailed"
    assert record["scraps"]["passed"] is False
    assert "temp_max" in record["error"]["evalue"] and "weather" in record["error"]["evalue"]


def test_a_store_url_without_its_database_is_refused_with_the_way(cli):
    result = cli("runs", "list", "--store", "s3://bucket/runs", env={"MLNB_DATABASE": None})
    _one_line_error(result, 2, "store 's3://bucket/runs' is a team store and needs its database",
                    "set MLNB_DATABASE=postgresql://")


@pytest.mark.parametrize("args, message", [
    (("run", "echo", "--timeout", "-1"), ("Invalid value for '--timeout': -1.0 is not in the range x>0. (see '",
                                          "mlnb run --help')")),
    (("runs", "lst"), ("No such command 'lst'. Did you mean 'list'? (see '", "mlnb runs --help')")),
    (("models", "show"), ("Missing argument 'URI'. (see '", "mlnb models show --help')")),
])
def test_a_usage_error_is_one_line_saying_where_help_is(cli, tmp_path, args, message):
    result = cli(*args, "--store", str(tmp_path / "store")) if args[0] != "runs" else cli(*args)
    _one_line_error(result, 2, *message)
    assert not (tmp_path / "store").exists()


def test_a_database_that_breaks_is_one_line_not_a_traceback(cli, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "mlnb.sqlite").write_bytes(b"not a database at all, but long enough to be read" * 20)
    result = cli("models", "list", "--store", str(store))
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "file is not a database" in result.stderr


def test_json_lists_print_one_item_a_line_and_parse_back(capsys):
    from mlnb.cli_common import echo_json

    runs = [{"id": f"run-{i}", "scraps": {"metrics": {"f1": i / 10}}, "name": "é"} for i in range(3)]
    echo_json(runs)
    out = capsys.readouterr().out
    assert json.loads(out) == runs
    lines = out.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 5  # grep-able: a run a line
    assert '"id": "run-1"' in lines[2] and "é" in lines[2]
    echo_json({"id": "run-1", "parameters": {"seed": 1}})
    assert capsys.readouterr().out.splitlines()[:2] == ["{", '  "id": "run-1",']
    echo_json([])
    assert capsys.readouterr().out == "[]\n"


# -- the ledger from the command line ---------------------------------------------------------


@pytest.fixture
def ledger_store(tmp_path):
    from .abstract.store import write_runs

    store = Store(tmp_path / "store")
    return store, write_runs(store, 2)


def test_store_head_is_kept_and_verify_since_proves_the_store_only_grew(cli, ledger_store):
    from .abstract.store import write_runs

    store, _ = ledger_store
    head = cli("store", "head", "--store", str(store.path))
    assert head.returncode == 0 and head.stdout.startswith("2:") and len(head.stdout.strip()) == 2 + 64
    write_runs(store, 1)
    grown = cli("runs", "verify", "--since", head.stdout.strip(), "--store", str(store.path))
    assert grown.returncode == 0, grown.stdout
    assert "3 runs checked, 3 intact, 0 changed" in grown.stdout and "ledger: 3 entries, head 3:" in grown.stdout
    forged = cli("store", "verify", "--since", "2:" + "0" * 64, "--store", str(store.path))
    assert forged.returncode == 1 and forged.stderr == ""
    assert "LEDGER ledger: entry 2: is not the given head's (000000000000…" in forged.stdout
    _one_line_error(cli("store", "verify", "--since", "two", "--store", str(store.path)), 2,
                    "head 'two' is not COUNT:HASH")


def test_a_deleted_run_and_an_edited_index_row_are_lines_and_exit_1_and_repair_fixes_the_index(cli, ledger_store):
    import sqlite3

    store, ids = ledger_store
    for path in (store.path / ids[0], *(store.path / ids[0]).rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(store.path / ids[0])
    with sqlite3.connect(store.path / "mlnb.sqlite") as db:
        db.execute("UPDATE runs SET status = 'failed' WHERE id = ?", (ids[1],))
    found = cli("runs", "verify", "--store", str(store.path))
    assert found.returncode == 1 and found.stderr == ""
    assert f"DELETED {ids[0]}: run: deleted: ledger entry 1 records it, the store has no such run" in found.stdout
    assert f"INDEX {ids[1]}: index:status: is 'failed', the record says 'succeeded'" in found.stdout
    repaired = cli("runs", "verify", "--repair", "--store", str(store.path))
    assert f"REPAIRED {ids[1]}: index:status" in repaired.stdout and repaired.returncode == 1  # the deletion stays
    again = cli("runs", "verify", "--store", str(store.path))
    assert "INDEX" not in again.stdout and "DELETED" in again.stdout


def test_signatures_from_the_command_line(cli, tmp_path, monkeypatch):
    from .abstract.store import write_runs

    made = cli("store", "keygen", str(tmp_path / "key.pem"))
    assert made.returncode == 0 and "fingerprint ed25519:" in made.stdout
    assert (tmp_path / "key.pem").stat().st_mode & 0o077 == 0 and (tmp_path / "key.pub.pem").is_file()
    _one_line_error(cli("store", "keygen", str(tmp_path / "key.pem")), 2, "exists; give another path")
    monkeypatch.setenv("MLNB_SIGNING_KEY", str(tmp_path / "key.pem"))
    store = Store(tmp_path / "store")
    write_runs(store, 2)
    good = cli("store", "verify", "--public-key", str(tmp_path / "key.pub.pem"), "--store", str(store.path))
    assert good.returncode == 0 and "2 signatures checked against ed25519:" in good.stdout
    cli("store", "keygen", str(tmp_path / "other.pem"))
    wrong = cli("store", "verify", "--public-key", str(tmp_path / "other.pub.pem"), "--store", str(store.path))
    assert wrong.returncode == 1 and wrong.stdout.count("SIGNATURE ledger: entry") == 2
    (tmp_path / "notakey.txt").write_text("hello\n")
    _one_line_error(cli("runs", "verify", "--public-key", str(tmp_path / "notakey.txt"), "--store", str(store.path)),
                    2, "is not a PEM public key")
    _one_line_error(cli("runs", "verify", "--public-key", str(tmp_path / "key.pem"), "--store", str(store.path)),
                    2, "is not a PEM public key")  # the private key is not the one to give
    bad_key = cli("run", NB, "--store", str(store.path), env={"MLNB_SIGNING_KEY": str(tmp_path / "notakey.txt")})
    _one_line_error(bad_key, 2, "is not an unencrypted PEM private key")
    assert len(store.run_ids()) == 2


def test_a_store_from_before_the_ledger_verifies_and_store_init_starts_one_over_its_runs(cli, echo_run, tmp_path):
    store_path = tmp_path / "old"
    shutil.copytree(echo_run.path, store_path / echo_run.id)  # a store that never had a ledger
    before = cli("runs", "verify", "--store", str(store_path))
    assert before.returncode == 0 and "ledger: none yet" in before.stdout
    assert cli("store", "init", "--store", str(store_path)).returncode == 0
    after = cli("store", "verify", "--store", str(store_path))
    assert after.returncode == 0, after.stdout
    assert "ledger: 2 entries" in after.stdout and "it started over what the store held then (runs: 1)" in after.stdout


def test_reading_commands_import_no_cryptography(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom mlnb.cli import main\nsys.argv = ['mlnb', 'runs', 'list', '--store', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint('cryptography' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip().endswith("False"), done.stderr


def test_the_program_ends_with_its_whole_output_and_exit_code_on_a_pipe(tmp_path, cli):
    import json
    from datetime import datetime, timedelta, timezone

    from mlnb.store import Store
    from mlnb.ui.sample import _Writer

    writer = _Writer(Store(tmp_path / "runs"))
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(400):  # a listing larger than a pipe holds, printed just before the process ends
        writer.write("train", t0 + timedelta(minutes=i), {"seed": i, "note": "x" * 200}, {"metrics": {"f1": i / 400}})
    listed = cli("runs", "list", "--json", "--store", str(tmp_path / "runs"))
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 400
    missing = cli("runs", "show", "nosuch", "--store", str(tmp_path / "runs"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "not found" in missing.stderr

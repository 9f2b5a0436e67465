"""A catalogue of bad inputs across the command line, each held to the README's promise:
the documented exit code, exactly one line on stderr (no traceback), and the store as it
was — not one file changed, and no store directory where there was none.

The commands run in this process (click's runner), from an empty working directory, so no
project's mlnb.yaml is picked up. Every case is refused before a kernel starts, so the
whole catalogue costs what preparing its one store costs. The count of cases tried and held
is printed at the end of the run (``-s`` shows it) and recorded in benchmarks/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from .conftest import NOTEBOOKS, ROOT

REFERENCE = ROOT / "data/reference.csv"
ECHO = NOTEBOOKS / "echo.ipynb"
LONG = "x" * 300  # longer than a file name may be (255 bytes)
ESCAPES = "\x1b[2J\x1b]0;pwned\x07[red]markup[/red]\x9b31m"

_held: list[str] = []
_tried: list[str] = []


# -- the prepared store, the files the cases give, the project ------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A store with an echo run (a parameter full of terminal escapes), a training run and
    model ``wx`` (version 1, ``wx@production``); a copy whose ``wx@production`` points at a
    version that does not exist; the bad files; a project directory with mlnb.yaml."""
    from mlnb.execute import run_template
    from mlnb.registry import Registry

    base = tmp_path_factory.mktemp("bad-inputs")
    store = base / "store"
    echo = run_template(ECHO, {"name": ESCAPES}, store)
    train = run_template("train", {"data": str(REFERENCE), "target": "weather", "hyperparameters": {"max_iter": 5},
                                   "features": ["precipitation", "temp_max", "temp_min", "wind"]}, store)
    assert echo.succeeded and train.succeeded, (echo.record["error"], train.record["error"])
    with Registry(store) as registry:
        registry.register(train.id, "wx")
        registry.promote("wx", 1, reason="the first")
    with sqlite3.connect(store / "mlnb.sqlite") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dangling = base / "dangling"
    shutil.copytree(store, dangling, symlinks=True)
    os.chmod(dangling / "mlnb.sqlite", 0o644)
    with sqlite3.connect(dangling / "mlnb.sqlite") as db:  # an alias edited outside mlnb
        db.execute("UPDATE model_aliases SET version = 7")
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = base / "files"
    files.mkdir()
    (files / "broken.ipynb").write_text("{")
    nb = json.loads(ECHO.read_text())
    (files / "nokernel.ipynb").write_text(json.dumps({**nb, "metadata": {**nb["metadata"], "kernelspec": {
        "name": "no-such-kernel", "display_name": "gone", "language": "python"}}}))
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = "n = len('abc')  # not a literal\n"
    (files / "badcell.ipynb").write_text(json.dumps(nb))
    (files / "notyaml.yaml").write_text("n: [1,\n")
    (files / "bomb.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
    (files / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (files / "list.yaml").write_text("- 1\n- 2\n")
    (files / "unknown.yaml").write_text("nope: 1\n")
    (files / "wrongtype.yaml").write_text("n: [1, 2]\n")
    (files / "empty.csv").write_bytes(b"")
    (files / "latin1.csv").write_bytes("date,weather\n2013-01-01,soleil \xe9\n".encode("latin-1"))
    (files / "binary.csv").write_bytes(b"\x00\x01\x02\x03")
    (files / "table.xlsx").write_bytes(b"PK\x03\x04")
    (files / "broken.parquet").write_bytes(b"not parquet at all")
    header, *rows = REFERENCE.read_text().splitlines()
    (files / "dup.csv").write_text("\n".join([header.replace("temp_min", "wind"), *rows]) + "\n")
    (files / "headeronly.csv").write_text("a,b\n")
    (files / "a-file").write_text("not a directory")
    (files / "empty.token").write_text("  \n")
    (files / "labels.csv").write_text("request_id,label\nr1,sun\n")
    project = base / "project"
    (project / "data" / "batches").mkdir(parents=True)
    shutil.copy(REFERENCE, project / "data" / "reference.csv")
    shutil.copy(ROOT / "data/batches/2013-q1.csv", project / "data" / "batches" / "2013-q1.csv")
    work = base / "work"  # where the commands run: no mlnb.yaml, no templates/
    work.mkdir()
    return {"store": store, "dangling": dangling, "files": files, "project": project, "work": work,
            "echo": echo.id, "train": train.id, "absent": base / "absent"}


_CONFIG = """\
model:
  name: proj
  task: classification
  target: weather
  features: [precipitation, temp_max, temp_min, wind]
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  hyperparameters: {max_iter: 5}
data:
  reference: data/reference.csv
  current: data/batches/*.csv
store: runs
"""


def _config(project: Path, name: str, text: str | bytes) -> str:
    path = project / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _variant(old: str, new: str) -> str:
    assert old in _CONFIG
    return _CONFIG.replace(old, new, 1)


# -- the catalogue ---------------------------------------------------------------------------------
# (id, args, exit code, a fragment of the one line); in args: {store} the prepared store,
# {dangling} its copy with a dangling alias, {absent} a store that does not exist, {f} the
# directory of bad files, {echo} / {train} the prepared runs' ids, {p} the project, {ref} the
# reference table. A case on {absent} also checks that no store directory appears.

T = "templates"
CASES = [
    # templates
    ("template-unknown", ["run", "nope", "--store", "{absent}"], 2, "unknown template 'nope'; available:"),
    ("template-not-json", ["run", "{f}/broken.ipynb", "--store", "{absent}"], 2, "is not a Jupyter notebook"),
    ("template-a-directory", ["run", "{f}/", "--store", "{absent}"], 2, "is a directory, not a notebook"),
    ("template-missing-path", ["run", "{f}/gone.ipynb", "--store", "{absent}"], 2, "does not exist"),
    ("template-parameters-cell", ["run", "{f}/badcell.ipynb", "--store", "{absent}"], 2, "not a literal"),
    ("template-kernel-not-installed", ["run", "{f}/nokernel.ipynb", "--store", "{absent}"], 2,
     "kernel 'no-such-kernel' is not installed; installed kernels: python3"),
    ("kernel-flag-not-installed", ["run", str(ECHO), "--kernel", "nosuchkernel", "--store", "{store}"], 2,
     "kernel 'nosuchkernel' is not installed; installed kernels: python3"),
    ("kernel-flag-not-installed-cold", ["run", str(ECHO), "--kernel", "nosuchkernel", "--cold", "--store", "{absent}"],
     2, "kernel 'nosuchkernel' is not installed"),
    # parameters
    ("param-unknown", ["run", str(ECHO), "-p", "nope", "1", "--store", "{store}"], 2, "unknown parameter 'nope'"),
    ("param-not-int", ["run", str(ECHO), "-p", "n", "abc", "--store", "{absent}"], 2, "parameter 'n' must be int"),
    ("param-not-bool", ["run", str(ECHO), "-p", "flag", "3", "--store", "{absent}"], 2, "parameter 'flag' must be bool"),
    ("param-not-list", ["run", str(ECHO), "-p", "items", "{{", "--store", "{absent}"], 2, "parameter 'items' must be list"),
    ("param-not-dict", ["run", str(ECHO), "-p", "options", "[1]", "--store", "{absent}"], 2,
     "parameter 'options' must be dict"),
    ("param-nan", ["run", str(ECHO), "-p", "ratio", ".nan", "--store", "{absent}"], 2, "parameter 'ratio' must be float"),
    ("param-name-injection", ["run", str(ECHO), "-p", "x=1;import os;y", "1", "--store", "{absent}"], 2,
     "unknown parameter 'x=1;import os;y'"),
    ("param-run-id-reserved", ["run", str(ECHO), "-p", "run_id", "x", "--store", "{absent}"], 2,
     "parameter 'run_id' is set by mlnb"),
    ("param-artifacts-dir-reserved", ["run", str(ECHO), "-p", "artifacts_dir", "/tmp", "--store", "{absent}"], 2,
     "parameter 'artifacts_dir' is set by mlnb"),
    ("param-relative-path-missing", ["run", str(ECHO), "-p", "data", "../nope.csv", "--cold", "--store", "{store}"], 2,
     "'../nope.csv' does not exist in"),
    ("param-relative-path-missing-warm", ["run", str(ECHO), "-p", "data", "./nope.csv", "--store", "{absent}"], 2,
     "relative paths given with -p or -f are taken from where mlnb runs"),
    ("param-long-path-of-a-table", ["run", "validate", "-p", "data", LONG + ".csv", "-p", "reference", "{ref}", "--cold",
                                    "--store", "{absent}"], 2, "File name too long"),
    ("param-long-text-as-a-path", ["run", str(ECHO), "-p", "data", LONG + ".csv", "--cold", "--store", "{absent}"], 2,
     "does not exist in"),
    ("param-table-missing", ["run", "validate", "-p", "data", "{f}/missing.csv", "-p", "reference", "{ref}", "--cold", "--store", "{absent}"], 2,
     "parameter 'data': cannot read", ),
    ("param-target-not-a-column", ["run", "train", "-p", "data", "{ref}", "-p", "target", "nope", "--cold",
                                   "--store", "{absent}"], 2, "'nope' is not a column of"),
    ("param-columns-not-columns", ["run", "drift", "-p", "reference", "{ref}", "-p", "current", "{ref}", "-p",
                                   "columns", '["nope"]', "--cold", "--store", "{absent}"], 2, "in none of the tables"),
    ("param-model-unknown", ["run", "evaluate", "-p", "model", "nope@production", "-p", "data", "{ref}", "--cold",
                             "--store", "{store}"], 2, "parameter 'model': no model named 'nope'"),
    ("param-model-dangling-alias", ["run", "evaluate", "-p", "model", "wx@production", "-p", "data", "{ref}", "--cold",
                                    "--store", "{dangling}"], 2, "points at version 7"),
    ("param-shadow-log-missing", ["run", "shadow", "-p", "log", "nope", "--cold", "--store", "{absent}"], 2,
     "no shadow log for model 'nope'"),
    # params files
    ("params-file-missing", ["run", str(ECHO), "-f", "{f}/gone.yaml", "--store", "{absent}"], 2, "no such file"),
    ("params-file-not-yaml", ["run", str(ECHO), "-f", "{f}/notyaml.yaml", "--store", "{absent}"], 2, "is not YAML"),
    ("params-file-alias-bomb", ["run", str(ECHO), "-f", "{f}/bomb.yaml", "--store", "{absent}"], 2, "alias"),
    ("params-file-not-utf8", ["run", str(ECHO), "-f", "{f}/latin1.yaml", "--store", "{absent}"], 2, "UTF-8"),
    ("params-file-a-list", ["run", str(ECHO), "-f", "{f}/list.yaml", "--store", "{absent}"], 2,
     "must be a mapping of names to values"),
    ("params-file-unknown-name", ["run", str(ECHO), "-f", "{f}/unknown.yaml", "--store", "{store}"], 2,
     "unknown parameter 'nope'"),
    ("params-file-wrong-type", ["run", str(ECHO), "-f", "{f}/wrongtype.yaml", "--store", "{absent}"], 2,
     "parameter 'n' must be int"),
    ("params-file-a-directory", ["run", str(ECHO), "-f", "{f}", "--store", "{absent}"], 2, "parameters file"),
    # store paths
    ("store-a-file", ["runs", "list", "--store", "{f}/a-file"], 2, "is a file; give a directory"),
    ("store-a-file-for-run", ["run", str(ECHO), "--store", "{f}/a-file"], 2, "is a file; give a directory"),
    ("store-cannot-be-created", ["run", str(ECHO), "--cold", "--store", "/proc/mlnb-store"], 2,
     "cannot create store '/proc/mlnb-store'"),
    ("store-url-without-database", ["runs", "list", "--store", "s3://bucket/runs"], 2,
     "is a team store and needs its database"),
    ("store-ui-absent", ["ui", "--store", "{absent}"], 2, "does not exist"),
    # run ids
    ("run-id-unknown-show", ["runs", "show", "X", "--store", "{store}"], 2, "run 'X' not found"),
    ("run-id-unknown-verify", ["runs", "verify", "X", "--store", "{store}"], 2, "run 'X' not found"),
    ("run-id-unknown-diff", ["runs", "diff", "{echo}", "X", "--store", "{store}"], 2, "run 'X' not found"),
    ("run-id-unknown-reproduce", ["runs", "reproduce", "X", "--store", "{store}"], 2, "run 'X' not found"),
    ("run-id-path", ["runs", "show", "../../etc", "--store", "{store}"], 2, "not found"),
    ("run-id-empty", ["runs", "show", "", "--store", "{store}"], 2, "not found"),
    ("run-id-in-absent-store", ["runs", "show", "X", "--store", "{absent}"], 2, "not found"),
    ("register-unknown-run", ["models", "register", "X", "--name", "wx", "--store", "{store}"], 2, "run 'X' not found"),
    ("register-not-a-training-run", ["models", "register", "{echo}", "--name", "wx2", "--store", "{store}"], 2, "echo"),
    ("register-bad-name", ["models", "register", "{train}", "--name", "Bad/Name", "--store", "{store}"], 2, "Bad/Name"),
    # model URIs
    ("uri-unknown-model", ["models", "show", "nope@production", "--store", "{store}"], 2, "no model named 'nope'"),
    ("uri-bad-name", ["models", "show", "Bad Name@production", "--store", "{store}"], 2, "Bad Name"),
    ("uri-version-zero", ["models", "show", "wx/0", "--store", "{store}"], 2, "wx/0"),
    ("uri-version-missing", ["models", "show", "wx/99", "--store", "{store}"], 2, "has no version 99"),
    ("uri-alias-missing", ["models", "show", "wx@nope", "--store", "{store}"], 2, "has no alias 'nope'"),
    ("uri-alias-dangling", ["models", "show", "wx@production", "--store", "{dangling}"], 2,
     "alias 'production' of model 'wx' points at version 7, which the registry does not have"),
    ("uri-path-like", ["models", "show", "../x", "--store", "{store}"], 2, "model name '..' is not allowed"),
    ("uri-empty-store", ["models", "show", "wx@production", "--store", "{absent}"], 2, "no model named 'wx'"),
    ("history-unknown-model", ["models", "history", "nope", "--store", "{store}"], 2, "no model named 'nope'"),
    ("promote-missing-version", ["models", "promote", "wx", "99", "--store", "{store}"], 2, "99"),
    ("promote-in-absent-store", ["models", "promote", "wx", "1", "--store", "{absent}"], 2, "no model named 'wx'"),
    ("rollback-in-absent-store", ["models", "rollback", "wx", "--store", "{absent}"], 2, "no model named 'wx'"),
    ("tag-in-absent-store", ["models", "tag", "wx/1", "a=b", "--store", "{absent}"], 2, "no model named 'wx'"),
    ("predict-unknown-model", ["predict", "nope@production", "--input", "{ref}", "--output", "{absent}.csv",
                               "--store", "{store}"], 2, "no model named 'nope'"),
    ("predict-input-missing", ["predict", "wx@production", "--input", "{f}/gone.csv", "--output", "{absent}.csv",
                               "--store", "{store}"], 2, "no such file"),
    ("serve-unknown-alias", ["serve", "wx@staging", "--store", "{store}", "--port", "0"], 2, "has no alias 'staging'"),
    ("serve-dangling-alias", ["serve", "wx@production", "--store", "{dangling}", "--port", "0"], 2, "points at version 7"),
    # mlnb.yaml keys
    ("config-missing", ["pipeline", "run", "--config", "{p}/gone.yaml"], 2, "no such file"),
    ("config-not-yaml", ["pipeline", "run", "--config", ("{p}", "notyaml.yaml", "model: [\n")], 2, "not YAML"),
    ("config-alias-bomb", ["pipeline", "run", "--config", ("{p}", "bomb.yaml", "{f}/bomb.yaml")], 2, "alias"),
    ("config-not-utf8", ["pipeline", "run", "--config", ("{p}", "latin1.yaml", _CONFIG.encode() + b"# caf\xe9\n")],
     2, "UTF-8"),
    ("config-unknown-key", ["pipeline", "run", "--config", ("{p}", "k.yaml", _variant("store: runs", "stor: runs"))], 2,
     "stor: unknown key"),
    ("config-target-not-a-column", ["pipeline", "run", "--config",
                                    ("{p}", "t.yaml", _variant("target: weather", "target: nope"))], 2,
     "model.target: 'nope' is not a column"),
    ("config-feature-not-a-column", ["pipeline", "run", "--config", ("{p}", "fe.yaml", _variant("wind]", "gust]"))], 2,
     "model.features: 'gust' not in the reference"),
    ("config-estimator-does-not-import", ["pipeline", "run", "--config", (
        "{p}", "e.yaml", _variant("HistGradientBoostingClassifier", "NoSuchClassifier"))], 2, "model.estimator"),
    ("config-hyperparameter-not-taken", ["pipeline", "run", "--config", (
        "{p}", "h.yaml", _variant("{max_iter: 5}", "{max_iterations: 5}"))], 2, "max_iterations"),
    ("config-drift-method-unknown", ["pipeline", "run", "--config", (
        "{p}", "d.yaml", _CONFIG + "drift: {method: wobbly}\n")], 2, "drift.method"),
    ("config-metric-unknown", ["pipeline", "run", "--config", (
        "{p}", "m.yaml", _CONFIG + "promotion: {metric: nope}\n")], 2, "promotion.metric: 'nope'"),
    ("config-request-limit", ["pipeline", "run", "--config", (
        "{p}", "l.yaml", _CONFIG + "http: {max_request_bytes: 0}\n")], 2, "http.max_request_bytes"),
    ("config-current-and-backfill", ["pipeline", "run", "--config", ("{p}", "ok.yaml", _CONFIG), "--current", "{ref}",
                                     "--backfill", "*.csv"], 2, "give --current or --backfill, not both"),
    # data files
    ("data-empty", ["run", "validate", "-p", "data", "{f}/empty.csv", "-p", "reference", "{ref}", "--cold", "--store", "{absent}"], 2,
     "the file is empty"),
    ("data-not-utf8", ["run", "validate", "-p", "data", "{f}/latin1.csv", "-p", "reference", "{ref}", "--cold", "--store", "{absent}"], 2,
     "not UTF-8 text"),
    ("data-binary", ["run", "validate", "-p", "data", "{f}/binary.csv", "-p", "reference", "{ref}", "--cold", "--store", "{absent}"], 2,
     "binary, not text"),
    ("data-unknown-extension", ["run", "validate", "-p", "data", "{f}/table.xlsx", "-p", "reference", "{ref}", "--cold", "--store", "{absent}"], 2,
     "unknown extension '.xlsx'"),
    ("data-broken-parquet", ["run", "validate", "-p", "data", "{f}/broken.parquet", "-p", "reference", "{ref}", "--cold", "--store", "{absent}"],
     2, "as parquet"),
    ("data-duplicated-column", ["run", "validate", "-p", "data", "{f}/dup.csv", "-p", "reference", "{ref}", "--cold",
                                "--store", "{store}"], 2, "column 'wind' appears more than once in the header"),
    ("data-duplicated-column-train", ["run", "train", "-p", "data", "{f}/dup.csv", "-p", "target", "weather",
                                      "--cold", "--store", "{absent}"], 2, "column 'wind' appears more than once"),
    ("labels-file-missing", ["labels", "add", "{f}/gone.csv", "--store", "{store}"], 2, "gone.csv"),
    ("init-data-missing", ["init", "{absent}", "--data", "{f}/gone.csv", "--target", "x"], 2, "gone.csv"),
    ("init-target-not-a-column", ["init", "{absent}", "--data", "{ref}", "--target", "nope"], 2, "nope"),
    # serve and ui flags
    ("serve-token-file-missing", ["serve", "wx@production", "--token-file", "{f}/gone.token", "--store", "{store}"], 2,
     "--token-file"),
    ("serve-token-file-empty", ["serve", "wx@production", "--token-file", "{f}/empty.token", "--store", "{store}"], 2,
     "is empty; write a token"),
    ("serve-request-limit-zero", ["serve", "wx@production", "--max-request-bytes", "0", "--store", "{store}"], 2,
     "Invalid value for '--max-request-bytes'"),
    ("serve-request-limit-text", ["serve", "wx@production", "--max-request-bytes", "lots", "--store", "{store}"], 2,
     "'lots' is not a valid integer"),
    ("serve-port-out-of-range", ["serve", "wx@production", "--port", "70000", "--store", "{store}"], 2,
     "Invalid value for '--port'"),
    ("serve-workers-zero", ["serve", "wx@production", "--workers", "0", "--store", "{store}"], 2,
     "Invalid value for '--workers'"),
    ("ui-token-file-missing", ["ui", "--token-file", "{f}/gone.token", "--store", "{store}"], 2, "--token-file"),
    ("ui-write-token-file-empty", ["ui", "--write-token-file", "{f}/empty.token", "--store", "{store}"], 2,
     "is empty; write a token"),
    ("ui-request-limit-negative", ["ui", "--max-request-bytes", "-5", "--store", "{store}"], 2,
     "Invalid value for '--max-request-bytes'"),
    # usage
    ("usage-timeout-negative", ["run", str(ECHO), "--timeout", "-1", "--store", "{absent}"], 2,
     "Invalid value for '--timeout'"),
    ("usage-unknown-command", ["runs", "lst"], 2, "No such command 'lst'"),
    ("usage-missing-argument", ["models", "show"], 2, "Missing argument 'URI'"),
    ("usage-status-choice", ["runs", "list", "--status", "done", "--store", "{store}"], 2, "Invalid value for '--status'"),
    ("usage-filter-bad", ["runs", "list", "--filter", "status ==== 'x'", "--store", "{store}"], 2, "filter"),
    ("sweep-grid-wrong-type", ["sweep", str(ECHO), "--grid", "n=a,b", "--store", "{absent}"], 2,
     "parameter 'n' must be int"),
]


def _args(args: list, prepared: dict) -> list[str]:
    values = {k: str(v) for k, v in prepared.items() if isinstance(v, (str, Path))}
    values.update(f=str(prepared["files"]), p=str(prepared["project"]), ref=str(REFERENCE))
    out = []
    for arg in args:
        if isinstance(arg, tuple):  # a config file written into the project: (dir, name, text or a file to copy)
            where, name, text = arg
            where = where.format(**values)
            if isinstance(text, str) and text.startswith("{f}/"):
                text = (prepared["files"] / text[4:]).read_bytes()
            out.append(_config(Path(where), name, text))
        else:
            out.append(arg.format(**values) if "{" in arg and "}" in arg and arg != "{{" else arg)
    return out


def _listing(path: Path) -> dict[str, tuple]:
    """Every file and directory under ``path``: kind, size, modification time, mode."""
    if not path.exists():
        return {}
    out = {".": ("dir",)}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st = full.lstat()
            out[str(full.relative_to(path))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def _stores(prepared: dict) -> list[Path]:
    return [prepared["store"], prepared["dangling"], prepared["absent"], Path(f"{prepared['absent']}.csv"),
            prepared["project"] / "runs", prepared["work"]]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_line_its_exit_code_and_nothing_written(case, prepared, monkeypatch):
    from mlnb.cli import main

    name, args, code, fragment = case
    _tried.append(name)
    monkeypatch.chdir(prepared["work"])
    for var in ("MLNB_STORE", "MLNB_DATABASE"):
        monkeypatch.delenv(var, raising=False)
    argv = _args(args, prepared)
    before = {str(p): _listing(p) for p in _stores(prepared)}
    result = CliRunner().invoke(main, argv, catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (argv, result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("mlnb: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    after = {str(p): _listing(p) for p in _stores(prepared)}
    assert after == before, "the command changed a store (or created one)"
    assert not prepared["absent"].exists()
    _held.append(name)


def test_the_catalogue_is_large_and_its_count_is_reported(capsys):
    """Runs after the cases (same module, in order): at least 60 tried, every one held."""
    assert len(CASES) >= 60
    with capsys.disabled():
        print(f"\nbad-input catalogue: {len(_tried)} tried, {len(_held)} held")
    assert len(_held) == len(_tried)


def test_runs_show_prints_escape_sequences_of_a_value_as_text(prepared, monkeypatch):
    """A parameter holding a terminal escape sequence (clear screen, set the title, a CSI in
    C1) and rich markup is shown as the characters it holds, never acted on."""
    from mlnb.cli import main

    monkeypatch.chdir(prepared["work"])
    for flags in ([], ["--json"]):
        result = CliRunner().invoke(main, ["runs", "show", prepared["echo"], "--store", str(prepared["store"]), *flags])
        assert result.exit_code == 0, result.output
        if flags:
            assert json.loads(result.stdout)["parameters"]["name"] == ESCAPES
            continue
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\x9b" not in result.stdout
        assert r"\x1b[2J\x1b]0;pwned\x07[red]markup[/red]\x9b31m" in result.stdout

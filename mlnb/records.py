"""The run-record format: building ``record.json``, its digest, and verifying a run.

A record is JSON with ``"schema": "mlnb.run/1"``, checked against
``mlnb/schemas/run.v1.json`` when written and when read. Its ``digest`` is the sha256 of the
canonical JSON of the record without ``digest``; since the record lists the sha256 of every
file of the run, the digest seals the files too. ``field_sha256`` holds one hash per
top-level field and per scrap, so :func:`verify` can name what changed, not only that
something did.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.exceptions import RecordError

# -- formats ------------------------------------------------------------------------------
# Every format mlnb writes, by its tag. The JSON ones are described by a JSON Schema in
# mlnb/schemas/ (FORMATS); the registry's tag is the version of its database tables.

RUN = "mlnb.run/1"  # record.json of a run
PREDICTION = "mlnb.prediction/1"  # one line of a prediction log (mlnb serve)
SHADOW = "mlnb.shadow/1"  # one line of a shadow log (mlnb serve --shadow)
DRIFT_PROFILE = "mlnb.drift-profile/1"  # the metadata of a reference profile (mlnb.drift.profile)
CALIBRATION = "mlnb.calibration/1"  # a model version's calibration for performance estimation
REGISTRY = "mlnb.registry/1"  # the registry's tables in the store's database

FORMATS = {
    RUN: "run.v1.json",
    PREDICTION: "prediction.v1.json",
    SHADOW: "shadow.v1.json",
    DRIFT_PROFILE: "drift-profile.v1.json",
    CALIBRATION: "calibration.v1.json",
}

SCHEMA = RUN
RECORD_FILE = "record.json"
NOTEBOOK_FILE = "notebook.ipynb"
HTML_FILE = "notebook.html"
ARTIFACTS_DIR = "artifacts"
SCRAP_TABLES_DIR = "scraps"  # under artifacts/: DataFrame scraps as Parquet
#: What a scrap may be called, where it is glued and where it is read: a table scrap's name
#: becomes a file name, so no separators, no leading dot, no ``..``.
SCRAP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

_validators: dict[str, Any] = {}


def canonical(value: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_lines(data: bytes, schema: str) -> tuple[list[dict], int]:
    """The objects of a JSON-lines log that carry ``"schema": schema``, and how many
    non-blank lines were skipped (a torn last line, another format, not JSON)."""
    entries, skipped = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            skipped += 1
            continue
        if isinstance(entry, dict) and entry.get("schema") == schema:
            entries.append(entry)
        else:
            skipped += 1
    return entries, skipped


def fingerprint(path: str | os.PathLike) -> dict:
    """``{"sha256", "bytes"}`` of a file."""
    return {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def _field_hashes(record: dict) -> dict[str, str]:
    hashes = {}
    for key, value in record.items():
        if key in ("digest", "field_sha256"):
            continue
        hashes[key] = sha256_bytes(canonical(value))
    for name, value in (record.get("scraps") or {}).items():
        hashes[f"scraps.{name}"] = sha256_bytes(canonical(value))
    return hashes


def compute_digest(record: dict) -> str:
    """sha256 over the canonical JSON of ``record`` without its ``digest``."""
    return sha256_bytes(canonical({k: v for k, v in record.items() if k != "digest"}))


def seal(record: dict) -> dict:
    """Return ``record`` with ``field_sha256`` and ``digest`` filled in."""
    sealed = dict(record)
    sealed["field_sha256"] = _field_hashes(sealed)
    sealed["digest"] = compute_digest(sealed)
    return sealed


def _schema_validator(tag: str = RUN):
    """The JSON Schema validator of format ``tag`` (one of :data:`FORMATS`), made once."""
    if tag not in _validators:
        from mlnb import _compat  # noqa: F401  (fast jsonschema import)

        import jsonschema

        schema = json.loads((Path(__file__).parent / "schemas" / FORMATS[tag]).read_text())
        _validators[tag] = jsonschema.Draft202012Validator(schema)
    return _validators[tag]


def format_errors(value: Any, tag: str) -> list[str]:
    """What makes ``value`` not a document of format ``tag`` (empty: it is one), one line
    each naming the field."""
    if tag not in FORMATS:
        raise ValueError(f"unknown format {tag!r}; formats: {', '.join(FORMATS)}")
    out = []
    for error in sorted(_schema_validator(tag).iter_errors(value), key=str):
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        out.append(f"field {field}: {error.message}")
    return out


def check_schema(record: Any, where: str = "record") -> None:
    """Reject a record without a known ``schema`` version or that breaks the JSON schema.

    Raises:
        RecordError: one line naming the version or the first field that is wrong.
    """
    if not isinstance(record, dict):
        raise RecordError(f"{where}: not a JSON object")
    version = record.get("schema")
    if version is None:
        raise RecordError(f"{where}: no 'schema' field; this reader knows {SCHEMA!r}")
    if version != SCHEMA:
        raise RecordError(f"{where}: unknown schema {version!r}; this reader knows {SCHEMA!r}")
    error = next(iter(sorted(_schema_validator().iter_errors(record), key=str)), None)
    if error is not None:
        field = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise RecordError(f"{where}: field {field}: {error.message}")


def read_record(run_dir: str | os.PathLike, validate: bool = True) -> dict:
    """Load and check ``record.json`` of a run directory.

    Raises:
        RecordError: the file is missing, not JSON, or not a known schema version.
    """
    path = Path(run_dir) / RECORD_FILE
    try:
        record = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise RecordError(f"{path}: missing") from exc
    except ValueError as exc:
        raise RecordError(f"{path}: not JSON ({exc})") from exc
    if validate:
        check_schema(record, where=str(path))
    return record


def write_record(run_dir: str | os.PathLike, record: dict) -> Path:
    """Check ``record`` against the schema and write it as ``record.json``."""
    check_schema(record, where=f"record {record.get('id')}")
    path = Path(run_dir) / RECORD_FILE
    path.write_text(json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return path


# -- table references: how a record holds a DataFrame scrap ---------------------------------


def check_scrap_name(name: Any) -> str:
    """``name`` if it is a valid scrap name (:data:`SCRAP_NAME`), else ValueError saying why."""
    if not isinstance(name, str) or not SCRAP_NAME.match(name) or ".." in name:
        raise ValueError(f"scrap name {name!r} is not allowed: use letters, digits, '_', '.' and '-' "
                         "(at most 128, not starting with '.' or '-', no '..')")
    return name


def table_ref(name: str, df: Any) -> dict:
    """The record's value for DataFrame scrap ``name``, stored at :func:`table_path`."""
    return {
        "$artifact": table_path(name),
        "type": "dataframe",
        "rows": int(df.shape[0]),
        "columns": [str(c) for c in df.columns],
    }


def table_path(name: str) -> str:
    """Where DataFrame scrap ``name`` lives, relative to the run's ``artifacts/``."""
    return f"{SCRAP_TABLES_DIR}/{check_scrap_name(name)}.parquet"


def is_table(value: Any) -> bool:
    """Whether a scrap value of a record is a reference to a table artifact."""
    return isinstance(value, dict) and "$artifact" in value


def table_text(value: dict, long: bool = False) -> str:
    """``table 3×2``, or with ``long`` ``table 3 rows × 2 columns (scraps/t.parquet)``."""
    rows, columns = value.get("rows", "?"), len(value.get("columns", []))
    if long:
        return f"table {rows} rows × {columns} columns ({value['$artifact']})"
    return f"table {rows}×{columns}"


def flatten(values: dict, prefix: str = "", depth: int | None = None) -> dict[str, Any]:
    """Nested dicts (metrics) as dotted names, ``depth`` levels deep (None: all); tables,
    lists and empty dicts stay one value."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and not is_table(value) and depth != 1:
            out.update(flatten(value, name, None if depth is None else depth - 1))
        else:
            out[name] = value
    return out


def display_text(value: Any, width: int = 80, digits: int = 6, long_tables: bool = True) -> str:
    """A scrap or parameter value as one line of at most ``width`` characters."""
    if is_table(value):
        text = table_text(value, long=long_tables)
    elif isinstance(value, float):
        text = f"{value:.{digits}g}"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


# -- verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing :func:`verify` found changed: ``where`` (a file or field) and what.

    ``run_id`` is what the problem is about — a run id, or for what the ledger finds a
    model version, an alias or ``ledger`` — and ``kind`` the word ``verify`` prints first
    (``changed`` for a run's files; see :mod:`mlnb.audit` for the others).
    """

    run_id: str
    where: str
    what: str
    kind: str = "changed"

    def __str__(self) -> str:
        return f"{self.run_id}: {self.where}: {self.what}"


class RunFiles:
    """The files of one committed run as :func:`verify_files` reads them: a local directory
    here; a team store gives its own view over the object store."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir.resolve()

    def record_bytes(self) -> bytes:
        """``record.json``'s bytes (FileNotFoundError when missing)."""
        return (self.run_dir / RECORD_FILE).read_bytes()

    def problem(self, rel: str) -> str | None:
        """Why ``rel`` cannot be checked (outside the run, a link, missing), or None."""
        path = self.run_dir / rel
        if not inside(path, self.root):
            return "path is outside the run"
        if path.is_symlink():
            return "is a symbolic link, not a file of the run"
        if not path.is_file():
            return "file is missing"
        return None

    def sha256(self, rel: str) -> str:
        return sha256_file(self.run_dir / rel)

    def present(self) -> set[str]:
        """Every file of the run but ``record.json``, as paths relative to the run."""
        out = set()  # os.walk, not Path.rglob: a third of verify's time over 10,000 runs went there
        for dirpath, _, names in os.walk(self.run_dir, followlinks=True):
            rel_dir = Path(dirpath).relative_to(self.run_dir).as_posix()
            for name in names:
                if name != RECORD_FILE and os.path.isfile(os.path.join(dirpath, name)):
                    out.add(name if rel_dir == "." else f"{rel_dir}/{name}")
        return out


def verify(run_dir: str | os.PathLike, sealed: str | None = None) -> list[Problem]:
    """Recompute every hash of a run directory and its digest; return what changed (empty: intact).

    ``sealed``: see :func:`verify_files`."""
    return verify_files(Path(run_dir).name, RunFiles(run_dir), sealed)


def verify_files(run_id: str, files: RunFiles, sealed: str | None = None) -> list[Problem]:
    """Recompute every hash of a run's files and its record's digest; return what changed.

    ``sealed`` is the digest the run's ledger entry sealed. A record whose content still
    hashes to it is the very record that was committed — checked against the schema and
    its field hashes made when it was written — so only its files are hashed again (what
    keeps ``verify`` of 10,000 runs fast); any other record is checked whole.
    """
    try:
        record = json.loads(files.record_bytes())
    except FileNotFoundError:
        return [Problem(run_id, RECORD_FILE, "missing")]
    except ValueError as exc:
        return [Problem(run_id, RECORD_FILE, f"not JSON ({exc})")]
    problems: list[Problem] = []
    as_committed = (sealed is not None and isinstance(record, dict) and record.get("digest") == sealed
                    and compute_digest(record) == sealed)
    if not as_committed:
        try:
            check_schema(record, where=RECORD_FILE)
        except RecordError as exc:
            problems.append(Problem(run_id, RECORD_FILE, str(exc).split(": ", 1)[-1]))
    listed: dict[str, dict] = dict(record.get("files") or {})
    for art in record.get("artifacts") or []:
        listed[f"{ARTIFACTS_DIR}/{art.get('path')}"] = art
    for name, value in sorted((record.get("scraps") or {}).items()):
        if is_table(value) and f"{ARTIFACTS_DIR}/{value['$artifact']}" not in listed:
            problems.append(Problem(run_id, f"{RECORD_FILE}:scraps.{name}", "refers to a table that is not an "
                                                                           "artifact of the run"))
    for rel, expected in sorted(listed.items()):
        problem = files.problem(rel)
        if problem is None and files.sha256(rel) != expected.get("sha256"):
            problem = "content changed (sha256 differs from the record)"
        if problem is not None:
            problems.append(Problem(run_id, rel, problem))
    for rel in sorted(files.present() - set(listed)):
        problems.append(Problem(run_id, rel, "file is not in the record (added after the run)"))
    if as_committed:
        return problems
    recorded = record.get("field_sha256") or {}
    for key, digest in sorted(_field_hashes(record).items()):
        if key not in recorded:
            problems.append(Problem(run_id, f"{RECORD_FILE}:{key}", "field added after the run"))
        elif recorded[key] != digest:
            problems.append(Problem(run_id, f"{RECORD_FILE}:{key}", "value changed"))
    for key in sorted(set(recorded) - set(_field_hashes(record))):
        problems.append(Problem(run_id, f"{RECORD_FILE}:{key}", "field removed"))
    if compute_digest(record) != record.get("digest"):
        problems.append(Problem(run_id, f"{RECORD_FILE}:digest", "digest does not match the record"))
    if record.get("id") not in (None, run_id):
        problems.append(Problem(run_id, f"{RECORD_FILE}:id", f"says {record.get('id')!r}"))
    return problems


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (``..`` and symbolic links of its folders resolved) lies under ``root``."""
    try:
        Path(os.path.normpath(path.parent.resolve() / path.name)).relative_to(root)
    except ValueError:
        return False
    return True

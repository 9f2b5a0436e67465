"""The ledger: every change to a store as one entry of a hash chain, optionally signed.

A committed run, a registered version, a tag and an alias move each append an entry
(``"schema": "mlnb.ledger/1"``)::

    {"seq": 12, "prev": "<hash of entry 11>", "at": "...", "kind": "run",
     "subject": "<run id>", "change": {"id": "...", "record": "<record digest>"},
     "digest": "<sha256 of the change>", "hash": "<sha256 of the entry>",
     "key": "<fingerprint>", "signature": "<ed25519, base64>"}

``hash`` is the sha256 of the canonical JSON of the entry without ``hash`` and
``signature``; so each entry seals every entry before it, and the head (``seq:hash`` of
the last entry) seals the whole history. With ``MLNB_SIGNING_KEY`` (an ed25519 private key,
PEM) each entry also carries the key's fingerprint and a signature over its hash.

Entries live in the store under ``ledger/`` beside the runs — in a local store as the lines of
segment files of :data:`SEGMENT` entries each (``000000000001.jsonl``, ``000000000257.jsonl``,
…; a full segment is made read-only), in a team store as one object each
(``000000000001.json``, …; an object store cannot append) — and
are mirrored in the index (table ``ledger``), written in the same transaction as the change
they record: a writer takes the ledger lock (SQLite's write transaction, a PostgreSQL
advisory lock), reads the head from the mirror, inserts the entry's row, and writes the
entry to the store just before the transaction commits. An entry beyond the mirror's head
is what a writer that died between the two left: the next writer takes it over when its
change is there (a local run renamed into place), else writes its own entry over it.

A store written before the ledger existed gets one at its first change (or ``mlnb store
init``): a ``start`` entry that counts what was there, then an entry for each run, version,
tag and alias move already there, then the change. Those entries prove the store did not
change *since the ledger started*, not before.

This module imports ``cryptography`` only when a key is configured or checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from mlnb.exceptions import MlnbError

if TYPE_CHECKING:
    from mlnb.database import Connection
    from mlnb.store.base import Store

SCHEMA = "mlnb.ledger/1"
DIR = "ledger"
LOCK = "mlnb.ledger"
KEY_ENV = "MLNB_SIGNING_KEY"
GENESIS = "0" * 64
KINDS = ("start", "run", "version", "tag", "alias")
TAG_COLUMNS = "name, version, key, value, at, caused_by"
_HEAD = re.compile(r"^(\d+):([0-9a-f]{64})$")

_TABLE = """
CREATE TABLE IF NOT EXISTS ledger (
    seq {seq} PRIMARY KEY,
    hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    entry TEXT NOT NULL
);
"""
_APPEND_ONLY = {"UPDATE": "ledger entries are never modified", "DELETE": "ledger entries are never deleted"}


class SigningError(MlnbError, ValueError):
    """A signing key or public key that cannot be read, or is not ed25519."""


class HeadError(MlnbError, ValueError):
    """A head given to ``--since`` that is not ``COUNT:HASH``."""


def table_sql(database) -> str:
    """DDL of the index's mirror of the ledger, append-only (idempotent).

    In SQLite ``seq`` is the row's own key (``INTEGER PRIMARY KEY``), so that an entry
    writes one B-tree, not the table and an index of ``seq`` beside it; a mirror made
    before keeps its ``BIGINT`` key and an index, and reads the same.
    """
    seq = "INTEGER" if database.dialect == "sqlite" else "BIGINT"
    return _TABLE.format(seq=seq) + database.append_only("ledger", _APPEND_ONLY)


#: how many entries one segment file of a local store's ledger holds, a line each: appending
#: a line to a file costs a commit less than creating a file per entry (benchmarks/README.md)
SEGMENT = 256


def segment_name(first: int) -> str:
    """The name of the segment file whose first line is entry ``first``."""
    return f"{first:012d}.jsonl"


def segment_of(seq: int) -> tuple[str, int]:
    """The name of the segment file that holds entry ``seq``, and the entry's line in it (from 0)."""
    line = (seq - 1) % SEGMENT
    return segment_name(seq - line), line


def segment_start(name: str) -> int | None:
    """The first entry a segment file's name gives, or None for a name that is not one."""
    stem = name[:-6] if name.endswith(".jsonl") else ""
    return int(stem) if stem.isdigit() and len(stem) == 12 and int(stem) % SEGMENT == 1 else None


def lines(data: bytes) -> list[bytes]:
    """A segment's entries, each with its newline; a last line without one (what a writer that
    died mid-write left) as it is."""
    parts = data.split(b"\n")
    last = parts.pop()
    out = [part + b"\n" for part in parts]
    if last:
        out.append(last)
    return out


def is_entry(line: bytes, seq: int) -> bool:
    """Whether a line of a segment is, by its canonical form, entry ``seq`` (a quick check of
    the top-level keys ``schema`` and ``seq``, which sort next to each other; not a proof)."""
    # the top-level pair is the last one: only "signature" and "subject" (strings) follow it
    key = b',"schema":"%s","seq":' % SCHEMA.encode()
    at = line.rfind(key)
    return line.startswith(b"{") and at >= 0 and line.startswith(b"%d," % seq, at + len(key))


def file_name(seq: int) -> str:
    """The name of entry ``seq``'s file: zero-padded, so names sort as the chain does."""
    return f"{seq:012d}.json"


def seq_of(name: str) -> int | None:
    """The position a ledger file's name gives, or None for a name that is not one."""
    stem = name[:-5] if name.endswith(".json") else ""
    return int(stem) if stem.isdigit() and len(stem) == 12 else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode()


def digest(change: dict) -> str:
    """sha256 of a change's canonical JSON: what an entry says it adds."""
    return hashlib.sha256(_canonical(change)).hexdigest()


def entry_hash(entry: dict) -> str:
    """sha256 of an entry's canonical JSON without ``hash`` and ``signature``."""
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k not in ("hash", "signature")})).hexdigest()


# -- heads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """The last entry of a chain: how many entries, and the hash of the last (``0:000…`` empty)."""

    count: int
    hash: str

    def __str__(self) -> str:
        return f"{self.count}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> "Head":
        m = _HEAD.match(text.strip())
        if not m:
            raise HeadError(f"head {text!r} is not COUNT:HASH (what 'mlnb store head' printed, e.g. "
                            f"12:{'ab' * 32})")
        return cls(int(m.group(1)), m.group(2))


EMPTY = Head(0, GENESIS)


# -- signing --------------------------------------------------------------------------------


def fingerprint(public_raw: bytes) -> str:
    """A public key's fingerprint: ``ed25519:`` and the sha256 of its 32 raw bytes."""
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()


def _raw_public(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _read_key(path: Path, load, where: str, wanted: str):
    """The key ``load`` reads from the file at ``path``, or SigningError naming ``where``."""
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        return load(path.read_bytes())
    except OSError as exc:
        raise SigningError(f"{where}: cannot read it: {exc.strerror}") from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"{where} is not {wanted}") from exc


class Signer:
    """An ed25519 private key that signs entries (from ``MLNB_SIGNING_KEY``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        try:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        except ImportError as exc:
            raise SigningError(f"{KEY_ENV} is set but signing needs the cryptography package: "
                               "pip install 'mlnb[signing]'") from exc
        key = _read_key(self.path, lambda data: serialization.load_pem_private_key(data, password=None),
                        f"{KEY_ENV}={str(self.path)!r}", "an unencrypted PEM private key; make one with "
                        "'mlnb store keygen'")
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"{KEY_ENV}={str(self.path)!r} is a {type(key).__name__.removeprefix('_')}, "
                               "not an ed25519 key; make one with 'mlnb store keygen'")
        self._key = key
        self.fingerprint = fingerprint(_raw_public(key.public_key()))

    def sign(self, hash_hex: str) -> str:
        return base64.b64encode(self._key.sign(hash_hex.encode())).decode()


_signers: dict[tuple, Signer] = {}


def configured_signer() -> Signer | None:
    """The signer of ``MLNB_SIGNING_KEY`` (loaded once per file version), or None when unset."""
    path = os.environ.get(KEY_ENV)
    if not path:
        return None
    try:
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (path,)
    if key not in _signers:
        _signers[key] = Signer(path)
    return _signers[key]


class PublicKey:
    """An ed25519 public key that checks entries' signatures (``verify --public-key``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError as exc:
            raise SigningError("checking signatures needs the cryptography package: pip install 'mlnb[signing]'") from exc
        key = _read_key(self.path, serialization.load_pem_public_key, f"--public-key {str(self.path)!r}",
                        "a PEM public key; give the .pub.pem file 'mlnb store keygen' wrote")
        if not isinstance(key, Ed25519PublicKey):
            raise SigningError(f"--public-key {str(self.path)!r} is not an ed25519 public key")
        self._key = key
        self._invalid = InvalidSignature
        self.fingerprint = fingerprint(_raw_public(key))

    def check(self, entry: dict) -> str | None:
        """Why ``entry`` is not signed by this key (None: it is)."""
        signature = entry.get("signature")
        if not signature:
            return "not signed"
        if entry.get("key") != self.fingerprint:
            return f"signed by key {entry.get('key')}, not by the given key {self.fingerprint}"
        try:
            self._key.verify(base64.b64decode(signature, validate=True), str(entry.get("hash")).encode())
        except (self._invalid, ValueError):
            return "signature does not verify (the entry or its signature changed)"
        return None


def keygen(private_path: str | os.PathLike) -> tuple[Path, Path, str]:
    """Write a new ed25519 key pair: the private key at ``private_path`` (mode 600) and the
    public key beside it (``.pub.pem``); return both paths and the fingerprint.

    Raises:
        SigningError: the file exists already, or cryptography is not installed.
    """
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError as exc:
        raise SigningError("making a key needs the cryptography package: pip install 'mlnb[signing]'") from exc
    private = Path(private_path)
    public = private.with_name(private.name.removesuffix(".pem") + ".pub.pem")
    for path in (private, public):
        if path.exists():
            raise SigningError(f"{str(path)!r} exists; give another path (a key is never overwritten)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    except OSError as exc:
        raise SigningError(f"cannot write the key to {str(private)!r}: {exc.strerror}") from exc
    return private, public, fingerprint(_raw_public(key.public_key()))


# -- entries --------------------------------------------------------------------------------


def make_entry(head: Head, kind: str, subject: str, change: dict, signer: Signer | None = None,
               at: str | None = None) -> dict:
    """The entry that follows ``head`` and records ``change`` (pure, but for the signature)."""
    return _made(head, kind, subject, change, signer, at)[0]


def _made(head: Head, kind: str, subject: str, change: dict, signer: Signer | None = None,
          at: str | None = None) -> tuple[dict, bytes]:
    """:func:`make_entry` and the entry's :func:`encode`, which is the canonical JSON its hash
    is taken over with ``hash`` (and ``signature``) put in their sorted places: one encoding."""
    entry = {"schema": SCHEMA, "seq": head.count + 1, "prev": head.hash, "at": at or _now(), "kind": kind,
             "subject": subject, "change": change, "digest": digest(change)}
    if signer is not None:
        entry["key"] = signer.fingerprint
    text = _CANONICAL.encode(entry)
    entry["hash"] = hashlib.sha256(text.encode()).hexdigest()  # entry_hash: no hash or signature yet
    # "hash" sorts right after "digest", "signature" right before "subject" (the last key);
    # both are found from the end, past any key of the same name inside "change"
    after_digest = f'"digest":"{entry["digest"]}",'
    at_hash = text.rindex(after_digest) + len(after_digest)
    text = f'{text[:at_hash]}"hash":"{entry["hash"]}",{text[at_hash:]}'
    if signer is not None:
        entry["signature"] = signer.sign(entry["hash"])
        at_signature = text.rindex(',"subject":') + 1
        text = f'{text[:at_signature]}"signature":"{entry["signature"]}",{text[at_signature:]}'
    return entry, (text + "\n").encode()


def encode(entry: dict) -> bytes:
    """An entry as its file holds it: canonical JSON and a newline."""
    return (_CANONICAL.encode(entry) + "\n").encode()


def decode(data: bytes) -> dict | None:
    """An entry from its file's bytes, or None when they are not a JSON object of this format."""
    try:
        entry = json.loads(data)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and entry.get("schema") == SCHEMA else None


def run_change(record: dict) -> tuple[str, str, dict]:
    """What a committed run adds: its id and its record's digest (which seals every file)."""
    return "run", record["id"], {"id": record["id"], "record": record["digest"]}


def row_change(columns: str, row: Iterable) -> dict:
    """A registry row as the change its entry records: ``{column: value}``."""
    return dict(zip((c.strip() for c in columns.split(",")), row))


def head(db: "Connection") -> Head:
    """The mirror's head, as this connection sees it."""
    row = db.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return EMPTY if row is None else Head(int(row[0]), row[1])


def current_head(store: "Store") -> Head:
    """The store's head: the mirror's, or the files' when the store has no database yet."""
    import contextlib

    if store.has_database():
        with contextlib.closing(store.connect()) as db:
            at = head(db)
        if at != EMPTY:
            return at
    files = store.ledger_files()
    if not files:
        return EMPTY
    last = max(files)
    entry = decode(files[last]) or {}
    return Head(last, str(entry.get("hash", "")))


def _insert(store: "Store", db: "Connection", at: Head, kind: str, subject: str, change: dict,
            write: bool = True) -> tuple[dict, bytes]:
    entry, data = _made(at, kind, subject, change, configured_signer())
    db.execute("INSERT INTO ledger (seq, hash, kind, subject, entry) VALUES (?, ?, ?, ?, ?)",
               (entry["seq"], entry["hash"], kind, subject, data.decode()))
    if write:
        db.before_commit(lambda: store.ledger_put(entry["seq"], data))
    return entry, data


def _mirror(db: "Connection", entry: dict, data: bytes) -> None:
    db.execute("INSERT INTO ledger (seq, hash, kind, subject, entry) VALUES (?, ?, ?, ?, ?)",
               (entry["seq"], entry["hash"], entry["kind"], entry["subject"], data.decode()))


def _settled_head(store: "Store", db: "Connection") -> Head:
    """The head to append after, once what earlier writers left is settled: a mirror that
    lost its rows is refilled from the store's files; a store without a ledger gets one over
    what it holds; a file a dead writer left beyond the head is taken over if its change is
    there (:meth:`Store.ledger_adopts`)."""
    at = head(db)
    if at == EMPTY:
        files = store.ledger_files()
        if files:
            for seq in sorted(files):
                entry = decode(files[seq])
                if entry is None or entry.get("seq") != seq:
                    break  # verify names it; the mirror keeps what precedes it
                _mirror(db, entry, files[seq])
                at = Head(seq, entry.get("hash"))
            return at
        return start(store, db)
    while store.ledger_takes_over:
        data = store.ledger_get(at.count + 1)
        entry = decode(data) if data is not None else None
        if entry is None or entry.get("seq") != at.count + 1 or entry.get("prev") != at.hash \
                or entry.get("hash") != entry_hash(entry) or not store.ledger_adopts(entry):
            return at
        _mirror(db, entry, data)
        at = Head(at.count + 1, entry["hash"])
    return at


def append(store: "Store", db: "Connection", kind: str, subject: str, change: dict,
           write: bool = True) -> tuple[int, bytes]:
    """Append the entry of one change, inside ``db``'s open transaction; return its position
    and its file's bytes.

    The ledger lock is taken here (and held until the transaction ends); the entry's file
    is written just before the transaction commits — unless ``write`` is False: then the
    caller writes it (:meth:`Store.ledger_put`, or with its own files) before it commits.

    Raises:
        SigningError: ``MLNB_SIGNING_KEY`` names no usable ed25519 key.
    """
    db.lock(LOCK)
    entry, data = _insert(store, db, _settled_head(store, db), kind, subject, change, write)
    return entry["seq"], data


def existing_changes(store: "Store", db: "Connection") -> list[tuple[str, str, dict]]:
    """Every run, version, tag and alias move a store holds, as the changes that made them:
    runs by id, then versions, tags and moves in the order they were made."""
    from mlnb.registry.entries import _EVENT_COLUMNS, _VERSION_COLUMNS

    changes = []
    for run_id in store.run_ids():
        try:
            changes.append(run_change(store.read_record(run_id)))
        except (MlnbError, KeyError, FileNotFoundError):
            continue  # a run without a readable record: verify names it
    if db.has_table("model_versions"):
        for row in db.execute(f"SELECT {_VERSION_COLUMNS} FROM model_versions ORDER BY name, version").fetchall():
            change = row_change(_VERSION_COLUMNS, row)
            changes.append(("version", f"{change['name']}/{change['version']}", change))
        for row in db.execute(f"SELECT {TAG_COLUMNS} FROM model_tags ORDER BY {db.database.row_order}").fetchall():
            change = row_change(TAG_COLUMNS, row)
            changes.append(("tag", f"{change['name']}/{change['version']}", change))
        for row in db.execute(f"SELECT {_EVENT_COLUMNS} FROM alias_events ORDER BY seq").fetchall():
            change = row_change(_EVENT_COLUMNS, row)
            changes.append(("alias", f"{change['name']}@{change['alias']}", change))
    return changes



def start(store: "Store", db: "Connection") -> Head:
    """Start the ledger of a store that has none, over what it holds (nothing to start
    over: no entry at all); return the head. Inside a transaction holding the ledger lock."""
    changes = existing_changes(store, db)
    if not changes:
        return EMPTY
    counts: dict[str, int] = {}
    for kind, _, _ in changes:
        counts[kind] = counts.get(kind, 0) + 1
    entry, _ = _insert(store, db, EMPTY, "start", "ledger", {"adopted": counts})
    at = Head(entry["seq"], entry["hash"])
    for kind, subject, change in changes:
        entry, _ = _insert(store, db, at, kind, subject, change)
        at = Head(entry["seq"], entry["hash"])
    return at


def ensure_started(store: "Store") -> Head:
    """Start the ledger over what the store holds, if it has none yet; return the head."""
    import contextlib

    with contextlib.closing(store.connect()) as db, db.transaction(lock=LOCK):
        return _settled_head(store, db)

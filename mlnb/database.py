"""The store's SQL database: SQLite for a local store, PostgreSQL for a team store, one code path.

The index of runs and the model registry are written once, in SQL that both databases
accept (``?`` placeholders, ``ON CONFLICT`` upserts, standard types). What differs lives
here and nowhere else: how a connection is opened, how a write transaction serialises
writers (SQLite's ``BEGIN IMMEDIATE``; a PostgreSQL transaction-scoped advisory lock), how
JSON columns are typed and passed, and the DDL of what each database spells its own way
(auto-numbered keys, the triggers that keep history append-only).

A thin layer over the DB-API drivers (``sqlite3``, ``psycopg`` 3) rather than an ORM:
``mlnb runs list`` opens the database on every call and must stay instant, and importing
SQLAlchemy alone costs 0.3 s on the machines mlnb is measured on.
"""

from __future__ import annotations

import abc
import contextlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from mlnb.exceptions import StoreError

CONNECT_TIMEOUT_S = 10
SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}


def redact(url: str) -> str:
    """A database URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def open_database(url: str | Path, read_only: bool = False) -> "Database":
    """The database at ``url``: a path or ``sqlite:///PATH`` (SQLite), or ``postgresql://…``.

    Raises:
        StoreError: a scheme mlnb has no driver for, or the PostgreSQL driver is missing.
    """
    raw = str(url)
    if "://" not in raw:
        return SQLiteDatabase(Path(raw), read_only=read_only)
    scheme = raw.split("://", 1)[0].split("+", 1)[0].lower()
    dialect = SCHEMES.get(scheme)
    if dialect == "sqlite":
        return SQLiteDatabase(Path(raw.split("://", 1)[1] or "."), read_only=read_only)
    if dialect == "postgresql":
        return PostgresDatabase(raw)
    raise StoreError(f"database {redact(raw)!r}: unsupported scheme {scheme!r}; "
                     "supported: a path, sqlite:///PATH, postgresql://USER@HOST/DB")


class Connection:
    """One connection to a store's database, in autocommit mode between transactions.

    SQL is written with ``?`` placeholders; :meth:`execute` passes it to the driver in
    the driver's own style.
    """

    def __init__(self, database: "Database", raw: Any):
        self.database = database
        self.dialect = database.dialect
        self.raw = raw
        self._before_commit: list = []

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.raw.close()

    def execute(self, sql: str, args: Sequence = ()):
        return self.raw.execute(self.database.translate(sql), tuple(args))

    def executemany(self, sql: str, rows) -> None:
        if self.dialect == "sqlite":
            self.raw.executemany(sql, rows)
        else:
            with self.raw.cursor() as cursor:
                cursor.executemany(self.database.translate(sql), rows)

    def script(self, sql: str) -> None:
        """Several statements without parameters (DDL)."""
        if self.dialect == "sqlite":
            self.raw.executescript(sql)
        else:
            self.raw.execute(sql)

    @contextlib.contextmanager
    def transaction(self, lock: str | None = None) -> Iterator["Connection"]:
        """A transaction, rolled back if the block raises.

        With ``lock``, writers that name the same lock run one after the other: SQLite
        takes its write lock at ``BEGIN IMMEDIATE``; PostgreSQL an advisory lock held until
        the transaction ends. Numbering (next version) and moves (alias from → to) read and
        write under it, so concurrent writers neither repeat a number nor lose a move.
        """
        self.raw.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" and lock else "BEGIN")
        self._before_commit = []
        try:
            if lock:
                self.lock(lock)
            yield self
            for step in self._before_commit:
                step()
        except BaseException:
            self._before_commit = []
            with contextlib.suppress(*self.database.errors):
                self.raw.execute("ROLLBACK")
            raise
        self._before_commit = []
        self.raw.execute("COMMIT")

    def lock(self, name: str) -> None:
        """Inside a transaction: wait for every other writer that names ``name`` to finish.
        PostgreSQL takes an advisory lock held until the transaction ends; SQLite's write
        transaction (``BEGIN IMMEDIATE``) already excludes every other writer."""
        if self.dialect == "postgresql":
            self.raw.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))

    def before_commit(self, step) -> None:
        """Run ``step()`` at the end of the current transaction, just before it commits (not
        if it rolls back); if ``step`` raises, the transaction rolls back. For what must be
        done inside the transaction but after its statements: a file that the rows describe."""
        self._before_commit.append(step)

    def json(self, value: Any) -> Any:
        """A Python value as the parameter of a JSON column."""
        return self.database.json(value)

    def has_table(self, name: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
        return self.execute(sql, (name,)).fetchone() is not None


def decode_json(value: Any) -> Any:
    """A JSON column's value as Python: SQLite returns text, PostgreSQL's jsonb a value."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def decode_json_columns(rows: list, start: int) -> list[list]:
    """The JSON columns of many rows from ``start`` on, decoded: one ``json.loads`` over all
    of them when they are text (10,000 rows of three columns in half the time of a call
    each), else value by value."""
    if all(isinstance(v, str) or v is None for row in rows for v in row[start:]):
        return json.loads("[" + ",".join("[" + ",".join("null" if v is None else v for v in row[start:]) + "]"
                                         for row in rows) + "]")
    return [[decode_json(v) for v in row[start:]] for row in rows]


class Database(abc.ABC):
    """Where a store's index and registry live. ``dialect`` is ``sqlite`` or ``postgresql``."""

    dialect: str
    errors: tuple[type[BaseException], ...]
    integrity_errors: tuple[type[BaseException], ...]
    #: DDL words that differ: ``{json}``, ``{real}``, ``{serial}``, ``{row_seq}`` in a table definition
    types: dict[str, str]
    #: the column that orders rows of an append-only table by insertion
    row_order: str

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The database as messages name it (a path, or a URL without its password)."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether there is a database to read (a local file; a reachable server)."""

    @abc.abstractmethod
    def connect(self) -> Connection:
        """A new connection; the caller closes it."""

    def translate(self, sql: str) -> str:
        return sql

    def json(self, value: Any) -> Any:
        return json.dumps(value)

    def as_text(self, column: str) -> str:
        """A JSON column selected as its text, for :func:`decode_json` (PostgreSQL's own
        jsonb decoding of 30,000 values takes twice as long as json.loads of their text)."""
        return column

    def ddl(self, sql: str) -> str:
        """A table definition with this database's words for ``{json}``, ``{real}``, ``{serial}``
        and ``{row_seq}`` (an insertion-order column where the database has no ``rowid``)."""
        return sql.format(**self.types)

    @abc.abstractmethod
    def append_only(self, table: str, messages: dict[str, str]) -> str:
        """DDL of triggers that refuse each operation of ``messages`` (``UPDATE``, ``DELETE``)
        on ``table``, with its message."""


class SQLiteDatabase(Database):
    """The local store's database file, in WAL mode with a busy timeout."""

    dialect = "sqlite"
    errors = (sqlite3.Error,)
    integrity_errors = (sqlite3.IntegrityError,)
    types = {"json": "TEXT", "real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "row_seq": ""}
    row_order = "rowid"

    def __init__(self, path: Path, read_only: bool = False):
        self.path = path
        self.read_only = read_only

    def __repr__(self) -> str:
        return f"SQLiteDatabase({str(self.path)!r})"

    @property
    def name(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.is_file()

    def connect(self) -> Connection:
        if self.read_only:
            # WAL needs its -shm file written even to read: a read-only medium is immutable
            return Connection(self, sqlite3.connect(f"{self.path.as_uri()}?immutable=1", uri=True, isolation_level=None))
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA busy_timeout = 30000")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                with contextlib.suppress(sqlite3.OperationalError):
                    db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {str(self.path)!r}: {exc}") from exc
        return Connection(self, db)

    def append_only(self, table: str, messages: dict[str, str]) -> str:
        return "\n".join(
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END;"
            for op, message in messages.items()
        )


_PLACEHOLDER = re.compile(r"\?")


class PostgresDatabase(Database):
    """A team store's PostgreSQL database (psycopg 3), reached by URL."""

    dialect = "postgresql"
    types = {"json": "JSONB", "real": "DOUBLE PRECISION", "serial": "BIGSERIAL PRIMARY KEY",
             "row_seq": ",\n    seq BIGSERIAL"}
    row_order = "seq"

    def __init__(self, url: str):
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(f"database {redact(url)!r} needs the PostgreSQL driver: pip install 'mlnb[team]'") from exc
        self._psycopg = psycopg
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)
        self.errors = (psycopg.Error,)
        self.integrity_errors = (psycopg.errors.IntegrityError, psycopg.errors.RaiseException)
        self.read_only = False

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.name!r})"

    @property
    def name(self) -> str:
        return redact(self.url)

    def exists(self) -> bool:
        return True

    def connect(self) -> Connection:
        psycopg = self._psycopg
        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            # libpq says the cause first, then a tab-indented hint: both, on one line
            reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            raise StoreError(f"cannot reach database {self.name}: {reason} (connect timeout {CONNECT_TIMEOUT_S} s)") \
                from exc
        return Connection(self, raw)

    def translate(self, sql: str) -> str:
        # the SQL mlnb writes has no literal ? or %; bound values carry both safely
        return _PLACEHOLDER.sub("%s", sql)

    def json(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def as_text(self, column: str) -> str:
        return f"{column}::text"

    def append_only(self, table: str, messages: dict[str, str]) -> str:
        ops = " OR ".join(messages)
        cases = " ".join(f"WHEN '{op}' THEN '{message}'" for op, message in messages.items())
        return (
            f"CREATE OR REPLACE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '%', CASE TG_OP {cases} ELSE '{table} is append-only' END; END $$;\n"
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};\n"
            f"CREATE TRIGGER {table}_append_only BEFORE {ops} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse();\n"
            # TRUNCATE skips row triggers: refuse it with a statement trigger
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};\n"
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_refuse();"
        )

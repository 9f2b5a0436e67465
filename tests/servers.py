"""The servers of a team store, for tests: PostgreSQL and an S3-API server.

PostgreSQL runs before the tests start (127.0.0.1:5432, trust authentication; set
``MLNB_TEST_POSTGRES`` to use another); every test that needs it gets a database of its own,
created here and dropped after it. The S3-API server is moto's, started here on 127.0.0.1 on
a free port, once per test process, and stopped at its end; every test gets a bucket of its
own. Where a server is missing the tests that need it are skipped with one line saying what
is missing — except under CI, where a missing server fails them: CI must test the team store.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

POSTGRES = os.environ.get("MLNB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": "us-east-1"}
START_TIMEOUT_S = 60


def unavailable(reason: str):
    """Skip (fail under CI) a test whose server is missing."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the team-store tests)", pytrace=False)
    pytest.skip(reason)


# -- PostgreSQL ----------------------------------------------------------------------------------


def _admin():
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed: pip install -e '.[test]'")
    try:
        return psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"no PostgreSQL at {POSTGRES}: {str(exc).strip().splitlines()[-1]}")


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database; yields its URL and drops it (and its connections) afterwards."""
    name = f"mlnb_test_{os.getpid()}_{secrets.token_hex(4)}"
    with contextlib.closing(_admin()) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with contextlib.closing(_admin()) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """The URL of a database of this test's own (dropped after it)."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """``postgresql://postgres@127.0.0.1:5432/<fresh database>``."""
    return postgres_database


# -- S3 ------------------------------------------------------------------------------------------


def s3_env(endpoint_url: str) -> dict[str, str]:
    """What a user of the team store sets to reach the test server: credentials, endpoint."""
    return {**S3_CREDENTIALS, "MLNB_S3_ENDPOINT_URL": endpoint_url}


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3Server:
    """moto's S3-API server in a process of its own, on 127.0.0.1."""

    process: subprocess.Popen
    endpoint_url: str
    log: Any

    @classmethod
    def start(cls, env: dict[str, str] | None = None) -> S3Server:
        """Start a server; ``env``: moto's settings for it (``INITIAL_NO_AUTH_ACTION_COUNT``, …)."""
        try:
            import moto.server  # noqa: F401
        except ImportError:
            unavailable("moto's server is not installed: pip install -e '.[test]'")
        port = _free_port()
        # its log goes to a file, never a pipe: the server logs every request, and a pipe
        # nobody reads fills and stops it mid-test
        log = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, preexec_fn=_default_signals,
            env={**os.environ, **(env or {})},
        )
        server = cls(process, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log.seek(0)
                error = log.read().decode(errors="replace").strip().splitlines()
                unavailable(f"moto's S3 server exited at start: {error[-1] if error else process.returncode}")
            try:
                with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=2):
                    return server
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        server.stop()
        unavailable(f"moto's S3 server did not answer on {server.endpoint_url} within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()

    def create_bucket(self) -> str:
        """A new, empty bucket's name."""
        name = f"mlnb-test-{secrets.token_hex(6)}"
        request = urllib.request.Request(f"{self.endpoint_url}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3-API server for this test process."""
    server = S3Server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A bucket of this test's own on the server."""
    return s3_server.create_bucket()

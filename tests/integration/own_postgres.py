"""A PostgreSQL cluster of the test's own, on another port, that a test may restart.

The shared server on 5432 is never touched. The cluster is made with Debian's initdb (run as
the postgres user: initdb refuses root), trusts local connections, and holds one database
`proctrail` owned by a role that is not a superuser, as in production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

OWNER = "proctrail_owner"


def _bin(tool: str) -> str:
    for version in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        path = version / "bin" / tool
        if path.exists():
            return str(path)
    pytest.fail(f"PostgreSQL's {tool} is needed for a cluster of the test's own", pytrace=False)


@dataclass
class OwnPostgres:
    data: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql://{OWNER}@127.0.0.1:{self.port}/proctrail"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", _bin("pg_ctl"), "-D", str(self.data),
             "-l", str(self.log), "-w", "-t", "60", *args],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self._ctl("-o", options, "start")

    def restart(self) -> None:
        """As a crash would: immediate shutdown (no checkpoint), then start."""
        self._ctl("-m", "immediate", "stop")
        self.start()

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", _bin("psql"), "-h", "127.0.0.1", "-p",
             str(self.port), "-d", database, "-v", "ON_ERROR_STOP=1", "-c", sql],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    if shutil.which("runuser") is None:
        pytest.fail("runuser is needed to run initdb as the postgres user", pytrace=False)
    base = Path(tempfile.mkdtemp(prefix="proctrail-pg-"))
    os.chmod(base, 0o755)
    data = base / "data"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", _bin("initdb"), "-D", str(data), "-A", "trust",
         "-U", "postgres", "--no-sync"], check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    log = base / "postgres.log"
    log.touch()
    shutil.chown(log, "postgres", "postgres")
    cluster = OwnPostgres(data, free_port(), log)
    cluster.start()
    try:
        cluster.psql(f"CREATE ROLE {OWNER} LOGIN CREATEROLE")
        cluster.psql(f"CREATE DATABASE proctrail OWNER {OWNER}")
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)

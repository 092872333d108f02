"""A fresh PostgreSQL database per test, owned by a fresh role, all dropped afterwards.

The server is the one at PROCTRAIL_TEST_POSTGRES_URL (a superuser's URL; by default
postgresql://postgres@127.0.0.1:5432/postgres). Without it these tests skip on a developer's
machine and FAIL when CI is set, so CI can never go green by silently not testing PostgreSQL.
The server itself is never stopped or reconfigured.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ADMIN_URL = os.environ.get(
    "PROCTRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

Connection = psycopg.Connection[tuple[Any, ...]]


def connect(url: str = ADMIN_URL, **overrides: str) -> Connection:
    """An autocommit connection; `overrides` replace parts of `url` (user=, dbname=, ...)."""
    params = {**conninfo_to_dict(url), **overrides}
    return psycopg.connect(make_conninfo("", **params), autocommit=True, connect_timeout=5)


def require_postgres() -> None:
    try:
        connect().close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}".strip()
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: integration tests must not skip)", pytrace=False)
        pytest.skip(message)


@dataclass(frozen=True)
class FreshDatabase:
    name: str
    owner: str  # LOGIN CREATEROLE, owns the database
    url: str  # the owner's URL, what PROCTRAIL_DATABASE_URL would hold

    @property
    def app_role(self) -> str:
        return f"{self.owner}_app"

    def connect(self, user: str | None = None) -> Connection:
        """Into this database as `user` (the owner by default)."""
        return connect(self.url, user=user or self.owner)

    def admin(self) -> Connection:
        """Into this database as the superuser."""
        return connect(ADMIN_URL, dbname=self.name)


@contextmanager
def fresh_database() -> Iterator[FreshDatabase]:
    require_postgres()
    tag = uuid.uuid4().hex[:12]
    owner, name = f"proctrail_t_{tag}", f"proctrail_test_{tag}"
    with connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    admin = conninfo_to_dict(ADMIN_URL)
    host, port = admin.get("host") or "127.0.0.1", admin.get("port") or 5432
    url = f"postgresql://{owner}@{host}:{port}/{name}"
    try:
        yield FreshDatabase(name, owner, url)
    finally:
        with connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            roles = conn.execute(  # the owner's, then every role made for this test
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)"
                " ORDER BY rolname = %s, rolname",
                (owner, owner),
            ).fetchall()
            for (role,) in roles:
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

"""What the ledger needs from a database; SQLite (default) and PostgreSQL implement it.

Every table is append-only, enforced by the database itself. One writer appends (the audit
consumer); readers (HTTP API, `proctrail verify`) open their own read-only handles.

`open_store` picks the backend. The PostgreSQL one (and psycopg with it) is imported only
when it is asked for: `PostgresStore` and its settings' names load on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from services.audit.store._interface import (
    COLUMN_FILTERS,
    FILTERS,
    LOT_KEYS,
    TABLES,
    Entry,
    NewEntry,
    Query,
    Store,
    StoredCheckpoint,
    lots_named,
)
from services.audit.store._sqlite import SqliteStore

if TYPE_CHECKING:
    from services.audit.store._postgres import PostgresStore
    from services.audit.store._postgres_schema import (
        APP_PASSWORD_ENV,
        APP_PASSWORD_FILE_ENV,
        APP_ROLE_ENV,
    )

__all__ = [
    "APP_PASSWORD_ENV",
    "APP_PASSWORD_FILE_ENV",
    "APP_ROLE_ENV",
    "COLUMN_FILTERS",
    "FILTERS",
    "LOT_KEYS",
    "TABLES",
    "Entry",
    "NewEntry",
    "PostgresStore",
    "Query",
    "SqliteStore",
    "Store",
    "StoredCheckpoint",
    "lots_named",
    "open_store",
]

# name -> the module that holds it, imported on first use (it imports psycopg)
_POSTGRES = {
    "PostgresStore": "services.audit.store._postgres",
    "APP_PASSWORD_ENV": "services.audit.store._postgres_schema",
    "APP_PASSWORD_FILE_ENV": "services.audit.store._postgres_schema",
    "APP_ROLE_ENV": "services.audit.store._postgres_schema",
}


def __getattr__(name: str) -> object:
    if name in _POSTGRES:
        return getattr(importlib.import_module(_POSTGRES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(data_dir: Path, database_url: str | None, *, readonly: bool = False) -> Store:
    if database_url:
        from services.audit.store._postgres import PostgresStore

        return PostgresStore(database_url, readonly=readonly)
    return SqliteStore(data_dir / "audit" / "ledger.sqlite3", readonly=readonly)

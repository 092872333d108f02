"""The ledger's schema on PostgreSQL, and how the owner role creates or migrates it.

The owner creates the `audit` schema: the tables, triggers that RAISE on UPDATE, DELETE and
TRUNCATE (enabled ALWAYS, so even session_replication_role = replica does not skip them), the
app role (`<owner>_app`, or PROCTRAIL_DATABASE_APP_ROLE) and its privileges: USAGE on the
schema, SELECT and INSERT on the tables, nothing else.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import psycopg
from psycopg import sql

from services.audit.store._interface import TABLES, lots_named

SCHEMA_VERSION = 2  # 2: entry_lots
SCHEMA = "audit"
APP_ROLE_ENV = "PROCTRAIL_DATABASE_APP_ROLE"
APP_PASSWORD_ENV = "PROCTRAIL_DATABASE_APP_PASSWORD"  # noqa: S105 (a variable's name)
APP_PASSWORD_FILE_ENV = "PROCTRAIL_DATABASE_APP_PASSWORD_FILE"  # noqa: S105 (or from a file)

_GUARDED = (*TABLES, "meta")

# A pg_advisory_xact_lock key: the first 8 bytes of SHA-256("proctrail/audit/migrate"), as a
# signed 64-bit integer (_postgres.py holds the append lock's). Advisory locks are per
# database, and one database holds one log.
_MIGRATE_LOCK = 2469679899636834453

_META = """
CREATE TABLE IF NOT EXISTS audit.meta (
    schema_version INTEGER PRIMARY KEY,
    migrated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

# Version 1. Columns and indexes as in _sqlite.py. The text columns that queries compare
# use the "C" collation, so ranges and ordering are bytewise, as in SQLite.
_V1 = (
    """
    CREATE TABLE IF NOT EXISTS audit.entries (
        seq          BIGINT PRIMARY KEY,
        event_id     TEXT COLLATE "C" NOT NULL UNIQUE,
        leaf         BYTEA NOT NULL,
        leaf_hash    BYTEA NOT NULL,
        type         TEXT COLLATE "C",
        procedure_id TEXT COLLATE "C",
        patient_id   TEXT COLLATE "C",
        actor_id     TEXT COLLATE "C",
        recorded_at  TEXT COLLATE "C",
        disposition  TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS entries_procedure ON audit.entries (procedure_id, seq)",
    "CREATE INDEX IF NOT EXISTS entries_patient ON audit.entries (patient_id, seq)",
    "CREATE INDEX IF NOT EXISTS entries_type ON audit.entries (type, seq)",
    "CREATE INDEX IF NOT EXISTS entries_actor ON audit.entries (actor_id, seq)",
    "CREATE INDEX IF NOT EXISTS entries_recorded ON audit.entries (recorded_at, seq)",
    """
    CREATE TABLE IF NOT EXISTS audit.tree_nodes (
        level BIGINT NOT NULL,
        idx   BIGINT NOT NULL,
        hash  BYTEA NOT NULL,
        PRIMARY KEY (level, idx)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit.checkpoints (
        tree_size  BIGINT PRIMARY KEY,
        root       BYTEA NOT NULL,
        note       TEXT NOT NULL,
        created_at TEXT NOT NULL
    )
    """,
    'CREATE INDEX IF NOT EXISTS checkpoints_created ON audit.checkpoints (created_at COLLATE "C")',
    """
    CREATE TABLE IF NOT EXISTS audit.procedure_patients (
        procedure_id TEXT COLLATE "C" PRIMARY KEY,
        patient_id   TEXT NOT NULL
    )
    """,
)

# Version 2: which entries name which product lot (search by lot), indexed from version 1's
# entries when it migrates.
_V2 = (
    """
    CREATE TABLE IF NOT EXISTS audit.entry_lots (
        lot_id TEXT COLLATE "C" NOT NULL,
        seq    BIGINT NOT NULL,
        PRIMARY KEY (lot_id, seq)
    )
    """,
)

_REFUSE = """
CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on %.% refused',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

# trigger name suffix -> its timing, event and level
_GUARDS = {
    "no_update": "BEFORE UPDATE ON {table} FOR EACH ROW",
    "no_delete": "BEFORE DELETE ON {table} FOR EACH ROW",
    "no_truncate": "BEFORE TRUNCATE ON {table} FOR EACH STATEMENT",
}


def app_password() -> str | None:
    path = os.environ.get(APP_PASSWORD_FILE_ENV)
    if path:
        with open(path) as f:
            return f.read().strip()
    return os.environ.get(APP_PASSWORD_ENV)


def qualified(name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def app_role(owner: str) -> str:
    """The role the store works as: PROCTRAIL_DATABASE_APP_ROLE, or `<owner>_app`."""
    return os.environ.get(APP_ROLE_ENV) or f"{owner}_app"


def check_version(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    try:
        row = conn.execute("SELECT MAX(schema_version) FROM audit.meta").fetchone()
    except psycopg.errors.UndefinedTable:
        raise RuntimeError(
            "the audit schema is not there yet: the writer (not readonly) creates it"
        ) from None
    version = row[0] if row else None
    if version is None or version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database has audit schema {version}; this code knows {SCHEMA_VERSION}"
        )


def migrate(database_url: str) -> str:
    """Create or migrate the schema, the app role and its grants; return the owner's name."""
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        row = conn.execute("SELECT current_user").fetchone()
        assert row is not None
        owner = str(row[0])
        conn.execute("CREATE SCHEMA IF NOT EXISTS audit")
        conn.execute(_META)
        row = conn.execute("SELECT MAX(schema_version) FROM audit.meta").fetchone()
        version = row[0] if row and row[0] is not None else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database has audit schema {version}; this code knows {SCHEMA_VERSION}"
            )
        if version < 1:
            for statement in _V1:
                conn.execute(statement)
        if version < 2:
            for statement in _V2:
                conn.execute(statement)
            _index_lots(conn)  # what version 1 holds (nothing in a new database)
        conn.execute(_REFUSE)
        _guard(conn)
        app = app_role(owner)
        _app_role(conn, owner, app)
        _grant(conn, app)
        if version < SCHEMA_VERSION:
            conn.execute("INSERT INTO audit.meta (schema_version) VALUES (%s)", (SCHEMA_VERSION,))
    return owner


def _index_lots(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Schema 1 -> 2: index the lots named by the entries already in the ledger."""
    found: list[tuple[str, int]] = []
    with conn.cursor(name="proctrail_index_lots") as cur:
        cur.execute("SELECT seq, leaf FROM audit.entries ORDER BY seq")
        for seq, leaf in cur:
            event = orjson.loads(bytes(leaf))["event"]
            found += [(lot, int(seq)) for lot in lots_named(event)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO audit.entry_lots (lot_id, seq) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            found,
        )


def _guard(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Every guard trigger present and enabled ALWAYS; touches only what is missing."""
    rows = conn.execute(
        "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'audit' AND NOT t.tgisinternal"
    ).fetchall()
    present = {(r[0], r[1]): r[2] for r in rows}
    for name in _GUARDED:
        table = qualified(name)
        for suffix, when in _GUARDS.items():
            trigger = f"{name}_{suffix}"
            state = present.get((name, trigger))
            if state is None:
                conn.execute(
                    sql.SQL(
                        "CREATE TRIGGER {} " + when + " EXECUTE FUNCTION audit.refuse_change()"
                    ).format(sql.Identifier(trigger), table=table)
                )
            if state != "A":
                conn.execute(
                    sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(
                        table, sql.Identifier(trigger)
                    )
                )


def _app_role(conn: psycopg.Connection[tuple[Any, ...]], owner: str, app: str) -> None:
    if app == owner:
        raise RuntimeError(f"the app role must not be the owner ({owner})")
    row = conn.execute(
        "SELECT rolsuper, rolbypassrls, pg_has_role(oid, %s, 'USAGE')"
        " FROM pg_roles WHERE rolname = %s",
        (owner, app),
    ).fetchone()
    if row is None:
        password = app_password()
        statement = sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(app))
        if password:
            statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
        conn.execute(statement)
    elif any(row):
        raise RuntimeError(
            f"the app role {app} is a superuser, bypasses RLS or is a member of the owner"
            f" {owner}: it could change the ledger"
        )


def _grant(conn: psycopg.Connection[tuple[Any, ...]], app: str) -> None:
    """USAGE on the schema, SELECT and INSERT on the ledger, SELECT on meta; nothing more."""
    role = sql.Identifier(app)
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA audit FROM PUBLIC, {}").format(role))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA audit TO {}").format(role))
    for name in _GUARDED:
        table = qualified(name)
        conn.execute(sql.SQL("REVOKE ALL ON TABLE {} FROM PUBLIC, {}").format(table, role))
        columns = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (f"audit.{name}",),
        ).fetchall()
        conn.execute(  # column-level grants survive a table-level REVOKE
            sql.SQL("REVOKE ALL ({}) ON TABLE {} FROM PUBLIC, {}").format(
                sql.SQL(", ").join(sql.Identifier(c[0]) for c in columns), table, role
            )
        )
        privileges = "SELECT" if name == "meta" else "SELECT, INSERT"
        conn.execute(sql.SQL("GRANT " + privileges + " ON TABLE {} TO {}").format(table, role))
    conn.execute("REVOKE ALL ON FUNCTION audit.refuse_change() FROM PUBLIC")
    leaks = conn.execute(
        "SELECT t, p FROM unnest(%s::text[]) AS t,"
        " unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS p"
        " WHERE has_table_privilege(%s, 'audit.' || t, p)"
        " OR (p = 'UPDATE' AND has_any_column_privilege(%s, 'audit.' || t, p))",
        (list(_GUARDED), app, app),
    ).fetchall()
    if leaks:
        found = ", ".join(f"{p} on audit.{t}" for t, p in leaks)
        raise RuntimeError(f"the app role {app} still holds {found} (through another role?)")

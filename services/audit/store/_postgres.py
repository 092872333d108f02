"""The ledger on PostgreSQL: an owner role migrates, an app role with INSERT and SELECT works.

`database_url` is the owner's. On start (unless readonly) the owner creates or migrates the
`audit` schema: the tables, triggers that RAISE on UPDATE, DELETE and TRUNCATE (enabled
ALWAYS, so even session_replication_role = replica does not skip them), the app role
(`<owner>_app`, or PROCTRAIL_DATABASE_APP_ROLE) and its privileges: USAGE on the schema,
SELECT and INSERT on the tables, nothing else. Then the owner's connection is closed and
everything the store does runs logged in as the app role, so an UPDATE or DELETE through the
service's own connection is refused twice, by privileges and by the triggers.

Appends take a transaction-scoped advisory lock (one writer per log), check that the batch
starts at the current size, then COPY their rows. `scan`, `scan_nodes` and `checkpoints`
stream keyset-paginated pages of 10,000 rows, fetching the next page in the background while
the caller works on the current one: memory stays flat, and the store's lock is held one
page at a time, so appends and API reads go on during a `proctrail verify`. If the server
drops the connection, the call fails and the next one connects again.
"""

from __future__ import annotations

import bisect
import getpass
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from services.audit.store._interface import (
    COLUMN_FILTERS,
    TABLES,
    Entry,
    NewEntry,
    Query,
    StoredCheckpoint,
    lots_named,
)

SCHEMA_VERSION = 2  # 2: entry_lots
SCHEMA = "audit"
APP_ROLE_ENV = "PROCTRAIL_DATABASE_APP_ROLE"
APP_PASSWORD_ENV = "PROCTRAIL_DATABASE_APP_PASSWORD"  # noqa: S105 (a variable's name)
APP_PASSWORD_FILE_ENV = "PROCTRAIL_DATABASE_APP_PASSWORD_FILE"  # noqa: S105 (or from a file)

_GUARDED = (*TABLES, "meta")

# pg_advisory_xact_lock keys: the first 8 bytes of SHA-256("proctrail/audit/append") and of
# SHA-256("proctrail/audit/migrate"), as signed 64-bit integers. Advisory locks are per
# database, and one database holds one log.
_APPEND_LOCK = 6422414773767316173
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

_ENTRY_TYPES = ("int8", "text", "bytea", "bytea", "text", "text", "text", "text", "text", "text")

_COPY_ENTRIES = (
    "COPY audit.entries (seq, event_id, leaf, leaf_hash, type, procedure_id, patient_id,"
    " actor_id, recorded_at, disposition) FROM STDIN (FORMAT BINARY)"
)
_COPY_NODES = "COPY audit.tree_nodes (level, idx, hash) FROM STDIN (FORMAT BINARY)"
_PAGE = 10_000  # rows a scan fetches at a time: the LIMIT of the paged queries


def _app_password() -> str | None:
    path = os.environ.get(APP_PASSWORD_FILE_ENV)
    if path:
        with open(path) as f:
            return f.read().strip()
    return os.environ.get(APP_PASSWORD_ENV)


def _table(name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))


def _checkpoint(row: tuple[Any, ...]) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]), str(row[3]))


class PostgresStore:
    def __init__(self, database_url: str, *, readonly: bool = False) -> None:
        self.database_url = database_url
        self.readonly = readonly
        params = conninfo_to_dict(database_url)
        owner = str(params.get("user") or os.environ.get("PGUSER") or getpass.getuser())
        if not readonly:
            owner = self._migrate()
        self.app_role = os.environ.get(APP_ROLE_ENV) or f"{owner}_app"
        self._closed = False
        self._lock = threading.Lock()
        self._prefetch_lock = threading.Lock()
        self._prefetch: ThreadPoolExecutor | None = None
        self._conn = self._connect()

    # --- connections -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A connection logged in as the app role (never the owner), autocommit."""
        params = conninfo_to_dict(self.database_url)
        params.pop("password", None)  # the owner's: never sent as the app role's
        password = _app_password()
        if password:
            params["password"] = password
        params["user"] = self.app_role
        params.setdefault("application_name", "proctrail-audit")
        conn = psycopg.connect(make_conninfo("", **params), autocommit=True)
        try:
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
            self._check_version(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The store's connection, opened again if the server dropped it (call under the lock)."""
        if self._conn.broken and not self._closed:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    @staticmethod
    def _check_version(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
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

    # --- migration (as the owner) ------------------------------------------------------------

    def _migrate(self) -> str:
        """Create or migrate the schema, the app role and its grants; return the owner's name."""
        with psycopg.connect(self.database_url, autocommit=True) as conn, conn.transaction():
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
                self._index_lots(conn)  # what version 1 holds (nothing in a new database)
            conn.execute(_REFUSE)
            self._guard(conn)
            app = os.environ.get(APP_ROLE_ENV) or f"{owner}_app"
            self._app_role(conn, owner, app)
            self._grant(conn, app)
            if version < SCHEMA_VERSION:
                conn.execute(
                    "INSERT INTO audit.meta (schema_version) VALUES (%s)", (SCHEMA_VERSION,)
                )
        return owner

    @staticmethod
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

    @staticmethod
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
            table = _table(name)
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

    @staticmethod
    def _app_role(conn: psycopg.Connection[tuple[Any, ...]], owner: str, app: str) -> None:
        if app == owner:
            raise RuntimeError(f"the app role must not be the owner ({owner})")
        row = conn.execute(
            "SELECT rolsuper, rolbypassrls, pg_has_role(oid, %s, 'USAGE')"
            " FROM pg_roles WHERE rolname = %s",
            (owner, app),
        ).fetchone()
        if row is None:
            password = _app_password()
            statement = sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(app))
            if password:
                statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
            conn.execute(statement)
        elif any(row):
            raise RuntimeError(
                f"the app role {app} is a superuser, bypasses RLS or is a member of the owner"
                f" {owner}: it could change the ledger"
            )

    @staticmethod
    def _grant(conn: psycopg.Connection[tuple[Any, ...]], app: str) -> None:
        """USAGE on the schema, SELECT and INSERT on the ledger, SELECT on meta; nothing more."""
        role = sql.Identifier(app)
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA audit FROM PUBLIC, {}").format(role))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA audit TO {}").format(role))
        for name in _GUARDED:
            table = _table(name)
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

    # --- writer ------------------------------------------------------------------------------

    def known(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        with self._lock:
            rows = (
                self._live()
                .execute(
                    "SELECT event_id FROM audit.entries WHERE event_id = ANY(%s)",
                    (list(event_ids),),
                )
                .fetchall()
            )
        return {r[0] for r in rows}

    def patients(self, procedure_ids: Sequence[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(procedure_ids))
        if not ids:
            return {}
        with self._lock:
            rows = (
                self._live()
                .execute(
                    "SELECT procedure_id, patient_id FROM audit.procedure_patients"
                    " WHERE procedure_id = ANY(%s)",
                    (ids,),
                )
                .fetchall()
            )
        return {r[0]: r[1] for r in rows}

    def append(
        self,
        entries: Sequence[NewEntry],
        nodes: Sequence[tuple[int, int, bytes]],
        links: dict[str, str],
        checkpoint: StoredCheckpoint,
    ) -> None:
        with self._lock:
            conn = self._live()
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                if entries:
                    row = cur.execute(
                        "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit.entries"
                    ).fetchone()
                    size = row[0] if row else 0
                    if entries[0].seq != size:
                        raise RuntimeError(
                            f"the ledger holds {size} entries, this batch starts at seq"
                            f" {entries[0].seq}: another writer appended to this log"
                        )
                    with cur.copy(_COPY_ENTRIES) as copy:
                        copy.set_types(list(_ENTRY_TYPES))
                        for e in entries:
                            copy.write_row(e.columns())
                lots = [(lot, e.seq) for e in entries for lot in e.lots]
                if lots:
                    cur.executemany(
                        "INSERT INTO audit.entry_lots (lot_id, seq) VALUES (%s, %s)", lots
                    )
                if nodes:
                    with cur.copy(_COPY_NODES) as copy:
                        copy.set_types(["int8", "int8", "bytea"])
                        for node in nodes:
                            copy.write_row(node)
                if links:
                    cur.executemany(
                        "INSERT INTO audit.procedure_patients (procedure_id, patient_id)"
                        " VALUES (%s, %s) ON CONFLICT (procedure_id) DO NOTHING",
                        list(links.items()),
                    )
                cur.execute(
                    "INSERT INTO audit.checkpoints (tree_size, root, note, created_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (checkpoint.tree_size, checkpoint.root, checkpoint.note, checkpoint.created_at),
                )

    # --- readers -----------------------------------------------------------------------------

    def _one(self, query: str, args: Sequence[Any]) -> tuple[Any, ...] | None:
        with self._lock:
            return self._live().execute(query, args).fetchone()

    def size(self) -> int:
        row = self._one("SELECT COALESCE(MAX(seq) + 1, 0) FROM audit.entries", ())
        assert row is not None
        return int(row[0])

    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self._one("SELECT leaf_hash FROM audit.entries WHERE seq = %s", (index,))
        else:
            row = self._one(
                "SELECT hash FROM audit.tree_nodes WHERE level = %s AND idx = %s", (level, index)
            )
        if row is None:
            raise LookupError(f"no tree node at level {level}, index {index}")
        return bytes(row[0])

    def entries(self, query: Query) -> list[Entry]:
        where: list[sql.Composable] = [sql.SQL("seq > %s")]
        args: list[object] = [query.after_seq]
        for name in COLUMN_FILTERS:
            if name in query.filters:
                where.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
                args.append(query.filters[name])
        if "lot_id" in query.filters:
            where.append(sql.SQL("seq IN (SELECT seq FROM audit.entry_lots WHERE lot_id = %s)"))
            args.append(query.filters["lot_id"])
        if query.since is not None:
            where.append(sql.SQL("recorded_at >= %s"))
            args.append(query.since)
            # Nothing appended before an earlier checkpoint was recorded after `since`: the
            # ledger clamps recorded_at to the append time. This keeps `since` an index range.
            where.append(
                sql.SQL(
                    "seq >= COALESCE((SELECT max(tree_size) FROM audit.checkpoints"
                    ' WHERE created_at COLLATE "C" < %s), 0)'
                )
            )
            args.append(query.since)
        if query.until is not None:
            where.append(sql.SQL("recorded_at < %s"))
            args.append(query.until)
        statement = sql.SQL(
            "SELECT seq, leaf, leaf_hash FROM audit.entries WHERE {} ORDER BY seq LIMIT %s"
        ).format(sql.SQL(" AND ").join(where))
        with self._lock:
            rows = self._live().execute(statement, [*args, query.limit]).fetchall()
        return [Entry(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows]

    def by_event_id(self, event_id: str) -> Entry | None:
        row = self._one(
            "SELECT seq, leaf, leaf_hash FROM audit.entries WHERE event_id = %s", (event_id,)
        )
        return None if row is None else Entry(int(row[0]), bytes(row[1]), bytes(row[2]))

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        row = self._one(
            "SELECT tree_size, root, note, created_at FROM audit.checkpoints"
            " ORDER BY tree_size DESC LIMIT 1",
            (),
        )
        return None if row is None else _checkpoint(row)

    def checkpoint(self, tree_size: int) -> StoredCheckpoint | None:
        row = self._one(
            "SELECT tree_size, root, note, created_at FROM audit.checkpoints WHERE tree_size = %s",
            (tree_size,),
        )
        return None if row is None else _checkpoint(row)

    def _pages(self, query: str, args: tuple[Any, ...]) -> Iterator[list[tuple[Any, ...]]]:
        """Stream `query` a page of _PAGE rows at a time, keyset-paginated on its first column.

        `query` takes `args`, then the last key seen. The tables are append-only and their keys
        never reused, so pages join up exactly; memory stays flat (two pages at most), and the
        store's lock is held one page at a time, never while the caller iterates: appends and
        API reads go on meanwhile and several scans interleave (as `proctrail verify` does).
        The next page is fetched in the background while the caller works through this one.
        """

        def fetch(after: int) -> list[tuple[Any, ...]]:
            with self._lock, self._live().cursor(binary=True) as cur:
                return cur.execute(query, (*args, after)).fetchall()

        page = fetch(-1)
        while True:
            ahead = self._prefetcher().submit(fetch, page[-1][0]) if len(page) == _PAGE else None
            if page:
                yield page
            if ahead is None:
                return
            page = ahead.result()

    def _prefetcher(self) -> ThreadPoolExecutor:
        with self._prefetch_lock:
            if self._prefetch is None:
                self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="proctrail-pg-scan")
            return self._prefetch

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        query = (
            "SELECT tree_size, root, note, created_at FROM audit.checkpoints"
            " WHERE tree_size > %s ORDER BY tree_size LIMIT 10000"
        )
        for page in self._pages(query, ()):
            yield from map(_checkpoint, page)

    def scan(self, start: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        """From `start` up to the size the ledger had when the scan began (as SQLite's does)."""
        end = self.size()
        query = (  # no upper bound in SQL: without statistics the planner would sort then
            "SELECT seq, leaf, leaf_hash FROM audit.entries"
            " WHERE seq >= %s AND seq > %s ORDER BY seq LIMIT 10000"
        )
        for page in self._pages(query, (start,)):
            if page[-1][0] >= end:
                yield from page[: bisect.bisect_left(page, end, key=lambda row: row[0])]
                return
            yield from page

    def scan_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        query = (
            "SELECT idx, hash FROM audit.tree_nodes"
            " WHERE level = %s AND idx > %s ORDER BY idx LIMIT 10000"
        )
        for page in self._pages(query, (level,)):
            yield from page

    def close(self) -> None:
        with self._prefetch_lock:
            prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:  # before taking the lock: a pending fetch needs it
            prefetch.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._closed = True
            self._conn.close()

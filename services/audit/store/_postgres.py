"""The ledger on PostgreSQL: an owner role migrates, an app role with INSERT and SELECT works.

`database_url` is the owner's. On start (unless readonly) the owner creates or migrates the
`audit` schema (_postgres_schema.py: the tables, the triggers that refuse UPDATE, DELETE and
TRUNCATE, the app role and its grants). Then the owner's connection is closed and
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

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from services.audit.store._interface import COLUMN_FILTERS, Entry, NewEntry, Query, StoredCheckpoint
from services.audit.store._postgres_schema import app_password, app_role, check_version, migrate

# A pg_advisory_xact_lock key: the first 8 bytes of SHA-256("proctrail/audit/append"), as a
# signed 64-bit integer. Advisory locks are per database, and one database holds one log.
_APPEND_LOCK = 6422414773767316173

_ENTRY_TYPES = ("int8", "text", "bytea", "bytea", "text", "text", "text", "text", "text", "text")

_COPY_ENTRIES = (
    "COPY audit.entries (seq, event_id, leaf, leaf_hash, type, procedure_id, patient_id,"
    " actor_id, recorded_at, disposition) FROM STDIN (FORMAT BINARY)"
)
_COPY_NODES = "COPY audit.tree_nodes (level, idx, hash) FROM STDIN (FORMAT BINARY)"
_PAGE = 10_000  # rows a scan fetches at a time: the LIMIT of the paged queries


def _checkpoint(row: tuple[Any, ...]) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]), str(row[3]))


class PostgresStore:
    def __init__(self, database_url: str, *, readonly: bool = False) -> None:
        self.database_url = database_url
        self.readonly = readonly
        params = conninfo_to_dict(database_url)
        owner = str(params.get("user") or os.environ.get("PGUSER") or getpass.getuser())
        if not readonly:
            owner = migrate(database_url)
        self.app_role = app_role(owner)
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
        password = app_password()
        if password:
            params["password"] = password
        params["user"] = self.app_role
        params.setdefault("application_name", "proctrail-audit")
        conn = psycopg.connect(make_conninfo("", **params), autocommit=True)
        try:
            if self.readonly:
                conn.execute("SET default_transaction_read_only = on")
            check_version(conn)
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

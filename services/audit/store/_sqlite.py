"""The ledger on SQLite: WAL, synchronous=FULL, triggers that refuse UPDATE and DELETE."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from services.audit.store._interface import (
    COLUMN_FILTERS,
    TABLES,
    Entry,
    NewEntry,
    Query,
    StoredCheckpoint,
    lots_named,
)
from shared import sqlite

SCHEMA_VERSION = 2  # 2: entry_lots


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    leaf         BLOB NOT NULL,
    leaf_hash    BLOB NOT NULL,
    type         TEXT,
    procedure_id TEXT,
    patient_id   TEXT,
    actor_id     TEXT,
    recorded_at  TEXT,
    disposition  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_procedure ON entries (procedure_id, seq);
CREATE INDEX IF NOT EXISTS entries_patient ON entries (patient_id, seq);
CREATE INDEX IF NOT EXISTS entries_type ON entries (type, seq);
CREATE INDEX IF NOT EXISTS entries_actor ON entries (actor_id, seq);
CREATE INDEX IF NOT EXISTS entries_recorded ON entries (recorded_at, seq);
CREATE TABLE IF NOT EXISTS tree_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    tree_size  INTEGER PRIMARY KEY,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_created ON checkpoints (created_at);
CREATE TABLE IF NOT EXISTS procedure_patients (
    procedure_id TEXT PRIMARY KEY,
    patient_id   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entry_lots (
    lot_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (lot_id, seq)
) WITHOUT ROWID;
"""

_GUARDS = "".join(
    f"""
CREATE TRIGGER IF NOT EXISTS {t}_no_update BEFORE UPDATE ON {t}
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: UPDATE on {t} refused'); END;
CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t}
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: DELETE on {t} refused'); END;
"""
    for t in TABLES
)


class SqliteStore:
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if not readonly:
            conn = sqlite.connect(path)
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{path} has schema {version}; this code knows {SCHEMA_VERSION}")
            conn.executescript(_SCHEMA + _GUARDS)
            if version < 2:
                _index_lots(conn)  # what version 1 holds (nothing in a new file)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._conn = conn
        else:
            self._conn = sqlite.connect(path, readonly=True)
        self._lock = threading.Lock()

    # --- writer ------------------------------------------------------------------------------

    def known(self, event_ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        with self._lock:
            for i in range(0, len(event_ids), 500):
                chunk = list(event_ids[i : i + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT event_id FROM entries WHERE event_id IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                out.update(r[0] for r in rows)
        return out

    def patients(self, procedure_ids: Sequence[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(procedure_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            sql = f"SELECT procedure_id, patient_id FROM procedure_patients WHERE procedure_id IN ({marks})"  # noqa: E501, S608
            rows = self._conn.execute(sql, ids).fetchall()
        return dict(rows)

    def append(
        self,
        entries: Sequence[NewEntry],
        nodes: Sequence[tuple[int, int, bytes]],
        links: dict[str, str],
        checkpoint: StoredCheckpoint,
    ) -> None:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [e.columns() for e in entries],
                )
                cur.executemany(
                    "INSERT INTO entry_lots VALUES (?, ?)",
                    [(lot, e.seq) for e in entries for lot in e.lots],
                )
                cur.executemany("INSERT INTO tree_nodes VALUES (?, ?, ?)", nodes)
                cur.executemany(
                    "INSERT OR IGNORE INTO procedure_patients VALUES (?, ?)", list(links.items())
                )
                cur.execute(
                    "INSERT INTO checkpoints VALUES (?, ?, ?, ?)",
                    (checkpoint.tree_size, checkpoint.root, checkpoint.note, checkpoint.created_at),
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    # --- readers -----------------------------------------------------------------------------

    def size(self) -> int:
        with self._lock:
            (size,) = self._conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM entries").fetchone()
        return int(size)

    def node(self, level: int, index: int) -> bytes:
        with self._lock:
            if level == 0:
                row = self._conn.execute(
                    "SELECT leaf_hash FROM entries WHERE seq = ?", (index,)
                ).fetchone()
            else:
                row = self._conn.execute(
                    "SELECT hash FROM tree_nodes WHERE level = ? AND idx = ?", (level, index)
                ).fetchone()
        if row is None:
            raise LookupError(f"no tree node at level {level}, index {index}")
        return bytes(row[0])

    def entries(self, query: Query) -> list[Entry]:
        where = ["seq > ?"]
        args: list[object] = [query.after_seq]
        for name in COLUMN_FILTERS:
            if name in query.filters:
                where.append(f"{name} = ?")
                args.append(query.filters[name])
        if "lot_id" in query.filters:
            where.append("seq IN (SELECT seq FROM entry_lots WHERE lot_id = ?)")
            args.append(query.filters["lot_id"])
        if query.since is not None:
            where.append("recorded_at >= ?")
            args.append(query.since)
            # Nothing appended before an earlier checkpoint was recorded after `since`: the
            # ledger clamps recorded_at to the append time. This keeps `since` an index range.
            where.append(
                "seq >= COALESCE((SELECT max(tree_size) FROM checkpoints WHERE created_at < ?), 0)"
            )
            args.append(query.since)
        if query.until is not None:
            where.append("recorded_at < ?")
            args.append(query.until)
        sql = (  # column names come from FILTERS; every value is bound
            f"SELECT seq, leaf, leaf_hash FROM entries WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, [*args, query.limit]).fetchall()
        return [Entry(r[0], bytes(r[1]), bytes(r[2])) for r in rows]

    def by_event_id(self, event_id: str) -> Entry | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT seq, leaf, leaf_hash FROM entries WHERE event_id = ?", (event_id,)
            ).fetchone()
        return None if row is None else Entry(row[0], bytes(row[1]), bytes(row[2]))

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return self._one_checkpoint("SELECT * FROM checkpoints ORDER BY tree_size DESC LIMIT 1", ())

    def checkpoint(self, tree_size: int) -> StoredCheckpoint | None:
        return self._one_checkpoint("SELECT * FROM checkpoints WHERE tree_size = ?", (tree_size,))

    def _one_checkpoint(self, sql: str, args: tuple[object, ...]) -> StoredCheckpoint | None:
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return None if row is None else StoredCheckpoint(row[0], bytes(row[1]), row[2], row[3])

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        cur = self._conn.execute("SELECT * FROM checkpoints ORDER BY tree_size")
        for row in cur:
            yield StoredCheckpoint(row[0], bytes(row[1]), row[2], row[3])

    def scan(self, start: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        cur = self._conn.execute(
            "SELECT seq, leaf, leaf_hash FROM entries WHERE seq >= ? ORDER BY seq", (start,)
        )
        while rows := cur.fetchmany(10_000):
            yield from rows

    def scan_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        cur = self._conn.execute(
            "SELECT idx, hash FROM tree_nodes WHERE level = ? ORDER BY idx", (level,)
        )
        while rows := cur.fetchmany(10_000):
            yield from rows

    def close(self) -> None:
        self._conn.close()


def _index_lots(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: index the lots the entries already in the ledger name (INSERT only)."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        rows = cur.execute("SELECT seq, leaf FROM entries ORDER BY seq")
        found = [
            (lot, seq) for seq, leaf in rows for lot in lots_named(orjson.loads(leaf)["event"])
        ]
        cur.executemany("INSERT OR IGNORE INTO entry_lots VALUES (?, ?)", found)
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise

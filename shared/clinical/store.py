"""What a phase service keeps of its procedures: the accepted facts, and the alerts raised.

The state itself is not stored: it is folded from the facts (chain.py) whenever needed, so a
restart, a redelivery or a rebuild can never count anything twice — a fact is kept once per
event_id, and an alert once per key.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

import orjson

from shared import sqlite
from shared.clinical.facts import Fact

S = TypeVar("S")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    procedure_id TEXT NOT NULL,
    event_id     TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    payload      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS facts_procedure ON facts (procedure_id, seq);
CREATE TABLE IF NOT EXISTS raised (
    procedure_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    alert_id     TEXT NOT NULL,
    raised_at    TEXT NOT NULL,
    PRIMARY KEY (procedure_id, key)
);
CREATE TABLE IF NOT EXISTS watched (
    procedure_id TEXT PRIMARY KEY  -- sedated and not yet discharged: the clock checks it
);
"""


class ClinicalStore:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()  # the consumer thread and the clock thread share it

    def add(self, procedure_id: str, fact: Fact) -> bool:
        """Keep a fact; False when its event_id was kept before (a redelivery)."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO facts (procedure_id, event_id, type, occurred_at,"
                " actor_id, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (procedure_id, fact.event_id, fact.type, fact.occurred_at.isoformat(),
                 fact.actor_id, orjson.dumps(dict(fact.payload))),
            )  # fmt: skip
            return cur.rowcount == 1

    def facts(self, procedure_id: str) -> list[Fact]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT event_id, type, occurred_at, actor_id, payload, seq FROM facts"
                " WHERE procedure_id = ? ORDER BY seq",
                (procedure_id,),
            ).fetchall()
        return [
            Fact(r[0], r[1], datetime.fromisoformat(r[2]), r[3], orjson.loads(r[4]), int(r[5]))
            for r in rows
        ]

    def raised(self, procedure_id: str) -> set[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT key FROM raised WHERE procedure_id = ?", (procedure_id,)
            ).fetchall()
        return {str(r[0]) for r in rows}

    def mark_raised(self, procedure_id: str, alerts: Iterable[tuple[str, str]], at: str) -> None:
        """Record (key, alert event_id) pairs as raised, once their events are confirmed."""
        with self._lock:
            self._conn.executemany(
                "INSERT OR IGNORE INTO raised VALUES (?, ?, ?, ?)",
                [(procedure_id, key, alert_id, at) for key, alert_id in alerts],
            )

    def empty(self) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT EXISTS (SELECT 1 FROM facts)").fetchone()
        return not row[0]

    def watch(self, procedure_id: str, on: bool) -> None:
        with self._lock:
            if on:
                self._conn.execute("INSERT OR IGNORE INTO watched VALUES (?)", (procedure_id,))
            else:
                self._conn.execute("DELETE FROM watched WHERE procedure_id = ?", (procedure_id,))

    def watched(self) -> list[str]:
        with self._lock:
            return [str(r[0]) for r in self._conn.execute("SELECT procedure_id FROM watched")]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class StateStore(Protocol):
    """What the recorder needs of a store: SQLite here, PostgreSQL in store_postgres.py."""

    def add(self, procedure_id: str, fact: Fact) -> bool: ...
    def facts(self, procedure_id: str) -> list[Fact]: ...
    def raised(self, procedure_id: str) -> set[str]: ...
    def mark_raised(
        self, procedure_id: str, alerts: Iterable[tuple[str, str]], at: str
    ) -> None: ...
    def empty(self) -> bool: ...
    def watch(self, procedure_id: str, on: bool) -> None: ...
    def watched(self) -> list[str]: ...
    def close(self) -> None: ...


def open_store(service_dir: Path, service: str, database_url: str | None = None) -> StateStore:
    """PostgreSQL (a schema named after the service) when a URL is given, else SQLite."""
    if database_url:
        from shared.clinical.store_postgres import PostgresClinicalStore

        return PostgresClinicalStore(database_url, service)
    return open_sqlite(ClinicalStore, service_dir)


def open_sqlite(store: Callable[[Path], S], service_dir: Path) -> S:
    """A service's SQLite state (`store` is ClinicalStore, or a room's extension of it)."""
    path = service_dir / "clinical.sqlite3"
    try:
        return store(path)
    except sqlite3.Error as exc:
        raise RuntimeError(f"cannot open the clinical state at {path}: {exc}") from exc

"""A real SQLite database that another connection can lock, as a store outage, and a batch
handler that records each message in it (the write fails while the lock is held)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from shared.bus import Delivery, Settle


class LockedDatabase:
    """`lock()` takes an EXCLUSIVE lock on another connection; until `unlock()`, every write
    fails at once with sqlite3.OperationalError ("database is locked")."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE seen (message_id TEXT NOT NULL)")
        conn.close()
        self._holder: sqlite3.Connection | None = None

    def lock(self) -> None:
        self._holder = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._holder.execute("BEGIN EXCLUSIVE")

    def unlock(self) -> None:
        assert self._holder is not None
        self._holder.execute("COMMIT")
        self._holder.close()
        self._holder = None

    def seen(self) -> list[str]:
        conn = sqlite3.connect(self.path)
        try:
            return [r[0] for r in conn.execute("SELECT message_id FROM seen ORDER BY rowid")]
        finally:
            conn.close()


class Recording:
    """A handler that writes each message's id to the database, one transaction per batch, and
    lets the database's errors propagate, as the services' consumers do."""

    def __init__(self, db: LockedDatabase) -> None:
        self.db = db
        self.attempts: list[tuple[str | None, int, bool]] = []  # message_id, count, redelivered
        self.failures = 0
        self.called = threading.Event()

    def __call__(self, batch: Sequence[Delivery]) -> list[Settle]:
        self.attempts += [(d.message_id, d.delivery_count, d.redelivered) for d in batch]
        self.called.set()
        conn = sqlite3.connect(self.db.path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO seen VALUES (?)", [(d.message_id,) for d in batch])
            conn.execute("COMMIT")
        except sqlite3.OperationalError:
            self.failures += 1
            raise
        finally:
            conn.close()
        return [Settle.ACK] * len(batch)

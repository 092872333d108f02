"""The implant room's lots table: the product lots the lab released (product.lot_released),
which the chain-of-identity rules check. The first release of a lot id is the one that counts.

It lives beside the procedures' facts, in the same SQLite file or PostgreSQL schema (the table
is the one the implant service has always kept there), so the implant store is the shared
clinical store with this one table more.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Protocol

import orjson

from shared.clinical.facts import Lot, LotTable
from shared.clinical.store import ClinicalStore, StateStore, open_sqlite

_SQLITE = """
CREATE TABLE IF NOT EXISTS lots (
    lot_id      TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    released_at TEXT NOT NULL,
    payload     BLOB NOT NULL
)"""


class ImplantStateStore(StateStore, LotTable, Protocol):
    """What the implant recorder keeps: the procedures' facts and the released lots."""


class ImplantStore(ClinicalStore):
    """The clinical store in SQLite, with the released lots."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._conn.execute(_SQLITE)

    def add_lot(self, lot: Lot) -> bool:
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO lots VALUES (?, ?, ?, ?)",
                (lot.lot_id, lot.event_id, lot.released_at.isoformat(),
                 orjson.dumps(dict(lot.payload))),
            )  # fmt: skip
            return cur.rowcount == 1

    def lots(self, lot_ids: Iterable[str] | None = None) -> dict[str, Lot]:
        """The released lots (only `lot_ids`, when given: a procedure needs only its own)."""
        query = "SELECT lot_id, released_at, event_id, payload FROM lots"
        with self._lock:
            if lot_ids is None:
                rows = self._conn.execute(query).fetchall()
            else:
                rows = [
                    row
                    for lot_id in set(lot_ids)
                    for row in self._conn.execute(f"{query} WHERE lot_id = ?", (lot_id,))
                ]
        return {
            r[0]: Lot(r[0], datetime.fromisoformat(r[1]), r[2], orjson.loads(r[3])) for r in rows
        }

    def empty(self) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT EXISTS (SELECT 1 FROM lots)").fetchone()
        return not row[0] and super().empty()


def open_implant_store(
    service_dir: Path, service: str, database_url: str | None = None
) -> ImplantStateStore:
    """The implant store: PostgreSQL (schema named after the service) given a URL, else SQLite."""
    if database_url:
        from services.implant.lots_postgres import PostgresImplantStore

        return PostgresImplantStore(database_url, service)
    return open_sqlite(ImplantStore, service_dir)

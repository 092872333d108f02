"""The implant room's lots table in PostgreSQL (lots.py has the SQLite one, and why)."""

from __future__ import annotations

from collections.abc import Iterable

from psycopg.types.json import Jsonb

from shared.clinical.facts import Lot
from shared.clinical.store_postgres import PostgresClinicalStore

_TABLE = """
CREATE TABLE IF NOT EXISTS {s}.lots (
    lot_id      TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    released_at TIMESTAMPTZ NOT NULL,
    payload     JSONB NOT NULL
)"""


class PostgresImplantStore(PostgresClinicalStore):
    """The clinical store in PostgreSQL (schema `implant`), with the released lots."""

    def __init__(self, url: str, schema: str) -> None:
        super().__init__(url, schema)
        with self._cursor() as conn:
            conn.execute(self._sql(_TABLE))

    def add_lot(self, lot: Lot) -> bool:
        with self._cursor() as conn:
            cur = conn.execute(
                self._sql("INSERT INTO {s}.lots VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"),
                (lot.lot_id, lot.event_id, lot.released_at, Jsonb(dict(lot.payload))),
            )
            return cur.rowcount == 1

    def lots(self, lot_ids: Iterable[str] | None = None) -> dict[str, Lot]:
        query = "SELECT lot_id, released_at, event_id, payload FROM {s}.lots"
        with self._cursor() as conn:
            if lot_ids is None:
                rows = conn.execute(self._sql(query)).fetchall()
            else:
                rows = conn.execute(
                    self._sql(query + " WHERE lot_id = ANY(%s)"), (sorted(set(lot_ids)),)
                ).fetchall()
        return {r[0]: Lot(r[0], r[1], r[2], r[3]) for r in rows}

    def empty(self) -> bool:
        with self._cursor() as conn:
            row = conn.execute(self._sql("SELECT EXISTS (SELECT 1 FROM {s}.lots)")).fetchone()
        return not (row and row[0]) and super().empty()

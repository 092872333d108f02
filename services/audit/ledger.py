"""The ledger store: append-only, dense sequence numbers, idempotent on event_id.

Each entry keeps the exact leaf bytes that were hashed, so re-hashing never depends on
re-serialising: leaf_hash = SHA-256(0x00 || leaf) (RFC 9162).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from shared import sqlite
from shared.events.record import AuditRecord

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
CREATE INDEX IF NOT EXISTS entries_recorded ON entries (recorded_at);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: DELETE refused'); END;
CREATE TABLE IF NOT EXISTS procedure_patients (
    procedure_id TEXT PRIMARY KEY,
    patient_id   TEXT NOT NULL
);
"""

FILTERS = ("procedure_id", "patient_id", "type", "actor_id")


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


@dataclass(frozen=True)
class Entry:
    seq: int
    leaf: bytes
    leaf_hash: bytes

    def to_json(self) -> dict[str, Any]:
        content = orjson.loads(self.leaf)
        out = {
            "seq": self.seq,
            "leaf": base64.b64encode(self.leaf).decode(),
            "leaf_hash": base64.b64encode(self.leaf_hash).decode(),
            "event": content["event"],
            "disposition": content["disposition"],
        }
        if "reason" in content:
            out["reason"] = content["reason"]
        return out


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _utc(value: Any) -> str | None:
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC).isoformat()
    except ValueError:
        return None


class Ledger:
    """One writer (the consumer thread); readers open their own connections."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite.connect(path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def append(self, records: Sequence[AuditRecord]) -> list[int | None]:
        """Append in one transaction (group commit). Returns each record's seq, None if known."""
        now = datetime.now(UTC).isoformat()
        out: list[int | None] = []
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                (next_seq,) = cur.execute(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM entries"
                ).fetchone()
                for record in records:
                    if self._known(cur, record.event_id):
                        out.append(None)
                        continue
                    self._insert(cur, next_seq, now, record)
                    out.append(next_seq)
                    next_seq += 1
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        return out

    @staticmethod
    def _known(cur: Any, event_id: str) -> bool:
        return (
            cur.execute("SELECT 1 FROM entries WHERE event_id = ?", (event_id,)).fetchone()
            is not None
        )

    def _insert(self, cur: Any, seq: int, now: str, record: AuditRecord) -> None:
        event = record.event
        content = {
            "seq": seq,
            "appended_at": now,
            **record.model_dump(mode="json", exclude_none=True),
        }
        leaf = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        procedure_id = _text(event.get("procedure_id"))
        payload = _mapping(event.get("payload"))
        patient_id = self._patient_of(cur, event, payload, procedure_id)
        actor = _mapping(event.get("actor"))
        cur.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                record.event_id,
                leaf,
                leaf_hash(leaf),
                _text(event.get("type")),
                procedure_id,
                patient_id,
                _text(actor.get("id")),
                _utc(event.get("recorded_at")),
                record.disposition,
            ),
        )

    @staticmethod
    def _patient_of(
        cur: Any, event: dict[str, Any], payload: dict[str, Any], procedure_id: str | None
    ) -> str | None:
        patient = payload.get("patient")
        patient_id = _text(patient.get("id")) if isinstance(patient, dict) else None
        if event.get("type") == "procedure.scheduled" and procedure_id and patient_id:
            cur.execute(
                "INSERT OR IGNORE INTO procedure_patients VALUES (?, ?)", (procedure_id, patient_id)
            )
        if patient_id is None and procedure_id is not None:
            row = cur.execute(
                "SELECT patient_id FROM procedure_patients WHERE procedure_id = ?", (procedure_id,)
            ).fetchone()
            patient_id = row[0] if row else None
        return patient_id

    def close(self) -> None:
        self._conn.close()


class LedgerReader:
    """Read-only queries for the HTTP API (its own connection, on the event-loop thread)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path, readonly=True)

    def entries(
        self,
        filters: dict[str, str],
        since: str | None,
        until: str | None,
        after_seq: int,
        limit: int,
    ) -> list[Entry]:
        where = ["seq > ?"]
        args: list[Any] = [after_seq]
        for name in FILTERS:
            if name in filters:
                where.append(f"{name} = ?")
                args.append(filters[name])
        if since is not None:
            where.append("recorded_at >= ?")
            args.append(since)
        if until is not None:
            where.append("recorded_at < ?")
            args.append(until)
        rows = self._conn.execute(  # column names come from FILTERS; values are bound
            f"SELECT seq, leaf, leaf_hash FROM entries WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY seq LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [Entry(r[0], r[1], r[2]) for r in rows]

    def by_event_id(self, event_id: str) -> Entry | None:
        row = self._conn.execute(
            "SELECT seq, leaf, leaf_hash FROM entries WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else Entry(row[0], row[1], row[2])

    def close(self) -> None:
        self._conn.close()

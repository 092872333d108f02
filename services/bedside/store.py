"""bedside's own tables: the procedures it scheduled and the events it accepted (idempotency)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from shared import sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS procedures (
    procedure_id       TEXT PRIMARY KEY,
    phase              TEXT NOT NULL,
    scheduled_event_id TEXT NOT NULL UNIQUE,
    scheduled_event    BLOB NOT NULL,
    idempotency_key    TEXT UNIQUE,
    request_digest     TEXT NOT NULL,
    confirmed          INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS alerts (
    event_id     TEXT PRIMARY KEY,
    procedure_id TEXT,
    occurred_at  TEXT NOT NULL,
    code         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    message      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_procedure ON alerts (procedure_id, occurred_at);
CREATE TABLE IF NOT EXISTS unmatched_captures (
    sop_instance_uid TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    occurred_at      TEXT NOT NULL,
    event            BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS reconciliations (
    sop_instance_uid TEXT PRIMARY KEY,
    procedure_id     TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    reconciled_by    TEXT NOT NULL,
    reconciled_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accepted_events (
    event_id     TEXT PRIMARY KEY,
    digest       TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    confirmed    INTEGER NOT NULL DEFAULT 0
);
"""

_LIST = (
    "SELECT u.event, r.procedure_id, r.reconciled_by, r.reconciled_at FROM unmatched_captures u"
    " LEFT JOIN reconciliations r ON r.sop_instance_uid = u.sop_instance_uid"
)
_WAITING = _LIST + " WHERE r.procedure_id IS NULL ORDER BY u.occurred_at DESC LIMIT ?"
_SETTLED = _LIST + " WHERE r.procedure_id IS NOT NULL ORDER BY u.occurred_at DESC LIMIT ?"

_SELECT = (
    "SELECT procedure_id, phase, scheduled_event_id, scheduled_event, request_digest, confirmed"
    " FROM procedures"
)
_BY_ID = _SELECT + " WHERE procedure_id = ?"
_BY_KEY = _SELECT + " WHERE idempotency_key = ?"


@dataclass(frozen=True)
class Procedure:
    procedure_id: str
    phase: str
    scheduled_event_id: str
    scheduled_event: bytes
    request_digest: str
    confirmed: bool


@dataclass(frozen=True)
class Accepted:
    digest: str
    recorded_at: datetime
    confirmed: bool


class BedsideStore:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path)
        self._conn.executescript(_SCHEMA)

    def add_procedure(self, proc: Procedure, idempotency_key: str | None) -> None:
        self._conn.execute(
            "INSERT INTO procedures VALUES (?, ?, ?, ?, ?, ?, 0)",
            (
                proc.procedure_id,
                proc.phase,
                proc.scheduled_event_id,
                proc.scheduled_event,
                idempotency_key,
                proc.request_digest,
            ),
        )

    def procedure(self, procedure_id: str) -> Procedure | None:
        return self._one_procedure(_BY_ID, procedure_id)

    def procedure_by_key(self, idempotency_key: str) -> Procedure | None:
        return self._one_procedure(_BY_KEY, idempotency_key)

    def _one_procedure(self, query: str, value: str) -> Procedure | None:
        row = self._conn.execute(query, (value,)).fetchone()
        if row is None:
            return None
        return Procedure(row[0], row[1], row[2], row[3], row[4], confirmed=bool(row[5]))

    def procedures(self, limit: int = 500) -> list[Procedure]:
        """Confirmed procedures, newest first."""
        rows = self._conn.execute(
            _SELECT + " WHERE confirmed = 1 ORDER BY rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return [Procedure(r[0], r[1], r[2], r[3], r[4], confirmed=bool(r[5])) for r in rows]

    def confirm_procedure(self, procedure_id: str) -> None:
        self._conn.execute(
            "UPDATE procedures SET confirmed = 1 WHERE procedure_id = ?", (procedure_id,)
        )

    def accepted(self, event_id: str) -> Accepted | None:
        row = self._conn.execute(
            "SELECT digest, recorded_at, confirmed FROM accepted_events WHERE event_id = ?",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        return Accepted(row[0], datetime.fromisoformat(row[1]), bool(row[2]))

    def accept(self, event_id: str, digest: str, recorded_at: datetime) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO accepted_events VALUES (?, ?, ?, 0)",
            (event_id, digest, recorded_at.isoformat()),
        )

    def confirm_event(self, event_id: str) -> None:
        self._conn.execute(
            "UPDATE accepted_events SET confirmed = 1 WHERE event_id = ?", (event_id,)
        )

    def add_alert(self, event: dict[str, object]) -> None:
        payload = event.get("payload")
        assert isinstance(payload, dict)
        self._conn.execute(
            "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?)",
            (str(event["event_id"]), event.get("procedure_id"), str(event["occurred_at"]),
             str(payload["code"]), str(payload["severity"]), str(payload["message"])),
        )  # fmt: skip

    def alerts(self, procedure_id: str) -> list[dict[str, str]]:
        rows = self._conn.execute(
            "SELECT event_id, occurred_at, code, severity, message FROM alerts"
            " WHERE procedure_id = ? ORDER BY occurred_at",
            (procedure_id,),
        ).fetchall()
        keys = ("event_id", "occurred_at", "code", "severity", "message")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # --- the reconciliation list: captures no procedure claimed ------------------------------

    def add_unmatched(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        self._conn.execute(
            "INSERT OR IGNORE INTO unmatched_captures VALUES (?, ?, ?, ?)",
            (str(payload["sop_instance_uid"]), str(event["event_id"]), str(event["occurred_at"]),
             orjson.dumps(event)),
        )  # fmt: skip

    def unmatched(self, sop_instance_uid: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT event FROM unmatched_captures WHERE sop_instance_uid = ?", (sop_instance_uid,)
        ).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def reconcile(
        self, sop_instance_uid: str, procedure_id: str, event_id: str, by: str, at: datetime
    ) -> None:
        """The first reconciliation of a capture stands; a correction is a record.corrected."""
        self._conn.execute(
            "INSERT OR IGNORE INTO reconciliations VALUES (?, ?, ?, ?, ?)",
            (sop_instance_uid, procedure_id, event_id, by, at.isoformat()),
        )

    def reconciled_to(self, sop_instance_uid: str) -> str | None:
        row = self._conn.execute(
            "SELECT procedure_id FROM reconciliations WHERE sop_instance_uid = ?",
            (sop_instance_uid,),
        ).fetchone()
        return None if row is None else str(row[0])

    def reconciliation_list(self, *, settled: bool, limit: int = 200) -> list[dict[str, Any]]:
        """Unmatched captures, newest first: those still waiting, or those already settled."""
        rows = self._conn.execute(_SETTLED if settled else _WAITING, (limit,)).fetchall()
        out = []
        for event, procedure_id, by, at in rows:
            item = dict(orjson.loads(event))
            if procedure_id is not None:
                item["reconciled"] = {"procedure_id": procedure_id, "by": by, "at": at}
            out.append(item)
        return out

    def close(self) -> None:
        self._conn.close()

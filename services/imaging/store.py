"""imaging's durable state: received objects (content-addressed files) and its own tables.

An object is fsynced and renamed into `objects/<sha[:2]>/<sha256>.dcm` before anything is
published about it; the event that announces it is written to the outbox in the same step,
so a broker outage delays the event but never loses it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared import sqlite

_CHUNK = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS procedures (
    procedure_id     TEXT PRIMARY KEY,
    phase            TEXT NOT NULL,
    patient_id       TEXT,
    accession_number TEXT,
    closed           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS procedures_accession ON procedures (accession_number);
CREATE INDEX IF NOT EXISTS procedures_patient ON procedures (patient_id);
CREATE TABLE IF NOT EXISTS outbox (
    message_id  TEXT PRIMARY KEY,
    exchange    TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body        BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent_at, created_at);
"""


@dataclass(frozen=True)
class StoredObject:
    path: Path
    sha256: str
    size_bytes: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / "incoming"  # same filesystem as objects/, so rename is atomic
        self.objects = root / "objects"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.objects.mkdir(parents=True, exist_ok=True)

    def keep(self, received: Path) -> StoredObject:
        """Make a received file durable under its SHA-256 and return where it now lives."""
        digest = hashlib.sha256()
        with received.open("rb+") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
            size = f.tell()
            os.fsync(f.fileno())
        sha = digest.hexdigest()
        folder = self.objects / sha[:2]
        folder.mkdir(exist_ok=True)
        final = folder / f"{sha}.dcm"
        if received.parent != self.incoming:  # another filesystem: copy next to it first
            staged = self.incoming / f"{sha}.part"
            shutil.copyfile(received, staged)
            with staged.open("rb") as f:
                os.fsync(f.fileno())
            received = staged
        os.replace(received, final)
        _fsync_dir(folder)
        return StoredObject(final, sha, size)


@dataclass(frozen=True)
class OutboxMessage:
    message_id: str
    exchange: str
    routing_key: str
    body: bytes


@dataclass(frozen=True)
class KnownProcedure:
    procedure_id: str
    phase: str


class ImagingDb:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite.connect(path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()  # association threads, the relay and the index consumer

    def add_to_outbox(self, messages: list[OutboxMessage]) -> None:
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT OR IGNORE INTO outbox VALUES (?, ?, ?, ?, ?, NULL)",
                [(m.message_id, m.exchange, m.routing_key, m.body, now) for m in messages],
            )
            self._conn.execute("COMMIT")

    def mark_sent(self, message_ids: list[str]) -> None:
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self._conn.executemany(
                "UPDATE outbox SET sent_at = ? WHERE message_id = ? AND sent_at IS NULL",
                [(now, m) for m in message_ids],
            )

    def unsent(self, older_than_s: float, limit: int = 500) -> list[OutboxMessage]:
        cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than_s, UTC)
        with self._lock:
            rows = self._conn.execute(
                "SELECT message_id, exchange, routing_key, body FROM outbox"
                " WHERE sent_at IS NULL AND created_at <= ? ORDER BY created_at LIMIT ?",
                (cutoff.isoformat(), limit),
            ).fetchall()
        return [OutboxMessage(*r) for r in rows]

    def index_procedure(
        self, procedure_id: str, phase: str, patient_id: str | None, accession: str | None
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO procedures VALUES (?, ?, ?, ?, 0)",
                (procedure_id, phase, patient_id, accession),
            )

    def close_procedure(self, procedure_id: str) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE procedures SET closed = 1 WHERE procedure_id = ?", (procedure_id,)
            )

    def match(self, accession: str | None, patient_id: str | None) -> KnownProcedure | None:
        """By accession number first; else the one open procedure of that patient."""
        with self._lock:
            if accession:
                rows = self._conn.execute(
                    "SELECT procedure_id, phase FROM procedures"
                    " WHERE accession_number = ? AND closed = 0",
                    (accession,),
                ).fetchall()
                if len(rows) == 1:
                    return KnownProcedure(*rows[0])
            if patient_id:
                rows = self._conn.execute(
                    "SELECT procedure_id, phase FROM procedures"
                    " WHERE patient_id = ? AND closed = 0",
                    (patient_id,),
                ).fetchall()
                if len(rows) == 1:
                    return KnownProcedure(*rows[0])
        return None

    def close(self) -> None:
        self._conn.close()

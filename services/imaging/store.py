"""imaging's durable state: the received objects (kept on disk by files.py, named by SOP
Instance UID) and its own tables — objects index, outbox, procedures it can match to,
per-patient dose totals.

An object is fsynced and linked into place, then its events go into the outbox in one
SQLite transaction (synchronous=FULL). Only then does the C-STORE answer Success; the relay
publishes the outbox with confirms, so a broker outage delays events but never loses them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from services.imaging.files import StoredObject, file_stem, fsync, place
from shared import sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    sop_instance_uid TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    path             TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL,
    received_at      TEXT NOT NULL,
    PRIMARY KEY (sop_instance_uid, sha256)
);
CREATE TABLE IF NOT EXISTS procedures (
    procedure_id     TEXT PRIMARY KEY,
    phase            TEXT NOT NULL,
    patient_id       TEXT,
    accession_number TEXT,
    room             TEXT,
    scheduled_start  TEXT,
    closed           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS procedures_accession ON procedures (accession_number);
CREATE INDEX IF NOT EXISTS procedures_patient ON procedures (patient_id);
CREATE TABLE IF NOT EXISTS studies (
    study_instance_uid TEXT PRIMARY KEY,
    procedure_id       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS unmatched (
    sop_instance_uid TEXT PRIMARY KEY,
    received_at      TEXT NOT NULL,
    reconciled_to    TEXT
);
CREATE TABLE IF NOT EXISTS patient_dose (
    patient_id       TEXT PRIMARY KEY,
    dap_total_gy_m2  REAL NOT NULL DEFAULT 0,
    dose_rp_total_gy REAL NOT NULL DEFAULT 0,
    dlp_total_mgy_cm REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL UNIQUE,
    exchange    TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body        BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    worker      INTEGER NOT NULL DEFAULT 0  -- the listener process that wrote it relays it
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent_at, position);
"""


Totals = tuple[float, float, float]  # DAP Gy·m², reference-point dose Gy, DLP mGy·cm
DoseHook = Callable[[Totals, Totals], list["OutboxMessage"]]


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
    patient_id: str | None


class ImagingStore:
    def __init__(self, root: Path, worker: int = 0, workers: int = 1) -> None:
        """`worker` of `workers` listener processes sharing this store (WAL: one file, many
        processes); each relays the outbox rows its own number stands for."""
        self.root = root
        self.worker, self.workers = worker, workers
        self.incoming = root / "incoming"  # same filesystem as objects/: rename is atomic
        self.objects = root / "objects"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.objects.mkdir(parents=True, exist_ok=True)
        self._path = root / "imaging.sqlite3"
        self._conn = sqlite.connect(self._path)
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(outbox)")}
        if "worker" not in columns:  # a store from before listener worker processes
            self._conn.execute("ALTER TABLE outbox ADD COLUMN worker INTEGER NOT NULL DEFAULT 0")
        self._lock = threading.Lock()  # the one writer connection: associations, relay, index
        self._readers = threading.local()  # WAL: each association thread reads on its own
        # The relay's "sent" marks need no fsync of their own: losing one to a power cut only
        # means that message is published again, and the ledger keeps one entry per event_id.
        # (Same lock as the writer: in this process, neither waits on SQLite's busy handler.)
        self._marks = sqlite.connect(self._path)
        self._marks.execute("PRAGMA synchronous=NORMAL")

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = self._readers.conn = sqlite.connect(self._path)
        return conn

    # --- objects -----------------------------------------------------------------------------

    def keep(self, received: Path, sop_instance_uid: str, sha: str, size: int) -> StoredObject:
        """Make a received file (whose hash and size the caller took) durable under its SOP
        Instance UID; a second, different version of the same UID is kept beside the first,
        never over it."""
        fsync(received)
        name = file_stem(sop_instance_uid)
        rows = (
            self._reader()
            .execute(
                "SELECT sha256, path FROM objects WHERE sop_instance_uid = ?", (sop_instance_uid,)
            )
            .fetchall()
        )
        known = {r[0]: r[1] for r in rows}
        if sha in known:
            received.unlink(missing_ok=True)
            return StoredObject(Path(known[sha]), sha, size, True, None)
        other = next(iter(known), None)
        return place(received, self.objects, self.incoming, name, sha, size, other)

    def forget(self, stored: StoredObject) -> None:
        """Undo `keep` when what follows it failed: nothing half-written stays."""
        if not stored.already_had:
            stored.path.unlink(missing_ok=True)

    # --- one durable step: the object's index row and its events -----------------------------

    def commit(
        self,
        stored: StoredObject,
        sop_instance_uid: str,
        messages: list[OutboxMessage],
        *,
        unmatched: bool = False,
        dose: tuple[str, float, float, float] | None = None,
        on_dose: DoseHook | None = None,
    ) -> None:
        """Index the object, queue its events and add its dose to the patient's totals, in one
        transaction; `on_dose(before, after)` may queue more (a threshold alert)."""
        now = datetime.now(UTC).isoformat()
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO objects VALUES (?, ?, ?, ?, ?)",
                (sop_instance_uid, stored.sha256, str(stored.path), stored.size_bytes, now),
            )
            fresh = cur.rowcount == 1
            if dose is not None and fresh:
                after = self._add_dose(cur, *dose)
                before = (after[0] - dose[1], after[1] - dose[2], after[2] - dose[3])
                if on_dose is not None:
                    messages = [*messages, *on_dose(before, after)]
            self._queue(cur, messages, now)
            if unmatched:
                cur.execute(
                    "INSERT OR IGNORE INTO unmatched VALUES (?, ?, NULL)", (sop_instance_uid, now)
                )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction on the writer connection: all of it, or none of it."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    @staticmethod
    def _add_dose(cur: object, patient_id: str, dap: float, dose_rp: float, dlp: float) -> Totals:
        execute = cur.execute  # type: ignore[attr-defined]
        execute("INSERT OR IGNORE INTO patient_dose (patient_id) VALUES (?)", (patient_id,))
        execute(
            "UPDATE patient_dose SET dap_total_gy_m2 = dap_total_gy_m2 + ?,"
            " dose_rp_total_gy = dose_rp_total_gy + ?, dlp_total_mgy_cm = dlp_total_mgy_cm + ?"
            " WHERE patient_id = ?",
            (dap, dose_rp, dlp, patient_id),
        )
        row = execute(
            "SELECT dap_total_gy_m2, dose_rp_total_gy, dlp_total_mgy_cm FROM patient_dose"
            " WHERE patient_id = ?",
            (patient_id,),
        ).fetchone()
        return float(row[0]), float(row[1]), float(row[2])

    # --- outbox ------------------------------------------------------------------------------

    def add_to_outbox(self, messages: list[OutboxMessage]) -> None:
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self._queue(self._conn, messages, now)

    def _queue(self, into: sqlite3.Connection | sqlite3.Cursor, messages: list[OutboxMessage],
               now: str) -> None:  # fmt: skip
        into.executemany(
            "INSERT OR IGNORE INTO outbox (message_id, exchange, routing_key, body, created_at,"
            " worker) VALUES (?, ?, ?, ?, ?, ?)",
            [(m.message_id, m.exchange, m.routing_key, m.body, now, self.worker)
             for m in messages],
        )  # fmt: skip

    def unsent(self, limit: int = 500) -> list[OutboxMessage]:
        """This worker's unsent rows, oldest first (with fewer workers than before, the rows of
        the missing ones fall to worker number modulo the count)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT message_id, exchange, routing_key, body FROM outbox"
                " WHERE sent_at IS NULL AND worker % ? = ? ORDER BY position LIMIT ?",
                (self.workers, self.worker, limit),
            ).fetchall()
        return [OutboxMessage(*r) for r in rows]

    def mark_sent(self, message_ids: list[str]) -> None:
        if not message_ids:
            return
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self._marks.execute("BEGIN")
            self._marks.executemany(
                "UPDATE outbox SET sent_at = ? WHERE message_id = ? AND sent_at IS NULL",
                [(now, m) for m in message_ids],
            )
            self._marks.execute("COMMIT")

    # --- procedures, for matching ------------------------------------------------------------

    def index_procedure(
        self,
        procedure_id: str,
        phase: str,
        patient_id: str | None,
        accession: str | None,
        room: str | None,
        scheduled_start: str | None,
    ) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO procedures VALUES (?, ?, ?, ?, ?, ?, 0)",
                (procedure_id, phase, patient_id, accession, room, scheduled_start),
            )

    def close_procedure(self, procedure_id: str) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE procedures SET closed = 1 WHERE procedure_id = ?", (procedure_id,)
            )

    def announced(self, message_ids: list[str]) -> list[bytes]:
        """The bodies of messages this store queued, in the order they were queued."""
        marks = ",".join("?" * len(message_ids))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT body FROM outbox WHERE message_id IN ({marks}) ORDER BY position",  # noqa: S608
                message_ids,
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def stored_versions(self, sop_instance_uid: str) -> list[str]:
        """The SHA-256 of every object kept under this SOP Instance UID."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT sha256 FROM objects WHERE sop_instance_uid = ? ORDER BY received_at",
                (sop_instance_uid,),
            ).fetchall()
        return [r[0] for r in rows]

    def reconciled(
        self, sop_instance_uid: str, procedure_id: str, messages: list[OutboxMessage]
    ) -> None:
        """Settle an unmatched capture and queue its events under the procedure, in one step."""
        now = datetime.now(UTC).isoformat()
        with self._transaction() as cur:
            cur.execute(
                "UPDATE unmatched SET reconciled_to = ? WHERE sop_instance_uid = ?",
                (procedure_id, sop_instance_uid),
            )
            self._queue(cur, messages, now)

    def link_study(self, study_instance_uid: str, procedure_id: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO studies VALUES (?, ?)", (study_instance_uid, procedure_id)
            )

    def match(
        self,
        accession: str | None,
        study_uid: str | None,
        patient_id: str | None,
        room: str | None,
        acquired_at: datetime | None,
        window_h: float,
    ) -> tuple[KnownProcedure, str] | None:
        """Accession number, then study UID, then patient + room + time window. Only an open
        procedure, and only when exactly one fits; returns it with how it was matched."""
        select = "SELECT p.procedure_id, p.phase, p.patient_id FROM procedures p"
        conn = self._reader()
        if accession:
            rows = conn.execute(
                f"{select} WHERE accession_number = ? AND closed = 0", (accession,)
            ).fetchall()
            if len(rows) == 1:
                return KnownProcedure(*rows[0]), "accession_number"
        if study_uid:
            rows = conn.execute(
                f"{select} JOIN studies s ON s.procedure_id = p.procedure_id"
                " WHERE s.study_instance_uid = ? AND closed = 0",
                (study_uid,),
            ).fetchall()
            if len(rows) == 1:
                return KnownProcedure(*rows[0]), "study_instance_uid"
        if not patient_id:
            return None
        rows = conn.execute(
            "SELECT procedure_id, phase, patient_id, room, scheduled_start FROM procedures"
            " WHERE patient_id = ? AND closed = 0",
            (patient_id,),
        ).fetchall()
        fits = [r for r in rows if _fits(r[3], r[4], room, acquired_at, window_h)]
        if len(fits) == 1:
            return KnownProcedure(*fits[0][:3]), "patient_room_time"
        return None

    def close(self) -> None:
        self._marks.close()
        self._conn.close()


def _fits(
    proc_room: str | None,
    scheduled: str | None,
    room: str | None,
    acquired_at: datetime | None,
    window_h: float,
) -> bool:
    if room and proc_room and room != proc_room:
        return False
    if acquired_at and scheduled:
        distance = abs((datetime.fromisoformat(scheduled) - acquired_at).total_seconds())
        return distance <= window_h * 3600
    return True

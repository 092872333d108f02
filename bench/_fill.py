"""Fill a ledger fast for benchmarks: realistic records, appended in large batches."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.audit.ledger import Ledger
from shared.events.record import AuditRecord, Stamp

STAMP = Stamp(service="harvest", at=datetime.now(UTC))


def record(i: int, procedure_id: str) -> AuditRecord:
    now = datetime.now(UTC).isoformat()
    event = {
        "event_id": str(uuid.uuid4()),
        "type": "sedation.vitals_recorded",
        "schema": 1,
        "procedure_id": procedure_id,
        "occurred_at": now,
        "recorded_at": now,
        "actor": {"id": f"monitor-{i % 7}", "role": "device"},
        "source": {"kind": "tablet", "id": "tablet-1"},
        "payload": {
            "spo2_pct": 90 + i % 10,
            "heart_rate_bpm": 60 + i % 30,
            "source": "monitor",
            "artifact": False,
        },
    }
    return AuditRecord.model_construct(disposition="accepted", stamped_by=STAMP, event=event)


def fill(ledger: Ledger, n: int, per_procedure: int = 200, batch: int = 2000) -> list[str]:
    """Append n entries, `per_procedure` per procedure; return the procedure ids."""
    procedures: list[str] = []
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            if i % per_procedure == 0:
                procedures.append(str(uuid.uuid4()))
            rows.append(record(i, procedures[-1]))
        ledger.append(rows)
    return procedures

"""Access to the ledger is itself a ledger entry: `audit.queried` and `audit.exported`."""

from __future__ import annotations

import uuid
from typing import Any

from shared.events import parse_event, utcnow
from shared.events.record import AuditRecord, accepted


def access_record(
    user: str,
    role: str,
    event_type: str,
    filters: dict[str, Any],
    rows: int,
    fmt: str | None = None,
    source: str = "audit",
) -> AuditRecord:
    now = utcnow()
    payload: dict[str, Any] = {"filters": filters, "rows": rows}
    if fmt is not None:
        payload["format"] = fmt
    envelope = parse_event(
        {
            "event_id": str(uuid.uuid4()),
            "type": event_type,
            "schema": 1,
            "occurred_at": now,
            "recorded_at": now,
            "actor": {"id": user, "role": role},
            "source": {"kind": "service", "id": source},
            "payload": payload,
            "entered_by": {"user": user, "role": role},
        }
    )
    return accepted(envelope, source, now)

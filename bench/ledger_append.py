"""Ledger appends: group commit (one transaction per batch) vs one transaction per event.

    .venv/bin/python bench/ledger_append.py [events]

Same SQLite settings as production (WAL, synchronous=FULL), same script, fresh files.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from services.audit.ledger import Ledger
from shared.events import parse_event
from shared.events.record import AuditRecord, accepted


def records(n: int) -> list[AuditRecord]:
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        event = parse_event(
            {
                "event_id": str(uuid.uuid4()),
                "type": "sedation.vitals_recorded",
                "schema": 1,
                "procedure_id": str(uuid.uuid4()),
                "occurred_at": now.isoformat(),
                "recorded_at": now.isoformat(),
                "actor": {"id": "monitor-1", "role": "device"},
                "source": {"kind": "tablet", "id": "tablet-1"},
                "payload": {
                    "spo2_pct": 95,
                    "heart_rate_bpm": 60 + i % 30,
                    "source": "monitor",
                    "artifact": False,
                },
            }
        )
        out.append(accepted(event, "harvest", now))
    return out


def rate(path: Path, batch: int, items: list[AuditRecord]) -> float:
    ledger = Ledger(path)
    start = time.perf_counter()
    for i in range(0, len(items), batch):
        ledger.append(items[i : i + batch])
    elapsed = time.perf_counter() - start
    ledger.close()
    return len(items) / elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    items = records(n)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        base = rate(Path(tmp) / "one.sqlite3", 1, items)
        print(f"one transaction per event : {base:9.0f} appends/s  (baseline)")
        for batch in (50, 300):
            r = rate(Path(tmp) / f"batch{batch}.sqlite3", batch, items)
            print(f"group commit, batch {batch:<5} : {r:9.0f} appends/s  x{r / base:.1f}")


if __name__ == "__main__":
    main()

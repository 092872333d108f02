"""Ledger appends: group commit (one transaction per batch) vs one transaction per event.

    .venv/bin/python -m bench.ledger_append [events]

Same SQLite settings as production (WAL, synchronous=FULL), same script, fresh files; every
transaction ends with its signed checkpoint, as in the service. Target: batches of 300 (the
audit consumer's) at >= 10,000 appends/s, ledger.md's bar (TesseraCT on NVMe, ~10 k/s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench._measure import Measure, figure
from services.audit.checkpoint import Signer
from services.audit.ledger import Ledger
from services.audit.store import SqliteStore
from shared.events import parse_event
from shared.events.record import AuditRecord, accepted

TARGET_RATE = 10_000.0  # appends/s in batches of 300
QUICK = ["1000"]


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
    store = SqliteStore(path)
    ledger = Ledger(store, Signer.load_or_create(path.with_suffix(".pem"), "bench/audit"))
    start = time.perf_counter()
    for i in range(0, len(items), batch):
        ledger.append(items[i : i + batch])
    elapsed = time.perf_counter() - start
    store.close()
    return len(items) / elapsed


def run(argv: list[str]) -> list[Measure]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("events", nargs="?", type=int, default=3000)
    n = parser.parse_args(argv).events
    items = records(n)
    rates = {}
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        base = rate(Path(tmp) / "one.sqlite3", 1, items)
        print(f"one transaction per event : {base:9.0f} appends/s  (baseline)")
        for batch in (50, 300):
            rates[batch] = r = rate(Path(tmp) / f"batch{batch}.sqlite3", batch, items)
            print(f"group commit, batch {batch:<5} : {r:9.0f} appends/s  x{r / base:.1f}")
    baseline = f"1 tx an event {figure(base, 'appends/s')}"
    out = [Measure(f"batch {b} / 1 tx an event", r / base, "x", baseline) for b, r in rates.items()]
    out.append(Measure("batch 300", rates[300], "appends/s", baseline, TARGET_RATE))
    return out


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()

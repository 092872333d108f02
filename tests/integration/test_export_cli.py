"""`proctrail export` writes the same exports to a file, and only once the ledger recorded it."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from proctrail.cli import main
from services.audit.checkpoint import KEY_FILE, Signer
from services.audit.ledger import Ledger
from services.audit.store import open_store
from shared.bus import PikaBus, default_topology
from shared.events import parse_event
from shared.events.record import accepted
from tests.integration.conftest import ledger_bound

pytestmark = pytest.mark.integration


def fill(data_dir: Path, n: int) -> None:
    signer = Signer.load_or_create(data_dir / "audit" / KEY_FILE, "proctrail/audit")
    store = open_store(data_dir, None)
    now = datetime.now(UTC).isoformat()
    procedure = str(uuid.uuid4())
    records = [
        accepted(
            parse_event(
                {
                    "event_id": str(uuid.uuid4()),
                    "type": "sedation.depth_scored",
                    "schema": 1,
                    "procedure_id": procedure,
                    "occurred_at": now,
                    "recorded_at": now,
                    "actor": {"id": "rn-lee", "role": "nurse"},
                    "source": {"kind": "tablet", "id": "t1"},
                    "payload": {"scale": "RASS", "score": -(i % 5)},
                }
            ),
            "harvest",
            datetime.now(UTC),
        )
        for i in range(n)
    ]
    Ledger(store, signer).append(records)
    store.close()


def declare(amqp_url: str) -> None:
    bus = PikaBus(amqp_url, default_topology(), name="test-declare")
    bus.start()
    assert bus.wait_ready(20)
    bus.close()


def test_a_csv_export_to_a_file_is_recorded_by_the_ledger(
    amqp_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCTRAIL_AMQP_URL", amqp_url)
    data_dir, out = tmp_path / "var", tmp_path / "export.csv"
    fill(data_dir, 25)
    declare(amqp_url)
    code = main(
        [
            "export",
            "--format",
            "csv",
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--user",
            "officer.ben",
        ]
    )
    assert code == 0
    lines = out.read_text().splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    assert len(rows) == 25
    (exported,) = ledger_bound(amqp_url)
    assert exported["type"] == "audit.exported"
    assert exported["actor"] == {"id": "officer.ben", "role": "admin"}
    assert exported["payload"] == {"filters": {"format": "csv"}, "rows": 25, "format": "csv"}


def test_without_the_broker_nothing_is_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCTRAIL_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F")
    data_dir, out = tmp_path / "var", tmp_path / "export.ndjson"
    fill(data_dir, 3)
    code = main(["export", "--format", "ndjson", "--data-dir", str(data_dir), "--out", str(out)])
    assert code == 3
    assert not out.exists()

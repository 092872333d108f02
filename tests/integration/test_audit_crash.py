"""kill -9 of the audit service mid-stream loses nothing and duplicates nothing."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest

from shared.bus import PikaBus, default_topology
from shared.bus.topology import AUDIT, Q_AUDIT
from shared.events import parse_event
from shared.events.record import accepted
from tests.integration.conftest import REPO, free_port, service_env, wait_until
from tests.processes import stop

pytestmark = pytest.mark.integration

TOTAL = 1000


def ledger_rows(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT seq, event_id FROM entries ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []
    finally:
        conn.close()


def queue_depth(amqp_url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def start_audit(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.audit"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def vitals(i: int) -> bytes:
    now = datetime.now(UTC)
    event = parse_event(
        {
            "event_id": str(uuid.uuid4()),
            "type": "sedation.vitals_recorded",
            "schema": 1,
            "procedure_id": "00000000-0000-4000-8000-000000000001",
            "occurred_at": now.isoformat(),
            "recorded_at": now.isoformat(),
            "actor": {"id": "monitor-3", "role": "device"},
            "source": {"kind": "tablet", "id": "tablet-7"},
            "payload": {
                "spo2_pct": 90 + i % 10,
                "heart_rate_bpm": 60 + i % 40,
                "source": "monitor",
                "artifact": False,
            },
        }
    )
    return accepted(event, "harvest", now).to_bytes()


def test_audit_killed_with_1000_events_in_flight_appends_each_exactly_once(
    amqp_url: str, tmp_path: Path
) -> None:
    env = service_env(amqp_url, tmp_path / "var", PROCTRAIL_AUDIT_ADDR=f"127.0.0.1:{free_port()}")
    ledger = tmp_path / "var" / "audit" / "ledger.sqlite3"
    log = tmp_path / "audit.log"

    publisher = PikaBus(amqp_url, default_topology(), name="test-publisher")
    publisher.start()
    assert publisher.wait_ready(20)
    bodies = [vitals(i) for i in range(TOTAL)]
    futures: list[Future[None]] = []

    def publish_steadily() -> None:  # a stream, not a burst: audit dies while it still flows
        for i, body in enumerate(bodies):
            futures.append(
                publisher.publish(AUDIT, "sedation.vitals_recorded", body, message_id=str(i))
            )
            time.sleep(0.001)

    stream = threading.Thread(target=publish_steadily)
    audit = start_audit(env, log)
    stream.start()
    wait_until(lambda: ledger_rows(ledger), timeout=60, every=0.005)
    audit.send_signal(signal.SIGKILL)
    audit.wait()
    appended_before_kill = len(ledger_rows(ledger))
    stream.join()
    for future in futures:
        future.result(30)  # every one of the 1,000 was confirmed by the broker
    publisher.close()
    assert 0 < appended_before_kill < TOTAL  # it really died mid-stream

    audit = start_audit(env, log)
    try:
        wait_until(lambda: len(ledger_rows(ledger)) >= TOTAL, timeout=120)
        wait_until(lambda: queue_depth(amqp_url, Q_AUDIT) == 0, timeout=60)
    finally:
        stop(audit)

    assert queue_depth(amqp_url, Q_AUDIT) == 0  # all acked: nothing comes back to append again
    rows = ledger_rows(ledger)
    assert [seq for seq, _ in rows] == list(range(TOTAL))  # dense, no gaps, no extras
    assert len({event_id for _, event_id in rows}) == TOTAL

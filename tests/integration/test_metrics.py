"""Each service's Prometheus endpoint, scraped while `proctrail up` works: events in and out,
DICOM associations and bytes, the ledger's size and checkpoint age, and a dead-letter queue's
depth when a poison message lands in it. Reading them takes a `monitor` (or admin) token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.bus import PikaBus, default_topology
from shared.bus.topology import EVENTS
from tests.integration.clinic import Clinic
from tests.integration.conftest import System, running_system, token, wait_until

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def system(amqp_url: str, tmp_path: Path) -> Iterator[System]:
    with running_system(amqp_url, tmp_path) as sysm:
        yield sysm


def scrape(system: System, service: str, tok: str) -> Samples:
    r = httpx.get(f"http://127.0.0.1:{system.metrics[service]}/metrics",
                  headers={"Authorization": f"Bearer {tok}"}, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_a_monitor_token(system: System) -> None:
    url = f"http://127.0.0.1:{system.metrics['audit']}/metrics"
    assert httpx.get(url, timeout=10).status_code == 401
    nurse = httpx.get(url, headers={"Authorization": f"Bearer {system.nurse}"}, timeout=10)
    assert nurse.status_code == 403
    assert nurse.headers["content-type"] == "application/problem+json"


def test_the_numbers_move_while_the_clinic_works(system: System, tmp_path: Path) -> None:
    monitor = token(system.env, "monitor", "prometheus")
    before = {s: scrape(system, s, monitor) for s in system.metrics}
    clinic = Clinic(system, tmp_path)
    procedure = clinic.schedule("implant", "PAT-M1", "ACC-M1")
    vitals = {"spo2_pct": 97, "heart_rate_bpm": 70, "source": "monitor", "artifact": False}
    clinic.post(procedure, "sedation.vitals_recorded", vitals)
    clinic.post(procedure, "sedation.vitals_recorded", vitals)
    clinic.images("PAT-M1", "ACC-M1", [("CT", 0.0), ("CT", 0.0)])
    clinic.timeline(procedure, captures=2)  # all of it in the ledger

    def after(service: str, name: str, **labels: str) -> float:
        return value(scrape(system, service, monitor), name, **labels) - value(
            before[service], name, **labels
        )

    assert after("bedside", "proctrail_events_in_total", via="http", outcome="accepted") == 2
    # scheduled + 2 vitals + 2 captures came in on q.implant; each went on to the ledger
    assert after("implant", "proctrail_events_in_total", via="q.implant", outcome="ack") >= 5
    assert after("implant", "proctrail_events_out_total", exchange="proctrail.audit",
                 outcome="confirmed") >= 5  # fmt: skip
    assert after("imaging", "proctrail_dicom_associations_total", outcome="released") == 2
    assert after("imaging", "proctrail_events_in_total", via="dicom", outcome="stored") == 2
    assert after("imaging", "proctrail_dicom_received_bytes_total") > 2 * 1000
    assert after("audit", "proctrail_ledger_entries") >= 7
    audit = scrape(system, "audit", monitor)
    assert 0 <= value(audit, "proctrail_checkpoint_age_seconds") < 120
    assert value(audit, "proctrail_events_in_total", via="q.audit", outcome="ack") >= 7
    assert "proctrail_consumer_lag_seconds" in {name for name, _ in audit}


def test_a_poison_message_shows_in_the_dead_letter_queues_depth(system: System) -> None:
    monitor = token(system.env, "monitor", "prometheus")
    bus = PikaBus(system.env["PROCTRAIL_AMQP_URL"], default_topology(), name="test-poison")
    bus.start()
    try:
        assert bus.wait_ready(20)
        bus.publish(EVENTS, "harvest.sedation.vitals_recorded", b"not an event",
                    message_id=str(uuid.uuid4())).result(10)  # fmt: skip
    finally:
        bus.close()

    def dead(service: str, queue: str = "q.harvest.dead") -> float:
        return value(scrape(system, service, monitor), "proctrail_queue_messages", queue=queue)

    wait_until(lambda: dead("harvest") == 1, 30)
    wait_until(lambda: dead("audit") == 1, 30)  # every service reads every queue's depth
    assert dead("audit", "q.audit.dead") == 0
    assert dead("audit", "q.harvest") == 0

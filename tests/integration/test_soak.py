"""Soak: a clinic's peak rates held steady (about 50 events/s from the tablets and 5 images/s
from the modalities) against `proctrail up`, sampling every few seconds each service's
resident memory (from /proc) and every queue's depth (from the services' own metrics).

It asserts what a clinic would notice: memory stays flat (the last quarter of the run is no
more than a bound above the second), the queues do not grow (what waits at the end is no more
than what waited early on, plus a margin of one second's traffic), and everything sent is in
the ledger. CI holds the rates for PROCTRAIL_SOAK_S (60) seconds; the long form is
`PROCTRAIL_SOAK_S=3600 ./dev test tests/integration/test_soak.py -s`, which prints the figures
(docs/reliability.md).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydicom import dcmread
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from tests import dicom_factory
from tests.integration.conftest import (
    System,
    running_system,
    service_processes,
    token,
    wait_until,
)

pytestmark = pytest.mark.integration

SOAK_S = float(os.environ.get("PROCTRAIL_SOAK_S", "60"))
EVENTS_PER_S = 50
IMAGES_PER_S = 5
SAMPLE_EVERY_S = 3.0
ROOMS = 4
PER_PROCEDURE = 300  # events of one procedure
MEMORY_GROWTH_MB = 25  # allowed rise of a service's RSS from the second quarter to the last


@pytest.fixture
def system(amqp_url: str, tmp_path: Path) -> Iterator[System]:
    with running_system(amqp_url, tmp_path, PROCTRAIL_DICOM_WORKERS="2") as sysm:
        yield sysm


def rss_mb(system: System) -> dict[str, float]:
    """Each service's resident memory, its worker processes included, in MB."""
    return {name: sum(_rss_kb(pid) for pid in pids) / 1024
            for name, pids in service_processes(system).items()}  # fmt: skip


def _rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0  # gone meanwhile
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def waiting(system: System, monitor: str) -> int:
    """Messages ready in the services' queues (not the dead-letter ones), from audit's
    metrics: every service reads every queue's depth."""
    r = httpx.get(f"http://127.0.0.1:{system.metrics['audit']}/metrics",
                  headers={"Authorization": f"Bearer {monitor}"}, timeout=10)  # fmt: skip
    total = 0
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            queue = sample.labels.get("queue", "")
            if sample.name == "proctrail_queue_messages" and not queue.endswith(".dead"):
                total += int(sample.value)
    return total


class Rooms:
    """Procedures as a clinic has them: a few rooms at once, each procedure a few hundred
    events long, then the next patient."""

    def __init__(self, system: System, nurse: dict[str, str]) -> None:
        self.client = httpx.Client(base_url=system.bedside, headers=nurse, timeout=30)
        self.scheduled: list[tuple[str, str, str]] = []  # (procedure_id, patient, accession)
        self.lock = threading.Lock()

    def procedure(self, n: int) -> tuple[str, str, str]:
        """The procedure the n-th event belongs to (ROOMS run side by side)."""
        index = (n // (PER_PROCEDURE * ROOMS)) * ROOMS + n % ROOMS
        with self.lock:
            while len(self.scheduled) <= index:
                k = len(self.scheduled)
                r = self.client.post("/v1/procedures", json={
                    "phase": "implant", "patient": {"id": f"PAT-S{k}"}, "room": f"OR-{k % ROOMS}",
                    "accession_number": f"ACC-S{k}"})  # fmt: skip
                assert r.status_code == 201, r.text
                self.scheduled.append((r.json()["procedure_id"], f"PAT-S{k}", f"ACC-S{k}"))
            return self.scheduled[index]


def paced(rate: float, stop: threading.Event, send: Callable[[int], None]) -> int:
    """Call `send(n)` `rate` times a second until `stop`; how many were sent."""
    n, start = 0, time.monotonic()
    while not stop.is_set():
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            stop.wait(delay)
            continue
        send(n)
        n += 1
    return n


def test_clinic_peak_rates_hold_with_flat_memory_and_no_growing_backlog(
    system: System, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monitor = token(system.env, "monitor", "prometheus")
    nurse = {"Authorization": f"Bearer {system.nurse}"}
    rooms = Rooms(system, nurse)
    (template,) = dicom_factory.ct_series(tmp_path / "ct", 1)
    image = dcmread(template)

    stop = threading.Event()
    posted: list[str] = []
    stored: list[int] = []
    failures: list[str] = []
    local = threading.local()
    clients: list[httpx.Client] = []
    counter = itertools.count()

    def post(_: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=system.bedside, headers=nurse,
                                                 timeout=30)  # fmt: skip
            clients.append(client)
        n = next(counter)
        event_id = str(uuid.uuid4())
        r = client.post("/v1/events", json={
            "event_id": event_id, "type": "sedation.vitals_recorded", "schema": 1,
            "procedure_id": rooms.procedure(n)[0],
            "occurred_at": datetime.now(UTC).isoformat(),
            "actor": {"id": "nurse.ana", "role": "nurse"},
            "source": {"kind": "tablet", "id": "soak"},
            "payload": {"spo2_pct": 95 + n % 5, "source": "monitor", "artifact": False},
        })  # fmt: skip
        if r.status_code == 202:
            posted.append(event_id)
        else:
            failures.append(f"event {r.status_code}")

    ae = AE(ae_title="STORESCU")
    ae.add_requested_context(CTImageStorage)

    def store(n: int) -> None:
        image.SOPInstanceUID = image.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        _, image.PatientID, image.AccessionNumber = rooms.procedure(n * 10)
        assoc = ae.associate("127.0.0.1", system.dicom_port, ae_title="PROCTRAIL")
        status = assoc.send_c_store(image) if assoc.is_established else None
        if assoc.is_established:
            assoc.release()
        if status is not None and int(status.Status) == 0:
            stored.append(n)
        else:
            failures.append(f"image {n}")

    samples: list[tuple[float, dict[str, float], int]] = []
    started = time.monotonic()
    threads = [threading.Thread(target=paced, args=(EVENTS_PER_S / 2, stop, post)) for _ in (0, 1)]
    threads.append(threading.Thread(target=paced, args=(IMAGES_PER_S, stop, store)))
    for t in threads:
        t.start()
    try:
        while time.monotonic() - started < SOAK_S:
            time.sleep(SAMPLE_EVERY_S)
            samples.append((time.monotonic() - started, rss_mb(system), waiting(system, monitor)))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        for client in [*clients, rooms.client]:
            client.close()
    elapsed = time.monotonic() - started

    assert failures == []
    quarter = max(1, len(samples) // 4)
    second, last = samples[quarter : 2 * quarter], samples[-quarter:]
    growth = {
        name: statistics.mean(s[1].get(name, 0) for s in last)
        - statistics.mean(s[1].get(name, 0) for s in second)
        for name in samples[-1][1]
    }
    backlog_early = max(s[2] for s in samples[:quarter])
    backlog_late = max(s[2] for s in last)
    with capsys.disabled():
        print(f"\nsoak: {len(posted)} events ({len(posted) / elapsed:.1f}/s) and {len(stored)}"
              f" images ({len(stored) / elapsed:.1f}/s) in {elapsed:.0f} s; RSS MB at the end"
              f" {({k: round(v) for k, v in samples[-1][1].items()})}, growth from the second"
              f" quarter to the last {({k: round(v, 1) for k, v in growth.items()})}; messages"
              f" waiting early {backlog_early}, late {backlog_late}")  # fmt: skip
    assert all(g < MEMORY_GROWTH_MB for g in growth.values()), growth
    assert backlog_late <= backlog_early + EVENTS_PER_S + IMAGES_PER_S * 3

    wait_until(lambda: waiting(system, monitor) == 0, 120, every=1)

    def ledger(kind: str) -> int:
        with sqlite3.connect(f"file:{system.data_dir / 'audit' / 'ledger.sqlite3'}?mode=ro",
                             uri=True) as conn:  # fmt: skip
            (n,) = conn.execute("SELECT count(*) FROM entries WHERE type = ?",
                                (kind,)).fetchone()  # fmt: skip
        return int(n)

    wait_until(lambda: ledger("sedation.vitals_recorded") == len(posted), 60, every=0.5)
    wait_until(lambda: ledger("imaging.capture_received") == len(stored), 60, every=0.5)

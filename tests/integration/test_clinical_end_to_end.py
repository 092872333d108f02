"""The clinical rules on real parts: tablets and the lab over HTTP, a C-arm over DICOM
(DCMTK storescu), RabbitMQ, the implant service's rules and clock, and the ledger read back
through the audit API."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import dicom_factory
from tests.integration.conftest import System, dcmtk, running_system, token, wait_until

pytestmark = pytest.mark.integration

PATIENT, ACCESSION = "PAT-77", "ACC-77"


@pytest.fixture
def system(amqp_url: str, tmp_path: Path) -> Iterator[System]:
    """Clock checks every half second and a 3-second needle window, so the test waits
    seconds, not minutes; the rules are the same."""
    with running_system(
        amqp_url, tmp_path, PROCTRAIL_CLOCK_TICK_S="0.5", PROCTRAIL_NEEDLE_WINDOW_MIN="0.05"
    ) as sysm:
        yield sysm


def post(system: System, tok: str, event_type: str, payload: dict[str, Any],
         procedure_id: str | None, actor: tuple[str, str] = ("nurse.ana", "nurse"),
         ) -> dict[str, Any]:  # fmt: skip
    event = {
        "event_id": str(uuid.uuid4()), "type": event_type, "schema": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": {"id": actor[0], "role": actor[1]},
        "source": {"kind": "tablet", "id": "tablet-7"}, "payload": payload,
    }  # fmt: skip
    if procedure_id is not None:
        event["procedure_id"] = procedure_id
    with system.bedside_client(tok) as client:
        r = client.post("/v1/events", json=event)
    assert r.status_code == 202, r.text
    return event


def alerts(system: System, procedure_id: str) -> list[dict[str, Any]]:
    with system.audit_client(system.compliance) as client:
        r = client.get("/v1/audit/entries",
                       params={"procedure_id": procedure_id, "type": "alert.raised"})  # fmt: skip
    assert r.status_code == 200, r.text
    return [e["event"] for e in r.json()["entries"]]


def codes(system: System, procedure_id: str) -> list[str]:
    return sorted(a["payload"]["code"] for a in alerts(system, procedure_id))


def test_chain_of_identity_and_needle_confirmation_reach_the_ledger(
    system: System, tmp_path: Path
) -> None:
    with system.bedside_client(system.nurse) as client:
        r = client.post("/v1/procedures", json={
            "phase": "implant", "patient": {"id": PATIENT}, "room": "OR-2",
            "accession_number": ACCESSION})  # fmt: skip
    assert r.status_code == 201, r.text
    procedure = str(r.json()["procedure_id"])
    lab = token(system.env, "lab", "lab.kim")
    with system.bedside_client(lab) as client:
        sample_id = client.post("/v1/sample-ids").json()["sample_id"]
    post(system, lab, "product.lot_released", {
        "lot_id": "LOT-9", "sample_id": sample_id, "patient": {"id": PATIENT},
        "cell_type": "bone marrow MSC", "cell_count": 2.0e7, "viability_pct": 92.0,
        "sterility": "no growth at 14 days", "endotoxin": "<0.5 EU/mL",
        "mycoplasma": "negative", "released_by": "qp.ortiz",
        "expires_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
    }, None, actor=("lab.kim", "lab"))  # fmt: skip
    nurse = system.nurse
    post(system, nurse, "procedure.opened",
         {"room": "OR-2", "operator_id": "dr.cole", "monitoring_nurse_id": "nurse.ana"},
         procedure)  # fmt: skip
    post(system, nurse, "procedure.time_out", {
        "patient_confirmed": True, "procedure_confirmed": True, "site_confirmed": True,
        "consent_confirmed": True, "targets": ["L4-L5", "L5-S1"]}, procedure)  # fmt: skip
    one_verifier = post(system, nurse, "implant.product_verified", {
        "lot_id": "LOT-9", "patient_id_scanned": PATIENT, "verifier_ids": ["nurse.ana"]},
        procedure)  # fmt: skip
    wait_until(lambda: codes(system, procedure) == ["chain_of_identity_mismatch"], timeout=30)
    (mismatch,) = alerts(system, procedure)
    assert mismatch["payload"]["event_ids"] == [one_verifier["event_id"]]
    assert "only one verifier" in mismatch["payload"]["message"]
    post(system, nurse, "implant.product_verified", {
        "lot_id": "LOT-9", "patient_id_scanned": PATIENT,
        "verifier_ids": ["nurse.ana", "dr.cole"]}, procedure)  # fmt: skip

    needle = {"approach": "posterolateral", "needle_gauge": 22, "needle_length_mm": 150,
              "confirming_sop_instance_uids": []}  # fmt: skip

    def place(level: str) -> dict[str, Any]:
        target = {"target": {"kind": "disc", "level": level}}
        return post(system, nurse, "implant.needle_placed", needle | target, procedure)

    unconfirmed = place("L4-L5")
    wait_until(lambda: "needle_unconfirmed" in codes(system, procedure), timeout=30)

    confirmed = place("L5-S1")
    placed_at = datetime.fromisoformat(confirmed["occurred_at"])
    views = []
    for n, angle in enumerate((0.0, 90.0)):  # an AP and a lateral, by the C-arm
        views.append(dicom_factory.xa_cine(
            tmp_path / f"view{n}.dcm", frames=2, rows=64, cols=64, patient_id=PATIENT,
            accession=ACCESSION, acquired_at=placed_at, primary_angle=angle,
            instance_number=n + 1,
        ))  # fmt: skip
    sent = subprocess.run(
        [dcmtk("storescu"), "-aet", "STORESCU", "-aec", "PROCTRAIL", "127.0.0.1",
         str(system.dicom_port), *map(str, views)], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    # A later placement, well outside the images' window, that nothing confirms: once the
    # clock has alerted on it, it has judged the confirmed one too (its window closed
    # earlier), so the absence below means confirmed.
    wait_until(lambda: datetime.now(UTC) > placed_at + timedelta(seconds=5), timeout=30)
    later = place("L3-L4")

    def needle_alerts() -> list[list[str]]:
        return [a["payload"]["event_ids"] for a in alerts(system, procedure)
                if a["payload"]["code"] == "needle_unconfirmed"]  # fmt: skip

    wait_until(lambda: [later["event_id"]] in needle_alerts(), timeout=30)
    assert sorted(needle_alerts()) == sorted([[unconfirmed["event_id"]], [later["event_id"]]])
    assert confirmed["event_id"] not in str(alerts(system, procedure))

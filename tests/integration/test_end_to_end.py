"""The whole path on real parts: tablet or modality -> RabbitMQ -> phase service -> ledger."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
import pydicom.uid
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE

from tests.events import make_event
from tests.integration.conftest import System, dcmtk, wait_until

pytestmark = pytest.mark.integration

CT_SMALL = Path(str(get_testdata_file("CT_small.dcm")))


def schedule(system: System, patient_id: str = "PAT-001", phase: str = "harvest") -> str:
    with system.bedside_client(system.nurse) as client:
        r = client.post(
            "/v1/procedures", json={"phase": phase, "patient": {"id": patient_id}, "room": "OR-2"}
        )
    assert r.status_code == 201, r.text
    return str(r.json()["procedure_id"])


def tablet_event(procedure_id: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An event as nurse Ana's tablet posts it."""
    return make_event(event_type, payload, procedure_id=procedure_id,
                      actor={"id": "nurse.ana", "role": "nurse"},
                      source={"kind": "tablet", "id": "tablet-7"})  # fmt: skip


def drug_event(procedure_id: str, dose: Any = 2, **over: Any) -> dict[str, Any]:
    payload = {
        "drug": "midazolam",
        "dose": dose,
        "unit": "mg",
        "route": "IV",
        "given_by": "dr.cole",
    }
    return {**tablet_event(procedure_id, "sedation.drug_administered", payload), **over}


def ledger_entries(system: System, **params: str) -> list[dict[str, Any]]:
    with system.audit_client(system.compliance) as client:
        r = client.get("/v1/audit/entries", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["entries"])


def entry_for(system: System, event_id: str) -> dict[str, Any] | None:
    with system.audit_client(system.compliance) as client:
        r = client.get(f"/v1/audit/events/{event_id}")
    return r.json() if r.status_code == 200 else None


def test_a_dose_posted_from_a_tablet_lands_in_the_ledger_with_server_time_and_a_true_leaf_hash(
    system: System,
) -> None:
    procedure_id = schedule(system)
    event = drug_event(procedure_id, recorded_at="2001-01-01T00:00:00+00:00")
    before = datetime.now(UTC)
    with system.bedside_client(system.nurse) as client:
        r = client.post("/v1/events", json=event)
    assert r.status_code == 202, r.text
    assert r.json()["event_id"] == event["event_id"]

    def find() -> dict[str, Any] | None:
        rows = ledger_entries(system, procedure_id=procedure_id)
        return next((e for e in rows if e["event"]["event_id"] == event["event_id"]), None)

    entry = wait_until(find)
    assert isinstance(entry, dict)
    recorded = datetime.fromisoformat(entry["event"]["recorded_at"])
    assert before - timedelta(seconds=1) <= recorded <= datetime.now(UTC)
    assert entry["event"]["recorded_at"] != event["recorded_at"]
    assert r.json()["recorded_at"] == entry["event"]["recorded_at"]
    leaf = base64.b64decode(entry["leaf"])
    assert base64.b64decode(entry["leaf_hash"]) == hashlib.sha256(b"\x00" + leaf).digest()
    assert entry["event"]["payload"]["dose"] == 2
    assert entry["event"]["entered_by"] == {"user": "nurse.ana", "role": "nurse"}
    # The procedure's own scheduling comes first in its story.
    types = [e["event"]["type"] for e in ledger_entries(system, procedure_id=procedure_id)]
    assert types == ["procedure.scheduled", "sedation.drug_administered"]


def test_the_same_event_posted_twice_is_one_ledger_entry_with_one_answer(system: System) -> None:
    procedure_id = schedule(system)
    event = drug_event(procedure_id)
    with system.bedside_client(system.nurse) as client:
        first = client.post("/v1/events", json=event)
        second = client.post("/v1/events", json=event)
        marker = client.post("/v1/events", json=drug_event(procedure_id, dose=1))
    assert first.status_code == second.status_code == marker.status_code == 202
    assert first.json() == second.json()
    wait_until(lambda: entry_for(system, marker.json()["event_id"]))
    rows = ledger_entries(system, procedure_id=procedure_id)
    ids = [e["event"]["event_id"] for e in rows]
    assert ids.count(event["event_id"]) == 1


def test_bad_calls_get_clear_refusals(system: System) -> None:
    procedure_id = schedule(system)
    with system.bedside_client(system.nurse) as client:
        r = client.post("/v1/events", json=drug_event(procedure_id, dose="two"))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["payload.dose"]

    with system.bedside_client(None) as client:
        assert client.post("/v1/events", json=drug_event(procedure_id)).status_code == 401
    with system.audit_client(system.nurse) as client:
        r = client.get("/v1/audit/entries")
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"


def storescu(
    system: System, path: Path, calling_ae: str = "STORESCU"
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.run(
        [
            dcmtk("storescu"),
            "-v",
            "-aet",
            calling_ae,
            "-aec",
            "PROCTRAIL",
            "127.0.0.1",
            str(system.dicom_port),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_a_ct_sent_with_storescu_is_stored_hashed_and_audited(system: System) -> None:
    sent = storescu(system, CT_SMALL)
    assert sent.returncode == 0, sent.stderr
    assert "Received Store Response (Success)" in sent.stderr + sent.stdout
    sop_uid = str(pydicom.dcmread(CT_SMALL).SOPInstanceUID)

    def capture() -> dict[str, Any] | None:
        rows = ledger_entries(system, type="imaging.capture_received")
        return next((e for e in rows if e["event"]["payload"]["sop_instance_uid"] == sop_uid), None)

    entry = wait_until(capture)
    assert isinstance(entry, dict)
    payload = entry["event"]["payload"]
    stored = system.data_dir / "imaging" / payload["stored_as"]
    assert stored.name == f"{sop_uid}.dcm"  # kept under its SOP Instance UID
    data = stored.read_bytes()
    assert hashlib.sha256(data).hexdigest() == payload["sha256"]
    assert len(data) == payload["size_bytes"]
    assert str(pydicom.dcmread(stored).SOPInstanceUID) == sop_uid
    assert payload["modality"] == "CT"
    assert payload["calling_ae"] == "STORESCU"
    assert entry["event"]["source"] == {"kind": "dicom", "id": "STORESCU"}
    # No procedure was open for this patient: the capture waits for reconciliation.
    unmatched = ledger_entries(system, type="imaging.capture_unmatched")
    assert [e["event"]["payload"]["sop_instance_uid"] for e in unmatched] == [sop_uid]

    again = storescu(system, CT_SMALL)  # a modality resending: still Success, nothing duplicated
    assert again.returncode == 0
    assert len(ledger_entries(system, type="imaging.capture_received")) == 1


def test_a_capture_for_a_scheduled_patient_joins_that_procedure(system: System) -> None:
    procedure_id = schedule(system, patient_id="1CT1", phase="implant")  # CT_small's PatientID

    wait_until(
        lambda: system.logged(
            "imaging", "procedure indexed for matching", procedure_id=procedure_id
        )
    )
    assert storescu(system, CT_SMALL).returncode == 0

    def capture() -> list[dict[str, Any]]:
        return ledger_entries(system, procedure_id=procedure_id, type="imaging.capture_received")

    (entry,) = wait_until(capture)  # type: ignore[misc]
    assert isinstance(entry, dict)
    assert entry["event"]["procedure_id"] == procedure_id
    assert entry["event"]["payload"]["patient_id"] == "1CT1"


def test_a_calling_ae_off_the_allow_list_is_refused(system: System) -> None:
    sent = storescu(system, CT_SMALL, calling_ae="INTRUDER")
    assert sent.returncode != 0
    assert "Association Rejected" in sent.stderr + sent.stdout
    echo = subprocess.run(
        [
            dcmtk("echoscu"),
            "-aet",
            "ECHOSCU",
            "-aec",
            "PROCTRAIL",
            "127.0.0.1",
            str(system.dicom_port),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert echo.returncode == 0, echo.stderr


def test_a_crashed_service_is_restarted_and_the_path_keeps_working(system: System) -> None:
    pids = subprocess.run(
        ["pgrep", "-f", "-P", str(system.process.pid), "services.harvest"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert len(pids) == 1
    os.kill(int(pids[0]), signal.SIGKILL)
    wait_until(lambda: system.logged("proctrail", "exited; restarting", child="harvest"))
    procedure_id = schedule(system)
    with system.bedside_client(system.nurse) as client:
        r = client.post("/v1/events", json=drug_event(procedure_id))
    assert r.status_code == 202
    wait_until(lambda: entry_for(system, r.json()["event_id"]), timeout=60)


def test_an_object_missing_its_study_uid_is_still_kept_and_recorded_without_one(
    system: System,
) -> None:
    ds = pydicom.dcmread(CT_SMALL)
    del ds.StudyInstanceUID  # Type 1, yet some devices in the field leave it out
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", system.dicom_port, ae_title="PROCTRAIL")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert status.Status == 0x0000

    def capture() -> dict[str, Any] | None:
        rows = ledger_entries(system, type="imaging.capture_received")
        return next(
            (e for e in rows if e["event"]["payload"]["sop_instance_uid"] == ds.SOPInstanceUID),
            None,
        )

    entry = wait_until(capture)
    assert isinstance(entry, dict)
    assert "study_instance_uid" not in entry["event"]["payload"]
    assert entry["event"]["payload"]["series_instance_uid"] == ds.SeriesInstanceUID


def test_a_nurse_reconciles_an_unmatched_capture_to_its_procedure(system: System) -> None:
    assert storescu(system, CT_SMALL).returncode == 0
    sop_uid = str(pydicom.dcmread(CT_SMALL).SOPInstanceUID)
    wait_until(lambda: ledger_entries(system, type="imaging.capture_unmatched"))
    procedure_id = schedule(system, patient_id="PAT-RECON")
    reconcile = tablet_event(
        procedure_id,
        "imaging.capture_reconciled",
        {
            "sop_instance_uid": sop_uid,
            "procedure_id": procedure_id,
            "reason": "unscheduled AP view, same patient, wristband checked",
        },
    )
    with system.bedside_client(system.nurse) as client:
        r = client.post("/v1/events", json=reconcile)
    assert r.status_code == 202, r.text
    entry = wait_until(lambda: entry_for(system, reconcile["event_id"]))
    assert isinstance(entry, dict)
    assert entry["event"]["procedure_id"] == procedure_id
    assert entry["event"]["entered_by"]["user"] == "nurse.ana"
    wait_until(lambda: system.logged("imaging", "capture reconciled", sop_instance_uid=sop_uid))

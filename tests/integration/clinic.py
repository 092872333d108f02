"""A clinic driving `proctrail up` only through its public interfaces: nurses and physicians
on bedside's HTTP API, the lab releasing lots, devices sending DICOM with DCMTK's storescu,
and the compliance officer reading each procedure's timeline from the audit API."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import data_store  # type: ignore[import-untyped]
import pydicom
from pydicom.uid import generate_uid

from tests import dicom_factory
from tests.integration.conftest import System, dcmtk, token, wait_until

NURSE = ("nurse.ana", "nurse")
PHYSICIAN = ("dr.cole", "physician")
LAB = ("lab.kim", "lab")
US_FILE = Path(data_store.__file__).parent / "data" / "US1_UNCR.dcm"


@dataclass
class Clinic:
    system: System
    scratch: Path
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # procedure -> events
    _tokens: dict[str, str] = field(default_factory=dict)

    def _token(self, who: tuple[str, str]) -> str:
        if who[0] not in self._tokens:
            self._tokens[who[0]] = token(self.system.env, who[1], who[0])
        return self._tokens[who[0]]

    def schedule(self, phase: str, patient: str, accession: str | None = None,
                 **extra: Any) -> str:  # fmt: skip
        body = {"phase": phase, "patient": {"id": patient}, "room": "OR-2", **extra}
        if accession:
            body["accession_number"] = accession
        with self.system.bedside_client(self._token(NURSE)) as client:
            r = client.post("/v1/procedures", json=body)
        assert r.status_code == 201, r.text
        procedure_id = str(r.json()["procedure_id"])
        self.posted[procedure_id] = []
        return procedure_id

    def sample_id(self) -> str:
        with self.system.bedside_client(self._token(NURSE)) as client:
            return str(client.post("/v1/sample-ids").json()["sample_id"])

    def post(self, procedure_id: str | None, event_type: str, payload: dict[str, Any],
             by: tuple[str, str] = NURSE, minutes_ago: float = 0) -> dict[str, Any]:  # fmt: skip
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()), "type": event_type, "schema": 1,
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
            "actor": {"id": by[0], "role": by[1]},
            "source": {"kind": "tablet", "id": "tablet-7"}, "payload": payload,
        }  # fmt: skip
        if procedure_id is not None:
            event["procedure_id"] = procedure_id
        with self.system.bedside_client(self._token(by)) as client:
            r = client.post("/v1/events", json=event)
        assert r.status_code == 202, r.text
        if procedure_id is not None:
            self.posted[procedure_id].append(event)
        return event

    def release(self, lot_id: str, sample_id: str, patient: str, cell_type: str,
                cells: float, valid_for: timedelta) -> dict[str, Any]:  # fmt: skip
        return self.post(None, "product.lot_released", {
            "lot_id": lot_id, "sample_id": sample_id, "patient": {"id": patient},
            "cell_type": cell_type, "cell_count": cells, "viability_pct": 91.0,
            "sterility": "no growth", "endotoxin": "<0.5 EU/mL", "mycoplasma": "negative",
            "expires_at": (datetime.now(UTC) + valid_for).isoformat(), "released_by": "qp.ortiz",
        }, by=LAB)  # fmt: skip

    def images(self, patient: str, accession: str, views: list[tuple[str, float]]) -> list[str]:
        """Send one object per (modality, primary angle) with storescu; their SOP UIDs."""
        paths, uids = [], []
        now = datetime.now(UTC)
        for n, (modality, angle) in enumerate(views):
            path = self.scratch / f"{uuid.uuid4().hex}.dcm"
            if modality == "XA":
                dicom_factory.xa_cine(path, frames=2, rows=64, cols=64, patient_id=patient,
                                      accession=accession, acquired_at=now, primary_angle=angle,
                                      instance_number=n + 1)  # fmt: skip
            else:
                source = (US_FILE if modality == "US"
                          else dicom_factory.ct_series(self.scratch / "ct", 1)[0])  # fmt: skip
                ds = pydicom.dcmread(source)
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                ds.PatientID, ds.AccessionNumber = patient, accession
                ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S.%f+0000")
                ds.save_as(path, enforce_file_format=True)
            paths.append(path)
            uids.append(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID))
        for path in paths:  # one association per object: each proposes its own syntax
            sent = subprocess.run(
                [dcmtk("storescu"), "-aet", "STORESCU", "-aec", "PROCTRAIL", "127.0.0.1",
                 str(self.system.dicom_port), str(path)], capture_output=True, text=True,
                timeout=120,
            )  # fmt: skip
            assert sent.returncode == 0, sent.stderr
        return uids

    def timeline(self, procedure_id: str, captures: int = 0) -> list[dict[str, Any]]:
        """The audit timeline once it holds everything posted for the procedure (and
        `captures` imaging captures)."""
        wanted = {e["event_id"] for e in self.posted[procedure_id]}
        events: list[dict[str, Any]] = []

        def complete() -> bool:
            with self.system.audit_client(self.system.compliance) as client:
                r = client.get(f"/v1/procedures/{procedure_id}/timeline")
            if r.status_code != 200:
                return False
            events[:] = r.json()["events"]
            seen = {e["event_id"] for e in events}
            shot = [e for e in events if e["type"] == "imaging.capture_received"]
            return wanted <= seen and len(shot) >= captures

        wait_until(complete, timeout=60, every=0.5)
        return events

    def check_story(self, procedure_id: str, events: list[dict[str, Any]]) -> None:
        """Every step is in the timeline as posted: who did it, and both clocks."""
        by_id = {e["event_id"]: e for e in events}
        for sent in self.posted[procedure_id]:
            item = by_id[sent["event_id"]]
            assert item["type"] == sent["type"]
            assert item["actor"] == sent["actor"]
            assert item["disposition"] == "accepted"
            assert datetime.fromisoformat(item["occurred_at"]) == datetime.fromisoformat(
                sent["occurred_at"]
            )
            assert datetime.fromisoformat(item["recorded_at"]) >= datetime.fromisoformat(
                sent["occurred_at"]
            ) - timedelta(seconds=5)  # the server's clock, never the tablet's
        clinical = [e for e in events if e["type"] not in ("alert.raised",)]
        times = [datetime.fromisoformat(e["occurred_at"]) for e in clinical]
        assert times == sorted(times)  # told in clinical order


def alerts(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["payload"]["code"] for e in events if e["type"] == "alert.raised")

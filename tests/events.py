"""The one event factory of the tests: a valid payload for every type of the catalogue, and
`make_event`, a raw envelope as a tablet would post it, with any envelope key replaced."""

from __future__ import annotations

import copy
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.events import CATALOGUE

SAMPLE_ID = "S7K2M9Q4X1B5"  # a valid default-scheme id (ISO 7064 MOD 37-2 check character)
PROCEDURE_ID = "6f1c2a3e-0b4d-4e8f-9a51-2c7d8e9f0a1b"
OTHER_EVENT_ID = "0d3b5a7c-9e1f-4a2b-8c4d-6e8f0a2b4c6d"
PATIENT = {"id": "MRN-0042", "issuer": "St-Elsewhere"}
UID = "1.2.840.113619.2.55.3.604688119"

# One valid payload for every type of the contract's catalogue (test_events checks coverage).
EXAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "procedure.scheduled": {
        "phase": "harvest",
        "patient": PATIENT,
        "room": "IR-2",
        "accession_number": "ACC-1001",
        "scheduled_start": "2025-03-04T09:00:00+01:00",
        "planned_targets": [{"kind": "disc", "level": "L4-L5", "side": "midline"}],
    },
    "procedure.opened": {"room": "IR-2", "operator_id": "dr-khan", "monitoring_nurse_id": "rn-lee"},
    "procedure.time_out": {
        "patient_confirmed": True,
        "procedure_confirmed": True,
        "site_confirmed": True,
        "consent_confirmed": True,
        "targets": ["L4-L5", "L5-S1"],
    },
    "procedure.closed": {"outcome": "aborted", "reason": "patient withdrew consent"},
    "sedation.assessed": {
        "asa_class": 2,
        "emergency": False,
        "weight_kg": 72.5,
        "fasting_hours": 8,
        "airway": "Mallampati II",
        "allergies": ["penicillin"],
    },
    "sedation.drug_administered": {
        "drug": "midazolam",
        "dose": 2,
        "unit": "mg",
        "route": "IV",
        "given_by": "rn-lee",
    },
    "sedation.vitals_recorded": {
        "spo2_pct": 97,
        "heart_rate_bpm": 72,
        "bp_systolic_mmhg": 128,
        "bp_diastolic_mmhg": 82,
        "resp_rate_per_min": 14,
        "etco2_mmhg": 38,
        "source": "monitor",
        "artifact": False,
    },
    "sedation.depth_scored": {"scale": "RASS", "score": -2},
    "anaesthesia.local_administered": {
        "agent": "lidocaine",
        "concentration_pct": 1,
        "volume_ml": 10,
        "site": "left posterior iliac crest",
    },
    "recovery.scored": {"scale": "Aldrete", "score": 9},
    "recovery.discharged": {"escort": "spouse", "condition": "stable, walking unaided"},
    "harvest.aspiration_performed": {
        "tissue": "bone_marrow",
        "site": "posterior iliac crest",
        "side": "left",
        "passes": 3,
        "volume_ml": 60,
        "anticoagulant": "heparin 1000 IU/mL",
        "guidance": "fluoroscopy",
    },
    "harvest.sample_labelled": {
        "sample_id": SAMPLE_ID,
        "volume_ml": 60,
        "collected_at": "2025-03-04T09:40:00+01:00",
    },
    "custody.handoff": {
        "item_id": SAMPLE_ID,
        "from_party": "rn-lee",
        "to_party": "courier-7",
        "temperature_c": 4.5,
        "condition": "sealed, intact",
    },
    "product.lot_released": {
        "lot_id": "LOT-77",
        "sample_id": SAMPLE_ID,
        "patient": PATIENT,
        "cell_type": "bone marrow MSC",
        "cell_count": 5.0e7,
        "viability_pct": 93.5,
        "sterility": "no growth at 14 days",
        "endotoxin": "<0.5 EU/mL",
        "mycoplasma": "negative",
        "expires_at": "2025-04-04T00:00:00+00:00",
        "released_by": "qp-ortiz",
    },
    "implant.product_verified": {
        "lot_id": "LOT-77",
        "patient_id_scanned": "MRN-0042",
        "verifier_ids": ["rn-lee", "dr-khan"],
    },
    "implant.needle_placed": {
        "target": {"kind": "disc", "level": "L4-L5", "side": "midline"},
        "approach": "posterolateral",
        "needle_gauge": 22,
        "needle_length_mm": 150,
        "confirming_sop_instance_uids": [UID],
        "contrast": {"agent": "iohexol 300", "volume_ml": 0.5},
    },
    "implant.injected": {
        "target": {"kind": "disc", "level": "L4-L5"},
        "lot_id": "LOT-77",
        "volume_ml": 1.5,
        "cell_count": 1.0e7,
    },
    "adverse_event.reported": {
        "term": "Vasovagal reaction",
        "grade": 2,
        "serious": False,
        "serious_criteria": [],
        "expected": True,
        "onset_at": "2025-03-04T10:05:00+01:00",
        "suspected_cause": "procedure",
        "action_taken": "legs raised, fluids",
        "outcome": "resolved",
        "related_procedure_id": PROCEDURE_ID,
    },
    "record.corrected": {
        "supersedes": OTHER_EVENT_ID,
        "reason": "dose entered in the wrong unit",
        "changes": {"payload.dose": {"old": 2, "new": 1}},
    },
    "record.signed": {
        "event_ids": [OTHER_EVENT_ID],
        "meaning": "reviewed",
        "signer_id": "dr-khan",
    },
    "imaging.capture_received": {
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.12.2",
        "sop_instance_uid": UID,
        "study_instance_uid": "1.2.840.113619.2.55.3.1",
        "series_instance_uid": "1.2.840.113619.2.55.3.1.1",
        "modality": "RF",
        "accession_number": "ACC-1001",
        "patient_id": "MRN-0042",
        "acquired_at": "2025-03-04T09:20:00+01:00",
        "calling_ae": "FLUORO1",
        "sha256": hashlib.sha256(b"a DICOM object").hexdigest(),
        "size_bytes": 524288,
        "number_of_frames": 30,
    },
    "imaging.dose_reported": {
        "sop_instance_uid": UID,
        "scope": "accumulated",
        "dap_total_gy_m2": 0.0012,
        "fluoro_time_s": 42.5,
        "frames": 30,
        "original": {"DoseAreaProductTotal": 0.0012},
    },
    "imaging.capture_unmatched": {
        "sop_instance_uid": UID,
        "reason": "no procedure with accession ACC-9999",
    },
    "imaging.capture_reconciled": {
        "sop_instance_uid": UID,
        "procedure_id": PROCEDURE_ID,
        "reason": "matched by hand after an accession typo",
    },
    "imaging.association_logged": {
        "calling_ae": "CARM_OR2",
        "called_ae": "PROCTRAIL",
        "peer_address": "10.20.0.41",
        "peer_port": 50412,
        "outcome": "released",
        "tls": True,
        "objects_stored": 14,
        "objects_refused": 0,
    },
    "alert.raised": {
        "code": "needle_unconfirmed",
        "severity": "warning",
        "message": "needle placed without a confirming image",
        "event_ids": [OTHER_EVENT_ID],
    },
    "audit.queried": {"filters": {"procedure_id": PROCEDURE_ID}, "rows": 3},
    "audit.exported": {"filters": {}, "rows": 10, "format": "csv"},
}


def example_payload(event_type: str) -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE_PAYLOADS[event_type])


def make_event(
    event_type: str = "sedation.drug_administered",
    payload: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A raw envelope as a tablet would post it; `fields` replace or add envelope keys."""
    raw: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "schema": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": {"id": "rn-lee", "role": "nurse"},
        "source": {"kind": "tablet", "id": "tablet-ir2"},
        "payload": example_payload(event_type) if payload is None else payload,
    }
    if CATALOGUE[event_type].needs_procedure:
        raw["procedure_id"] = PROCEDURE_ID
    raw.update(fields)
    return raw

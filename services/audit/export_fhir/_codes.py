"""The code systems, identifiers and code tables of the FHIR export."""

from __future__ import annotations

import uuid

BASE = "https://proctrail.example/fhir"
EVENT_TYPE_SYSTEM = f"{BASE}/CodeSystem/event-type"
EXPORT_PART_SYSTEM = f"{BASE}/CodeSystem/export-part"
CHECKPOINT_SYSTEM = f"{BASE}/checkpoint"
EVENT_SYSTEM = f"{BASE}/event"
PROCEDURE_SYSTEM = f"{BASE}/procedure"
ACTOR_SYSTEM = f"{BASE}/actor"
SOURCE_SYSTEM = f"{BASE}/source"
SIGNATURE_VALID_URL = f"{BASE}/StructureDefinition/signature-valid"
SIGNATURE_BINDING_URL = f"{BASE}/StructureDefinition/signature-binding"

ASTM_SIGNATURE_SYSTEM = "urn:iso-astm:E1762-95:2013"
SIGNATURE_TYPES = {
    "authored": ("1.2.840.10065.1.12.1.1", "Author's Signature"),
    "reviewed": ("1.2.840.10065.1.12.1.13", "Review Signature"),
    "approved": ("1.2.840.10065.1.12.1.6", "Validation Signature"),
}
PROVENANCE_PARTICIPANT_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
PARTICIPANT_TYPES = {"authored": "author", "reviewed": "verifier", "approved": "attester"}
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SOURCE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/security-source-type"
SOURCE_TYPES = {  # source.kind -> (code, display)
    "tablet": ("1", "User Device"),
    "dicom": ("2", "Data Interface"),
    "service": ("4", "Application Server"),
}
ACTIONS = {
    "audit.queried": "R",
    "audit.exported": "R",
    "record.corrected": "U",
    "alert.raised": "E",
}
EXPORT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, f"{BASE}/export")

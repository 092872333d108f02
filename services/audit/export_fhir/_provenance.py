"""An accepted `record.signed` as a FHIR Provenance with its Signature, judged as the
procedure timeline judges it (valid, binding)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.signature import Signature

from services.audit import timeline
from services.audit.export_fhir._codes import (
    ASTM_SIGNATURE_SYSTEM,
    PARTICIPANT_TYPES,
    PROVENANCE_PARTICIPANT_SYSTEM,
    SIGNATURE_BINDING_URL,
    SIGNATURE_TYPES,
    SIGNATURE_VALID_URL,
)
from services.audit.export_fhir._values import (
    base64_binary,
    event_ref,
    ids,
    instant,
    mapping_of,
    nonblank,
    role_of,
    who,
)
from services.audit.store import Entry


def signs(content: dict[str, Any]) -> bool:
    return bool(
        content["event"].get("type") == "record.signed" and content.get("disposition") == "accepted"
    )


def signatures(entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """signing event_id -> the timeline's judgement of that signature (valid, binding)."""
    return {
        str(signature["event_id"]): signature
        for item in timeline.build(entries)
        for signature in item.get("signatures", [])
    }


def provenance(
    entry: Entry, content: dict[str, Any], in_bundle: set[str], judged: dict[str, Any] | None
) -> Provenance:
    event = content["event"]
    payload = mapping_of(event.get("payload"))
    meaning = nonblank(payload.get("meaning")) or "unknown"
    signer = nonblank(payload.get("signer_id")) or "unknown"
    actor = mapping_of(event.get("actor"))
    entered = mapping_of(event.get("entered_by"))
    if entered.get("user") == signer:  # the signer's own token carried it in
        role = role_of(entered.get("role"))
    else:
        role = role_of(actor.get("role")) if actor.get("id") == signer else None
    recorded = instant(event.get("recorded_at")) or instant(
        mapping_of(content.get("stamped_by")).get("at")
    )
    code, display = SIGNATURE_TYPES.get(meaning, ("", ""))
    participant = PARTICIPANT_TYPES.get(meaning)
    signer_ref = who(signer)
    agents = [
        ProvenanceAgent(
            type=CodeableConcept(
                coding=[Coding(system=PROVENANCE_PARTICIPANT_SYSTEM, code=participant)]
                if participant
                else None,
                text=meaning,
            ),
            role=role,
            who=signer_ref,
        )
    ]
    targets = [event_ref(i, in_bundle) for i in ids(payload.get("event_ids"))]
    return Provenance(
        extension=[
            Extension(url=SIGNATURE_VALID_URL, valueBoolean=bool(judged.get("valid"))),
            Extension(url=SIGNATURE_BINDING_URL, valueCode=str(judged.get("binding", "unchecked"))),
        ]
        if judged is not None
        else None,
        target=targets or [Reference(display="no signed event named")],
        occurredDateTime=instant(event.get("occurred_at")),
        recorded=recorded,
        activity=CodeableConcept(text=f"record.signed ({meaning})"),
        agent=agents,
        signature=[
            Signature(
                type=[
                    Coding(system=ASTM_SIGNATURE_SYSTEM, code=code, display=display)
                    if code
                    else Coding(display=meaning)
                ],
                when=recorded,
                who=signer_ref,
                sigFormat="application/json",
                data=base64_binary(entry.leaf),
            )
        ],
    )

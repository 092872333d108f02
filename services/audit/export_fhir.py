"""The ledger as a FHIR R4 Bundle: one AuditEvent per entry, one Provenance per signature.

Built with the `fhir.resources` models of the R4B line (FHIR 4.3, the current R4 release; its
AuditEvent, Provenance, Bundle and Binary are those of R4 4.0.1). The bundle is a
`collection` whose `identifier` names the checkpoint it was cut against
(`<tree_size>:<base64 root>`) and whose `timestamp` is that checkpoint's time, so the same
ledger and checkpoint always export to the same bytes. Two Binary entries come first: the
signed checkpoint note (C2SP signed-note form) and the verifier key, tagged `checkpoint` and
`verifier-key` in meta.tag (system EXPORT_PART_SYSTEM).

Each entry becomes an AuditEvent (fullUrl `urn:uuid:<event_id>`):
- type: the event type's family (`sedation`), subtype: the full type
  (`sedation.drug_administered`), both codes of EVENT_TYPE_SYSTEM;
- action: R for `audit.queried`/`audit.exported`, U for `record.corrected`, E for
  `alert.raised`, C for every other recorded fact;
- period: the clinical time (occurred_at); recorded: recorded_at (server time), or the time
  the service stamped it when a rejected event carries none;
- outcome: 0 accepted, 4 rejected with outcomeDesc the reason;
- agent: the actor (who.identifier = actor id, role as text), then the authenticated user who
  entered it (`entered_by`, type ENT) when present; the requestor is whoever's token carried
  the event in (entered_by if present, else the actor);
- source: site = the service that stamped the entry; observer = the source (kind, id);
- entity: the procedure (what.identifier = procedure_id), the event itself (details: seq,
  disposition, leaf_hash and leaf as base64Binary, payload as sorted-key JSON text, and
  `late` when it was entered late) and, for a correction or a signature, the events it
  points at. With the leaf an inspector can recompute leaf_hash = SHA-256(0x00 || leaf) and
  check it against the checkpoint with the inclusion-proof endpoint.

Each accepted `record.signed` entry also becomes a Provenance whose targets are the signed
events' AuditEvents (a `urn:uuid:` reference when that event is in the bundle, its identifier
otherwise) and whose agent is the signer (provenance-participant-type author, verifier or
attester; role as text when the signer's own token carried it in), with one Signature whose
type is the ASTM E1762 code for its meaning:
- authored -> 1.2.840.10065.1.12.1.1 Author's Signature;
- reviewed -> 1.2.840.10065.1.12.1.13 Review Signature;
- approved -> 1.2.840.10065.1.12.1.6 Validation Signature ("validating a document for
  inclusion in the record", as an attending physician does), rather than .5 Verification,
  which is a countersignature of content someone else recorded.
Signature.data is the base64 of the signing entry's leaf (sigFormat application/json): what the
ledger hashed, and so what the checkpoint vouches for (its payload carries `signed_sha256`,
the hash binding it to exactly the events signed). Two extensions say what the procedure
timeline (`services.audit.timeline`) says of it, judged on the exported entries:
SIGNATURE_VALID_URL (valueBoolean: false once an event it signed was corrected after it, or
its binding does not match) and SIGNATURE_BINDING_URL (valueCode intact, mismatch or
unchecked). They are absent when none of the signed events is in the export.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from fhir.resources.R4B.auditevent import (
    AuditEvent,
    AuditEventAgent,
    AuditEventEntity,
    AuditEventEntityDetail,
    AuditEventSource,
)
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.signature import Signature
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from services.audit import timeline
from services.audit.store import Entry, StoredCheckpoint

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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _base64_binary(data: bytes) -> bytes:
    """What a base64Binary field takes: the encoded form (the model keeps the decoded bytes)."""
    return base64.b64encode(data)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _instant(value: Any) -> datetime | None:
    """An RFC 3339 time with an offset, or None (a rejected event may carry anything)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def _event_ref(event_id: str, in_bundle: set[str]) -> Reference:
    identifier = Identifier(system=EVENT_SYSTEM, value=event_id)
    if event_id in in_bundle:
        return Reference(reference=f"urn:uuid:{event_id}", type="AuditEvent", identifier=identifier)
    return Reference(identifier=identifier)


@lru_cache(maxsize=4096)
def _who(person_id: str) -> Reference:
    return Reference(identifier=Identifier(system=ACTOR_SYSTEM, value=person_id))


def _role(role: Any) -> list[CodeableConcept] | None:
    text = _text(role)
    return [_concept(text)] if text else None


@lru_cache(maxsize=1024)
def _concept(text: str) -> CodeableConcept:
    return CodeableConcept(text=text)


@lru_cache(maxsize=1024)
def _event_type(event_type: str) -> tuple[Coding, Coding]:
    """(type, subtype): the family (`sedation`) and the full type, both of EVENT_TYPE_SYSTEM."""
    family = event_type.split(".", 1)[0]
    return (
        Coding(system=EVENT_TYPE_SYSTEM, code=family, display=family),
        Coding(system=EVENT_TYPE_SYSTEM, code=event_type, display=event_type),
    )


def _ids(value: Any) -> list[str]:
    return [str(i) for i in value if _text(i)] if isinstance(value, list) else []


def _agents(event: dict[str, Any]) -> list[AuditEventAgent]:
    actor = _mapping(event.get("actor"))
    entered = _mapping(event.get("entered_by"))
    return list(
        _agents_of(
            _text(actor.get("id")),
            _text(actor.get("role")),
            _text(entered.get("user")),
            _text(entered.get("role")),
        )
    )


@lru_cache(maxsize=4096)
def _agents_of(
    actor_id: str | None, actor_role: str | None, user: str | None, user_role: str | None
) -> tuple[AuditEventAgent, ...]:
    """The actor, then the user who entered it; the requestor is whoever's token carried it."""
    actor = AuditEventAgent(
        who=_who(actor_id) if actor_id else None,
        name=None if actor_id else "unknown actor",
        role=_role(actor_role),
        requestor=user is None,
    )
    if user is None:
        return (actor,)
    enterer = AuditEventAgent(
        type=_enterer_type(),
        who=_who(user),
        role=_role(user_role),
        requestor=True,
    )
    return actor, enterer


@lru_cache(maxsize=1)
def _enterer_type() -> CodeableConcept:
    return CodeableConcept(
        coding=[Coding(system=PARTICIPATION_SYSTEM, code="ENT", display="data entry person")],
        text="entered by",
    )


def _source(content: dict[str, Any], event: dict[str, Any]) -> AuditEventSource:
    source = _mapping(event.get("source"))
    return _source_of(
        _text(_mapping(content.get("stamped_by")).get("service")),
        _text(source.get("kind")) or "unknown",
        _text(source.get("id")) or "unknown",
    )


@lru_cache(maxsize=4096)
def _source_of(site: str | None, kind: str, source_id: str) -> AuditEventSource:
    known = SOURCE_TYPES.get(kind)
    return AuditEventSource(
        site=site,
        observer=Reference(
            identifier=Identifier(system=f"{SOURCE_SYSTEM}/{kind}", value=source_id),
            display=f"{kind}:{source_id}",
        ),
        type=[Coding(system=SOURCE_TYPE_SYSTEM, code=known[0], display=known[1])]
        if known
        else None,
    )


@lru_cache(maxsize=4096)
def _procedure(procedure_id: str) -> AuditEventEntity:
    return AuditEventEntity(
        what=Reference(identifier=Identifier(system=PROCEDURE_SYSTEM, value=procedure_id)),
        name="procedure",
    )


def _entities(
    entry: Entry, content: dict[str, Any], event: dict[str, Any], in_bundle: set[str]
) -> list[AuditEventEntity]:
    entities = []
    procedure_id = _text(event.get("procedure_id"))
    if procedure_id:
        entities.append(_procedure(procedure_id))
    details = [
        AuditEventEntityDetail(type="seq", valueString=str(entry.seq)),
        AuditEventEntityDetail(type="disposition", valueString=str(content.get("disposition"))),
        AuditEventEntityDetail(type="leaf_hash", valueBase64Binary=_base64_binary(entry.leaf_hash)),
        AuditEventEntityDetail(type="leaf", valueBase64Binary=_base64_binary(entry.leaf)),
        AuditEventEntityDetail(type="payload", valueString=_json(event.get("payload", {}))),
    ]
    if event.get("late") is True:
        details.append(AuditEventEntityDetail(type="late", valueString="true"))
    entities.append(
        AuditEventEntity(
            what=Reference(
                identifier=Identifier(system=EVENT_SYSTEM, value=str(event.get("event_id")))
            ),
            name="ledger entry",
            detail=details,
        )
    )
    payload = _mapping(event.get("payload"))
    pointed: list[tuple[str, str]] = []
    if event.get("type") == "record.corrected" and _text(payload.get("supersedes")):
        pointed.append(("superseded event", str(payload["supersedes"])))
    elif event.get("type") == "record.signed":
        pointed += [("signed event", i) for i in _ids(payload.get("event_ids"))]
    entities += [
        AuditEventEntity(what=_event_ref(event_id, in_bundle), name=name)
        for name, event_id in pointed
    ]
    return entities


def _audit_event(entry: Entry, content: dict[str, Any], in_bundle: set[str]) -> AuditEvent:
    event = content["event"]
    event_type = _text(event.get("type")) or "unknown"
    accepted = content.get("disposition") == "accepted"
    occurred = _instant(event.get("occurred_at"))
    recorded = (
        _instant(event.get("recorded_at"))
        or _instant(_mapping(content.get("stamped_by")).get("at"))
        or _instant(content.get("appended_at"))
    )
    family, full = _event_type(event_type)
    return AuditEvent(
        type=family,
        subtype=[full],
        action=ACTIONS.get(event_type, "C"),
        period=Period(start=occurred, end=occurred) if occurred else None,
        recorded=recorded,
        outcome="0" if accepted else "4",
        outcomeDesc=None if accepted else (_text(content.get("reason")) or "rejected"),
        agent=_agents(event),
        source=_source(content, event),
        entity=_entities(entry, content, event, in_bundle),
    )


def _provenance(
    entry: Entry, content: dict[str, Any], in_bundle: set[str], judged: dict[str, Any] | None
) -> Provenance:
    event = content["event"]
    payload = _mapping(event.get("payload"))
    meaning = _text(payload.get("meaning")) or "unknown"
    signer = _text(payload.get("signer_id")) or "unknown"
    actor = _mapping(event.get("actor"))
    entered = _mapping(event.get("entered_by"))
    if entered.get("user") == signer:  # the signer's own token carried it in
        role = _role(entered.get("role"))
    else:
        role = _role(actor.get("role")) if actor.get("id") == signer else None
    recorded = _instant(event.get("recorded_at")) or _instant(
        _mapping(content.get("stamped_by")).get("at")
    )
    code, display = SIGNATURE_TYPES.get(meaning, ("", ""))
    participant = PARTICIPANT_TYPES.get(meaning)
    signer_ref = _who(signer)
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
    targets = [_event_ref(i, in_bundle) for i in _ids(payload.get("event_ids"))]
    return Provenance(
        extension=[
            Extension(url=SIGNATURE_VALID_URL, valueBoolean=bool(judged.get("valid"))),
            Extension(url=SIGNATURE_BINDING_URL, valueCode=str(judged.get("binding", "unchecked"))),
        ]
        if judged is not None
        else None,
        target=targets or [Reference(display="no signed event named")],
        occurredDateTime=_instant(event.get("occurred_at")),
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
                data=_base64_binary(entry.leaf),
            )
        ],
    )


def _part(name: str, text: str) -> Binary:
    return Binary(
        meta=Meta(tag=[Coding(system=EXPORT_PART_SYSTEM, code=name)]),
        contentType="text/plain",
        data=_base64_binary(text.encode()),
    )


def _signs(content: dict[str, Any]) -> bool:
    return bool(
        content["event"].get("type") == "record.signed" and content.get("disposition") == "accepted"
    )


def _signatures(entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """signing event_id -> the timeline's judgement of that signature (valid, binding)."""
    return {
        str(signature["event_id"]): signature
        for item in timeline.build(entries)
        for signature in item.get("signatures", [])
    }


def fhir_bundle(entries: Iterable[Entry], checkpoint: StoredCheckpoint, verifier_key: str) -> bytes:
    """JSON bytes of a FHIR R4 `collection` Bundle of `entries`, cut against `checkpoint`."""
    listed = list(entries)
    contents = [(entry, entry.content()) for entry in listed]
    in_bundle = {str(content["event"].get("event_id")) for _, content in contents}
    judged = _signatures(listed) if any(_signs(c) for _, c in contents) else {}
    root = _b64(checkpoint.root)
    cut = f"{checkpoint.tree_size}:{root}"
    bundle_entries = [
        BundleEntry(
            fullUrl=f"urn:uuid:{uuid.uuid5(EXPORT_NAMESPACE, f'{part}:{cut}')}",
            resource=_part(part, text),
        )
        for part, text in (("checkpoint", checkpoint.note), ("verifier-key", verifier_key))
    ]
    for entry, content in contents:
        event_id = str(content["event"].get("event_id"))
        bundle_entries.append(
            BundleEntry(
                fullUrl=f"urn:uuid:{event_id}", resource=_audit_event(entry, content, in_bundle)
            )
        )
        if _signs(content):
            bundle_entries.append(
                BundleEntry(
                    fullUrl=f"urn:uuid:{uuid.uuid5(EXPORT_NAMESPACE, event_id)}",
                    resource=_provenance(entry, content, in_bundle, judged.get(event_id)),
                )
            )
    bundle = Bundle(
        type="collection",
        identifier=Identifier(system=CHECKPOINT_SYSTEM, value=cut),
        timestamp=_instant(checkpoint.created_at),
        entry=bundle_entries,
    )
    return orjson.dumps(plain(bundle))


def plain(model: FHIRAbstractModel) -> dict[str, Any]:
    """The model as FHIR JSON, as the library's own serialiser writes it, ~3x faster.

    The library walks every field in Python for each of ~20 objects per event; this walks only
    the fields that are set. `test_export_formats` pins the output to the library's, byte for
    byte after parsing, and parses every bundle back with the library's models.
    """
    out: dict[str, Any] = {}
    if isinstance(model, FHIRAbstractModel) and model.__resource_type__ and _is_resource(model):
        out["resourceType"] = model.__resource_type__
    fields = type(model).model_fields
    for name, value in model.__dict__.items():
        if value is None or name == "fhir_comments" or (isinstance(value, list) and not value):
            continue
        out[fields[name].alias or name] = _plain_value(value)
    return out


def _plain_value(value: Any) -> Any:
    if isinstance(value, FHIRAbstractModel):
        return plain(value)
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


@lru_cache(maxsize=64)
def _resource_class(cls: type) -> bool:
    return any(base.__name__ == "Resource" for base in cls.__mro__)


def _is_resource(model: FHIRAbstractModel) -> bool:
    return _resource_class(type(model))


def parse_bundle(data: bytes) -> Bundle:
    """Parse exported bytes back into the library's Bundle model (validating every resource)."""
    return Bundle.model_validate_json(data)

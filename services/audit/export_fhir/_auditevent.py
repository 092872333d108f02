"""One ledger entry as a FHIR AuditEvent (what each element carries: see the package)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhir.resources.R4B.auditevent import (
    AuditEvent,
    AuditEventAgent,
    AuditEventEntity,
    AuditEventEntityDetail,
    AuditEventSource,
)
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.reference import Reference

from services.audit.export_fhir._codes import (
    ACTIONS,
    EVENT_SYSTEM,
    EVENT_TYPE_SYSTEM,
    PARTICIPATION_SYSTEM,
    PROCEDURE_SYSTEM,
    SOURCE_SYSTEM,
    SOURCE_TYPE_SYSTEM,
    SOURCE_TYPES,
)
from services.audit.export_fhir._values import (
    base64_binary,
    event_ref,
    ids,
    instant,
    mapping_of,
    nonblank,
    role_of,
    sorted_json,
    who,
)
from services.audit.store import Entry


def audit_event(entry: Entry, content: dict[str, Any], in_bundle: set[str]) -> AuditEvent:
    event = content["event"]
    event_type = nonblank(event.get("type")) or "unknown"
    accepted = content.get("disposition") == "accepted"
    occurred = instant(event.get("occurred_at"))
    recorded = (
        instant(event.get("recorded_at"))
        or instant(mapping_of(content.get("stamped_by")).get("at"))
        or instant(content.get("appended_at"))
    )
    family, full = _event_type(event_type)
    return AuditEvent(
        type=family,
        subtype=[full],
        action=ACTIONS.get(event_type, "C"),
        period=Period(start=occurred, end=occurred) if occurred else None,
        recorded=recorded,
        outcome="0" if accepted else "4",
        outcomeDesc=None if accepted else (nonblank(content.get("reason")) or "rejected"),
        agent=_agents(event),
        source=_source(content, event),
        entity=_entities(entry, content, event, in_bundle),
    )


@lru_cache(maxsize=1024)
def _event_type(event_type: str) -> tuple[Coding, Coding]:
    """(type, subtype): the family (`sedation`) and the full type, both of EVENT_TYPE_SYSTEM."""
    family = event_type.split(".", 1)[0]
    return (
        Coding(system=EVENT_TYPE_SYSTEM, code=family, display=family),
        Coding(system=EVENT_TYPE_SYSTEM, code=event_type, display=event_type),
    )


def _agents(event: dict[str, Any]) -> list[AuditEventAgent]:
    actor = mapping_of(event.get("actor"))
    entered = mapping_of(event.get("entered_by"))
    return list(
        _agents_of(
            nonblank(actor.get("id")),
            nonblank(actor.get("role")),
            nonblank(entered.get("user")),
            nonblank(entered.get("role")),
        )
    )


@lru_cache(maxsize=4096)
def _agents_of(
    actor_id: str | None, actor_role: str | None, user: str | None, user_role: str | None
) -> tuple[AuditEventAgent, ...]:
    """The actor, then the user who entered it; the requestor is whoever's token carried it."""
    actor = AuditEventAgent(
        who=who(actor_id) if actor_id else None,
        name=None if actor_id else "unknown actor",
        role=role_of(actor_role),
        requestor=user is None,
    )
    if user is None:
        return (actor,)
    enterer = AuditEventAgent(
        type=_enterer_type(),
        who=who(user),
        role=role_of(user_role),
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
    source = mapping_of(event.get("source"))
    return _source_of(
        nonblank(mapping_of(content.get("stamped_by")).get("service")),
        nonblank(source.get("kind")) or "unknown",
        nonblank(source.get("id")) or "unknown",
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
    procedure_id = nonblank(event.get("procedure_id"))
    if procedure_id:
        entities.append(_procedure(procedure_id))
    details = [
        AuditEventEntityDetail(type="seq", valueString=str(entry.seq)),
        AuditEventEntityDetail(type="disposition", valueString=str(content.get("disposition"))),
        AuditEventEntityDetail(type="leaf_hash", valueBase64Binary=base64_binary(entry.leaf_hash)),
        AuditEventEntityDetail(type="leaf", valueBase64Binary=base64_binary(entry.leaf)),
        AuditEventEntityDetail(type="payload", valueString=sorted_json(event.get("payload", {}))),
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
    payload = mapping_of(event.get("payload"))
    pointed: list[tuple[str, str]] = []
    if event.get("type") == "record.corrected" and nonblank(payload.get("supersedes")):
        pointed.append(("superseded event", str(payload["supersedes"])))
    elif event.get("type") == "record.signed":
        pointed += [("signed event", i) for i in ids(payload.get("event_ids"))]
    entities += [
        AuditEventEntity(what=event_ref(event_id, in_bundle), name=name)
        for name, event_id in pointed
    ]
    return entities

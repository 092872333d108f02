"""The event envelope and the edge validation every ingress runs before anything is published."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from shared.events import catalogue as c
from shared.events._types import Identifier, Model
from shared.roles import Role

_CLIENT_ROLES: frozenset[Role] = frozenset({"nurse", "physician", "admin"})
_LAB_ROLES: frozenset[Role] = frozenset({"lab", "admin"})


@dataclass(frozen=True)
class EventType:
    """What the catalogue says about one type: its payload and who may post it over HTTP."""

    payload: type[BaseModel]
    schemas: frozenset[int] = frozenset({1})
    needs_procedure: bool = True
    posted_by: frozenset[Role] = _CLIENT_ROLES  # empty: emitted by a service, never posted


_SYSTEM: frozenset[Role] = frozenset()

CATALOGUE: dict[str, EventType] = {
    "procedure.scheduled": EventType(c.ProcedureScheduled, posted_by=_SYSTEM),
    "procedure.opened": EventType(c.ProcedureOpened),
    "procedure.time_out": EventType(c.ProcedureTimeOut),
    "procedure.closed": EventType(c.ProcedureClosed),
    "sedation.assessed": EventType(c.SedationAssessed),
    "sedation.drug_administered": EventType(c.SedationDrugAdministered),
    "sedation.vitals_recorded": EventType(c.SedationVitalsRecorded),
    "sedation.depth_scored": EventType(c.SedationDepthScored),
    "anaesthesia.local_administered": EventType(c.AnaesthesiaLocalAdministered),
    "recovery.scored": EventType(c.RecoveryScored),
    "recovery.discharged": EventType(c.RecoveryDischarged),
    "harvest.aspiration_performed": EventType(c.HarvestAspirationPerformed),
    "harvest.sample_labelled": EventType(c.HarvestSampleLabelled),
    "custody.handoff": EventType(c.CustodyHandoff, posted_by=_CLIENT_ROLES | _LAB_ROLES),
    "product.lot_released": EventType(
        c.ProductLotReleased, needs_procedure=False, posted_by=_LAB_ROLES
    ),
    "implant.product_verified": EventType(c.ImplantProductVerified),
    "implant.needle_placed": EventType(c.ImplantNeedlePlaced),
    "implant.injected": EventType(c.ImplantInjected),
    "adverse_event.reported": EventType(c.AdverseEventReported),
    "record.corrected": EventType(c.RecordCorrected, posted_by=_CLIENT_ROLES | _LAB_ROLES),
    "record.signed": EventType(c.RecordSigned, posted_by=_CLIENT_ROLES | _LAB_ROLES),
    "imaging.capture_received": EventType(
        c.ImagingCaptureReceived, needs_procedure=False, posted_by=_SYSTEM
    ),
    "imaging.dose_reported": EventType(
        c.ImagingDoseReported, needs_procedure=False, posted_by=_SYSTEM
    ),
    "imaging.capture_unmatched": EventType(
        c.ImagingCaptureUnmatched, needs_procedure=False, posted_by=_SYSTEM
    ),
    "imaging.capture_reconciled": EventType(c.ImagingCaptureReconciled),
    "imaging.association_logged": EventType(
        c.ImagingAssociationLogged, needs_procedure=False, posted_by=_SYSTEM
    ),
    "alert.raised": EventType(c.AlertRaised, needs_procedure=False, posted_by=_SYSTEM),
    "audit.queried": EventType(c.AuditAccessed, needs_procedure=False, posted_by=_SYSTEM),
    "audit.exported": EventType(c.AuditAccessed, needs_procedure=False, posted_by=_SYSTEM),
}


class Actor(Model):
    id: Identifier
    role: Identifier  # clinical role of who did it; a device or a service names itself


class Source(Model):
    kind: Literal["tablet", "dicom", "service"]
    id: Identifier


class EnteredBy(Model):
    """The authenticated user whose token carried the event in (set by the server)."""

    user: Identifier
    role: Role


class Envelope(Model):
    event_id: UUID
    type: str
    schema_version: int = Field(alias="schema", strict=True, ge=1)
    procedure_id: UUID | None = None
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime | None = None
    actor: Actor
    source: Source
    payload: dict[str, Any]
    late: bool | None = None
    entered_by: EnteredBy | None = None

    def to_json(self) -> dict[str, Any]:
        """The envelope as JSON-ready data, with only the keys that were set."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_json())

    @property
    def spec(self) -> EventType:
        return CATALOGUE[self.type]


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidEvent(ValueError):
    """Raised at the edge; names every offending field (dotted path)."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


def field_errors(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "body"
        out.append(FieldError(field=field, message=err["msg"]))
    return out


def check_envelope(raw: object) -> Envelope:
    """The envelope of an event a service already validated in full (payload not re-checked)."""
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(field_errors(exc)) from None
    if envelope.type not in CATALOGUE:
        raise InvalidEvent([FieldError("type", f"unknown event type {envelope.type!r}")])
    return envelope


def parse_event(raw: object) -> Envelope:
    """Validate an envelope and its payload against the catalogue, or raise InvalidEvent."""
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidEvent(field_errors(exc)) from None
    spec = CATALOGUE.get(envelope.type)
    if spec is None:
        raise InvalidEvent([FieldError("type", f"unknown event type {envelope.type!r}")])
    if envelope.schema_version not in spec.schemas:
        raise InvalidEvent(
            [FieldError("schema", f"{envelope.type} has no schema {envelope.schema_version}")]
        )
    if spec.needs_procedure and envelope.procedure_id is None:
        raise InvalidEvent([FieldError("procedure_id", f"{envelope.type} needs a procedure_id")])
    try:
        payload = spec.payload.model_validate(envelope.payload)
    except ValidationError as exc:
        raise InvalidEvent(field_errors(exc, ("payload",))) from None
    normalised = payload.model_dump(mode="json", exclude_unset=True)
    return envelope.model_copy(update={"payload": normalised})


def decode_event(body: bytes) -> Envelope:
    """Decode a bus body (orjson) into a validated envelope."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent([FieldError("body", f"not JSON: {exc}")]) from None
    return parse_event(raw)


SERVER_FIELDS = frozenset({"recorded_at", "late", "entered_by"})


def content_sha256(event: dict[str, Any]) -> str:
    """What a client said in an event (server-set fields left out), hashed canonically."""
    client = {k: v for k, v in event.items() if k not in SERVER_FIELDS}
    return hashlib.sha256(orjson.dumps(client, option=orjson.OPT_SORT_KEYS)).hexdigest()


def signed_content_sha256(digests: dict[str, str]) -> str:
    """What a signature binds: the signed events' content digests, by event_id."""
    pairs = sorted(digests.items())
    return hashlib.sha256(orjson.dumps(pairs)).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """UTC in the form the envelope itself is serialised in (`…Z`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

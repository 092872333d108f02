"""What audit answers, one model per JSON body: its OpenAPI document is built from them, and
the tests check every answer the service gives against them.

The ledger keeps a rejected event as it was sent, so what an entry or a timeline event says
of the event itself (`event`, `type`, `actor`, `payload`...) is typed loosely: an accepted
event is an envelope of the contract, a rejected one whatever the client sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from shared.openapi import Absent, Answer, Base64

Disposition = Literal["accepted", "rejected"]


class Health(Answer):
    status: Literal["ok"]


class LedgerEntry(Answer):
    seq: int = Field(ge=0)
    leaf: Base64 = Field(description="what the ledger hashed: the record's JSON")
    leaf_hash: Base64 = Field(description="SHA-256(0x00 || leaf), RFC 9162")
    event: dict[str, Any] = Field(description="the event as recorded (rejected: as sent)")
    disposition: Disposition
    reason: str | Absent = Field(default=None, description="why it was rejected")


class Entries(Answer):
    entries: list[LedgerEntry] = Field(description="in sequence order")
    next_after_seq: int | None = Field(description="after_seq for the next page, if any")


class Correction(Answer):
    event_id: str
    seq: int
    reason: Any
    changes: Any = Field(description="field -> {old, new}")
    by: Any = Field(description="who entered the correction (user and role)")
    recorded_at: Any


class TimelineSignature(Answer):
    event_id: str
    seq: int
    signer_id: Any
    meaning: Any
    recorded_at: Any
    signed_sha256: Any
    binding: Literal["intact", "mismatch", "unchecked"] = Field(
        description="whether its hash matches the signed events exactly as recorded"
    )
    valid: bool = Field(description="false once a signed event was corrected after it")
    invalidated_by_corrections_of: list[str] | Absent = None


class Original(Answer):
    """How a corrected event was first recorded."""

    payload: Any
    occurred_at: Any
    actor: Any


class TimelineEvent(Answer):
    seq: int
    event_id: str
    type: Any
    occurred_at: Any
    recorded_at: Any
    actor: Any
    source: Any
    disposition: Disposition
    payload: Any = Field(description="as it now reads, corrections applied")
    late: Any = None
    entered_by: Any = None
    rejection_reason: str | Absent = None
    corrects: str | Absent = Field(default=None, description="the event this one corrects")
    original: Original | Absent = None
    corrections: list[Correction] | Absent = None
    signatures: list[TimelineSignature] | Absent = None


class TimelineCheckpoint(Answer):
    tree_size: int
    root: Base64
    note: str = Field(description="the signed note (C2SP signed-note form)")


class Timeline(Answer):
    procedure_id: str
    checkpoint: TimelineCheckpoint = Field(description="the events are those inside it")
    events: list[TimelineEvent] = Field(description="in clinical order")


class Verification(Answer):
    intact: bool
    size: int
    root: Base64 | None
    checkpoints_compared: int
    signatures: int
    problem: str = Field(description="what is wrong, empty when intact")
    first_bad_seq: int | None


class InclusionProof(Answer):
    leaf_index: int
    tree_size: int
    hashes: list[Base64] = Field(description="RFC 9162 inclusion proof, leaf to root")


class ConsistencyProof(Answer):
    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    hashes: list[Base64] = Field(description="RFC 9162 consistency proof")


class FhirResource(Answer):
    model_config = ConfigDict(extra="allow")

    resourceType: Literal["Binary", "AuditEvent", "Provenance"]


class FhirEntry(Answer):
    fullUrl: str
    resource: FhirResource


class FhirIdentifier(Answer):
    system: str
    value: str = Field(description="<tree_size>:<base64 root> of the checkpoint")


class FhirBundle(Answer):
    """A FHIR R4 Bundle of type collection (the export's layout: services.audit.export_fhir)."""

    resourceType: Literal["Bundle"]
    type: Literal["collection"]
    identifier: FhirIdentifier
    timestamp: AwareDatetime | Absent = None
    entry: list[FhirEntry]

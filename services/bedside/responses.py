"""What bedside answers, one model per JSON body: its OpenAPI document is built from them, and
the tests check every answer the service gives against them."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from shared.events import Envelope, Phase, Role
from shared.events._types import PatientRef, Target
from shared.openapi import Absent, Answer


class Health(Answer):
    status: Literal["ok"]
    broker_connected: bool


class ProcedureCreated(Answer):
    procedure_id: UUID


class EventAccepted(Answer):
    event_id: UUID
    recorded_at: AwareDatetime = Field(description="the server's time when it first took it")
    late: bool = Field(description="entered later than the clinic's late-entry threshold")


class NewSampleId(Answer):
    sample_id: str
    scheme: str = Field(description="the configured sample id scheme")


class ScheduledProcedure(Answer):
    procedure_id: UUID
    phase: Phase
    patient: PatientRef
    room: str
    accession_number: str | None
    scheduled_start: AwareDatetime | None
    scheduled_at: AwareDatetime
    planned_targets: list[Target] | None


class Procedures(Answer):
    procedures: list[ScheduledProcedure] = Field(description="newest first")


class PostableType(Answer):
    payload_schema: dict[str, Any] = Field(alias="schema", description="the payload's JSON schema")
    needs_procedure: bool
    yours: bool = Field(description="this token's role may post it")


class Catalogue(Answer):
    types: dict[str, PostableType] = Field(description="every type a tablet may post, by name")
    levels: list[str] = Field(description="the spinal levels, in anatomical order")
    role: Role
    user: str
    late_after_s: float


class DrugTotal(Answer):
    drug: str
    unit: str
    total: float
    doses: int
    per_kg: float | None = Field(description="null until the weight is known")


class Alert(Answer):
    event_id: str
    occurred_at: AwareDatetime
    code: str
    severity: str
    message: str


class ProcedureState(Answer):
    procedure_id: str
    stage: str
    weight_kg: float | None
    sedated: bool
    last_vitals_at: AwareDatetime | None
    vitals_overdue: str | None = Field(description="why vitals are overdue, if they are")
    drugs: list[DrugTotal]
    alerts: list[Alert] = Field(description="raised by harvest and implant, in time order")


class Reconciled(Answer):
    procedure_id: UUID
    by: str
    at: AwareDatetime


class UnmatchedCapture(Envelope):
    """The `imaging.capture_unmatched` event as the ledger recorded it, and its settlement."""

    reconciled: Reconciled | Absent = None


class UnmatchedCaptures(Answer):
    captures: list[UnmatchedCapture] = Field(description="newest first")

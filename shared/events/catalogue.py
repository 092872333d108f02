"""The event catalogue of the contract: one payload model per event type."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from shared.events._types import (
    Count,
    DoseUnit,
    Identifier,
    Level,
    LumbarVertebrae,
    Model,
    NonNegative,
    Number,
    PatientRef,
    Phase,
    Positive,
    Target,
    Text,
    Uid,
    check_convention,
)


class ProcedureScheduled(Model):
    phase: Phase
    patient: PatientRef
    room: Identifier
    accession_number: Identifier | None = None
    scheduled_start: AwareDatetime | None = None
    planned_targets: list[Target] | None = None
    # A repeat session continues an earlier procedure (cord every ~6 months, muscles every
    # 6-8 weeks): the link lets the record follow one treatment across its sessions.
    follows_procedure_id: UUID | None = None


class ProcedureOpened(Model):
    room: Identifier
    operator_id: Identifier
    monitoring_nurse_id: Identifier


class ProcedureTimeOut(Model):
    patient_confirmed: bool
    procedure_confirmed: bool
    site_confirmed: bool
    consent_confirmed: bool
    targets: list[Level]
    lumbar_vertebrae: LumbarVertebrae | None = None  # the counting convention, when not 5

    @model_validator(mode="after")
    def _levels_exist(self) -> ProcedureTimeOut:
        check_convention(list(self.targets), self.lumbar_vertebrae)
        return self


class ProcedureClosed(Model):
    outcome: Literal["completed", "aborted"]
    reason: Text | None = None


class SedationAssessed(Model):
    asa_class: int = Field(strict=True, ge=1, le=6)
    emergency: bool
    weight_kg: Positive
    fasting_hours: NonNegative
    airway: Text
    allergies: list[Text]


class SedationDrugAdministered(Model):
    drug: Text
    dose: Positive
    unit: DoseUnit
    route: Identifier
    given_by: Identifier


class SedationVitalsRecorded(Model):
    spo2_pct: NonNegative | None = Field(default=None, le=100)
    heart_rate_bpm: NonNegative | None = None
    bp_systolic_mmhg: NonNegative | None = None
    bp_diastolic_mmhg: NonNegative | None = None
    resp_rate_per_min: NonNegative | None = None
    etco2_mmhg: NonNegative | None = None
    source: Literal["manual", "monitor"]
    artifact: bool

    @model_validator(mode="after")
    def _at_least_one_vital(self) -> SedationVitalsRecorded:
        vitals = (
            self.spo2_pct,
            self.heart_rate_bpm,
            self.bp_systolic_mmhg,
            self.bp_diastolic_mmhg,
            self.resp_rate_per_min,
            self.etco2_mmhg,
        )
        if all(v is None for v in vitals):
            raise ValueError("at least one vital sign is required")
        return self


_DEPTH_RANGES = {"RASS": (-5, 4), "Ramsay": (1, 6), "MOAA/S": (0, 5)}
_RECOVERY_RANGES = {"Aldrete": (0, 10), "PADSS": (0, 10)}


def _in_range(scale: str, score: int, ranges: dict[str, tuple[int, int]]) -> None:
    low, high = ranges[scale]
    if not low <= score <= high:
        raise ValueError(f"score {score} is outside {scale} ({low} to {high})")


class SedationDepthScored(Model):
    scale: Literal["RASS", "Ramsay", "MOAA/S"]
    score: int = Field(strict=True)

    @model_validator(mode="after")
    def _score_fits_scale(self) -> SedationDepthScored:
        _in_range(self.scale, self.score, _DEPTH_RANGES)
        return self


class AnaesthesiaLocalAdministered(Model):
    agent: Text
    concentration_pct: NonNegative = Field(le=100)
    volume_ml: Positive
    site: Text


class RecoveryScored(Model):
    scale: Literal["Aldrete", "PADSS"]
    score: int = Field(strict=True)

    @model_validator(mode="after")
    def _score_fits_scale(self) -> RecoveryScored:
        _in_range(self.scale, self.score, _RECOVERY_RANGES)
        return self


class RecoveryDischarged(Model):
    escort: Text
    condition: Text


class HarvestAspirationPerformed(Model):
    tissue: Literal["bone_marrow", "adipose"]
    site: Text
    side: Literal["left", "right", "bilateral", "midline"]
    passes: int = Field(strict=True, ge=1)
    volume_ml: Positive
    anticoagulant: Text
    guidance: Literal["fluoroscopy", "ultrasound", "ct", "none"]


class HarvestSampleLabelled(Model):
    sample_id: Identifier
    volume_ml: Positive
    collected_at: AwareDatetime


class CustodyHandoff(Model):
    item_id: Identifier
    from_party: Identifier
    to_party: Identifier
    temperature_c: Number | None = None
    condition: Text


class ProductLotReleased(Model):
    lot_id: Identifier
    sample_id: Identifier
    patient: PatientRef
    cell_type: Text
    cell_count: Positive
    viability_pct: NonNegative = Field(le=100)
    sterility: Text
    endotoxin: Text
    mycoplasma: Text
    expires_at: AwareDatetime
    released_by: Identifier


class ImplantProductVerified(Model):
    lot_id: Identifier
    patient_id_scanned: Identifier
    # [first, second]. One name is a clinical fact, not bad input: the implant service records
    # it and raises chain_of_identity_mismatch.
    verifier_ids: list[Identifier] = Field(min_length=1, max_length=2)


class Contrast(Model):
    agent: Text
    volume_ml: Positive


class ImplantNeedlePlaced(Model):
    target: Target
    approach: Text
    needle_gauge: int = Field(strict=True, ge=10, le=34)
    needle_length_mm: Positive
    confirming_sop_instance_uids: list[Uid]
    contrast: Contrast | None = None


class ImplantInjected(Model):
    target: Target
    lot_id: Identifier
    volume_ml: Positive
    cell_count: Positive


class AdverseEventReported(Model):
    term: Text
    grade: int = Field(strict=True, ge=1, le=5)
    serious: bool
    serious_criteria: list[
        Literal[
            "death",
            "life_threatening",
            "hospitalisation",
            "disability",
            "congenital_anomaly",
            "other_medically_important",
        ]
    ]
    expected: bool
    onset_at: AwareDatetime
    suspected_cause: Literal["sedation", "procedure", "contrast", "product", "unknown"]
    action_taken: Text
    outcome: Text
    related_procedure_id: UUID | None = None
    related_lot_id: Identifier | None = None

    @model_validator(mode="after")
    def _serious_has_criteria(self) -> AdverseEventReported:
        if self.serious and not self.serious_criteria:
            raise ValueError("a serious adverse event names at least one serious criterion")
        return self


class Change(Model):
    old: Any
    new: Any


class RecordCorrected(Model):
    supersedes: UUID
    reason: Text
    changes: dict[str, Change] = Field(min_length=1)


class RecordSigned(Model):
    event_ids: list[UUID] = Field(min_length=1)
    meaning: Literal["authored", "reviewed", "approved"]
    signer_id: Identifier
    # SHA-256 over exactly what was signed (see shared.events.signed_content_sha256); bedside
    # sets it after re-authenticating the signer, a client may send it to pin what it showed.
    signed_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class ImagingCaptureReceived(Model):
    model_config = ConfigDict(extra="allow", frozen=True)  # plus the modality's own fields

    sop_class_uid: Uid
    sop_instance_uid: Uid
    study_instance_uid: Uid | None = None  # Type 1 in DICOM, but kept even when absent
    series_instance_uid: Uid | None = None
    modality: Identifier
    accession_number: Identifier | None = None
    patient_id: Identifier | None = None
    acquired_at: AwareDatetime | None = None
    calling_ae: Identifier
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: Count


class ImagingDoseReported(Model):
    sop_instance_uid: Uid
    scope: Text
    dap_total_gy_m2: NonNegative | None = None
    dose_rp_total_gy: NonNegative | None = None
    fluoro_time_s: NonNegative | None = None
    frames: Count | None = None
    ctdivol_mgy: NonNegative | None = None
    dlp_total_mgy_cm: NonNegative | None = None
    original: dict[str, Any]
    reconciled_by: UUID | None = None  # re-announced under the procedure a nurse chose


class ImagingCaptureUnmatched(Model):
    """A capture no open procedure claims. The rest says what a nurse needs to reconcile it."""

    sop_instance_uid: Uid
    reason: Text
    capture_event_id: UUID | None = None  # its imaging.capture_received
    modality: Identifier | None = None
    calling_ae: Identifier | None = None
    station_name: Text | None = None
    acquired_at: AwareDatetime | None = None
    patient_id: Identifier | None = None
    accession_number: Identifier | None = None
    study_instance_uid: Uid | None = None


class ImagingCaptureReconciled(Model):
    sop_instance_uid: Uid
    procedure_id: UUID
    reason: Text


class ImagingAssociationLogged(Model):
    """An access event: one DICOM association, accepted or not (who, from where, what)."""

    calling_ae: Text
    called_ae: Text
    peer_address: Text
    peer_port: Count
    outcome: Literal["released", "aborted", "rejected"]
    tls: bool
    objects_stored: Count
    objects_refused: Count
    reason: Text | None = None


class AlertRaised(Model):
    code: Identifier
    severity: Literal["info", "warning", "critical"]
    message: Text
    event_ids: list[UUID]


class AuditAccessed(Model):
    filters: dict[str, Any]
    rows: Count
    format: Identifier | None = None

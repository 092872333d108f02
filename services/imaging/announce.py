"""What the ledger hears about one received object: its capture, its dose report, whether it
matched a procedure, and a dose alert when the patient's total crosses a threshold."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.imaging.config import ImagingSettings
from services.imaging.dose import DoseReport
from services.imaging.files import StoredObject
from services.imaging.store import ImagingStore, KnownProcedure, OutboxMessage
from shared.bus import routing_key
from shared.bus.topology import AUDIT, EVENTS, UNMATCHED
from shared.events import Envelope, parse_event, utcnow
from shared.events.record import accepted

EVENT_NAMESPACE = uuid.UUID("6f1b0c55-4a57-4f0e-9d8e-2b8f3c1e7a10")


def derived_id(kind: str, sop_instance_uid: str, sha256: str) -> str:
    """Stable per object content: a resend of the same object carries the same event ids."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{kind}:{sop_instance_uid}:{sha256}"))


@dataclass(frozen=True)
class Announcement:
    messages: list[OutboxMessage]
    match: KnownProcedure | None
    matched_by: str | None
    dose: tuple[str, float, float, float] | None  # patient, DAP Gy·m², RP Gy, DLP mGy·cm
    dose_event_id: str | None


class Announcer:
    def __init__(self, store: ImagingStore, settings: ImagingSettings) -> None:
        self.store = store
        self.settings = settings

    def announce(
        self,
        fields: dict[str, Any],
        calling_ae: str,
        stored: StoredObject,
        dose: DoseReport | None,
    ) -> Announcement:
        now = utcnow()
        sop = fields["sop_instance_uid"]
        match, matched_by = self._match(fields, calling_ae)
        base = {
            "schema": 1,
            "occurred_at": fields.get("acquired_at") or now.isoformat(),
            "recorded_at": now.isoformat(),
            "actor": {"id": calling_ae, "role": "device"},
            "source": {"kind": "dicom", "id": calling_ae},
            "procedure_id": match.procedure_id if match else None,
        }
        received_id = derived_id("received", sop, stored.sha256)
        events = [
            parse_event(
                {**base, "event_id": received_id, "type": "imaging.capture_received",
                 "payload": self._capture(fields, calling_ae, stored, matched_by)}
            )
        ]  # fmt: skip
        dose_event_id = None
        if dose is not None:
            dose_event_id = derived_id("dose", sop, stored.sha256)
            events.append(
                parse_event(
                    {**base, "event_id": dose_event_id, "type": "imaging.dose_reported",
                     "payload": dose.payload(sop)}
                )
            )  # fmt: skip
        if match is None:
            events.append(
                parse_event(
                    {**base, "event_id": derived_id("unmatched", sop, stored.sha256),
                     "type": "imaging.capture_unmatched",
                     "payload": _unmatched(fields, calling_ae, received_id)}
                )
            )  # fmt: skip
        return Announcement(
            [self.message(e, match, now) for e in events],
            match,
            matched_by,
            _dose_totals(fields.get("patient_id"), dose),
            dose_event_id,
        )

    def _match(
        self, fields: dict[str, Any], calling_ae: str
    ) -> tuple[KnownProcedure | None, str | None]:
        """The one open procedure the object belongs to (and how it was found), if any; its
        study then joins that procedure."""
        acquired = fields.get("acquired_at")
        found = self.store.match(
            fields.get("accession_number"),
            fields.get("study_instance_uid"),
            fields.get("patient_id"),
            self.settings.ae_rooms.get(calling_ae),
            datetime.fromisoformat(acquired) if acquired else None,
            self.settings.match_window_h,
        )
        if found is None:
            return None, None
        match, matched_by = found
        if "study_instance_uid" in fields:
            self.store.link_study(fields["study_instance_uid"], match.procedure_id)
        return match, matched_by

    def _capture(
        self,
        fields: dict[str, Any],
        calling_ae: str,
        stored: StoredObject,
        matched_by: str | None,
    ) -> dict[str, Any]:
        """The payload of `imaging.capture_received`."""
        payload = {**fields, "calling_ae": calling_ae, "sha256": stored.sha256,
                   "size_bytes": stored.size_bytes}  # fmt: skip
        payload["stored_as"] = str(stored.path.relative_to(self.store.root))
        if stored.conflicts_with:
            payload["uid_conflict_with_sha256"] = stored.conflicts_with
        if matched_by:
            payload["matched_by"] = matched_by
        return payload

    def message(self, event: Envelope, match: KnownProcedure | None, at: datetime) -> OutboxMessage:
        """Matched: to the procedure's phase service. Otherwise already stamped for the ledger,
        under `unmatched.` (the topology takes it to AUDIT, and bedside's reconciliation list
        reads the capture_unmatched ones)."""
        if match is not None:
            key = routing_key(match.phase, event.type)
            return OutboxMessage(str(event.event_id), EVENTS, key, event.to_bytes())
        record = accepted(event, "imaging", at)
        key = routing_key(UNMATCHED, event.type)
        return OutboxMessage(str(event.event_id), EVENTS, key, record.to_bytes())

    @staticmethod
    def to_ledger(event: Envelope, at: datetime) -> OutboxMessage:
        """Straight to the ledger (an access event: it belongs to no procedure)."""
        record = accepted(event, "imaging", at)
        return OutboxMessage(str(event.event_id), AUDIT, event.type, record.to_bytes())

    def dose_alerts(
        self,
        announcement: Announcement,
        before: tuple[float, float, float],
        after: tuple[float, float, float],
    ) -> list[OutboxMessage]:
        """An alert for each total that this report carried across its threshold."""
        assert announcement.dose is not None
        assert announcement.dose_event_id is not None
        patient = announcement.dose[0]
        s = self.settings
        limits = (  # (what, limit, index in the totals, unit)
            ("dose-area product", s.dose_threshold_dap_gy_m2, 0, "Gy·m²"),
            ("reference-point air kerma", s.dose_threshold_rp_gy, 1, "Gy"),
            ("CT dose-length product", s.dose_threshold_dlp_mgy_cm, 2, "mGy·cm"),
        )
        crossed = [
            f"{name} {after[i]:.4g} {unit} ≥ {limit:g} {unit}"
            for name, limit, i, unit in limits
            if before[i] < limit <= after[i]
        ]
        if not crossed:
            return []
        now = utcnow()
        match = announcement.match
        alert = parse_event(
            {
                "event_id": str(uuid.uuid5(EVENT_NAMESPACE, f"alert:{announcement.dose_event_id}")),
                "type": "alert.raised",
                "schema": 1,
                "procedure_id": match.procedure_id if match else None,
                "occurred_at": now,
                "recorded_at": now,
                "actor": {"id": "imaging", "role": "service"},
                "source": {"kind": "service", "id": "imaging"},
                "payload": {
                    "code": "dose_threshold",
                    "severity": "warning",
                    "message": f"patient {patient}: cumulative " + "; ".join(crossed),
                    "event_ids": [announcement.dose_event_id],
                },
            }
        )
        return [self.message(alert, match, now)]


# What a capture_unmatched repeats from its capture, for the nurse who reconciles it.
_TO_RECONCILE = ("modality", "station_name", "acquired_at", "patient_id", "accession_number",
                 "study_instance_uid")  # fmt: skip


def _unmatched(fields: dict[str, Any], calling_ae: str, capture_event_id: str) -> dict[str, Any]:
    """The payload of `imaging.capture_unmatched`."""
    return {
        "sop_instance_uid": fields["sop_instance_uid"],
        "reason": _unmatched_reason(fields),
        "capture_event_id": capture_event_id,
        "calling_ae": calling_ae,
        **{k: fields[k] for k in _TO_RECONCILE if fields.get(k)},
    }


def _dose_totals(
    patient: str | None, dose: DoseReport | None
) -> tuple[str, float, float, float] | None:
    """What this report adds to the patient's totals (none without a patient ID)."""
    if dose is None or not patient:
        return None
    return patient, dose.dap_gy_m2 or 0.0, dose.dose_rp_gy or 0.0, dose.dlp_mgy_cm or 0.0


def _unmatched_reason(fields: dict[str, Any]) -> str:
    accession = fields.get("accession_number")
    patient = fields.get("patient_id")
    if accession is None and patient is None:
        return "no accession number and no patient ID"
    return (
        f"no single open procedure for accession {accession or '(none)'},"
        f" study {fields.get('study_instance_uid')} or patient {patient or '(none)'}"
    )

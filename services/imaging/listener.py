"""The DICOM listener: C-ECHO and C-STORE SCP. Success means stored durably and announced.

For each C-STORE: the object (streamed to disk by pynetdicom) is fsynced and renamed under
its SHA-256, the capture event goes into the outbox, then it is published with a confirm.
Only then is 0x0000 returned. If the broker does not confirm in time the answer is 0xA700
(out of resources) so the modality sends again; the outbox still publishes the event later,
and the event_id (derived from SOP Instance UID + SHA-256) makes the resend a no-op.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import structlog
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    VerificationPresentationContexts,
    _config,
    evt,
)
from pynetdicom.events import EventHandlerType

from services.imaging.extract import capture_fields
from services.imaging.store import ImagingDb, ObjectStore, OutboxMessage
from shared.bus import Bus, BusError, Delivery, Settle, routing_key
from shared.bus.topology import AUDIT, EVENTS
from shared.config import Settings
from shared.events import InvalidEvent, decode_event, parse_event, utcnow
from shared.events.record import accepted

log = structlog.get_logger("imaging")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
EVENT_NAMESPACE = uuid.UUID("6f1b0c55-4a57-4f0e-9d8e-2b8f3c1e7a10")


def capture_event_id(sop_instance_uid: str, sha256: str, kind: str = "received") -> str:
    """Stable per object content: a resend of the same object carries the same event_id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{kind}:{sop_instance_uid}:{sha256}"))


class Listener:
    def __init__(self, settings: Settings, bus: Bus, db: ImagingDb, objects: ObjectStore) -> None:
        self.settings = settings
        self.bus = bus
        self.db = db
        self.objects = objects

    def build_ae(self) -> AE:
        _config.STORE_RECV_CHUNKED_DATASET = True
        tempfile.tempdir = str(self.objects.incoming)  # pynetdicom streams objects here
        ae = AE(ae_title=self.settings.dicom_ae_title)
        ae.maximum_pdu_size = 0
        ae.maximum_associations = 20
        if self.settings.dicom_allowed_aets:
            ae.require_calling_aet = list(self.settings.dicom_allowed_aets)
        else:
            log.warning("no PROCTRAIL_DICOM_ALLOWED_AETS: any calling AE title is accepted")
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        for context in VerificationPresentationContexts:
            assert context.abstract_syntax is not None
            ae.add_supported_context(context.abstract_syntax)
        return ae

    def handlers(self) -> list[EventHandlerType]:
        return [(evt.EVT_C_STORE, self.on_store), (evt.EVT_C_ECHO, self.on_echo)]

    def on_echo(self, event: Any) -> int:
        log.info("C-ECHO", calling_ae=event.assoc.requestor.ae_title)
        return SUCCESS

    def on_store(self, event: Any) -> int:
        calling_ae = str(event.assoc.requestor.ae_title).strip()
        structlog.contextvars.clear_contextvars()
        received = Path(event.dataset_path)
        try:
            ds = dcmread(received, stop_before_pixels=True)
            fields = capture_fields(ds)
        except (InvalidDicomError, AttributeError, ValueError, KeyError) as exc:
            log.error(
                "C-STORE refused: cannot read the object", calling_ae=calling_ae, error=str(exc)
            )
            return CANNOT_UNDERSTAND
        try:
            stored = self.objects.keep(received)
            messages = self._announce(fields, calling_ae, stored.sha256, stored.size_bytes)
            self.db.add_to_outbox(messages)
        except (OSError, sqlite3.Error) as exc:
            log.error(
                "C-STORE refused: cannot store the object durably",
                error=str(exc),
                sop_instance_uid=fields["sop_instance_uid"],
                calling_ae=calling_ae,
            )
            return OUT_OF_RESOURCES
        try:
            futures = [
                self.bus.publish(m.exchange, m.routing_key, m.body, message_id=m.message_id)
                for m in messages
            ]
            for future in futures:
                future.result(self.settings.publish_timeout_s)
        except (BusError, FutureTimeout) as exc:
            log.warning(
                "stored, not yet announced; the outbox will retry",
                error=str(exc) or "no confirm in time",
                sop_instance_uid=fields["sop_instance_uid"],
            )
            return OUT_OF_RESOURCES
        self.db.mark_sent([m.message_id for m in messages])
        log.info(
            "C-STORE stored",
            sop_instance_uid=fields["sop_instance_uid"],
            modality=fields["modality"],
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            calling_ae=calling_ae,
        )
        return SUCCESS

    def _announce(
        self, fields: dict[str, Any], calling_ae: str, sha256: str, size: int
    ) -> list[OutboxMessage]:
        now = utcnow()
        sop = fields["sop_instance_uid"]
        match = self.db.match(fields.get("accession_number"), fields.get("patient_id"))
        event_id = capture_event_id(sop, sha256)
        structlog.contextvars.bind_contextvars(
            event_id=event_id, procedure_id=match.procedure_id if match else None
        )
        base = {
            "schema": 1,
            "occurred_at": fields.get("acquired_at", now.isoformat()),
            "recorded_at": now.isoformat(),
            "actor": {"id": calling_ae, "role": "device"},
            "source": {"kind": "dicom", "id": calling_ae},
        }
        capture = parse_event(
            {
                **base,
                "event_id": event_id,
                "type": "imaging.capture_received",
                "procedure_id": match.procedure_id if match else None,
                "payload": {
                    **fields,
                    "calling_ae": calling_ae,
                    "sha256": sha256,
                    "size_bytes": size,
                },
            }
        )
        if match is not None:
            return [
                OutboxMessage(
                    event_id, EVENTS, routing_key(match.phase, capture.type), capture.to_bytes()
                )
            ]
        # No procedure owns it yet: straight to the ledger, with a note for reconciliation.
        unmatched = parse_event(
            {
                **base,
                "event_id": capture_event_id(sop, sha256, "unmatched"),
                "type": "imaging.capture_unmatched",
                "payload": {"sop_instance_uid": sop, "reason": _unmatched_reason(fields)},
            }
        )
        log.warning("capture matches no open procedure", sop_instance_uid=sop)
        return [
            OutboxMessage(str(e.event_id), AUDIT, e.type, accepted(e, "imaging", now).to_bytes())
            for e in (capture, unmatched)
        ]


def _unmatched_reason(fields: dict[str, Any]) -> str:
    accession = fields.get("accession_number")
    patient = fields.get("patient_id")
    if accession is None and patient is None:
        return "no accession number and no patient ID"
    return (
        f"no single open procedure for accession {accession or '(none)'}"
        f" or patient {patient or '(none)'}"
    )


class Relay:
    """Publishes what the outbox still holds (broker was down when the object arrived)."""

    def __init__(self, bus: Bus, db: ImagingDb, timeout_s: float, every_s: float = 2.0) -> None:
        self.bus = bus
        self.db = db
        self.timeout_s = timeout_s
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="imaging-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if self.bus.connected:
                self.flush()

    def flush(self) -> int:
        pending = self.db.unsent(older_than_s=self.timeout_s * 2)
        sent = []
        try:
            futures = [
                (m, self.bus.publish(m.exchange, m.routing_key, m.body, message_id=m.message_id))
                for m in pending
            ]
            for m, future in futures:
                future.result(self.timeout_s)
                sent.append(m.message_id)
        except (BusError, FutureTimeout) as exc:
            log.warning("outbox relay paused", error=str(exc) or "no confirm in time")
        self.db.mark_sent(sent)
        if sent:
            log.info("outbox relayed", count=len(sent))
        return len(sent)


class ProcedureIndex:
    """Keeps imaging's own list of open procedures from `*.procedure.*` events (q.imaging)."""

    def __init__(self, db: ImagingDb) -> None:
        self.db = db

    def handle(self, batch: Sequence[Delivery]) -> list[Settle]:
        out = []
        for delivery in batch:
            try:
                envelope = decode_event(delivery.body)
            except InvalidEvent as exc:
                log.error(
                    "unreadable procedure event sent to the dead-letter queue",
                    message_id=delivery.message_id,
                    error=str(exc),
                )
                out.append(Settle.DEAD)
                continue
            procedure_id = str(envelope.procedure_id)
            if envelope.type == "procedure.scheduled":
                p = envelope.payload
                self.db.index_procedure(
                    procedure_id, p["phase"], p["patient"]["id"], p.get("accession_number")
                )
                log.info(
                    "procedure indexed for matching",
                    procedure_id=procedure_id,
                    event_id=str(envelope.event_id),
                )
            elif envelope.type == "procedure.closed":
                self.db.close_procedure(procedure_id)
                log.info(
                    "procedure closed for matching",
                    procedure_id=procedure_id,
                    event_id=str(envelope.event_id),
                )
            out.append(Settle.ACK)
        return out

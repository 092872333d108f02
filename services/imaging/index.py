"""imaging's own view of the procedures it can match captures to (from q.imaging)."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from services.imaging.store import ImagingStore
from shared.bus import Delivery, Settle
from shared.events import InvalidEvent, decode_event

log = structlog.get_logger("imaging")


class ProcedureIndex:
    """`*.procedure.*` open and close what may match; a reconciliation settles a capture."""

    def __init__(self, store: ImagingStore) -> None:
        self.store = store

    def handle(self, batch: Sequence[Delivery]) -> list[Settle]:
        out = []
        for delivery in batch:
            try:
                envelope = decode_event(delivery.body)
            except InvalidEvent as exc:
                log.error("unreadable event sent to the dead-letter queue",
                          message_id=delivery.message_id, error=str(exc))  # fmt: skip
                out.append(Settle.DEAD)
                continue
            procedure_id = str(envelope.procedure_id)
            ids = {"procedure_id": procedure_id, "event_id": str(envelope.event_id)}
            p = envelope.payload
            if envelope.type == "procedure.scheduled":
                self.store.index_procedure(
                    procedure_id, p["phase"], p["patient"]["id"], p.get("accession_number"),
                    p.get("room"), p.get("scheduled_start"),
                )  # fmt: skip
                log.info("procedure indexed for matching", **ids)
            elif envelope.type == "procedure.closed":
                self.store.close_procedure(procedure_id)
                log.info("procedure closed for matching", **ids)
            elif envelope.type == "imaging.capture_reconciled":
                self.store.reconciled(p["sop_instance_uid"], p["procedure_id"])
                log.info("capture reconciled", sop_instance_uid=p["sop_instance_uid"], **ids)
            out.append(Settle.ACK)
        return out

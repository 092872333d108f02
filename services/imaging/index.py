"""imaging's own view of the procedures it can match captures to (from q.imaging), and the
captures a nurse reconciled to a procedure."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog

from services.imaging.announce import EVENT_NAMESPACE, derived_id
from services.imaging.store import ImagingStore, OutboxMessage
from shared.bus import Delivery, Settle, routing_key
from shared.bus.topology import EVENTS
from shared.events import Envelope, InvalidEvent, decode_event, parse_event, utcnow

log = structlog.get_logger("imaging")


class ProcedureIndex:
    """`*.procedure.*` open and close what may match; a reconciliation settles a capture.

    Its store's outage errors reach the bus, which holds the batch (imaging subscribes with
    `transient=UNAVAILABLE`)."""

    def __init__(self, store: ImagingStore, wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.wake = wake  # the relay: queued messages are waiting

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
                phase = delivery.routing_key.split(".", 1)[0]
                messages = self.attributed(envelope, phase)
                self.store.reconciled(p["sop_instance_uid"], str(p["procedure_id"]), messages)
                self.wake()
                log.info("capture reconciled", sop_instance_uid=p["sop_instance_uid"],
                         announced=len(messages), **ids)  # fmt: skip
            out.append(Settle.ACK)
        return out

    def attributed(self, reconciliation: Envelope, phase: str) -> list[OutboxMessage]:
        """The capture's events again, now under the procedure a nurse reconciled it to, so
        that procedure's rules (needle confirmation) and timeline count it. Each names the
        reconciliation; its id is derived, so a redelivery queues nothing new."""
        sop = str(reconciliation.payload["sop_instance_uid"])
        procedure_id = str(reconciliation.payload["procedure_id"])
        versions = self.store.stored_versions(sop)
        ids = [derived_id(kind, sop, sha) for sha in versions for kind in ("received", "dose")]
        out = []
        for body in self.store.announced(ids) if ids else []:
            original: dict[str, Any] = orjson.loads(body)
            original = original.get("event", original)  # unmatched ones went as ledger records
            if original.get("procedure_id") == procedure_id:
                continue  # it matched this procedure already
            name = f"attributed:{original['event_id']}:{procedure_id}"
            event_id = uuid.uuid5(EVENT_NAMESPACE, name)
            event = parse_event({
                **original, "event_id": str(event_id), "procedure_id": procedure_id,
                "recorded_at": utcnow(),
                "payload": {**original["payload"], "reconciled_by": str(reconciliation.event_id)},
            })  # fmt: skip
            key = routing_key(phase, event.type)
            out.append(OutboxMessage(str(event.event_id), EVENTS, key, event.to_bytes()))
        return out

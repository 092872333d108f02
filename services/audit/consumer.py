"""Append what arrives on q.audit to the ledger, a batch per transaction, then ack the batch."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from services.audit.ledger import Ledger
from shared.bus import Delivery, Settle
from shared.events import InvalidEvent
from shared.events.record import AuditRecord, decode_record

log = structlog.get_logger("audit")


class Appender:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def handle(self, batch: Sequence[Delivery]) -> list[Settle]:
        settles = [Settle.DEAD] * len(batch)
        good: list[tuple[int, AuditRecord]] = []
        for i, delivery in enumerate(batch):
            try:
                good.append((i, decode_record(delivery.body)))
            except InvalidEvent as exc:
                log.error(
                    "unreadable audit record sent to the dead-letter queue",
                    message_id=delivery.message_id,
                    error=str(exc),
                )
        # The database down: an OperationalError, which audit subscribes as transient, so the
        # bus holds the batch and hands it over again.
        seqs = self.ledger.append([record for _, record in good])
        appended = [seq for seq in seqs if seq is not None]
        for (i, record), seq in zip(good, seqs, strict=True):
            settles[i] = Settle.ACK
            log.debug(
                "appended" if seq is not None else "already in the ledger",
                seq=seq,
                event_id=record.event_id,
                procedure_id=record.event.get("procedure_id"),
                type=record.event.get("type"),
            )
        if good:
            log.info(
                "batch appended",
                appended=len(appended),
                already_in_ledger=len(good) - len(appended),
                first_seq=appended[0] if appended else None,
                last_seq=appended[-1] if appended else None,
            )
        return settles

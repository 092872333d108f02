"""What harvest and implant share: consume the phase's events, stamp them, forward to audit.

A message that is not a valid event is not dropped: it goes to the audit as a rejection with
its reason; one that does not even carry an event_id goes to the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import orjson
import structlog

from shared.bus import Bus, BusError, Delivery, Settle
from shared.bus.topology import AUDIT
from shared.events import InvalidEvent, decode_event, utcnow
from shared.events.record import AuditRecord, accepted, rejected

log = structlog.get_logger("shared.phase")


class PhaseService:
    def __init__(self, service: str, phases: Sequence[str], bus: Bus, confirm_timeout_s: float):
        self.service = service
        self.phases = tuple(phases)
        self.bus = bus
        self.confirm_timeout_s = confirm_timeout_s

    def handle(self, batch: Sequence[Delivery]) -> list[Settle]:
        settles = [Settle.DEAD] * len(batch)
        in_flight: list[tuple[int, AuditRecord, Future[None]]] = []
        for i, delivery in enumerate(batch):
            record = self._stamp(delivery)
            if record is None:
                continue
            try:
                future = self.bus.publish(
                    AUDIT,
                    str(record.event.get("type", "unknown")),
                    record.to_bytes(),
                    message_id=record.event_id,
                )
            except BusError as exc:
                log.warning("could not forward to audit; will retry", error=str(exc))
                return [Settle.RETRY] * len(batch)
            in_flight.append((i, record, future))
        for i, record, future in in_flight:
            settles[i] = self._await_confirm(record, future)
        return settles

    def _await_confirm(self, record: AuditRecord, future: Future[None]) -> Settle:
        try:
            future.result(self.confirm_timeout_s)
        except (BusError, FutureTimeout) as exc:
            log.warning(
                "audit did not confirm; will retry", event_id=record.event_id, error=str(exc)
            )
            return Settle.RETRY
        log.info(
            "forwarded to audit",
            event_id=record.event_id,
            procedure_id=record.event.get("procedure_id"),
            type=record.event.get("type"),
            disposition=record.disposition,
        )
        return Settle.ACK

    def _stamp(self, delivery: Delivery) -> AuditRecord | None:
        now = utcnow()
        phase = delivery.routing_key.split(".", 1)[0]
        try:
            envelope = decode_event(delivery.body)
        except InvalidEvent as exc:
            return self._reject(delivery, f"invalid event: {exc}")
        if phase not in self.phases:
            return self._reject(delivery, f"{self.service} does not handle phase {phase!r}")
        return accepted(envelope, self.service, now)

    def _reject(self, delivery: Delivery, reason: str) -> AuditRecord | None:
        try:
            raw: Any = orjson.loads(delivery.body)
            record = rejected(raw if isinstance(raw, dict) else {}, reason, self.service, utcnow())
        except (orjson.JSONDecodeError, InvalidEvent):
            log.error(
                "unreadable message sent to the dead-letter queue",
                reason=reason,
                message_id=delivery.message_id,
            )
            return None
        log.warning(
            "event rejected",
            event_id=record.event_id,
            procedure_id=record.event.get("procedure_id"),
            reason=reason,
        )
        return record

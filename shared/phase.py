"""What harvest and implant share: consume the phase's events, stamp them, record them under
the room's rules, forward them to audit; and `run`, the process both mains are.

A message that is not a valid event is not dropped: it goes to the audit as a rejection with
its reason; one that does not even carry an event_id goes to the dead-letter queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import orjson
import structlog

from shared.bus import Bus, BusError, Delivery, Settle
from shared.bus.topology import AUDIT, EVENTS
from shared.clinical.chain import Rules
from shared.clinical.clock import SystemClock
from shared.clinical.facts import LotTable
from shared.clinical.policy import Policy
from shared.clinical.recorder import Raised, Recorder, Ticker
from shared.clinical.store import StateStore, open_store
from shared.events import Envelope, InvalidEvent, decode_event, utcnow
from shared.events.record import AuditRecord, accepted, rejected
from shared.runtime import boot, make_bus, serve_metrics, wait_for_stop
from shared.storage import UNAVAILABLE

log = structlog.get_logger("shared.phase")


def _both(first: Future[None], second: Future[None]) -> Future[None]:
    """A future done when both are (failed when either fails)."""
    out: Future[None] = Future()
    lock = threading.Lock()

    def settle(_: Future[None]) -> None:
        with lock:
            if not (first.done() and second.done()) or out.done():
                return
            error = first.exception() or second.exception()
            if error is not None:
                out.set_exception(error)
            else:
                out.set_result(None)

    first.add_done_callback(settle)
    second.add_done_callback(settle)
    return out


class PhaseService:
    def __init__(
        self,
        service: str,
        phases: Sequence[str],
        bus: Bus,
        confirm_timeout_s: float,
        recorder: Recorder | None = None,
    ):
        self.service = service
        self.phases = tuple(phases)
        self.bus = bus
        self.confirm_timeout_s = confirm_timeout_s
        self.recorder = recorder  # the clinical rules; None: stamp and forward only

    def subscribe(self, queue: str) -> None:
        """Consume `queue`; while the state store is unreachable (UNAVAILABLE), the bus holds
        the batch and hands it over again."""
        self.bus.subscribe(queue, self.handle, transient=UNAVAILABLE)

    def handle(self, batch: Sequence[Delivery]) -> list[Settle]:
        """Stamp, record and forward each message; ack each once audit has it. A batch that
        fails is handed over again (recording is idempotent, and audit keeps one entry per
        event_id), so the alerts it was raising are released to be raised again."""
        pending: list[Raised | None] = []
        try:
            return self._handle(batch, pending)
        except BaseException:
            self._abandon(pending)
            raise

    def _handle(self, batch: Sequence[Delivery], pending: list[Raised | None]) -> list[Settle]:
        settles = [Settle.DEAD] * len(batch)
        in_flight: list[tuple[int, list[tuple[AuditRecord, Future[None]]], Raised | None]] = []
        for i, delivery in enumerate(batch):
            stamped = self._stamp(delivery)
            if stamped is None:
                continue
            record, envelope = stamped
            raised = None
            if self.recorder is not None and envelope is not None:
                raised = self.recorder.record(envelope)  # durable before the ack below
                pending.append(raised)
            records = [record, *(raised.records if raised else [])]
            try:
                futures = [(r, self._publish(r)) for r in records]
            except BusError as exc:
                log.warning("could not forward to audit; will retry", error=str(exc))
                self._abandon([raised, *(x[2] for x in in_flight)])
                return [Settle.RETRY] * len(batch)
            in_flight.append((i, futures, raised))
        for i, futures, raised in in_flight:
            outcomes = [self._await_confirm(r, f) for r, f in futures]
            settles[i] = Settle.ACK if all(o is Settle.ACK for o in outcomes) else Settle.RETRY
            if raised is not None and self.recorder is not None:
                if settles[i] is Settle.ACK:
                    self.recorder.confirmed(raised)
                else:
                    self.recorder.abandon(raised)
        return settles

    def _abandon(self, raised: Sequence[Raised | None]) -> None:
        if self.recorder is not None:
            for r in raised:
                if r is not None:
                    self.recorder.abandon(r)

    def tick(self) -> None:
        """Publish the alerts the clock brings (called by the clinical Ticker)."""
        if self.recorder is None:
            return
        for raised in self.recorder.tick():
            try:
                futures = [(r, self._publish(r)) for r in raised.records]
            except BusError as exc:
                log.warning("clock alerts not published; next tick", error=str(exc))
                self.recorder.abandon(raised)
                continue
            if all(self._await_confirm(r, f) is Settle.ACK for r, f in futures):
                self.recorder.confirmed(raised)
            else:
                self.recorder.abandon(raised)  # the next tick raises them again

    def _publish(self, record: AuditRecord) -> Future[None]:
        confirmed = self.bus.publish(
            AUDIT,
            str(record.event.get("type", "unknown")),
            record.to_bytes(),
            message_id=record.event_id,
        )
        if record.event.get("type") != "alert.raised":
            return confirmed
        # The tablets' live alerts: the same event, to bedside's queue (q.bedside).
        shown = self.bus.publish(
            EVENTS, f"alert.{self.service}", orjson.dumps(record.event), message_id=record.event_id
        )
        return _both(confirmed, shown)

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

    def _stamp(self, delivery: Delivery) -> tuple[AuditRecord, Envelope | None] | None:
        """The audit record of a delivery, with its event when accepted; None: dead-letter."""
        now = utcnow()
        phase = delivery.routing_key.split(".", 1)[0]
        try:
            envelope = decode_event(delivery.body)
        except InvalidEvent as exc:
            return self._reject(delivery, f"invalid event: {exc}")
        if phase not in self.phases:
            return self._reject(delivery, f"{self.service} does not handle phase {phase!r}")
        return accepted(envelope, self.service, now), envelope

    def _reject(self, delivery: Delivery, reason: str) -> tuple[AuditRecord, None] | None:
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
        return record, None


def run(
    service: str,
    phases: Sequence[str],
    queue: str,
    rules: Rules[Any],
    open_state: Callable[[Path, str, str | None], StateStore] = open_store,
) -> None:
    """A phase service's process: its state store (`open_state`; one that is also a LotTable
    keeps the released lots too), the rules' recorder and clock, its queue, its metrics; until
    SIGTERM or SIGINT, then everything stops in reverse order."""
    settings = boot(service)
    store = open_state(settings.service_dir(service), service, settings.database_url)
    lots = store if isinstance(store, LotTable) else None
    policy = Policy.from_settings(settings)
    recorder = Recorder(service, store, SystemClock(), policy, rules, lots)
    bus = make_bus(settings, service)
    phase_service = PhaseService(service, phases, bus, settings.publish_timeout_s, recorder)
    phase_service.subscribe(queue)
    bus.start()
    ticker = Ticker(phase_service.tick, settings.clock_tick_s)
    ticker.start()
    metrics = serve_metrics(settings, service)
    wait_for_stop()
    if metrics is not None:
        metrics.stop()
    ticker.stop()
    bus.close()
    store.close()

"""The clinical rules inside a phase service: each accepted event is kept as a fact, the
procedure's state is folded again, and every alert not raised before becomes an
`alert.raised` record for the audit. A clock thread raises the alerts time alone brings.

The caller publishes the records and, once the broker has confirmed them, calls `confirmed`;
only then are the alerts marked raised. A crash in between raises them again with the same
event ids, and the ledger keeps one entry per event id.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from shared.clinical.chain import Rules
from shared.clinical.clock import Clock
from shared.clinical.common import COMMON
from shared.clinical.facts import Alert, Fact, Lot, LotTable
from shared.clinical.policy import Policy
from shared.clinical.state import ProcedureState
from shared.clinical.store import StateStore
from shared.events import Envelope, parse_event
from shared.events.record import AuditRecord, accepted

log = structlog.get_logger("shared.clinical")

_EVENTUALLY = timedelta(days=3650)  # far enough for every clock-driven alert to be due
ALERT_NAMESPACE = uuid.UUID("1c1b2f0e-52f4-4d8e-9a0c-7d4a1f3b6e21")
NOT_FACTS = frozenset({"alert.raised", "record.signed"})  # kept in the ledger, not in state


@dataclass(frozen=True)
class Raised:
    """Alert records to publish, and what to mark raised once they are confirmed."""

    records: list[AuditRecord]
    marks: list[tuple[str, str, str]]  # (procedure_id, alert key, alert event_id)

    def __add__(self, other: Raised) -> Raised:
        return Raised(self.records + other.records, self.marks + other.marks)


class Recorder:
    """Keeps a phase service's facts and raises what its `rules` find (by default only the
    rules every phase shares; services/harvest and services/implant pass their own)."""

    def __init__(
        self,
        service: str,
        store: StateStore,
        clock: Clock,
        policy: Policy | None = None,
        rules: Rules[Any] = COMMON,
        lots: LotTable | None = None,
    ) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self.policy = policy or Policy()
        self.rules = rules
        self.lots = lots  # the released lots the rules check (implant's); None: not kept
        # Alerts published but not yet confirmed: a later event of the same batch (or the
        # clock) must not publish them a second time meanwhile.
        self._pending: set[tuple[str, str]] = set()
        self._pending_lock = threading.Lock()

    def record(self, envelope: Envelope) -> Raised | None:
        """Keep the event as a fact of its procedure; the alerts it newly raises."""
        if envelope.type == "product.lot_released":
            if self.lots is not None:
                self.lots.add_lot(Lot(
                    str(envelope.payload["lot_id"]), envelope.occurred_at,
                    str(envelope.event_id), envelope.payload,
                ))  # fmt: skip
            return None
        if envelope.procedure_id is None or envelope.type in NOT_FACTS:
            return None
        procedure_id = str(envelope.procedure_id)
        fact = Fact(
            event_id=str(envelope.event_id),
            type=envelope.type,
            occurred_at=envelope.occurred_at,
            actor_id=envelope.actor.id,
            payload=envelope.payload,
            seq=0,  # the store's arrival order replaces it
        )
        self.store.add(procedure_id, fact)
        state = self.state(procedure_id)
        self.store.watch(procedure_id, self.rules.needs_clock(state, self.policy))
        raised = self._new(procedure_id, state.alerts)
        linked = self._link_adverse_event(envelope)
        if raised and linked:
            return raised + linked
        return raised or linked

    def _link_adverse_event(self, envelope: Envelope) -> Raised | None:
        """A late adverse event reported under another procedure (a follow-up visit, a new
        admission) also shows on the procedure it names, as an info alert there."""
        related = envelope.payload.get("related_procedure_id")
        own = str(envelope.procedure_id)
        if envelope.type != "adverse_event.reported" or related in (None, own):
            return None
        p = envelope.payload
        lot = f", lot {p['related_lot_id']}" if p.get("related_lot_id") else ""
        alert = Alert(
            f"linked_ae:{envelope.event_id}", "adverse_event_linked", "info",
            f"adverse event '{p.get('term')}' (grade {p.get('grade')}{lot}) reported under"
            f" procedure {envelope.procedure_id} is linked to this procedure",
            (str(envelope.event_id),),
        )  # fmt: skip
        return self._new(str(related), [alert])

    def tick(self) -> list[Raised]:
        """Alerts the clock brings (vitals overdue) for every procedure it watches."""
        out = []
        now = self.clock.now()
        for procedure_id in self.store.watched():
            state = self.state(procedure_id)
            raised = self._new(procedure_id, self.rules.due(state, now, self.policy))
            if raised is not None:
                out.append(raised)
            elif not state.sedated and self._all_raised(state, now):
                self.store.watch(procedure_id, False)  # the clock has nothing left to say
        return out

    def _all_raised(self, state: ProcedureState, now: datetime) -> bool:
        """Whether every alert time could still bring here has been raised already."""
        eventually = {a.key for a in self.rules.due(state, now + _EVENTUALLY, self.policy)}
        return eventually <= self.store.raised(state.procedure_id)

    def state(self, procedure_id: str) -> ProcedureState:
        """The procedure's state, folded from what the store holds."""
        facts = self.store.facts(procedure_id)
        used = {str(f.payload.get("lot_id")) for f in facts if "lot_id" in f.payload}
        lots = self.lots.lots(used) if self.lots is not None else {}
        state: ProcedureState = self.rules.fold(procedure_id, facts, lots, self.policy)
        return state

    def confirmed(self, raised: Raised) -> None:
        at = self.clock.now().isoformat()
        try:
            for procedure_id in {m[0] for m in raised.marks}:
                keys = [(key, alert_id) for p, key, alert_id in raised.marks if p == procedure_id]
                self.store.mark_raised(procedure_id, keys, at)
        finally:
            self.abandon(raised)

    def abandon(self, raised: Raised) -> None:
        """Forget alerts whose publishing failed (or was confirmed): they may be raised again."""
        with self._pending_lock:
            self._pending -= {(p, key) for p, key, _ in raised.marks}

    def _new(self, procedure_id: str, alerts: list[Alert]) -> Raised | None:
        known = self.store.raised(procedure_id)
        with self._pending_lock:
            fresh = [
                a for a in alerts
                if a.key not in known and (procedure_id, a.key) not in self._pending
            ]  # fmt: skip
            self._pending |= {(procedure_id, a.key) for a in fresh}
        if not fresh:
            return None
        now = self.clock.now()
        records: list[AuditRecord] = []
        marks: list[tuple[str, str, str]] = []
        for alert in fresh:
            alert_id = str(uuid.uuid5(ALERT_NAMESPACE, f"{procedure_id}:{alert.key}"))
            envelope = parse_event({
                "event_id": alert_id,
                "type": "alert.raised",
                "schema": 1,
                "procedure_id": procedure_id,
                "occurred_at": now,
                "recorded_at": now,
                "actor": {"id": self.service, "role": "service"},
                "source": {"kind": "service", "id": self.service},
                "payload": {
                    "code": alert.code,
                    "severity": alert.severity,
                    "message": alert.message,
                    "event_ids": list(alert.event_ids),
                },
            })  # fmt: skip
            records.append(accepted(envelope, self.service, now))
            marks.append((procedure_id, alert.key, alert_id))
            log.warning("alert raised", procedure_id=procedure_id, code=alert.code,
                        severity=alert.severity, message=alert.message,
                        event_id=alert_id)  # fmt: skip
        return Raised(records, marks)


class Ticker:
    """Calls `tick` every `every_s` seconds on its own thread until stopped."""

    def __init__(self, tick: Callable[[], None], every_s: float) -> None:
        self._tick, self.every_s = tick, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clinical-clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self._tick()
            except Exception:  # the clock must keep ticking: it logs and tries again
                log.exception("clinical clock tick failed; trying again next tick")

"""Rebuild a phase service's clinical state from the ledger (`proctrail rebuild SERVICE`).

The ledger holds every event the service accepted (stamped by it) and every alert it raised.
Replaying them into an empty store gives back the facts, the released lots, the alerts already
raised (so none is raised again) and the clock's watch list; the state itself is folded from
the facts as always.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.clinical.chain import Rules
from shared.clinical.facts import Fact, Lot, LotTable
from shared.clinical.policy import Policy
from shared.clinical.recorder import ALERT_NAMESPACE, NOT_FACTS
from shared.clinical.store import StateStore


@dataclass(frozen=True)
class Rebuilt:
    facts: int
    lots: int
    procedures: int
    alerts: int  # alerts found raised in the ledger and marked so


def rebuild(
    records: Iterable[Mapping[str, Any]],
    service: str,
    store: StateStore,
    policy: Policy,
    now: datetime,
    rules: Rules[Any],
    lots_table: LotTable | None = None,
) -> Rebuilt:
    """Replay ledger records (decoded leaves) into an empty `store`; `rules` are the
    service's own, so the alerts it raised are found again."""
    procedures: set[str] = set()
    raised_ids: set[str] = set()
    links: list[tuple[str, str]] = []  # (related procedure, alert key) of linked adverse events
    facts = lots = 0
    for record in records:
        if record.get("disposition") != "accepted":
            continue
        if record.get("stamped_by", {}).get("service") != service:
            continue
        event: Mapping[str, Any] = record["event"]
        kind = str(event.get("type"))
        if kind == "alert.raised":
            raised_ids.add(str(event["event_id"]))
            continue
        occurred_at = datetime.fromisoformat(str(event["occurred_at"]))
        payload = event.get("payload", {})
        if kind == "product.lot_released":
            if lots_table is not None:
                lot = Lot(str(payload["lot_id"]), occurred_at, str(event["event_id"]), payload)
                lots += lots_table.add_lot(lot)
            continue
        procedure_id = event.get("procedure_id")
        if procedure_id is None or kind in NOT_FACTS:
            continue
        actor = event.get("actor", {})
        fact = Fact(str(event["event_id"]), kind, occurred_at, str(actor.get("id")), payload, 0)
        facts += store.add(str(procedure_id), fact)
        procedures.add(str(procedure_id))
        related = payload.get("related_procedure_id") if kind == "adverse_event.reported" else None
        if related and str(related) != str(procedure_id):
            key = f"linked_ae:{event['event_id']}"  # as Recorder._link_adverse_event raises it
            links.append((str(related), key))
    marked = 0
    all_lots = lots_table.lots() if lots_table else {}  # once: a rebuild folds every procedure
    for procedure_id in sorted(procedures):
        state = rules.fold(procedure_id, store.facts(procedure_id), all_lots, policy)
        keys = [
            (alert.key, alert_id)
            for alert in [*state.alerts, *rules.due(state, now, policy)]
            if (alert_id := str(uuid.uuid5(ALERT_NAMESPACE, f"{procedure_id}:{alert.key}")))
            in raised_ids
        ]
        store.mark_raised(procedure_id, keys, now.isoformat())
        marked += len(keys)
        store.watch(procedure_id, rules.needs_clock(state, policy))
    for related, key in links:
        if (alert_id := str(uuid.uuid5(ALERT_NAMESPACE, f"{related}:{key}"))) in raised_ids:
            store.mark_raised(related, [(key, alert_id)], now.isoformat())
            marked += 1
    return Rebuilt(facts, lots, len(procedures), marked)

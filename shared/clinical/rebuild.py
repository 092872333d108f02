"""Rebuild a phase service's clinical state from the ledger (`proctrail rebuild SERVICE`).

The ledger holds every event the service accepted (stamped by it) and every alert it raised.
Replaying them into an empty store gives back the facts, the released lots, the alerts already
raised (so none is raised again) and the clock's watch list; the state itself is folded from
the facts as always.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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


@dataclass
class _Replayed:
    facts: int = 0
    lots: int = 0
    procedures: set[str] = field(default_factory=set)
    raised_ids: set[str] = field(default_factory=set)  # alert event ids found in the ledger
    links: list[tuple[str, str]] = field(default_factory=list)  # (related procedure, alert key)


def rebuild(
    records: Iterable[Mapping[str, Any]],
    service: str,
    store: StateStore,
    policy: Policy,
    now: datetime,
    rules: Rules[Any],
    lots_table: LotTable | None = None,
) -> Rebuilt:
    """Replay ledger records (decoded leaves) into an empty `store` (and `lots_table`, for a
    service that keeps the released lots); `rules` are the service's own, so the alerts it
    raised are found again."""
    replayed = _Replayed()
    for record in records:
        if record.get("disposition") != "accepted":
            continue
        if record.get("stamped_by", {}).get("service") == service:
            _replay(record["event"], store, lots_table, replayed)
    marked = 0
    all_lots = lots_table.lots() if lots_table else {}  # once: a rebuild folds every procedure
    for procedure_id in sorted(replayed.procedures):
        state = rules.fold(procedure_id, store.facts(procedure_id), all_lots, policy)
        keys = [
            (alert.key, alert_id)
            for alert in [*state.alerts, *rules.due(state, now, policy)]
            if (alert_id := _alert_id(procedure_id, alert.key)) in replayed.raised_ids
        ]
        store.mark_raised(procedure_id, keys, now.isoformat())
        marked += len(keys)
        store.watch(procedure_id, rules.needs_clock(state, policy))
    for related, key in replayed.links:
        if (alert_id := _alert_id(related, key)) in replayed.raised_ids:
            store.mark_raised(related, [(key, alert_id)], now.isoformat())
            marked += 1
    return Rebuilt(replayed.facts, replayed.lots, len(replayed.procedures), marked)


def _alert_id(procedure_id: str, key: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{procedure_id}:{key}"))


def _replay(
    event: Mapping[str, Any], store: StateStore, lots_table: LotTable | None, out: _Replayed
) -> None:
    """One accepted event of the service: an alert it raised, a released lot, or a fact."""
    kind = str(event.get("type"))
    if kind == "alert.raised":
        out.raised_ids.add(str(event["event_id"]))
        return
    occurred_at = datetime.fromisoformat(str(event["occurred_at"]))
    payload = event.get("payload", {})
    if kind == "product.lot_released":
        if lots_table is not None:
            lot = Lot(str(payload["lot_id"]), occurred_at, str(event["event_id"]), payload)
            out.lots += lots_table.add_lot(lot)
        return
    procedure_id = event.get("procedure_id")
    if procedure_id is None or kind in NOT_FACTS:
        return
    actor = event.get("actor", {})
    fact = Fact(str(event["event_id"]), kind, occurred_at, str(actor.get("id")), payload, 0)
    out.facts += store.add(str(procedure_id), fact)
    out.procedures.add(str(procedure_id))
    related = payload.get("related_procedure_id") if kind == "adverse_event.reported" else None
    if related and str(related) != str(procedure_id):
        out.links.append((str(related), f"linked_ae:{event['event_id']}"))  # as the Recorder

"""Sedation and recovery: the assessment, running drug totals, vitals and depth scores, the
recovery scores and discharge; and the clock rule that vitals are overdue while sedated."""

from __future__ import annotations

from datetime import datetime

from shared.clinical.chain import ClockRule, Context, Handler
from shared.clinical.facts import Alert, Fact
from shared.clinical.policy import Policy
from shared.clinical.stages import advance
from shared.clinical.state import DrugTotal, ProcedureState, drug_key, unit_name

RECOVERY_THRESHOLD = 9  # Aldrete to leave phase I, PADSS to go home


def assessed(state: ProcedureState, fact: Fact, _: Context) -> None:
    p = fact.payload
    state.weight_kg = float(p["weight_kg"]) if p.get("weight_kg") else state.weight_kg
    state.asa_class = p.get("asa_class", state.asa_class)


def drug_administered(state: ProcedureState, fact: Fact, _: Context) -> None:
    p = fact.payload
    drug, unit = str(p.get("drug", "")), str(p.get("unit", ""))
    total = state.drugs.setdefault(drug_key(drug, unit), DrugTotal(drug, unit_name(unit)))
    total.total += float(p.get("dose") or 0)
    total.doses += 1
    if state.sedated_at is None:
        state.sedated_at = fact.occurred_at


def vitals_recorded(state: ProcedureState, fact: Fact, _: Context) -> None:
    state.vitals += 1
    if state.last_vitals_at is None or fact.occurred_at > state.last_vitals_at:
        state.last_vitals_at = fact.occurred_at


def depth_scored(state: ProcedureState, fact: Fact, _: Context) -> None:
    p = fact.payload
    state.depth.append((str(p.get("scale")), int(p.get("score", 0)), fact.occurred_at))


def recovery_scored(state: ProcedureState, fact: Fact, _: Context) -> None:
    state.recovery[str(fact.payload.get("scale"))] = int(fact.payload.get("score", 0))
    advance(state, fact, "recovery")


def discharged(state: ProcedureState, fact: Fact, _: Context) -> None:
    advance(state, fact, "discharged")
    state.discharged_at = fact.occurred_at
    low = {s: v for s, v in state.recovery.items() if v < RECOVERY_THRESHOLD}
    if low or not state.recovery:
        found = ", ".join(f"{s} {v}" for s, v in sorted(low.items())) or "no recovery score"
        state.raise_alert(
            "discharge_criteria_unmet", "discharge_criteria_unmet", "warning",
            f"discharged with {found} (needs Aldrete and PADSS >= {RECOVERY_THRESHOLD})",
            fact.event_id,
        )  # fmt: skip


def vitals_overdue(state: ProcedureState, now: datetime, policy: Policy) -> list[Alert]:
    """No vitals for longer than the local interval while the patient is sedated."""
    if not state.sedated or state.sedated_at is None:
        return []
    since = max(filter(None, (state.sedated_at, state.last_vitals_at)))
    interval = policy.vitals_interval
    if now - since <= interval:
        return []
    minutes = (now - since).total_seconds() / 60
    return [Alert(
        f"vitals_overdue:{since.isoformat()}", "vitals_overdue", "warning",
        f"no vitals for {minutes:.0f} min while sedated "
        f"(interval {interval.total_seconds() / 60:g} min)", (),
    )]  # fmt: skip


def _sedated(state: ProcedureState, _: Policy) -> bool:
    return state.sedated


HANDLERS: list[tuple[str, Handler[ProcedureState]]] = [
    ("sedation.assessed", assessed),
    ("sedation.drug_administered", drug_administered),
    ("sedation.vitals_recorded", vitals_recorded),
    ("sedation.depth_scored", depth_scored),
    ("recovery.scored", recovery_scored),
    ("recovery.discharged", discharged),
]
VITALS = ClockRule[ProcedureState](vitals_overdue, _sedated)

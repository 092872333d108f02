"""What the tablet shows beside its buttons, from the events this bedside accepted: running
drug totals (and per kg), whether vitals are overdue, and the alerts raised for the procedure."""

from __future__ import annotations

from typing import Any

from shared.clinical.common import COMMON
from shared.clinical.facts import Fact
from shared.clinical.policy import Policy
from shared.clinical.store import ClinicalStore
from shared.config import Settings
from shared.events import Envelope, rfc3339, utcnow


def remember_fact(envelope: Envelope, clinical: ClinicalStore) -> None:
    """Keep what the running totals and banners are folded from: the procedures' events."""
    if envelope.procedure_id is not None:
        clinical.add(str(envelope.procedure_id), Fact(
            str(envelope.event_id), envelope.type, envelope.occurred_at, envelope.actor.id,
            envelope.payload, 0,
        ))  # fmt: skip


def procedure_state(
    procedure_id: str,
    clinical: ClinicalStore,
    settings: Settings,
    alerts: list[dict[str, str]],
) -> dict[str, Any]:
    """The procedure folded from its facts by the rules every phase shares (stages, sedation,
    recovery), as the tablet's state body. The rooms' own rules run in harvest and implant,
    whose alerts reach the tablet through q.bedside."""
    policy = Policy.from_settings(settings)
    state = COMMON.fold(procedure_id, clinical.facts(procedure_id), policy=policy)
    now = utcnow()
    overdue = [a for a in COMMON.due(state, now, policy) if a.code == "vitals_overdue"]
    return {
        "procedure_id": procedure_id, "stage": state.stage, "weight_kg": state.weight_kg,
        "sedated": state.sedated,
        "last_vitals_at": rfc3339(state.last_vitals_at) if state.last_vitals_at else None,
        "vitals_overdue": overdue[0].message if overdue else None,
        "drugs": [{"drug": d.drug, "unit": d.unit, "total": d.total, "doses": d.doses,
                   "per_kg": state.per_kg(d.drug, d.unit)} for d in state.drugs.values()],
        "alerts": alerts,
    }  # fmt: skip

"""The state of a procedure that every phase shares, and the values it holds.

A room extends it (services/harvest/rules.py `HarvestState`, services/implant/rules.py
`ImplantState`) with what only its own rules keep. The state is never stored or updated in
place by anyone but the fold: it is recomputed from the procedure's accepted facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.clinical.facts import Alert, Severity

STAGES = ("none", "scheduled", "opened", "timed_out", "closed", "recovery", "discharged")
RANK = {stage: n for n, stage in enumerate(STAGES)}

_UNIT_ALIASES = {"ug": "mcg", "µg": "mcg", "ml": "mL", "units": "U"}


def unit_name(unit: str) -> str:
    """One name for each unit a drug may be charted in (mcg = ug = µg, mL = ml, U = units)."""
    return _UNIT_ALIASES.get(unit, unit)


def drug_key(drug: str, unit: str) -> str:
    return f"{drug.strip().lower()}|{unit_name(unit)}"


@dataclass
class DrugTotal:
    drug: str
    unit: str
    total: float = 0.0
    doses: int = 0


@dataclass(frozen=True)
class AdverseEvent:
    event_id: str
    term: str
    grade: int
    serious: bool
    expected: bool
    aware_at: datetime  # when the clinic learnt of it: the report's clinical time
    deadline: datetime | None  # regulatory report due: serious and unexpected only


@dataclass
class ProcedureState:
    procedure_id: str
    stage: str = "none"
    phase: str | None = None
    patient_id: str | None = None
    follows: str | None = None  # the earlier procedure a repeat session continues
    operator_id: str | None = None
    monitoring_nurse_id: str | None = None
    timed_out: bool = False  # a time-out has been recorded (whatever came after)
    weight_kg: float | None = None
    asa_class: int | None = None
    drugs: dict[str, DrugTotal] = field(default_factory=dict)
    sedated_at: datetime | None = None
    last_vitals_at: datetime | None = None
    vitals: int = 0
    depth: list[tuple[str, int, datetime]] = field(default_factory=list)
    recovery: dict[str, int] = field(default_factory=dict)
    discharged_at: datetime | None = None
    corrected: dict[str, str] = field(default_factory=dict)  # event_id -> correcting event_id
    adverse_events: list[AdverseEvent] = field(default_factory=list)
    holder: dict[str, str] = field(default_factory=dict)  # item_id -> who has it now
    alerts: list[Alert] = field(default_factory=list)

    def per_kg(self, drug: str, unit: str) -> float | None:
        """The running total of a drug per kg of body weight, when the weight is known."""
        total = self.drugs.get(drug_key(drug, unit))
        if total is None or not self.weight_kg:
            return None
        return total.total / self.weight_kg

    @property
    def sedated(self) -> bool:
        return self.sedated_at is not None and self.discharged_at is None

    def raise_alert(self, key: str, code: str, severity: Severity, message: str, *ids: str) -> None:
        """Raise an alert once: a key already raised for this procedure is not raised again."""
        if all(a.key != key for a in self.alerts):
            self.alerts.append(Alert(key, code, severity, message, ids))

"""The reference: the clinical fold as it was before the rules moved into their rooms (issue 12).

Kept only for tests/unit/test_fold_reference.py, which checks that the rooms' chains fold every
story to the same state. It is the old shared/clinical/rules.py, unchanged but for this
paragraph and the Policy import.

A procedure's clinical state, folded from its events; and the alerts its rules raise.

The state is never updated in place: it is recomputed from the procedure's accepted events,
so a correction, a late entry or a redelivery gives the same state as if everything had
arrived in order, and the state can always be rebuilt from the record.

1. Corrections are applied first: `record.corrected` changes the fields it names in the event
   it supersedes (the original stays in the ledger; only the state uses the new values).
2. The facts are taken in clinical order (occurred_at, then arrival).
3. Each rule may raise alerts. A clinical fact is never refused: an out-of-order or rule-
   breaking fact is counted and alerted on.

Every alert has a key that is stable for the same facts, so raising it again (a redelivery, a
recomputation) is recognised by the caller and never duplicated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.clinical.policy import Policy

Severity = Literal["info", "warning", "critical"]

STAGES = ("none", "scheduled", "opened", "timed_out", "closed", "recovery", "discharged")
_RANK = {stage: n for n, stage in enumerate(STAGES)}
INTERVENTIONS = frozenset(
    {"harvest.aspiration_performed", "implant.needle_placed", "implant.injected"}
)
# Facts of the procedure itself (not lab, safety or paperwork) that make no sense after discharge.
_IN_PROCEDURE = INTERVENTIONS | {
    "procedure.opened", "procedure.time_out", "sedation.drug_administered",
    "sedation.vitals_recorded", "sedation.depth_scored", "anaesthesia.local_administered",
}  # fmt: skip
RECOVERY_THRESHOLD = 9  # Aldrete to leave phase I, PADSS to go home


@dataclass(frozen=True)
class Fact:
    """One accepted event as the rules see it."""

    event_id: str
    type: str
    occurred_at: datetime
    actor_id: str
    payload: Mapping[str, Any]
    seq: int  # arrival order, to break ties in clinical time


@dataclass(frozen=True)
class Alert:
    key: str  # stable within the procedure: the same facts give the same key
    code: str
    severity: Severity
    message: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True)
class Lot:
    """A released product lot (product.lot_released), as the implant rules check it."""

    lot_id: str
    released_at: datetime
    event_id: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Capture:
    event_id: str
    sop_instance_uid: str
    modality: str
    angle: float | None  # positioner primary angle: ~0 AP, ~90 lateral
    at: datetime


@dataclass(frozen=True)
class Needle:
    event_id: str
    at: datetime
    level: str


@dataclass(frozen=True)
class AdverseEvent:
    event_id: str
    term: str
    grade: int
    serious: bool
    expected: bool
    aware_at: datetime  # when the clinic learnt of it: the report's clinical time
    deadline: datetime | None  # regulatory report due: serious and unexpected only


def report_deadline(aware_at: datetime, serious: bool, expected: bool,
                    criteria: Iterable[str]) -> datetime | None:  # fmt: skip
    """7 days for a fatal or life-threatening serious unexpected reaction, 15 for any other
    serious unexpected one; none otherwise."""
    if not serious or expected:
        return None
    urgent = {"death", "life_threatening"} & set(criteria)
    return aware_at + timedelta(days=7 if urgent else 15)


@dataclass
class DrugTotal:
    drug: str
    unit: str
    total: float = 0.0
    doses: int = 0


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
    verified: dict[str, bool] = field(default_factory=dict)  # lot_id -> clean verification?
    injected_cells: dict[str, float] = field(default_factory=dict)  # lot_id -> cells so far
    captures: list[Capture] = field(default_factory=list)
    needles: list[Needle] = field(default_factory=list)
    adverse_events: list[AdverseEvent] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    holder: dict[str, str] = field(default_factory=dict)  # item_id -> who has it now
    alerts: list[Alert] = field(default_factory=list)

    def per_kg(self, drug: str, unit: str) -> float | None:
        """The running total of a drug per kg of body weight, when the weight is known."""
        total = self.drugs.get(_drug_key(drug, unit))
        if total is None or not self.weight_kg:
            return None
        return total.total / self.weight_kg

    @property
    def sedated(self) -> bool:
        return self.sedated_at is not None and self.discharged_at is None

    def confirmed(self, needle: Needle, window: timedelta) -> bool:
        return needle_confirmed(needle, self.captures, window)

    def needs_clock(self, policy: Policy) -> bool:
        """Whether time alone may still raise an alert for this procedure."""
        pending = any(not self.confirmed(n, policy.needle_window) for n in self.needles)
        reports = any(ae.deadline is not None for ae in self.adverse_events)
        return self.sedated or pending or reports

    def _raise(self, key: str, code: str, severity: Severity, message: str, *ids: str) -> None:
        if all(a.key != key for a in self.alerts):
            self.alerts.append(Alert(key, code, severity, message, ids))


_UNIT_ALIASES = {"ug": "mcg", "µg": "mcg", "ml": "mL", "units": "U"}


def _drug_key(drug: str, unit: str) -> str:
    return f"{drug.strip().lower()}|{_UNIT_ALIASES.get(unit, unit)}"


# --- corrections -----------------------------------------------------------------------------


def apply_corrections(facts: Iterable[Fact]) -> tuple[list[Fact], list[Alert], dict[str, str]]:
    """The facts with every correction applied; corrections themselves are not facts.

    A change names a payload field ("dose", "payload.dose", "target.level") or "occurred_at".
    An `old` value that does not match the record is applied all the same and alerted on.
    """
    originals: dict[str, Fact] = {}
    corrections: list[Fact] = []
    for fact in facts:
        if fact.type == "record.corrected":
            corrections.append(fact)
        else:
            originals[fact.event_id] = fact
    alerts: list[Alert] = []
    corrected: dict[str, str] = {}
    for correction in sorted(corrections, key=lambda f: (f.occurred_at, f.seq)):
        target_id = str(correction.payload.get("supersedes"))
        target = originals.get(target_id)
        if target is None:
            continue  # the original has not arrived (yet): applied when it does
        payload: dict[str, Any] = _deep_copy(target.payload)
        occurred_at = target.occurred_at
        for name, change in dict(correction.payload.get("changes", {})).items():
            path = name.removeprefix("payload.").split(".")
            if path == ["occurred_at"]:
                current: Any = occurred_at.isoformat()
                new = change.get("new")
                if isinstance(new, str):
                    occurred_at = datetime.fromisoformat(new)
            else:
                current = _get(payload, path)
                _set(payload, path, change.get("new"))
            if "old" in change and change.get("old") != current:
                alerts.append(Alert(
                    f"correction_mismatch:{correction.event_id}:{name}", "correction_mismatch",
                    "warning",
                    f"correction of {name}: the record held {current!r}, not {change.get('old')!r}",
                    (correction.event_id, target.event_id),
                ))  # fmt: skip
        originals[target_id] = Fact(
            target.event_id, target.type, occurred_at, target.actor_id, payload, target.seq
        )
        corrected[target_id] = correction.event_id
    return list(originals.values()), alerts, corrected


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _get(payload: Mapping[str, Any], path: list[str]) -> Any:
    node: Any = payload
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _set(payload: dict[str, Any], path: list[str], value: Any) -> None:
    node = payload
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


# --- the fold --------------------------------------------------------------------------------


def fold(
    procedure_id: str,
    events: Iterable[Fact],
    lots: Mapping[str, Lot] | None = None,
    policy: Policy | None = None,
) -> ProcedureState:
    """The procedure's state and the alerts its facts raise, from all its events (and the
    released lots it may use)."""
    facts, correction_alerts, corrected = apply_corrections(events)
    state = ProcedureState(procedure_id, corrected=corrected)
    state.alerts.extend(correction_alerts)
    for fact in sorted(facts, key=lambda f: (f.occurred_at, f.seq)):
        _apply(state, fact)
        if fact.type in ("implant.product_verified", "implant.injected"):
            _chain_of_identity(state, fact, lots or {})
        elif fact.type in ("harvest.sample_labelled", "custody.handoff"):
            _custody(state, fact, policy or Policy())
    return state


def _custody(state: ProcedureState, fact: Fact, policy: Policy) -> None:
    p = fact.payload
    if fact.type == "harvest.sample_labelled":
        sample_id = str(p.get("sample_id", ""))
        state.samples.append(sample_id)
        patient = state.patient_id or ""
        if len(patient) >= 3 and patient.lower() in sample_id.lower():
            state._raise(
                f"sample_id:{fact.event_id}", "sample_id_identifies_patient", "critical",
                f"sample id {sample_id} contains the patient's record number", fact.event_id,
            )  # fmt: skip
        return
    item, giver, taker = str(p.get("item_id")), str(p.get("from_party")), str(p.get("to_party"))
    holder = state.holder.get(item)
    if holder is not None and holder != giver:
        state._raise(
            f"custody_gap:{fact.event_id}", "custody_gap", "warning",
            f"{item} handed over by {giver}, but {holder} had it", fact.event_id,
        )  # fmt: skip
    state.holder[item] = taker
    low, high = policy.custody_c
    temperature = p.get("temperature_c")
    if not isinstance(temperature, (int, float)):
        state._raise(
            f"custody_temperature:{fact.event_id}", "custody_temperature", "warning",
            f"{item} handed to {taker} with no temperature recorded", fact.event_id,
        )  # fmt: skip
    elif not low <= temperature <= high:
        state._raise(
            f"custody_temperature:{fact.event_id}", "custody_temperature", "critical",
            f"{item} handed to {taker} at {temperature:g} °C (allowed {low:g} to {high:g})",
            fact.event_id,
        )  # fmt: skip


# --- chain of identity -----------------------------------------------------------------------

VIABILITY_MIN_PCT = 70.0
_QC_FAILED = re.compile(
    r"\b(positive|fail(ed|s|ure)?|contaminat\w*|out of spec\w*|oos|exceed\w*)\b"
    r"|(?<!not )\bdetected\b",
    re.IGNORECASE,
)


def qc_failures(lot: Mapping[str, Any]) -> list[str]:
    """Why a lot's QC did not pass; empty when it did."""
    out = []
    for test in ("sterility", "endotoxin", "mycoplasma"):
        result = str(lot.get(test, "")).strip()
        if not result or _QC_FAILED.search(result):
            out.append(f"{test} {result or 'not reported'}")
    viability = lot.get("viability_pct")
    if not isinstance(viability, (int, float)) or viability < VIABILITY_MIN_PCT:
        out.append(f"viability {viability} % (< {VIABILITY_MIN_PCT:g} %)")
    return out


def _chain_of_identity(state: ProcedureState, fact: Fact, lots: Mapping[str, Lot]) -> None:
    p = fact.payload
    lot_id = str(p.get("lot_id"))
    lot = lots.get(lot_id)
    if lot is not None and lot.released_at > fact.occurred_at:
        lot = None  # released only after this fact: at the time it was not
    if fact.type == "implant.injected":
        if not state.verified.get(lot_id):
            state._raise(
                f"coi_injected:{fact.event_id}", "chain_of_identity_mismatch", "critical",
                f"lot {lot_id} injected without a clean product verification", fact.event_id,
            )  # fmt: skip
        cells = state.injected_cells.get(lot_id, 0.0) + float(p.get("cell_count") or 0)
        state.injected_cells[lot_id] = cells
        if lot is not None and cells > float(lot.payload.get("cell_count") or 0):
            state._raise(
                f"cells:{fact.event_id}", "cell_count_exceeds_lot", "warning",
                f"{cells:.3g} cells injected from lot {lot_id}, which released "
                f"{float(lot.payload.get('cell_count') or 0):.3g}", fact.event_id,
            )  # fmt: skip
        return
    reasons = []
    verifiers = [str(v).strip().lower() for v in p.get("verifier_ids", [])]
    if len(verifiers) < 2:
        reasons.append("only one verifier")
    elif len(set(verifiers)) < 2:
        reasons.append("the same person verified twice")
    if lot is None:
        reasons.append(f"lot {lot_id} is not released")
    else:
        expires = lot.payload.get("expires_at")
        if not isinstance(expires, str) or datetime.fromisoformat(expires) <= fact.occurred_at:
            reasons.append(f"lot {lot_id} expired ({expires})")
        reasons += [f"QC not passed: {why}" for why in qc_failures(lot.payload)]
        patient = lot.payload.get("patient")
        owner = patient.get("id") if isinstance(patient, Mapping) else None
        if state.patient_id is not None and owner != state.patient_id:
            reasons.append(f"lot {lot_id} was made for another patient")
    scanned = p.get("patient_id_scanned")
    if state.patient_id is not None and scanned != state.patient_id:
        reasons.append(f"the wristband scanned ({scanned}) is not this procedure's patient")
    state.verified[lot_id] = not reasons
    if reasons:
        state._raise(
            f"coi:{fact.event_id}", "chain_of_identity_mismatch", "critical",
            "implant unverified: " + "; ".join(reasons), fact.event_id,
        )  # fmt: skip


def _advance(state: ProcedureState, fact: Fact, stage: str) -> None:
    """Move to `stage`; a fact that comes after a later stage is kept and alerted on."""
    if _RANK[state.stage] > _RANK[stage]:
        state._raise(
            f"out_of_sequence:{fact.event_id}", "out_of_sequence", "warning",
            f"{fact.type} after the procedure reached {state.stage}", fact.event_id,
        )  # fmt: skip
        return
    state.stage = stage


def _apply(state: ProcedureState, fact: Fact) -> None:
    p, kind = fact.payload, fact.type
    if state.discharged_at is not None and kind in _IN_PROCEDURE:
        state._raise(
            f"after_discharge:{fact.event_id}", "out_of_sequence", "warning",
            f"{kind} after the patient was discharged", fact.event_id,
        )  # fmt: skip
    if kind == "procedure.scheduled":
        state.phase = p.get("phase")
        patient = p.get("patient")
        state.patient_id = patient.get("id") if isinstance(patient, Mapping) else None
        state.follows = p.get("follows_procedure_id")
        _advance(state, fact, "scheduled")
    elif kind == "procedure.opened":
        if _RANK[state.stage] >= _RANK["opened"]:
            state._raise(
                f"reopened:{fact.event_id}", "out_of_sequence", "warning",
                f"procedure opened again (it was {state.stage})", fact.event_id,
            )  # fmt: skip
        else:
            state.stage = "opened"
        state.operator_id = p.get("operator_id")
        state.monitoring_nurse_id = p.get("monitoring_nurse_id")
        if state.operator_id and state.operator_id == state.monitoring_nurse_id:
            state._raise(
                "monitor_is_operator", "monitor_is_operator", "warning",
                "the person monitoring sedation is the operator", fact.event_id,
            )  # fmt: skip
    elif kind == "procedure.time_out":
        if state.stage in ("none", "scheduled"):
            state._raise(
                f"time_out_before_opening:{fact.event_id}", "out_of_sequence", "warning",
                "time-out recorded before the procedure was opened", fact.event_id,
            )  # fmt: skip
        _advance(state, fact, "timed_out")
        state.timed_out = True
        unconfirmed = [
            name.removesuffix("_confirmed")
            for name in ("patient_confirmed", "procedure_confirmed", "site_confirmed",
                         "consent_confirmed")
            if p.get(name) is not True
        ]  # fmt: skip
        if unconfirmed:
            state._raise(
                f"time_out_incomplete:{fact.event_id}", "time_out_incomplete", "critical",
                f"time-out without confirming: {', '.join(unconfirmed)}", fact.event_id,
            )  # fmt: skip
    elif kind in INTERVENTIONS:
        if kind == "implant.needle_placed":
            target = p.get("target")
            level = target.get("level") if isinstance(target, Mapping) else None
            state.needles.append(Needle(fact.event_id, fact.occurred_at, str(level or "target")))
        if not state.timed_out:
            state._raise(
                f"before_time_out:{fact.event_id}", "intervention_before_time_out", "critical",
                f"{kind} before any time-out", fact.event_id,
            )  # fmt: skip
        if _RANK[state.stage] > _RANK["timed_out"]:
            state._raise(
                f"out_of_sequence:{fact.event_id}", "out_of_sequence", "warning",
                f"{kind} after the procedure reached {state.stage}", fact.event_id,
            )  # fmt: skip
    elif kind == "procedure.closed":
        _advance(state, fact, "closed")
    elif kind == "adverse_event.reported":
        serious, expected = bool(p.get("serious")), bool(p.get("expected"))
        deadline = report_deadline(
            fact.occurred_at, serious, expected, [str(c) for c in p.get("serious_criteria", [])]
        )
        state.adverse_events.append(AdverseEvent(
            fact.event_id, str(p.get("term")), int(p.get("grade", 0)), serious, expected,
            fact.occurred_at, deadline,
        ))  # fmt: skip
        if deadline is not None:  # shown at once, in the ledger and on every timeline
            state._raise(
                f"sae_clock:{fact.event_id}", "sae_report_clock", "info",
                f"serious unexpected adverse event '{p.get('term')}': report due by "
                f"{deadline.isoformat()}", fact.event_id,
            )  # fmt: skip
    elif kind == "imaging.capture_received":
        angle = p.get("positioner_primary_angle_deg")
        acquired = p.get("acquired_at")
        state.captures.append(Capture(
            fact.event_id, str(p.get("sop_instance_uid")), str(p.get("modality", "")),
            float(angle) if isinstance(angle, (int, float)) else None,
            datetime.fromisoformat(acquired) if isinstance(acquired, str) else fact.occurred_at,
        ))  # fmt: skip
    elif kind == "sedation.assessed":
        state.weight_kg = float(p["weight_kg"]) if p.get("weight_kg") else state.weight_kg
        state.asa_class = p.get("asa_class", state.asa_class)
    elif kind == "sedation.drug_administered":
        key = _drug_key(str(p.get("drug", "")), str(p.get("unit", "")))
        unit = str(p.get("unit", ""))
        total = state.drugs.setdefault(
            key, DrugTotal(str(p.get("drug", "")), _UNIT_ALIASES.get(unit, unit))
        )
        total.total += float(p.get("dose") or 0)
        total.doses += 1
        if state.sedated_at is None:
            state.sedated_at = fact.occurred_at
    elif kind == "sedation.vitals_recorded":
        state.vitals += 1
        if state.last_vitals_at is None or fact.occurred_at > state.last_vitals_at:
            state.last_vitals_at = fact.occurred_at
    elif kind == "sedation.depth_scored":
        state.depth.append((str(p.get("scale")), int(p.get("score", 0)), fact.occurred_at))
    elif kind == "recovery.scored":
        state.recovery[str(p.get("scale"))] = int(p.get("score", 0))
        _advance(state, fact, "recovery")
    elif kind == "recovery.discharged":
        _advance(state, fact, "discharged")
        state.discharged_at = fact.occurred_at
        low = {s: v for s, v in state.recovery.items() if v < RECOVERY_THRESHOLD}
        if low or not state.recovery:
            found = ", ".join(f"{s} {v}" for s, v in sorted(low.items())) or "no recovery score"
            state._raise(
                "discharge_criteria_unmet", "discharge_criteria_unmet", "warning",
                f"discharged with {found} (needs Aldrete and PADSS >= {RECOVERY_THRESHOLD})",
                fact.event_id,
            )  # fmt: skip


# --- the clock ---------------------------------------------------------------------------------


_CROSS_SECTIONAL = frozenset({"CT", "US"})  # one image shows where the needle is


def needle_confirmed(needle: Needle, captures: Iterable[Capture], window: timedelta) -> bool:
    """Confirmed by this procedure's captures within the window: one CT or ultrasound image,
    or a fluoroscopic AP (primary angle within 30 degrees of 0) and lateral (60 to 120) pair.
    Fluoroscopy that reports no angle counts as a pair when there are two such images."""
    near = [c for c in captures if abs(c.at - needle.at) <= window]
    if any(c.modality in _CROSS_SECTIONAL for c in near):
        return True
    angles = [abs(c.angle) for c in near if c.angle is not None]
    if any(a <= 30 for a in angles) and any(60 <= a <= 120 for a in angles):
        return True
    return len({c.sop_instance_uid for c in near if c.angle is None}) >= 2


def due(state: ProcedureState, now: datetime, policy: Policy) -> list[Alert]:
    """Alerts that time alone raises: vitals overdue while the patient is sedated, and a needle
    placement no capture confirmed within the window."""
    out: list[Alert] = []
    vitals_interval = policy.vitals_interval
    if state.sedated and state.sedated_at is not None:
        since = max(filter(None, (state.sedated_at, state.last_vitals_at)))
        if now - since > vitals_interval:
            minutes = (now - since).total_seconds() / 60
            out.append(Alert(
                f"vitals_overdue:{since.isoformat()}", "vitals_overdue", "warning",
                f"no vitals for {minutes:.0f} min while sedated "
                f"(interval {vitals_interval.total_seconds() / 60:g} min)", (),
            ))  # fmt: skip
    for ae in state.adverse_events:
        if ae.deadline is not None and now >= ae.deadline - policy.sae_warning:
            late = now > ae.deadline
            out.append(Alert(
                f"sae_report_{'overdue' if late else 'due'}:{ae.event_id}", "sae_report_due",
                "critical" if late else "warning",
                f"serious unexpected adverse event '{ae.term}' (grade {ae.grade}): report "
                f"{'was due' if late else 'due'} {ae.deadline.isoformat()}", (ae.event_id,),
            ))  # fmt: skip
    window = policy.needle_window
    for needle in state.needles:
        if now > needle.at + window and not state.confirmed(needle, window):
            out.append(Alert(
                f"needle_unconfirmed:{needle.event_id}", "needle_unconfirmed", "warning",
                f"needle at {needle.level} has no confirming image (AP and lateral, or CT/US) "
                f"within {window.total_seconds() / 60:g} min", (needle.event_id,),
            ))  # fmt: skip
    return out

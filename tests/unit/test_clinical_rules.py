"""The clinical rules as a fold over a procedure's events: totals, stages, alerts, corrections,
and the clock-driven vitals check."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.implant.rules import due, fold
from shared.clinical.clock import FakeClock
from shared.clinical.facts import Fact
from shared.clinical.policy import Policy
from shared.clinical.state import ProcedureState

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def fact(kind: str, minute: float, payload: dict[str, Any] | None = None, **kw: Any) -> Fact:
    n = next(_ids)
    return Fact(
        event_id=kw.get("event_id", f"e{n}"),
        type=kind,
        occurred_at=T0 + timedelta(minutes=minute),
        actor_id=kw.get("actor_id", "nurse-1"),
        payload=payload or {},
        seq=n,
    )


OPEN = {"room": "OR-2", "operator_id": "dr-a", "monitoring_nurse_id": "rn-b"}
TIME_OUT = {"patient_confirmed": True, "procedure_confirmed": True, "site_confirmed": True,
            "consent_confirmed": True, "targets": ["L4-L5"]}  # fmt: skip


def codes(state: ProcedureState) -> list[str]:
    return sorted(a.code for a in state.alerts)


def test_a_clean_sedated_procedure_raises_nothing_and_keeps_running_totals() -> None:
    state = fold("p1", [
        fact("procedure.scheduled", -60, {"phase": "implant", "patient": {"id": "MRN1"}}),
        fact("sedation.assessed", -5, {"weight_kg": 80, "asa_class": 2}),
        fact("procedure.opened", 0, OPEN),
        fact("sedation.drug_administered", 1, {"drug": "Midazolam", "dose": 2, "unit": "mg"}),
        fact("sedation.vitals_recorded", 2, {"spo2_pct": 98}),
        fact("procedure.time_out", 3, TIME_OUT),
        fact("sedation.drug_administered", 4, {"drug": "midazolam", "dose": 1, "unit": "mg"}),
        fact("sedation.drug_administered", 4, {"drug": "Fentanyl", "dose": 50, "unit": "mcg"}),
        fact("implant.needle_placed", 6),
        fact("procedure.closed", 20, {"outcome": "completed"}),
        fact("recovery.scored", 40, {"scale": "Aldrete", "score": 9}),
        fact("recovery.scored", 55, {"scale": "PADSS", "score": 10}),
        fact("recovery.discharged", 60, {"escort": "spouse", "condition": "well"}),
    ])  # fmt: skip
    assert state.alerts == []
    assert state.stage == "discharged"
    midazolam = state.drugs["midazolam|mg"]
    assert (midazolam.total, midazolam.doses) == (3.0, 2)  # case of the name does not split it
    assert state.per_kg("Midazolam", "mg") == 3.0 / 80
    assert state.drugs["fentanyl|mcg"].total == 50.0
    assert not state.sedated


def test_out_of_order_and_rule_breaking_facts_are_kept_and_alerted() -> None:
    state = fold("p1", [
        fact("procedure.opened", 0, {**OPEN, "monitoring_nurse_id": "dr-a"}),
        fact("implant.needle_placed", 1),  # before any time-out
        fact("procedure.time_out", 2, {**TIME_OUT, "site_confirmed": False}),
        fact("procedure.closed", 3, {"outcome": "completed"}),
        fact("recovery.scored", 4, {"scale": "PADSS", "score": 7}),
        fact("recovery.discharged", 5, {"escort": "x", "condition": "y"}),
        fact("sedation.drug_administered", 6, {"drug": "propofol", "dose": 20, "unit": "mg"}),
    ])  # fmt: skip
    assert codes(state) == sorted([
        "monitor_is_operator", "intervention_before_time_out", "time_out_incomplete",
        "discharge_criteria_unmet", "out_of_sequence",
    ])  # fmt: skip
    assert state.drugs["propofol|mg"].total == 20.0  # recorded all the same
    unmet = next(a for a in state.alerts if a.code == "discharge_criteria_unmet")
    assert "PADSS 7" in unmet.message


def test_discharge_without_any_recovery_score_is_unmet() -> None:
    state = fold("p1", [fact("recovery.discharged", 5, {"escort": "x", "condition": "y"})])
    assert codes(state) == ["discharge_criteria_unmet"]


def test_a_late_entry_is_placed_by_clinical_time_not_by_arrival() -> None:
    timeout = fact("procedure.time_out", 3, TIME_OUT)
    needle = fact("implant.needle_placed", 6)
    opened = fact("procedure.opened", 0, OPEN)
    state = fold("p1", [needle, opened, timeout])  # the time-out was typed in last
    assert state.alerts == []


def test_a_correction_changes_the_state_and_a_wrong_old_value_is_flagged() -> None:
    dose = fact("sedation.drug_administered", 1, {"drug": "midazolam", "dose": 20, "unit": "mg"})
    fix = fact("record.corrected", 2, {"supersedes": dose.event_id, "reason": "typo",
                                       "changes": {"dose": {"old": 20, "new": 2}}})  # fmt: skip
    state = fold("p1", [dose, fix])
    assert state.drugs["midazolam|mg"].total == 2.0
    assert state.corrected == {dose.event_id: fix.event_id}
    assert state.alerts == []
    changes = {"payload.dose": {"old": 7, "new": 3}}
    wrong = fact("record.corrected", 3,
                 {"supersedes": dose.event_id, "reason": "again", "changes": changes})  # fmt: skip
    state = fold("p1", [dose, fix, wrong])
    assert state.drugs["midazolam|mg"].total == 3.0
    assert codes(state) == ["correction_mismatch"]


def test_a_correction_that_arrives_before_its_original_applies_once_it_is_there() -> None:
    dose = fact("sedation.drug_administered", 1, {"drug": "midazolam", "dose": 20, "unit": "mg"})
    fix = fact("record.corrected", 2, {"supersedes": dose.event_id, "reason": "typo",
                                       "changes": {"dose": {"old": 20, "new": 2}}})  # fmt: skip
    assert fold("p1", [fix]).drugs == {}
    assert fold("p1", [fix, dose]).drugs["midazolam|mg"].total == 2.0


def test_vitals_overdue_is_driven_by_the_clock_once_per_gap() -> None:
    clock = FakeClock(T0)
    events = [
        fact("sedation.drug_administered", 0, {"drug": "midazolam", "dose": 2, "unit": "mg"}),
        fact("sedation.vitals_recorded", 1, {"spo2_pct": 97}),
    ]  # fmt: skip
    state = fold("p1", events)
    interval = Policy(vitals_interval=timedelta(minutes=5))
    clock.advance(minutes=5)
    assert due(state, clock.now(), interval) == []  # 4 minutes since the vitals
    clock.advance(minutes=2)
    (alert,) = due(state, clock.now(), interval)
    assert alert.code == "vitals_overdue"
    clock.advance(minutes=3)
    assert [a.key for a in due(state, clock.now(), interval)] == [alert.key]  # the same gap
    events.append(fact("sedation.vitals_recorded", 10, {"spo2_pct": 96}))
    state = fold("p1", events)
    clock.advance(minutes=6)  # 16 min: 6 since the new vitals
    (again,) = due(state, clock.now(), interval)
    assert again.key != alert.key  # a new gap, a new alert
    events.append(fact("recovery.discharged", 17, {"escort": "x", "condition": "y"}))
    assert due(fold("p1", events), clock.now() + timedelta(hours=1), interval) == []


# --- properties ------------------------------------------------------------------------------

KINDS = {
    "procedure.scheduled": st.just({"phase": "implant", "patient": {"id": "MRN1"}}),
    "procedure.opened": st.sampled_from([OPEN, {**OPEN, "monitoring_nurse_id": "dr-a"}]),
    "procedure.time_out": st.sampled_from([TIME_OUT, {**TIME_OUT, "consent_confirmed": False}]),
    "implant.needle_placed": st.just({}),
    "implant.injected": st.just({}),
    "procedure.closed": st.just({"outcome": "completed"}),
    "sedation.assessed": st.builds(lambda w: {"weight_kg": w, "asa_class": 2},
                                   st.integers(30, 150)),
    "sedation.drug_administered": st.builds(
        lambda d, n: {"drug": d, "dose": n, "unit": "mg"},
        st.sampled_from(["midazolam", "Midazolam", "propofol"]), st.integers(1, 50)),
    "sedation.vitals_recorded": st.just({"spo2_pct": 97}),
    "recovery.scored": st.builds(lambda s, n: {"scale": s, "score": n},
                                 st.sampled_from(["Aldrete", "PADSS"]), st.integers(0, 10)),
    "recovery.discharged": st.just({"escort": "x", "condition": "y"}),
}  # fmt: skip


@st.composite
def histories(draw: st.DrawFn) -> list[Fact]:
    n = draw(st.integers(0, 25))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(sorted(KINDS)))
        minute = draw(st.integers(0, 240))
        out.append(Fact(f"h{i}", kind, T0 + timedelta(minutes=minute), "rn", draw(KINDS[kind]), i))
    return out


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms())
def test_any_order_of_arrival_gives_the_same_state(events: list[Fact], rnd: Any) -> None:
    state = fold("p", events)
    shuffled = list(events)
    rnd.shuffle(shuffled)  # arrival order changes; seq (the tie-break) travels with each fact
    again = fold("p", shuffled)
    assert again.stage == state.stage
    assert {k: (v.total, v.doses) for k, v in again.drugs.items()} == {
        k: (v.total, v.doses) for k, v in state.drugs.items()
    }
    assert sorted(a.key for a in again.alerts) == sorted(a.key for a in state.alerts)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_the_state_is_always_consistent(events: list[Fact]) -> None:
    state = fold("p", events)
    assert state.stage in ("none", "scheduled", "opened", "timed_out", "closed", "recovery",
                           "discharged")  # fmt: skip
    doses = [f for f in events if f.type == "sedation.drug_administered"]
    assert sum(t.doses for t in state.drugs.values()) == len(doses)
    given_total = sum(f.payload["dose"] for f in doses)
    assert abs(sum(t.total for t in state.drugs.values()) - given_total) < 1e-9
    assert len({a.key for a in state.alerts}) == len(state.alerts)  # never raised twice
    interventions = [f for f in events if f.type in ("implant.needle_placed", "implant.injected")]
    time_outs = [f for f in events if f.type == "procedure.time_out"]
    first = min((f.occurred_at, f.seq) for f in time_outs) if time_outs else None
    early = [f for f in interventions if first is None or (f.occurred_at, f.seq) < first]
    flagged = {a.event_ids[0] for a in state.alerts if a.code == "intervention_before_time_out"}
    assert flagged == {f.event_id for f in early}  # exactly the ones before a time-out

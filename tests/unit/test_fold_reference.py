"""The rooms' chains fold every story to the state the single fold of before gave.

tests/unit/reference_fold.py is that old fold, kept here only as the reference. Over random
stories (every clinical event type, lots, images, corrections, any order and any clinical
time), each room's rules must give the same state, the same alerts in the same order, the
same clock alerts and the same watch verdict as the old fold, for everything that room keeps:
- harvest (services/harvest/rules.py), over stories of a harvest procedure;
- implant (services/implant/rules.py), over stories of an implant procedure with lots;
- both rooms' handlers in one chain, over stories of every type: field for field the old state.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.harvest import rules as harvest
from services.implant import rules as implant
from shared.clinical.chain import Rules
from shared.clinical.common import COMMON
from shared.clinical.facts import Fact, Lot
from shared.clinical.policy import Policy
from tests.unit import reference_fold as old

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
PATIENT = "MRN-0042"
POLICY = Policy(vitals_interval=timedelta(minutes=5), needle_window=timedelta(minutes=10))


def at(minute: int) -> str:
    return (T0 + timedelta(minutes=minute)).isoformat()


lot_ids = st.sampled_from(["LOT-1", "LOT-2"])
people = st.sampled_from(["rn-lee", "dr-khan", "RN-LEE", "courier-7", "lab"])
TIME_OUT = {"patient_confirmed": True, "procedure_confirmed": True, "site_confirmed": True,
            "consent_confirmed": True, "targets": ["L4-L5"]}  # fmt: skip

PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "procedure.scheduled": st.fixed_dictionaries({
        "phase": st.sampled_from(["harvest", "implant"]),
        "patient": st.just({"id": PATIENT}), "follows_procedure_id": st.none()}),
    "procedure.opened": st.fixed_dictionaries({
        "operator_id": st.sampled_from(["dr-khan", "rn-lee"]), "monitoring_nurse_id": people}),
    "procedure.time_out": st.builds(lambda off: {**TIME_OUT, **{k: False for k in off}},
        st.lists(st.sampled_from(sorted(k for k in TIME_OUT if k != "targets")), max_size=2)),
    "procedure.closed": st.just({"outcome": "completed"}),
    "sedation.assessed": st.fixed_dictionaries({
        "weight_kg": st.sampled_from([0, 55, 72.5]), "asa_class": st.integers(1, 4)}),
    "sedation.drug_administered": st.fixed_dictionaries({
        "drug": st.sampled_from(["midazolam", " Midazolam", "fentanyl"]),
        "dose": st.sampled_from([1, 2.5, 50]), "unit": st.sampled_from(["mg", "mcg", "ug"])}),
    "sedation.vitals_recorded": st.just({"spo2_pct": 97}),
    "sedation.depth_scored": st.fixed_dictionaries({
        "scale": st.just("RASS"), "score": st.integers(-5, 1)}),
    "anaesthesia.local_administered": st.just({"agent": "lidocaine"}),
    "recovery.scored": st.fixed_dictionaries({
        "scale": st.sampled_from(["Aldrete", "PADSS"]), "score": st.integers(6, 10)}),
    "recovery.discharged": st.just({"escort": "spouse", "condition": "stable"}),
    "harvest.aspiration_performed": st.just({"tissue": "bone_marrow", "volume_ml": 60}),
    "harvest.sample_labelled": st.fixed_dictionaries({
        "sample_id": st.sampled_from(["S7K2M9Q4X1B5", f"BM-{PATIENT}-1", "s-mrn-0042x"])}),
    "custody.handoff": st.fixed_dictionaries({
        "item_id": st.sampled_from(["S7K2M9Q4X1B5", "LOT-1"]), "from_party": people,
        "to_party": people, "temperature_c": st.sampled_from([None, 4, 1.5, 30, "cold"])}),
    "implant.product_verified": st.fixed_dictionaries({
        "lot_id": lot_ids, "patient_id_scanned": st.sampled_from([PATIENT, "MRN-0099"]),
        "verifier_ids": st.lists(people, max_size=3)}),
    "implant.needle_placed": st.fixed_dictionaries({
        "target": st.sampled_from([{"level": "L4-L5"}, {"level": "L5-S1"}, {}, "L3"])}),
    "implant.injected": st.fixed_dictionaries({
        "lot_id": lot_ids, "cell_count": st.sampled_from([1e7, 3e7, None])}),
    "imaging.capture_received": st.fixed_dictionaries({
        "sop_instance_uid": st.sampled_from(["1.2.3.1", "1.2.3.2", "1.2.3.3"]),
        "modality": st.sampled_from(["XA", "RF", "CT", "US"]),
        "positioner_primary_angle_deg": st.sampled_from([None, 0, -5, 90, 45, -88]),
        "acquired_at": st.one_of(st.none(), st.integers(-30, 300).map(at))}),
    "adverse_event.reported": st.fixed_dictionaries({
        "term": st.just("vasovagal reaction"), "grade": st.integers(1, 5),
        "serious": st.booleans(), "expected": st.booleans(),
        "serious_criteria": st.lists(st.sampled_from(["death", "hospitalisation"]), max_size=1)}),
}  # fmt: skip
HARVEST_ONLY = {"harvest.sample_labelled"}
IMPLANT_ONLY = {"implant.product_verified", "implant.needle_placed", "implant.injected"}


def lots() -> st.SearchStrategy[dict[str, Lot]]:
    lot = st.builds(
        lambda lot_id, minute, days, owner, sterility, viability, cells: Lot(
            lot_id, T0 + timedelta(minutes=minute), f"lot-{lot_id}", {
                "lot_id": lot_id, "patient": {"id": owner}, "cell_count": cells,
                "expires_at": (T0 + timedelta(days=days)).isoformat(), "sterility": sterility,
                "endotoxin": "<0.5 EU/mL", "mycoplasma": "not detected",
                "viability_pct": viability}),
        lot_ids, st.integers(-120, 120), st.sampled_from([-1, 30]),
        st.sampled_from([PATIENT, "MRN-0099"]),
        st.sampled_from(["no growth", "positive", ""]), st.sampled_from([93.5, 60]),
        st.sampled_from([2e7, 5e7]),
    )  # fmt: skip
    return st.lists(lot, max_size=2).map(lambda xs: {x.lot_id: x for x in xs})


@st.composite
def stories(draw: st.DrawFn, kinds: list[str]) -> list[Fact]:
    facts: list[Fact] = []
    for seq in range(draw(st.integers(0, 30))):
        if facts and draw(st.integers(0, 9)) == 0:  # now and then, a correction
            target = draw(st.sampled_from(facts))
            field = draw(st.sampled_from(["dose", "payload.score", "target.level",
                                          "occurred_at", "temperature_c"]))  # fmt: skip
            new: Any = at(draw(st.integers(-60, 300))) if field == "occurred_at" else 3
            change = {"new": new} | ({"old": draw(st.sampled_from([2, None]))}
                                     if draw(st.booleans()) else {})  # fmt: skip
            payload = {"supersedes": target.event_id, "changes": {field: change}}
            kind = "record.corrected"
        else:
            kind = draw(st.sampled_from(kinds))
            payload = draw(PAYLOADS[kind])
        minute = draw(st.integers(-60, 300))
        facts.append(Fact(f"e{seq}", kind, T0 + timedelta(minutes=minute), "rn", payload, seq))
    return facts


def fields(state: Any) -> dict[str, Any]:
    return dataclasses.asdict(state)


def plain(alerts: list[Any]) -> list[dict[str, Any]]:
    """Alerts as plain values: the old fold's Alert is another class with the same fields."""
    return [dataclasses.asdict(a) for a in alerts]


def assert_same(rules: Rules[Any], facts: list[Fact], known: dict[str, Lot], later: int) -> None:
    before = old.fold("p", facts, known, POLICY)
    after = rules.fold("p", facts, known, POLICY)
    mine = fields(after)
    assert set(mine) <= set(fields(before))  # a room keeps a part of the old state, no more
    assert mine == {k: v for k, v in fields(before).items() if k in mine}
    assert plain(after.alerts) == plain(before.alerts)  # the same alerts, in the same order
    for now in (T0 + timedelta(minutes=later), T0 + timedelta(days=later)):
        assert plain(rules.due(after, now, POLICY)) == plain(old.due(before, now, POLICY))
    assert rules.needs_clock(after, POLICY) == before.needs_clock(POLICY)


@settings(max_examples=300, deadline=None)
@given(stories(sorted(set(PAYLOADS) - IMPLANT_ONLY)), st.integers(0, 400))
def test_the_harvest_rules_fold_as_before(facts: list[Fact], later: int) -> None:
    assert_same(harvest.RULES, facts, {}, later)


@settings(max_examples=300, deadline=None)
@given(stories(sorted(set(PAYLOADS) - HARVEST_ONLY)), lots(), st.integers(0, 400))
def test_the_implant_rules_fold_as_before(
    facts: list[Fact], known: dict[str, Lot], later: int
) -> None:
    assert_same(implant.RULES, facts, known, later)


@dataclasses.dataclass
class BothState(harvest.HarvestState, implant.ImplantState):
    """Every part of the state both rooms keep: the whole of the old state."""


BOTH = COMMON.then(BothState, [*harvest.HANDLERS, *implant.HANDLERS], implant.CLOCK)


@settings(max_examples=300, deadline=None)
@given(stories(sorted(PAYLOADS)), lots(), st.integers(0, 400))
def test_both_rooms_chained_fold_every_story_to_the_whole_old_state(
    facts: list[Fact], known: dict[str, Lot], later: int
) -> None:
    assert_same(BOTH, facts, known, later)
    assert set(fields(BOTH.fold("p", facts, known, POLICY))) == set(
        fields(old.fold("p", facts, known, POLICY))
    )

"""Adverse events: seriousness kept apart from severity, and the reporting clock of a serious
unexpected reaction (7 days if fatal or life-threatening, else 15) raising sae_report_due as
the deadline nears and again once it has passed; driven by the clock, without sleeping."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.bus import InMemoryBus
from shared.clinical.clock import FakeClock
from tests.unit.clinical_harness import (
    T0,
    Example,
    Implant,
    NewEvent,
    Procedure,
)


def report(procedure: Procedure, example: Example, **changes: Any) -> dict[str, Any]:
    serious = {"term": "Discitis", "grade": 3, "serious": True, "expected": False,
               "serious_criteria": ["hospitalisation"], "suspected_cause": "product"}  # fmt: skip
    payload = example("adverse_event.reported") | serious | changes
    return procedure.post("adverse_event.reported", payload, minute=0)


def codes_at(
    procedure: Procedure, implant_rules: Implant, clock: FakeClock, days: float
) -> list[str]:
    clock.advance(days=days)
    implant_rules.service.tick()
    return [f"{a['payload']['code']}:{a['payload']['severity']}" for a in procedure.alerts()]


def test_a_life_threatening_unexpected_reaction_has_a_7_day_clock(
    procedure: Procedure, implant_rules: Implant, clock: FakeClock, example: Example
) -> None:
    reported = report(procedure, example, grade=4, serious_criteria=["life_threatening"])
    (ae,) = implant_rules.recorder.state(procedure.id).adverse_events
    assert ae.deadline == T0 + timedelta(days=7)
    (clock_shown,) = procedure.alerts()  # the deadline is in the record at once
    assert clock_shown["payload"]["code"] == "sae_report_clock"
    assert (T0 + timedelta(days=7)).isoformat() in clock_shown["payload"]["message"]
    shown = ["sae_report_clock:info"]
    assert codes_at(procedure, implant_rules, clock, 4.9) == shown
    assert codes_at(procedure, implant_rules, clock, 0.2) == [*shown, "sae_report_due:warning"]
    assert codes_at(procedure, implant_rules, clock, 1.0) == [*shown, "sae_report_due:warning"]
    assert codes_at(procedure, implant_rules, clock, 1.0) == [
        *shown, "sae_report_due:warning", "sae_report_due:critical"]  # day 7.1  # fmt: skip
    assert all(a["payload"]["event_ids"] == [reported["event_id"]] for a in procedure.alerts())
    assert procedure.id in implant_rules.recorder.store.watched()
    implant_rules.service.tick()  # nothing left for the clock to raise: it stops watching
    assert procedure.id not in implant_rules.recorder.store.watched()


def test_other_serious_unexpected_reactions_have_15_days(
    procedure: Procedure, implant_rules: Implant, clock: FakeClock, example: Example
) -> None:
    report(procedure, example)
    (ae,) = implant_rules.recorder.state(procedure.id).adverse_events
    assert ae.deadline == T0 + timedelta(days=15)
    assert codes_at(procedure, implant_rules, clock, 12.9) == ["sae_report_clock:info"]
    assert codes_at(procedure, implant_rules, clock, 0.2) == [
        "sae_report_clock:info", "sae_report_due:warning"]  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [{"expected": True}, {"serious": False, "serious_criteria": [], "grade": 4}],
    ids=["serious but expected", "severe (grade 4) but not serious"],
)
def test_no_reporting_clock_unless_serious_and_unexpected(
    procedure: Procedure, implant_rules: Implant, clock: FakeClock, example: Example,
    changes: dict[str, Any],
) -> None:  # fmt: skip
    report(procedure, example, **changes)
    (ae,) = implant_rules.recorder.state(procedure.id).adverse_events
    assert ae.deadline is None
    assert codes_at(procedure, implant_rules, clock, 30) == []


def test_a_late_adverse_event_shows_on_the_procedure_it_is_linked_to(
    bus: InMemoryBus, implant_rules: Implant, procedure: Procedure, new_event: NewEvent,
    example: Example,
) -> None:  # fmt: skip
    follow_up = Procedure(bus, new_event, example)  # weeks later: a new visit
    late = {"term": "Discitis", "grade": 3, "serious": True, "expected": False,
            "serious_criteria": ["hospitalisation"], "suspected_cause": "product",
            "related_procedure_id": procedure.id, "related_lot_id": "LOT-77"}  # fmt: skip
    reported = follow_up.post("adverse_event.reported",
                              example("adverse_event.reported") | late, minute=0)  # fmt: skip
    (linked,) = procedure.alerts()  # on the implant that caused it
    assert linked["payload"]["code"] == "adverse_event_linked"
    assert linked["payload"]["event_ids"] == [reported["event_id"]]
    assert "LOT-77" in linked["payload"]["message"]
    assert [a["payload"]["code"] for a in follow_up.alerts()] == ["sae_report_clock"]

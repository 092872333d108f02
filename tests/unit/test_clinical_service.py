"""The harvest service with its clinical rules, on the in-memory bus: alerts reach the audit
once each, a redelivery or a restart counts nothing twice, and the clock raises vitals_overdue
without any sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.harvest.rules import RULES, fold
from shared.bus import InMemoryBus
from shared.bus.topology import EVENTS, Q_AUDIT, Q_HARVEST
from shared.clinical.clock import FakeClock
from shared.clinical.policy import Policy
from shared.clinical.recorder import Recorder
from shared.clinical.store import ClinicalStore
from shared.events import parse_event
from shared.events.record import decode_record
from shared.phase import PhaseService
from tests.events import PROCEDURE_ID
from tests.unit.clinical_harness import T0

NewEvent = Callable[..., dict[str, Any]]


class Harvest:
    """services/harvest as it runs, with a clock the test moves."""

    def __init__(self, bus: InMemoryBus, path: Path, clock: FakeClock) -> None:
        self.bus, self.path, self.clock = bus, path, clock
        self.store = ClinicalStore(path)
        recorder = Recorder("harvest", self.store, clock, Policy(timedelta(minutes=5)), RULES)
        self.service = PhaseService("harvest", ("harvest",), bus, 5.0, recorder)

    def restart(self) -> None:
        self.store.close()
        self.__init__(self.bus, self.path, self.clock)  # type: ignore[misc]


@pytest.fixture
def harvest(bus: InMemoryBus, tmp_path: Path, clock: FakeClock) -> Harvest:
    running = Harvest(bus, tmp_path / "clinical.sqlite3", clock)
    bus.subscribe(Q_HARVEST, lambda batch: running.service.handle(batch))
    return running


def post(bus: InMemoryBus, raw: dict[str, Any]) -> None:
    envelope = parse_event(raw)
    bus.publish(
        EVENTS, f"harvest.{envelope.type}", envelope.to_bytes(), message_id=str(envelope.event_id)
    ).result(0)
    bus.drain()


def alerts(bus: InMemoryBus) -> list[dict[str, Any]]:
    records = [decode_record(d.body) for d in bus.messages(Q_AUDIT)]
    return [r.event for r in records if r.event.get("type") == "alert.raised"]


def at(minute: float) -> str:
    return (T0 + timedelta(minutes=minute)).isoformat()


def test_an_aspiration_before_the_time_out_is_recorded_and_alerted_once(
    bus: InMemoryBus, harvest: Harvest, new_event: NewEvent, example: Callable[[str], Any]
) -> None:
    post(bus, new_event("procedure.opened", example("procedure.opened"), occurred_at=at(0)))
    aspiration = new_event("harvest.aspiration_performed", occurred_at=at(1))
    post(bus, aspiration)
    (alert,) = alerts(bus)
    assert alert["payload"]["code"] == "intervention_before_time_out"
    assert alert["payload"]["severity"] == "critical"
    assert alert["payload"]["event_ids"] == [aspiration["event_id"]]
    assert alert["procedure_id"] == PROCEDURE_ID
    post(bus, aspiration)  # redelivered, or posted again by the tablet
    post(bus, new_event("procedure.time_out", example("procedure.time_out"), occurred_at=at(2)))
    assert len(alerts(bus)) == 1
    assert bus.depth(Q_HARVEST) == 0


def test_vitals_overdue_comes_from_the_clock_once_per_gap(
    bus: InMemoryBus, harvest: Harvest, clock: FakeClock, new_event: NewEvent
) -> None:
    dose = {"drug": "midazolam", "dose": 2, "unit": "mg", "route": "iv", "given_by": "rn-lee"}
    post(bus, new_event("sedation.drug_administered", dose, occurred_at=at(0)))
    clock.advance(minutes=4)
    harvest.service.tick()
    assert alerts(bus) == []
    clock.advance(minutes=2)  # six minutes without vitals
    harvest.service.tick()
    harvest.service.tick()
    (overdue,) = alerts(bus)
    assert overdue["payload"]["code"] == "vitals_overdue"
    vitals = {"spo2_pct": 97, "source": "manual", "artifact": False}
    post(bus, new_event("sedation.vitals_recorded", vitals, occurred_at=at(7)))
    clock.advance(minutes=4)  # 10: three minutes after the vitals
    harvest.service.tick()
    assert len(alerts(bus)) == 1
    clock.advance(minutes=3)  # 13: six minutes after them
    harvest.service.tick()
    assert [a["payload"]["code"] for a in alerts(bus)] == ["vitals_overdue"] * 2


def test_a_restart_rebuilds_the_state_and_raises_nothing_again(
    bus: InMemoryBus, harvest: Harvest, new_event: NewEvent
) -> None:
    dose = {"drug": "midazolam", "dose": 2, "unit": "mg", "route": "iv", "given_by": "rn-lee"}
    first = new_event("sedation.drug_administered", dose, occurred_at=at(0))
    post(bus, first)
    post(bus, new_event("harvest.aspiration_performed", occurred_at=at(1)))
    harvest.restart()
    post(bus, first)  # redelivered after the restart
    post(bus, new_event("sedation.drug_administered", dose, occurred_at=at(2)))
    state = fold(PROCEDURE_ID, harvest.store.facts(PROCEDURE_ID))
    assert state.drugs["midazolam|mg"].total == 4.0  # two doses, not three
    assert [a["payload"]["code"] for a in alerts(bus)] == ["intervention_before_time_out"]


def test_an_alert_whose_batch_failed_is_raised_when_the_batch_comes_again(
    bus: InMemoryBus, harvest: Harvest, new_event: NewEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the fact was recorded (here the bus's publish breaking in a way it never
    promised) must not leave the alert marked as in flight: the redelivery raises it."""
    forward = harvest.service._publish
    failures = iter([RuntimeError("the publish broke")])

    def breaks_once(record: Any) -> Any:
        if record.event.get("type") == "alert.raised" and (error := next(failures, None)):
            raise error
        return forward(record)

    monkeypatch.setattr(harvest.service, "_publish", breaks_once)
    post(bus, new_event("harvest.aspiration_performed", occurred_at=at(1)))  # no time-out
    assert next(failures, None) is None  # it did break once
    assert [a["payload"]["code"] for a in alerts(bus)] == ["intervention_before_time_out"]
    assert bus.depth(Q_HARVEST) == 0
    assert bus.depth(f"{Q_HARVEST}.dead") == 0

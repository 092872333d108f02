"""Chain of identity at implant: a product verification is clean only with two different
verifiers and a released, unexpired, QC-passed lot made from this patient's own sample.
Anything else is recorded, raises chain_of_identity_mismatch and leaves the implant
unverified; injecting it raises it again. Driven through the implant service on the
in-memory bus, as bedside and the lab post the events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.bus import InMemoryBus
from shared.bus.topology import EVENTS, Q_AUDIT, Q_IMPLANT
from shared.clinical.clock import FakeClock
from shared.clinical.recorder import Recorder
from shared.clinical.store import ClinicalStore
from shared.events import parse_event
from shared.events.record import decode_record
from shared.phase import PhaseService

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
NewEvent = Callable[..., dict[str, Any]]
Example = Callable[[str], dict[str, Any]]


@pytest.fixture
def implant(bus: InMemoryBus, tmp_path: Path) -> Recorder:
    recorder = Recorder("implant", ClinicalStore(tmp_path / "c.sqlite3"), FakeClock(T0))
    service = PhaseService("implant", ("implant", "lab"), bus, 5.0, recorder)
    bus.subscribe(Q_IMPLANT, service.handle)
    return recorder


def at(minute: float) -> str:
    return (T0 + timedelta(minutes=minute)).isoformat()


class Procedure:
    """An implant procedure for patient MRN-0042, posted event by event."""

    def __init__(self, bus: InMemoryBus, new_event: NewEvent, example: Example) -> None:
        self.bus, self.new_event, self.example = bus, new_event, example
        self.id = str(uuid.uuid4())
        self.post("procedure.scheduled", {"phase": "implant", "patient": {"id": "MRN-0042"},
                                          "room": "OR-2"}, minute=-120)  # fmt: skip

    def post(self, kind: str, payload: dict[str, Any], minute: float, **kw: Any) -> dict[str, Any]:
        raw = self.new_event(kind, payload, occurred_at=at(minute), **kw)
        if kind != "product.lot_released":
            raw["procedure_id"] = self.id
        envelope = parse_event(raw)
        phase = "lab" if kind == "product.lot_released" else "implant"
        self.bus.publish(EVENTS, f"{phase}.{kind}", envelope.to_bytes(),
                         message_id=str(envelope.event_id)).result(0)  # fmt: skip
        self.bus.drain()
        return raw

    def release(self, minute: float = -60, **changes: Any) -> None:
        self.post("product.lot_released", self.example("product.lot_released") | {
            "expires_at": at(24 * 60), **changes}, minute=minute)  # fmt: skip

    def verify(self, minute: float = 5, **changes: Any) -> dict[str, Any]:
        payload = self.example("implant.product_verified") | changes
        return self.post("implant.product_verified", payload, minute=minute)

    def alerts(self) -> list[dict[str, Any]]:
        records = [decode_record(d.body).event for d in self.bus.messages(Q_AUDIT)]
        mine = [r for r in records if r.get("procedure_id") == self.id]
        return [r for r in mine if r.get("type") == "alert.raised"]


@pytest.fixture
def procedure(
    bus: InMemoryBus, implant: Recorder, new_event: NewEvent, example: Example
) -> Procedure:
    return Procedure(bus, new_event, example)


def test_a_clean_verification_of_a_good_lot_raises_nothing(
    procedure: Procedure, implant: Recorder
) -> None:
    procedure.release()
    procedure.verify()
    assert procedure.alerts() == []
    assert implant.state(procedure.id).verified == {"LOT-77": True}


BAD = {
    "another patient's lot": (
        {"patient": {"id": "MRN-9999"}}, {}, "made for another patient"),
    "an expired lot": ({"expires_at": at(-1)}, {}, "expired"),
    "an unreleased lot": (None, {}, "not released"),
    "one verifier": ({}, {"verifier_ids": ["rn-lee"]}, "only one verifier"),
    "the same person twice": (
        {}, {"verifier_ids": ["dr-khan", "DR-KHAN"]}, "the same person verified twice"),
    "QC failed": ({"mycoplasma": "detected"}, {}, "QC not passed: mycoplasma detected"),
    "another wristband": ({}, {"patient_id_scanned": "MRN-0043"}, "wristband"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_broken_chain_of_identity_is_recorded_alerted_and_left_unverified(
    procedure: Procedure, implant: Recorder, case: str
) -> None:
    lot_changes, verification_changes, reason = BAD[case]
    if lot_changes is not None:
        procedure.release(**lot_changes)
    verified = procedure.verify(**verification_changes)
    (alert,) = procedure.alerts()
    assert alert["payload"]["code"] == "chain_of_identity_mismatch"
    assert alert["payload"]["severity"] == "critical"
    assert reason in alert["payload"]["message"]
    assert alert["payload"]["event_ids"] == [verified["event_id"]]
    assert implant.state(procedure.id).verified == {"LOT-77": False}


def test_a_lot_released_only_after_the_verification_did_not_make_it_clean(
    procedure: Procedure,
) -> None:
    procedure.verify(minute=5)
    procedure.release(minute=30)  # the lab's release arrives, and happened, later
    (alert,) = procedure.alerts()
    assert "not released" in alert["payload"]["message"]


def test_injecting_an_unverified_lot_or_more_cells_than_released_is_alerted(
    procedure: Procedure, example: Example
) -> None:
    procedure.release(cell_count=2.0e7)
    procedure.verify(verifier_ids=["rn-lee"])
    procedure.post("procedure.time_out", example("procedure.time_out"), minute=6)
    injection = example("implant.injected") | {"lot_id": "LOT-77", "cell_count": 1.5e7}
    procedure.post("implant.injected", injection, minute=10)
    procedure.post("implant.injected", injection, minute=12)  # a second disc, same lot
    codes = [a["payload"]["code"] for a in procedure.alerts()]
    assert codes.count("chain_of_identity_mismatch") == 3  # the check and both injections
    assert codes.count("cell_count_exceeds_lot") == 1  # 3.0e7 of 2.0e7

"""Needle confirmation: a placement needs a confirming AP and lateral pair (or one CT or
ultrasound image) from this procedure's captures within the window, or the clock raises
needle_unconfirmed once the window has passed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.clinical.clock import FakeClock
from tests.unit.clinical_harness import (
    Example,
    Implant,
    Procedure,
    at,
)


@pytest.fixture
def procedure(procedure: Procedure, example: Example) -> Procedure:
    """Opened and timed out: ready for needles."""
    procedure.post("procedure.opened", example("procedure.opened"), minute=0)
    procedure.post("procedure.time_out", example("procedure.time_out"), minute=1)
    return procedure


def capture(procedure: Procedure, example: Example, minute: float, **fields: Any) -> None:
    payload = example("imaging.capture_received") | {
        "sop_instance_uid": f"2.25.{uuid.uuid4().int}",
        "acquired_at": at(minute),
        **fields,
    }
    procedure.post("imaging.capture_received", payload, minute=minute,
                   actor={"id": "FLUORO1", "role": "device"},
                   source={"kind": "dicom", "id": "FLUORO1"})  # fmt: skip


def place(procedure: Procedure, example: Example, minute: float) -> dict[str, Any]:
    payload = example("implant.needle_placed") | {"confirming_sop_instance_uids": []}
    return procedure.post("implant.needle_placed", payload, minute=minute)


def codes_after_window(procedure: Procedure, implant_rules: Implant, clock: FakeClock) -> list[str]:
    clock.advance(minutes=30)  # well past the 10-minute window
    implant_rules.service.tick()
    implant_rules.service.tick()
    return [a["payload"]["code"] for a in procedure.alerts()]


def test_a_placement_with_no_confirming_capture_raises_needle_unconfirmed(
    procedure: Procedure, implant_rules: Implant, clock: FakeClock, example: Example
) -> None:
    needle = place(procedure, example, minute=5)
    implant_rules.service.tick()  # inside the window: nothing yet
    assert procedure.alerts() == []
    (code,) = codes_after_window(procedure, implant_rules, clock)
    assert code == "needle_unconfirmed"
    (alert,) = procedure.alerts()
    assert alert["payload"]["event_ids"] == [needle["event_id"]]
    assert "L4-L5" in alert["payload"]["message"]


def test_an_ap_and_lateral_pair_inside_the_window_raises_nothing(
    procedure: Procedure, implant_rules: Implant, clock: FakeClock, example: Example
) -> None:
    place(procedure, example, minute=5)
    capture(procedure, example, 6, modality="RF", positioner_primary_angle_deg=2.0)
    capture(procedure, example, 8, modality="RF", positioner_primary_angle_deg=-88.5)
    assert codes_after_window(procedure, implant_rules, clock) == []


@pytest.mark.parametrize(
    ("views", "confirmed"),
    [
        ([("RF", 0.0, 6)], False),  # an AP alone
        ([("RF", 0.0, 6), ("RF", 90.0, 40)], False),  # the lateral came too late
        ([("CT", None, 7)], True),  # one CT image shows the needle
        ([("US", None, 4)], True),
        ([("XA", None, 6), ("XA", None, 7)], True),  # no angles reported: a pair counts
    ],
)
def test_what_confirms_a_placement(
    procedure: Procedure,
    implant_rules: Implant,
    clock: FakeClock,
    example: Example,
    views: list[tuple[str, float | None, float]],
    confirmed: bool,
) -> None:
    place(procedure, example, minute=5)
    for modality, angle, minute in views:
        fields: dict[str, Any] = {"modality": modality}
        if angle is not None:
            fields["positioner_primary_angle_deg"] = angle
        capture(procedure, example, minute, **fields)
    expected = [] if confirmed else ["needle_unconfirmed"]
    assert codes_after_window(procedure, implant_rules, clock) == expected

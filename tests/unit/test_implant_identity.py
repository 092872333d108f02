"""Chain of identity at implant: a product verification is clean only with two different
verifiers and a released, unexpired, QC-passed lot made from this patient's own sample.
Anything else is recorded, raises chain_of_identity_mismatch and leaves the implant
unverified; injecting it raises it again. Driven through the implant service on the
in-memory bus, as bedside and the lab post the events."""

from __future__ import annotations

import pytest

from tests.unit.clinical_harness import (
    Example,
    Implant,
    Procedure,
    at,
)


def test_a_clean_verification_of_a_good_lot_raises_nothing(
    procedure: Procedure, implant_rules: Implant
) -> None:
    procedure.release()
    procedure.verify()
    assert procedure.alerts() == []
    assert implant_rules.recorder.state(procedure.id).verified == {"LOT-77": True}


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
    procedure: Procedure, implant_rules: Implant, case: str
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
    assert implant_rules.recorder.state(procedure.id).verified == {"LOT-77": False}


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

"""The harvest room's rules (services/harvest/rules.py) and the custody hand-offs every phase
shares: a cold chain kept, and gaps, temperatures and identifying sample ids alerted."""

from __future__ import annotations

from typing import Any

from services.harvest.rules import fold
from shared.clinical.facts import Fact
from tests.unit.test_clinical_rules import fact


def handoff(minute: float, item: str, giver: str, taker: str, temperature: Any = 4.0) -> Fact:
    payload = {"item_id": item, "from_party": giver, "to_party": taker, "condition": "sealed"}
    if temperature is not None:
        payload["temperature_c"] = temperature
    return fact("custody.handoff", minute, payload)


def test_an_unbroken_cold_chain_of_custody_raises_nothing() -> None:
    state = fold("p1", [
        fact("procedure.scheduled", -60, {"phase": "harvest", "patient": {"id": "MRN-0042"}}),
        fact("harvest.sample_labelled", 30, {"sample_id": "S7K2M9Q4X1B5", "volume_ml": 60}),
        handoff(35, "S7K2M9Q4X1B5", "rn-lee", "courier-7"),
        handoff(90, "S7K2M9Q4X1B5", "courier-7", "lab-reception", temperature=6.5),
    ])  # fmt: skip
    assert state.alerts == []
    assert state.holder == {"S7K2M9Q4X1B5": "lab-reception"}
    assert state.samples == ["S7K2M9Q4X1B5"]


def test_custody_gaps_temperatures_and_identifying_sample_ids_are_alerted() -> None:
    state = fold("p1", [
        fact("procedure.scheduled", -60, {"phase": "harvest", "patient": {"id": "MRN-0042"}}),
        fact("harvest.sample_labelled", 30, {"sample_id": "BM-MRN-0042-1", "volume_ml": 60}),
        handoff(35, "BM-MRN-0042-1", "rn-lee", "courier-7", temperature=31),
        handoff(90, "BM-MRN-0042-1", "courier-9", "lab", temperature=None),  # not who had it
    ])  # fmt: skip
    by_code = {a.code: a for a in state.alerts}
    assert sorted(by_code) == ["custody_gap", "custody_temperature", "sample_id_identifies_patient"]
    assert "courier-7 had it" in by_code["custody_gap"].message
    temperatures = [a for a in state.alerts if a.code == "custody_temperature"]
    assert [a.severity for a in temperatures] == ["critical", "warning"]  # 31 °C; none recorded

"""The event envelope and catalogue: what a tablet or an integrator may post, what is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.events import CATALOGUE, LEVELS, InvalidEvent, decode_event, parse_event

NewEvent = Callable[..., dict[str, Any]]


def refusal(raw: object) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    return caught.value


def fields_of(error: InvalidEvent) -> list[str]:
    return [e.field for e in error.errors]


def test_every_catalogue_type_has_an_example_and_every_example_a_type(
    example_payloads: dict[str, dict[str, Any]],
) -> None:
    assert sorted(example_payloads) == sorted(CATALOGUE)


@pytest.mark.parametrize("event_type", sorted(CATALOGUE))
def test_the_example_of_each_catalogue_type_is_accepted_with_every_key_kept(
    event_type: str, new_event: NewEvent, example_payloads: dict[str, dict[str, Any]]
) -> None:
    raw = new_event(event_type, example_payloads[event_type])

    envelope = parse_event(raw)

    assert envelope.type == event_type
    assert str(envelope.event_id) == raw["event_id"]
    assert sorted(envelope.payload) == sorted(example_payloads[event_type])


@pytest.mark.parametrize("event_type", sorted(CATALOGUE))
def test_each_example_survives_the_trip_over_the_bus_unchanged(
    event_type: str, new_event: NewEvent
) -> None:
    envelope = parse_event(new_event(event_type))

    assert decode_event(envelope.to_bytes()) == envelope


def test_the_envelope_on_the_wire_names_the_schema_version_schema(new_event: NewEvent) -> None:
    envelope = parse_event(new_event())

    assert envelope.to_json()["schema"] == 1
    assert "schema_version" not in envelope.to_json()


def test_an_unknown_event_type_is_refused_naming_type(new_event: NewEvent) -> None:
    error = refusal(new_event("sedation.drug_administered", type="sedation.drug_given"))

    assert fields_of(error) == ["type"]
    assert "sedation.drug_given" in error.errors[0].message


def test_a_dose_written_as_words_is_refused_naming_the_dose_field(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("sedation.drug_administered") | {"dose": "two"}

    error = refusal(new_event("sedation.drug_administered", payload))

    assert fields_of(error) == ["payload.dose"]


def test_a_dose_sent_as_the_string_2_is_refused_naming_the_dose_field(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("sedation.drug_administered") | {"dose": "2"}

    error = refusal(new_event("sedation.drug_administered", payload))

    assert fields_of(error) == ["payload.dose"]


@pytest.mark.parametrize("dose", [0, -1, float("inf")])
def test_a_dose_that_is_not_a_positive_finite_number_is_refused(
    dose: float, new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("sedation.drug_administered") | {"dose": dose}

    assert fields_of(refusal(new_event("sedation.drug_administered", payload))) == ["payload.dose"]


def test_a_whole_number_dose_is_a_number_and_is_accepted(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("sedation.drug_administered") | {"dose": 2}

    assert parse_event(new_event("sedation.drug_administered", payload)).payload["dose"] == 2


def test_a_misspelt_payload_key_is_refused_naming_it_rather_than_dropped(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("sedation.drug_administered")
    payload["dose_mg"] = payload.pop("dose")

    error = refusal(new_event("sedation.drug_administered", payload))

    assert "payload.dose_mg" in fields_of(error)
    assert "payload.dose" in fields_of(error)  # and the key it should have been is missing


def test_an_unknown_envelope_key_is_refused_naming_it(new_event: NewEvent) -> None:
    assert fields_of(refusal(new_event(occured_at="2025-03-04T10:00:00+01:00"))) == ["occured_at"]


def test_an_event_of_a_procedure_without_a_procedure_id_is_refused_naming_procedure_id(
    new_event: NewEvent,
) -> None:
    raw = new_event("sedation.drug_administered")
    del raw["procedure_id"]

    assert fields_of(refusal(raw)) == ["procedure_id"]


def test_a_lot_release_needs_no_procedure_id(new_event: NewEvent) -> None:
    raw = new_event("product.lot_released")

    assert "procedure_id" not in raw
    assert parse_event(raw).procedure_id is None


def test_a_clinical_time_without_an_offset_is_refused_naming_occurred_at(
    new_event: NewEvent,
) -> None:
    error = refusal(new_event(occurred_at="2025-03-04T10:00:00"))

    assert fields_of(error) == ["occurred_at"]


def test_a_clinical_time_with_an_offset_is_kept_with_that_offset(new_event: NewEvent) -> None:
    envelope = parse_event(new_event(occurred_at="2025-03-04T10:00:00+01:00"))

    assert envelope.to_json()["occurred_at"] == "2025-03-04T10:00:00+01:00"


@pytest.mark.parametrize("level", ["L4-L6", "L6-L7", "S1-S2", "C1-C2", "l4-l5", "L4L5"])
def test_a_time_out_naming_a_level_that_is_not_a_spinal_level_is_refused(
    level: str, new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("procedure.time_out") | {"targets": ["L3-L4", level]}

    assert fields_of(refusal(new_event("procedure.time_out", payload))) == ["payload.targets.1"]


@pytest.mark.parametrize("level", ["C2-C3", "C7-T1", "T12-L1", "L5-S1"])
def test_the_contract_levels_from_c2_c3_to_l5_s1_are_accepted(
    level: str, new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("procedure.time_out") | {"targets": [level]}

    assert parse_event(new_event("procedure.time_out", payload)).payload["targets"] == [level]


@pytest.mark.parametrize("level", ["L5-L6", "L6-S1"])
def test_l5_l6_and_l6_s1_exist_where_the_counting_convention_has_six_lumbar_vertebrae(
    level: str, new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    six = example("procedure.time_out") | {"targets": [level], "lumbar_vertebrae": 6}
    assert parse_event(new_event("procedure.time_out", six)).payload["targets"] == [level]
    five = example("procedure.time_out") | {"targets": [level]}
    assert fields_of(refusal(new_event("procedure.time_out", five))) == ["payload"]
    needle = example("implant.needle_placed")
    needle["target"] |= {"level": level}
    assert fields_of(refusal(new_event("implant.needle_placed", needle))) == ["payload.target"]
    needle["target"] |= {"lumbar_vertebrae": 6}
    assert parse_event(new_event("implant.needle_placed", needle)).payload["target"]["level"] == (
        level
    )
    l5_s1 = example("procedure.time_out") | {"targets": ["L5-S1"], "lumbar_vertebrae": 6}
    assert fields_of(refusal(new_event("procedure.time_out", l5_s1))) == ["payload"]


def test_the_levels_are_the_adjacent_pairs_c2_c3_to_l5_s1_plus_l5_l6_and_l6_s1() -> None:
    assert len(LEVELS) == 23 + 2  # 24 vertebrae C2..S1 make 23 adjacent pairs
    assert {"C2-C3", "L5-S1", "L5-L6", "L6-S1"} <= LEVELS


def test_a_needle_placed_at_a_bad_level_is_refused_naming_the_target_level(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("implant.needle_placed")
    payload["target"]["level"] = "L9-L10"

    error = refusal(new_event("implant.needle_placed", payload))

    assert fields_of(error) == ["payload.target.level"]


@pytest.mark.parametrize(
    ("scale", "score"), [("RASS", 5), ("RASS", -6), ("Ramsay", 0), ("Ramsay", 7), ("MOAA/S", 6)]
)
def test_a_depth_score_outside_its_scale_is_refused(
    scale: str, score: int, new_event: NewEvent
) -> None:
    error = refusal(new_event("sedation.depth_scored", {"scale": scale, "score": score}))

    assert fields_of(error) == ["payload"]
    assert f"score {score} is outside {scale}" in error.errors[0].message


@pytest.mark.parametrize(
    ("scale", "score"), [("RASS", -5), ("RASS", 4), ("Ramsay", 1), ("Ramsay", 6), ("MOAA/S", 0)]
)
def test_a_depth_score_at_the_ends_of_its_scale_is_accepted(
    scale: str, score: int, new_event: NewEvent
) -> None:
    envelope = parse_event(new_event("sedation.depth_scored", {"scale": scale, "score": score}))

    assert envelope.payload == {"scale": scale, "score": score}


def test_a_recovery_score_above_ten_is_refused(new_event: NewEvent) -> None:
    error = refusal(new_event("recovery.scored", {"scale": "Aldrete", "score": 11}))

    assert "score 11 is outside Aldrete" in error.errors[0].message


def test_a_vitals_entry_with_no_vital_sign_at_all_is_refused(new_event: NewEvent) -> None:
    error = refusal(new_event("sedation.vitals_recorded", {"source": "manual", "artifact": False}))

    assert fields_of(error) == ["payload"]
    assert "at least one vital sign" in error.errors[0].message


def test_a_vitals_entry_with_only_a_heart_rate_is_accepted(new_event: NewEvent) -> None:
    payload = {"heart_rate_bpm": 58, "source": "manual", "artifact": False}

    assert parse_event(new_event("sedation.vitals_recorded", payload)).payload == payload


def test_an_oxygen_saturation_above_100_percent_is_refused(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("sedation.vitals_recorded") | {"spo2_pct": 150}

    assert fields_of(refusal(new_event("sedation.vitals_recorded", payload))) == [
        "payload.spo2_pct"
    ]


def test_a_serious_adverse_event_without_serious_criteria_is_refused(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("adverse_event.reported") | {"serious": True, "serious_criteria": []}

    error = refusal(new_event("adverse_event.reported", payload))

    assert fields_of(error) == ["payload"]
    assert "serious criterion" in error.errors[0].message


def test_a_serious_adverse_event_naming_hospitalisation_is_accepted(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    payload = example("adverse_event.reported") | {
        "serious": True,
        "serious_criteria": ["hospitalisation"],
    }

    assert parse_event(new_event("adverse_event.reported", payload)).payload["serious"] is True


def test_an_unknown_schema_version_is_refused_naming_schema(new_event: NewEvent) -> None:
    error = refusal(new_event(schema=2))

    assert fields_of(error) == ["schema"]
    assert "has no schema 2" in error.errors[0].message


def test_a_schema_version_sent_as_a_string_is_refused_naming_schema(new_event: NewEvent) -> None:
    assert fields_of(refusal(new_event(schema="1"))) == ["schema"]


def test_an_event_id_that_is_not_a_uuid_is_refused_naming_event_id(new_event: NewEvent) -> None:
    assert fields_of(refusal(new_event(event_id="42"))) == ["event_id"]


def test_a_product_check_by_one_verifier_is_a_clinical_fact_but_none_or_three_is_bad_input(
    new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    # One verifier is recorded, and the implant rules raise chain_of_identity_mismatch for it.
    one = example("implant.product_verified") | {"verifier_ids": ["rn-lee"]}
    assert parse_event(new_event("implant.product_verified", one)).payload["verifier_ids"] == [
        "rn-lee"
    ]
    for verifiers in ([], ["rn-lee", "dr-khan", "rn-park"]):
        payload = example("implant.product_verified") | {"verifier_ids": verifiers}
        error = refusal(new_event("implant.product_verified", payload))
        assert fields_of(error) == ["payload.verifier_ids"]


def test_a_bus_body_that_is_not_json_is_refused_naming_body() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(b"{not json")

    assert fields_of(caught.value) == ["body"]


def test_every_refusal_names_every_offending_field_at_once(new_event: NewEvent) -> None:
    payload = {"drug": "midazolam", "dose": "two", "unit": "mg", "route": "IV"}

    error = refusal(new_event("sedation.drug_administered", payload))

    assert sorted(fields_of(error)) == ["payload.dose", "payload.given_by"]
    assert str(error).startswith("payload.")

"""bedside over HTTP, as a tablet sees it: schedule a procedure, post events, get clear refusals."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.bedside.api import Bedside
from services.bedside.feed import TabletFeed
from shared.bus import Delivery, InMemoryBus
from shared.bus.topology import EVENTS, Q_HARVEST, Q_IMAGING, Q_IMPLANT
from shared.clinical.store import ClinicalStore
from shared.http import PROBLEM

pytestmark = pytest.mark.anyio

NewEvent = Callable[..., dict[str, Any]]
Bearer = Callable[..., dict[str, str]]

SCHEDULE = {
    "phase": "harvest",
    "patient": {"id": "MRN-0042", "issuer": "St-Elsewhere"},
    "room": "IR-2",
    "accession_number": "ACC-1001",
}


async def schedule(client: httpx.AsyncClient, bearer: Bearer, **changes: Any) -> str:
    response = await client.post("/v1/procedures", json=SCHEDULE | changes, headers=bearer("nurse"))
    assert response.status_code == 201, response.text
    return str(response.json()["procedure_id"])


def published_events(bus: InMemoryBus) -> list[tuple[str, dict[str, Any]]]:
    return [(key, orjson.loads(body)) for ex, key, body in bus.published if ex == EVENTS]


def published_with_id(bus: InMemoryBus, event_id: str) -> list[dict[str, Any]]:
    return [event for _, event in published_events(bus) if event["event_id"] == event_id]


def problem_fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == PROBLEM
    return [e["field"] for e in response.json()["errors"]]


async def test_scheduling_a_procedure_answers_201_and_puts_procedure_scheduled_on_its_phase(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer
) -> None:
    response = await bedside_client.post("/v1/procedures", json=SCHEDULE, headers=bearer("nurse"))

    assert response.status_code == 201
    procedure_id = response.json()["procedure_id"]
    assert list(response.json()) == ["procedure_id"]
    (message,) = bus.messages(Q_HARVEST)
    event = orjson.loads(message.body)
    assert message.routing_key == "harvest.procedure.scheduled"
    assert message.message_id == event["event_id"]
    assert event["type"] == "procedure.scheduled"
    assert event["procedure_id"] == procedure_id
    assert event["payload"] == SCHEDULE
    assert event["actor"] == {"id": "nurse-1", "role": "nurse"}
    assert event["entered_by"] == {"user": "nurse-1", "role": "nurse"}
    assert event["source"] == {"kind": "service", "id": "bedside"}
    assert bus.depth(Q_IMPLANT) == 0
    assert bus.depth(Q_IMAGING) == 1  # imaging matches captures to scheduled procedures


async def test_an_implant_procedure_is_announced_on_the_implant_queue(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer
) -> None:
    await schedule(bedside_client, bearer, phase="implant")

    assert [m.routing_key for m in bus.messages(Q_IMPLANT)] == ["implant.procedure.scheduled"]
    assert bus.depth(Q_HARVEST) == 0


async def test_scheduling_twice_with_one_idempotency_key_makes_one_procedure(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer
) -> None:
    headers = bearer("nurse") | {"Idempotency-Key": "tablet-ir2-0001"}

    first = await bedside_client.post("/v1/procedures", json=SCHEDULE, headers=headers)
    second = await bedside_client.post("/v1/procedures", json=SCHEDULE, headers=headers)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert bus.depth(Q_HARVEST) == 1


async def test_an_idempotency_key_reused_for_another_patient_is_a_409_not_their_procedure(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer
) -> None:
    """A tablet bug that reuses a key must never hand back another patient's procedure_id."""
    headers = bearer("nurse") | {"Idempotency-Key": "tablet-ir2-0001"}
    first = await bedside_client.post("/v1/procedures", json=SCHEDULE, headers=headers)
    other_patient = SCHEDULE | {"patient": {"id": "MRN-0099"}}

    second = await bedside_client.post("/v1/procedures", json=other_patient, headers=headers)

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.headers["content-type"] == PROBLEM
    assert bus.depth(Q_HARVEST) == 1


async def test_scheduling_without_a_patient_id_is_refused_naming_it(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer
) -> None:
    body = SCHEDULE | {"patient": {"issuer": "St-Elsewhere"}}

    response = await bedside_client.post("/v1/procedures", json=body, headers=bearer("nurse"))

    assert response.status_code == 422
    assert problem_fields(response) == ["patient.id"]
    assert bus.published == []


async def test_posting_an_event_answers_202_with_a_server_set_recorded_at(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event(procedure_id=procedure_id, recorded_at="2020-01-01T00:00:00+00:00")
    before = datetime.now(UTC)

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    after = datetime.now(UTC)
    assert response.status_code == 202
    answer = response.json()
    assert answer["event_id"] == raw["event_id"]
    recorded_at = datetime.fromisoformat(answer["recorded_at"])
    assert recorded_at.utcoffset() == timedelta(0)
    assert before <= recorded_at <= after
    (event,) = published_with_id(bus, raw["event_id"])
    assert datetime.fromisoformat(event["recorded_at"]) == recorded_at


async def test_a_posted_event_goes_out_on_its_procedures_phase_stamped_with_who_entered_it(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event(procedure_id=procedure_id)

    await bedside_client.post("/v1/events", json=raw, headers=bearer("physician", "dr-khan"))

    ((key, event),) = [(k, e) for k, e in published_events(bus) if e["event_id"] == raw["event_id"]]
    assert key == "harvest.sedation.drug_administered"
    assert event["entered_by"] == {"user": "dr-khan", "role": "physician"}
    assert event["actor"] == raw["actor"]
    assert event["payload"]["dose"] == 2
    assert event["late"] is False


async def test_the_same_event_posted_twice_is_published_once_and_answered_identically(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event(procedure_id=procedure_id)
    headers = bearer("nurse")

    first = await bedside_client.post("/v1/events", json=raw, headers=headers)
    second = await bedside_client.post("/v1/events", json=raw, headers=headers)

    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert len(published_with_id(bus, raw["event_id"])) == 1


async def test_a_repost_with_a_different_client_recorded_at_is_still_the_same_event(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event(procedure_id=procedure_id, recorded_at="2020-01-01T00:00:00+00:00")
    first = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))
    raw["recorded_at"] = "2021-06-01T00:00:00+00:00"

    second = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    assert second.status_code == 202
    assert second.json() == first.json()
    assert len(published_with_id(bus, raw["event_id"])) == 1


async def test_the_same_event_id_with_a_different_dose_is_a_409_conflict(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event(procedure_id=procedure_id)
    await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))
    raw["payload"]["dose"] = 5

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    assert response.status_code == 409
    assert problem_fields(response) == ["event_id"]
    (event,) = published_with_id(bus, raw["event_id"])
    assert event["payload"]["dose"] == 2


async def test_a_dose_in_words_is_a_422_problem_naming_payload_dose(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event(procedure_id=procedure_id)
    raw["payload"]["dose"] = "two"

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    assert response.status_code == 422
    assert problem_fields(response) == ["payload.dose"]
    problem = response.json()
    assert problem["status"] == 422
    assert problem["instance"] == "/v1/events"
    assert published_with_id(bus, raw["event_id"]) == []


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = payload
        for part in parents:
            node = node[part]
        node[last] = value

    return change


@pytest.mark.parametrize(
    ("event_type", "change", "field"),
    [
        ("implant.needle_placed", _set("target.level", "L9-L10"), "payload.target.level"),
        ("adverse_event.reported", _set("grade", 6), "payload.grade"),
        ("implant.injected", _set("volume_ml", -1.5), "payload.volume_ml"),
        ("sedation.drug_administered", _set("unit", "furlongs"), "payload.unit"),
        ("product.lot_released", _set("viability_pct", 101), "payload.viability_pct"),
    ],
    ids=["level L9-L10", "grade 6", "negative volume", "unknown unit", "viability over 100 %"],
)
async def test_bad_clinical_input_is_a_422_naming_the_field(
    bedside_client: httpx.AsyncClient,
    bus: InMemoryBus,
    bearer: Bearer,
    new_event: NewEvent,
    event_type: str,
    change: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event(event_type)
    if "procedure_id" in raw:
        raw["procedure_id"] = procedure_id
    change(raw["payload"])
    role = "lab" if event_type == "product.lot_released" else "nurse"

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer(role))

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem_fields(response) == [field]
    assert published_with_id(bus, raw["event_id"]) == []


async def test_a_body_that_is_not_json_is_a_422_naming_body(
    bedside_client: httpx.AsyncClient, bearer: Bearer
) -> None:
    response = await bedside_client.post(
        "/v1/events", content=b"{dose: two}", headers=bearer("nurse")
    )

    assert response.status_code == 422
    assert problem_fields(response) == ["body"]


async def test_posting_without_a_token_is_401_with_a_bearer_challenge(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, new_event: NewEvent
) -> None:
    response = await bedside_client.post("/v1/events", json=new_event())

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="proctrail"'
    assert response.headers["content-type"] == PROBLEM
    assert bus.published == []


async def test_posting_with_an_unknown_token_is_401(
    bedside_client: httpx.AsyncClient, new_event: NewEvent
) -> None:
    headers = {"Authorization": "Bearer pt_made-up"}

    response = await bedside_client.post("/v1/events", json=new_event(), headers=headers)

    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/v1/events", "/v1/procedures"])
async def test_a_compliance_token_may_not_post(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, path: str
) -> None:
    body = SCHEDULE if path == "/v1/procedures" else {}

    response = await bedside_client.post(path, json=body, headers=bearer("compliance"))

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert bus.published == []


async def test_a_lab_lot_release_without_a_procedure_is_routed_as_a_lab_event(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    raw = new_event("product.lot_released")

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer("lab"))

    assert response.status_code == 202
    assert [m.routing_key for m in bus.messages(Q_IMPLANT)] == ["lab.product.lot_released"]
    assert bus.depth(Q_HARVEST) == 0


async def test_a_nurse_may_not_release_a_lot(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    response = await bedside_client.post(
        "/v1/events", json=new_event("product.lot_released"), headers=bearer("nurse")
    )

    assert response.status_code == 403
    assert bus.published == []


async def test_a_tablet_may_not_post_an_event_only_the_system_records(
    bedside_client: httpx.AsyncClient, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event("alert.raised", procedure_id=procedure_id)

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer("admin"))

    assert response.status_code == 422
    assert problem_fields(response) == ["type"]


async def test_with_the_broker_down_the_answer_is_503_with_retry_after_and_a_retry_succeeds(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    raw = new_event(procedure_id=procedure_id)
    bus.connected_flag = False

    down = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    assert down.status_code == 503
    assert down.headers["retry-after"] == "5"
    assert down.headers["content-type"] == PROBLEM
    assert published_with_id(bus, raw["event_id"]) == []

    bus.connected_flag = True
    up = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    assert up.status_code == 202
    assert len(published_with_id(bus, raw["event_id"])) == 1


async def test_scheduling_with_the_broker_down_is_503_with_retry_after(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer
) -> None:
    bus.connected_flag = False

    response = await bedside_client.post("/v1/procedures", json=SCHEDULE, headers=bearer("nurse"))

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


async def test_an_event_for_a_procedure_never_scheduled_here_is_422_naming_procedure_id(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    raw = new_event(procedure_id=str(uuid.uuid4()))

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    assert response.status_code == 422
    assert problem_fields(response) == ["procedure_id"]
    assert bus.published == []


async def test_an_entry_made_two_hours_after_the_fact_is_accepted_and_marked_late(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    occurred_at = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    raw = new_event(procedure_id=procedure_id, occurred_at=occurred_at, late=False)

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    assert response.status_code == 202
    (event,) = published_with_id(bus, raw["event_id"])
    assert event["late"] is True
    recorded_at = datetime.fromisoformat(event["recorded_at"])
    assert datetime.fromisoformat(event["occurred_at"]) == datetime.fromisoformat(occurred_at)
    assert recorded_at == datetime.fromisoformat(response.json()["recorded_at"])
    assert recorded_at - datetime.fromisoformat(occurred_at) >= timedelta(hours=2)  # not back-dated


async def test_an_event_dated_an_hour_ahead_is_refused_naming_occurred_at(
    bedside_client: httpx.AsyncClient, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    response = await bedside_client.post(
        "/v1/events",
        json=new_event(procedure_id=procedure_id, occurred_at=ahead),
        headers=bearer("nurse"),
    )

    assert response.status_code == 422
    assert problem_fields(response) == ["occurred_at"]


async def test_healthz_needs_no_token_and_reports_the_broker(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus
) -> None:
    bus.connected_flag = False

    response = await bedside_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "broker_connected": False}


async def test_an_unknown_path_is_a_404_problem(
    bedside_client: httpx.AsyncClient, bearer: Bearer
) -> None:
    response = await bedside_client.get("/v1/nothing-here", headers=bearer("nurse"))

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_a_sample_id_with_a_wrong_check_character_is_a_422_and_new_ids_are_valid(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    issued = await bedside_client.post("/v1/sample-ids", headers=bearer("nurse"))
    assert issued.status_code == 201
    sample_id = issued.json()["sample_id"]
    assert issued.json()["scheme"] == "mod37-2"
    wrong = sample_id[:-1] + ("A" if sample_id[-1] != "A" else "B")  # one character misread
    payload = {"sample_id": wrong, "volume_ml": 60, "collected_at": "2026-03-04T09:30:00+00:00"}
    raw = new_event("harvest.sample_labelled", payload, procedure_id=procedure_id)

    response = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))

    assert response.status_code == 422
    assert problem_fields(response) == ["payload.sample_id"]
    assert "check character" in response.json()["errors"][0]["message"]
    raw = new_event("harvest.sample_labelled", payload | {"sample_id": sample_id},
                    procedure_id=procedure_id)  # fmt: skip
    accepted = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))
    assert accepted.status_code == 202


async def test_the_tablet_lists_procedures_and_reads_the_catalogue_it_builds_forms_from(
    bedside_client: httpx.AsyncClient, bearer: Bearer
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    listed = await bedside_client.get("/v1/procedures", headers=bearer("nurse"))
    assert listed.status_code == 200
    (proc,) = listed.json()["procedures"]
    assert proc["procedure_id"] == procedure_id
    assert proc["patient"]["id"]
    elsewhere = await bedside_client.get(
        "/v1/procedures", params={"day": "1999-01-01"}, headers=bearer("nurse")
    )
    assert elsewhere.json()["procedures"] == []
    bad = await bedside_client.get("/v1/procedures", params={"day": "today"},
                                   headers=bearer("nurse"))  # fmt: skip
    assert bad.status_code == 422
    assert problem_fields(bad) == ["day"]
    catalogue = (await bedside_client.get("/v1/catalogue", headers=bearer("nurse"))).json()
    assert catalogue["levels"][0] == "C2-C3"
    assert catalogue["levels"].index("L4-L5") < catalogue["levels"].index("L5-S1")
    drug = catalogue["types"]["sedation.drug_administered"]
    assert drug["yours"] is True
    assert "mg" in drug["schema"]["properties"]["unit"]["enum"]
    assert catalogue["types"]["product.lot_released"]["yours"] is False  # the lab's
    assert "alert.raised" not in catalogue["types"]  # nobody posts those
    assert (await bedside_client.get("/v1/procedures")).status_code == 401
    page = await bedside_client.get("/")
    assert page.status_code == 200
    assert "/app/app.js" in page.text


async def test_the_tablet_sees_running_totals_and_the_services_alerts(
    bedside_client: httpx.AsyncClient, bedside: Bedside, bearer: Bearer, new_event: NewEvent
) -> None:
    procedure_id = await schedule(bedside_client, bearer)
    ten_minutes_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    for dose in (2, 1):
        given = {"drug": "Midazolam", "dose": dose, "unit": "mg", "route": "IV",
                 "given_by": "dr.cole"}  # fmt: skip
        raw = new_event("sedation.drug_administered", given, procedure_id=procedure_id,
                        occurred_at=ten_minutes_ago)  # fmt: skip
        assert (await bedside_client.post("/v1/events", json=raw,
                                          headers=bearer("nurse"))).status_code == 202  # fmt: skip
    alert = {"event_id": "5b8e2b58-33f1-4a52-9d46-4b4f5e1d2a10", "type": "alert.raised",
             "procedure_id": procedure_id, "occurred_at": "2026-11-21T09:00:00+00:00",
             "payload": {"code": "needle_unconfirmed", "severity": "warning",
                         "message": "no confirming image", "event_ids": []}}  # fmt: skip
    feed = TabletFeed(bedside.store)
    body = orjson.dumps(alert)
    delivery = Delivery(body=body, routing_key="alert.implant", message_id=alert["event_id"],
                        headers={}, redelivered=False)  # fmt: skip
    feed.handle([delivery, delivery])  # a redelivery keeps one
    r = await bedside_client.get(f"/v1/procedures/{procedure_id}/state", headers=bearer("nurse"))
    state = r.json()
    (midazolam,) = state["drugs"]
    assert (midazolam["total"], midazolam["doses"], midazolam["unit"]) == (3.0, 2, "mg")
    assert state["sedated"] is True
    assert state["vitals_overdue"] is not None  # dosed, and no vitals since
    assert [a["code"] for a in state["alerts"]] == ["needle_unconfirmed"]


async def test_a_re_send_after_a_lost_projection_write_still_counts_in_the_totals(
    bedside_client: httpx.AsyncClient, bedside: Bedside, bearer: Bearer, new_event: NewEvent,
    tmp_path: Path,
) -> None:  # fmt: skip
    procedure_id = await schedule(bedside_client, bearer)
    given = {"drug": "midazolam", "dose": 2, "unit": "mg", "route": "IV", "given_by": "dr.cole"}
    raw = new_event("sedation.drug_administered", given, procedure_id=procedure_id)
    assert (await bedside_client.post("/v1/events", json=raw,
                                      headers=bearer("nurse"))).status_code == 202  # fmt: skip
    bedside.facts = ClinicalStore(tmp_path / "lost.sqlite3")  # bedside died before writing it
    again = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))
    assert again.status_code == 202  # the tablet's re-send, same event_id
    again = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))
    state = (await bedside_client.get(f"/v1/procedures/{procedure_id}/state",
                                      headers=bearer("nurse"))).json()  # fmt: skip
    assert [(d["total"], d["doses"]) for d in state["drugs"]] == [(2.0, 1)]  # once, not twice

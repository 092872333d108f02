"""The audit query API, as a compliance officer and an outside verifier use it."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from services.audit.consumer import Appender
from services.audit.ledger import Ledger
from services.bedside.api import Bedside
from shared.bus import InMemoryBus
from shared.bus.topology import Q_HARVEST
from shared.events import utcnow
from shared.events.record import AuditRecord, rejected
from shared.http import PROBLEM
from shared.phase import PhaseService

pytestmark = pytest.mark.anyio

NewEvent = Callable[..., dict[str, Any]]
Bearer = Callable[..., dict[str, str]]


async def entries(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> httpx.Response:
    return await client.get("/v1/audit/entries", params=params, headers=headers)


@pytest.mark.parametrize("role", ["nurse", "physician", "lab"])
async def test_clinical_and_lab_tokens_may_not_read_the_audit(
    audit_client: httpx.AsyncClient, bearer: Bearer, role: str
) -> None:
    response = await entries(audit_client, bearer(role))

    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM


async def test_reading_the_audit_without_a_token_is_401(audit_client: httpx.AsyncClient) -> None:
    assert (await audit_client.get("/v1/audit/entries")).status_code == 401


@pytest.mark.parametrize("role", ["compliance", "admin"])
async def test_compliance_and_admin_read_every_entry_with_its_leaf_and_hash(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bearer: Bearer,
    record: Callable[..., AuditRecord],
    role: str,
) -> None:
    appended = [record(), record()]
    ledger.append(appended)

    response = await entries(audit_client, bearer(role))

    assert response.status_code == 200
    body = response.json()
    assert body["next_after_seq"] is None
    assert [e["seq"] for e in body["entries"]] == [0, 1]
    assert [e["event"] for e in body["entries"]] == [r.event for r in appended]
    for entry in body["entries"]:
        leaf = base64.b64decode(entry["leaf"])
        assert base64.b64decode(entry["leaf_hash"]) == hashlib.sha256(b"\x00" + leaf).digest()


async def test_entries_can_be_filtered_by_procedure(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bearer: Bearer,
    record: Callable[..., AuditRecord],
) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    ledger.append(
        [record(procedure_id=mine), record(procedure_id=theirs), record(procedure_id=mine)]
    )

    response = await entries(audit_client, bearer("compliance"), procedure_id=mine)

    assert [(e["seq"], e["event"]["procedure_id"]) for e in response.json()["entries"]] == [
        (0, mine),
        (2, mine),
    ]


async def test_entries_can_be_filtered_by_patient_through_the_scheduled_procedure(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bearer: Bearer,
    record: Callable[..., AuditRecord],
) -> None:
    proc = str(uuid.uuid4())
    ledger.append(
        [record("procedure.scheduled", procedure_id=proc), record(), record(procedure_id=proc)]
    )

    response = await entries(audit_client, bearer("compliance"), patient_id="MRN-0042")

    assert [e["seq"] for e in response.json()["entries"]] == [0, 2]


async def test_entries_can_be_filtered_by_the_product_lot_they_name(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bearer: Bearer,
    record: Callable[..., AuditRecord],
    example: Callable[[str], dict[str, Any]],
) -> None:
    released = example("product.lot_released")  # LOT-77
    other = {**released, "lot_id": "LOT-78"}
    adverse = {**example("adverse_event.reported"), "related_lot_id": "LOT-77"}
    ledger.append([
        record("product.lot_released", payload=released, procedure_id=None),
        record("product.lot_released", payload=other, procedure_id=None),
        record("implant.injected"),  # LOT-77
        record(),
        record("adverse_event.reported", payload=adverse),
    ])  # fmt: skip

    response = await entries(audit_client, bearer("compliance"), lot_id="LOT-77")

    found = [(e["seq"], e["event"]["type"]) for e in response.json()["entries"]]
    assert found == [(0, "product.lot_released"), (2, "implant.injected"),
                     (4, "adverse_event.reported")]  # fmt: skip


@pytest.mark.parametrize("since", ["yesterday", "2025-03-04T10:00:00", "2025-13-01T00:00:00Z"])
async def test_a_since_that_is_not_an_rfc_3339_time_with_offset_is_422_naming_since(
    audit_client: httpx.AsyncClient, bearer: Bearer, since: str
) -> None:
    response = await entries(audit_client, bearer("compliance"), since=since)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == ["since"]


async def test_since_and_until_select_by_recorded_at(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bearer: Bearer,
    record: Callable[..., AuditRecord],
) -> None:
    ledger.append(
        [
            record(recorded_at="2025-03-04T08:59:59+00:00"),
            record(recorded_at="2025-03-04T10:00:00+01:00"),  # 09:00 UTC
            record(recorded_at="2025-03-04T09:30:00.5+00:00"),
            record(recorded_at="2025-03-04T10:00:00+00:00"),
        ]
    )

    response = await entries(
        audit_client,
        bearer("compliance"),
        since="2025-03-04T09:00:00Z",
        until="2025-03-04T10:00:00+00:00",
    )

    assert [e["seq"] for e in response.json()["entries"]] == [1, 2]


@pytest.mark.parametrize(("name", "value"), [("limit", "0"), ("limit", "many"), ("after_seq", "x")])
async def test_a_bad_page_parameter_is_422_naming_it(
    audit_client: httpx.AsyncClient, bearer: Bearer, name: str, value: str
) -> None:
    response = await entries(audit_client, bearer("compliance"), **{name: value})

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [name]


async def test_an_unknown_type_filter_is_422_naming_type(
    audit_client: httpx.AsyncClient, bearer: Bearer
) -> None:
    response = await entries(audit_client, bearer("compliance"), type="sedation.drug_given")

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["type"]


async def test_pages_follow_next_after_seq_to_the_end(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bearer: Bearer,
    record: Callable[..., AuditRecord],
) -> None:
    ledger.append([record() for _ in range(5)])
    headers = bearer("compliance")
    pages: list[tuple[list[int], int | None]] = []
    after: int | None = -1

    while after is not None:
        body = (await entries(audit_client, headers, limit=2, after_seq=after)).json()
        after = body["next_after_seq"]
        pages.append(([e["seq"] for e in body["entries"]], after))

    assert pages == [([0, 1], 1), ([2, 3], 3), ([4], None)]


async def test_one_event_can_be_fetched_by_its_event_id(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bearer: Bearer,
    record: Callable[..., AuditRecord],
) -> None:
    wanted = record()
    ledger.append([record(), wanted])

    response = await audit_client.get(
        f"/v1/audit/events/{wanted.event_id}", headers=bearer("compliance")
    )

    assert response.status_code == 200
    assert response.json()["seq"] == 1
    assert response.json()["event"] == wanted.event


async def test_a_rejected_event_is_shown_with_its_reason(
    audit_client: httpx.AsyncClient, ledger: Ledger, bearer: Bearer
) -> None:
    event_id = str(uuid.uuid4())
    ledger.append([rejected({"event_id": event_id}, "invalid event: type", "harvest", utcnow())])

    response = await audit_client.get(f"/v1/audit/events/{event_id}", headers=bearer("compliance"))

    assert response.json()["disposition"] == "rejected"
    assert response.json()["reason"] == "invalid event: type"


async def test_an_unknown_event_id_is_a_404_problem(
    audit_client: httpx.AsyncClient, ledger: Ledger, bearer: Bearer
) -> None:
    unknown = str(uuid.uuid4())

    response = await audit_client.get(f"/v1/audit/events/{unknown}", headers=bearer("compliance"))

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert unknown in response.json()["detail"]


async def test_a_nurse_may_not_fetch_an_event_from_the_audit(
    audit_client: httpx.AsyncClient, ledger: Ledger, bearer: Bearer
) -> None:
    response = await audit_client.get(f"/v1/audit/events/{uuid.uuid4()}", headers=bearer("nurse"))

    assert response.status_code == 403


async def test_a_late_dose_posted_at_the_bedside_reaches_the_audit_marked_late(
    bedside_client: httpx.AsyncClient,
    audit_client: httpx.AsyncClient,
    bedside: Bedside,
    bus: InMemoryBus,
    harvest: PhaseService,
    appender: Appender,
    bearer: Bearer,
    new_event: NewEvent,
) -> None:
    """The whole path without RabbitMQ: tablet → bedside → harvest → audit → compliance query."""
    bus.subscribe(Q_HARVEST, harvest.handle)
    scheduled = await bedside_client.post(
        "/v1/procedures",
        json={"phase": "harvest", "patient": {"id": "MRN-0042"}, "room": "IR-2"},
        headers=bearer("nurse"),
    )
    procedure_id = scheduled.json()["procedure_id"]
    raw = new_event(procedure_id=procedure_id, occurred_at="2025-03-04T09:00:00+01:00")
    posted = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse", "rn-lee"))

    bus.drain()

    response = await entries(audit_client, bearer("compliance"), patient_id="MRN-0042")
    found = response.json()["entries"]
    assert [e["event"]["type"] for e in found] == ["procedure.scheduled", raw["type"]]
    assert all(e["disposition"] == "accepted" for e in found)
    dose = found[1]["event"]
    assert dose["event_id"] == raw["event_id"]
    assert dose["late"] is True
    assert dose["entered_by"] == {"user": "rn-lee", "role": "nurse"}
    assert dose["payload"]["dose"] == 2
    assert datetime.fromisoformat(dose["recorded_at"]) == datetime.fromisoformat(
        posted.json()["recorded_at"]
    )
    assert bus.depth("q.harvest.dead") == 0
    assert bus.depth("q.audit.dead") == 0

"""The reconciliation list: a capture no procedure claimed reaches the ledger and the tablets
in one publish; a nurse reconciles it to a procedure, and imaging then announces it under that
procedure, so the procedure's rules and timeline count it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.bedside.api import Bedside
from services.bedside.feed import TabletFeed
from services.imaging.announce import Announcer
from services.imaging.config import ImagingSettings
from services.imaging.index import ProcedureIndex
from services.imaging.store import ImagingStore
from shared.bus import InMemoryBus
from shared.bus.topology import EVENTS, Q_AUDIT, Q_BEDSIDE, Q_IMAGING, Q_IMPLANT

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]
SOP = "1.2.826.0.1.3680043.8.498.4242"
FIELDS = {
    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",  # CT
    "sop_instance_uid": SOP,
    "study_instance_uid": "1.2.826.0.1.3680043.8.498.77",
    "modality": "CT",
    "patient_id": "MRN-0042-TYPO",
    "station_name": "CT-ROOM-3",
    "acquired_at": "2026-11-21T09:40:00+00:00",
}


@pytest.fixture
def imaging(tmp_path: Path) -> Iterator[ImagingStore]:
    store = ImagingStore(tmp_path / "imaging")
    yield store
    store.close()


def relay(store: ImagingStore, bus: InMemoryBus) -> None:
    """What the imaging relay does, without its thread."""
    sent = []
    for m in store.unsent():
        bus.publish(m.exchange, m.routing_key, m.body, message_id=m.message_id)
        sent.append(m.message_id)
    store.mark_sent(sent)


def receive_unmatched(store: ImagingStore, bus: InMemoryBus, tmp_path: Path) -> None:
    data = b"DICM" + SOP.encode()
    received = tmp_path / "incoming.dcm"
    received.write_bytes(data)
    stored = store.keep(received, SOP, hashlib.sha256(data).hexdigest(), len(data))
    said = Announcer(store, ImagingSettings()).announce(dict(FIELDS), "CT3", stored, None)
    assert said.match is None
    store.commit(stored, SOP, said.messages, unmatched=True)
    relay(store, bus)


async def schedule_implant(client: httpx.AsyncClient, bearer: Bearer) -> str:
    body = {"phase": "implant", "patient": {"id": "MRN-0042"}, "room": "CT-3"}
    response = await client.post("/v1/procedures", json=body, headers=bearer("nurse"))
    assert response.status_code == 201, response.text
    return str(response.json()["procedure_id"])


def reconciliation(procedure_id: str, new_event: Callable[..., dict[str, Any]],
                   **payload: Any) -> dict[str, Any]:  # fmt: skip
    return new_event(
        "imaging.capture_reconciled",
        {"sop_instance_uid": SOP, "procedure_id": procedure_id,
         "reason": "the CT had no worklist entry", **payload},
        procedure_id=procedure_id,
    )  # fmt: skip


def types_in(bus: InMemoryBus, queue: str) -> list[str]:
    out = []
    for d in bus.messages(queue):
        message = orjson.loads(d.body)
        out.append(message.get("event", message)["type"])
    return out


def test_an_unmatched_capture_reaches_the_ledger_and_the_tablets_with_one_publish(
    imaging: ImagingStore, bus: InMemoryBus, tmp_path: Path
) -> None:
    receive_unmatched(imaging, bus, tmp_path)

    assert {ex for ex, _, _ in bus.published} == {EVENTS}  # nothing published twice
    assert sorted(types_in(bus, Q_AUDIT)) == [
        "imaging.capture_received", "imaging.capture_unmatched"]  # fmt: skip
    assert types_in(bus, Q_BEDSIDE) == ["imaging.capture_unmatched"]
    assert types_in(bus, Q_IMPLANT) == []


async def test_a_nurse_reconciles_an_unmatched_capture_and_imaging_announces_it_there(
    imaging: ImagingStore,
    bus: InMemoryBus,
    bedside: Bedside,
    bedside_client: httpx.AsyncClient,
    bearer: Bearer,
    new_event: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    procedure_id = await schedule_implant(bedside_client, bearer)
    receive_unmatched(imaging, bus, tmp_path)
    bus.subscribe(Q_BEDSIDE, TabletFeed(bedside.store).handle)
    bus.drain()
    bus.drain()  # a redelivery keeps one row

    waiting = (await bedside_client.get("/v1/captures/unmatched", headers=bearer("nurse"))).json()
    (capture,) = waiting["captures"]
    assert capture["payload"]["modality"] == "CT"
    assert capture["payload"]["patient_id"] == "MRN-0042-TYPO"
    assert capture["payload"]["station_name"] == "CT-ROOM-3"
    assert "no single open procedure" in capture["payload"]["reason"]

    raw = reconciliation(procedure_id, new_event)
    posted = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))
    assert posted.status_code == 202, posted.text

    after = (await bedside_client.get("/v1/captures/unmatched", headers=bearer("nurse"))).json()
    assert after["captures"] == []
    settled = await bedside_client.get(
        "/v1/captures/unmatched?settled=true", headers=bearer("nurse")
    )
    (done,) = settled.json()["captures"]
    assert done["reconciled"]["procedure_id"] == procedure_id
    assert done["reconciled"]["by"] == "nurse-1"

    # imaging hears of it (q.imaging) and announces the capture under the procedure.
    index = ProcedureIndex(imaging)
    deliveries = bus.messages(Q_IMAGING)
    bus.subscribe(Q_IMAGING, index.handle)
    bus.drain()
    relay(imaging, bus)
    index.handle(deliveries)  # a redelivery of the reconciliation announces nothing new
    relay(imaging, bus)
    announced = [orjson.loads(d.body) for d in bus.messages(Q_IMPLANT)
                 if d.routing_key == "implant.imaging.capture_received"]  # fmt: skip
    (capture_event,) = announced
    assert capture_event["procedure_id"] == procedure_id
    assert capture_event["payload"]["sop_instance_uid"] == SOP
    assert capture_event["payload"]["reconciled_by"] == raw["event_id"]
    assert capture_event["payload"]["modality"] == "CT"


async def test_a_reconciliation_must_name_a_listed_capture_and_its_own_procedure(
    imaging: ImagingStore,
    bus: InMemoryBus,
    bedside: Bedside,
    bedside_client: httpx.AsyncClient,
    bearer: Bearer,
    new_event: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    procedure_id = await schedule_implant(bedside_client, bearer)
    other_id = await schedule_implant(bedside_client, bearer)

    unknown = reconciliation(procedure_id, new_event)
    r = await bedside_client.post("/v1/events", json=unknown, headers=bearer("nurse"))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["payload.sop_instance_uid"]

    receive_unmatched(imaging, bus, tmp_path)
    bus.subscribe(Q_BEDSIDE, TabletFeed(bedside.store).handle)
    bus.drain()
    crossed = reconciliation(procedure_id, new_event)
    crossed["payload"]["procedure_id"] = other_id  # posted under one, naming another
    r = await bedside_client.post("/v1/events", json=crossed, headers=bearer("nurse"))
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["payload.procedure_id"]

    first = reconciliation(procedure_id, new_event)
    assert (await bedside_client.post("/v1/events", json=first,
                                      headers=bearer("nurse"))).status_code == 202  # fmt: skip
    again = await bedside_client.post("/v1/events", json=first, headers=bearer("nurse"))
    assert again.status_code == 202  # the tablet's re-send: the same answer
    elsewhere = reconciliation(other_id, new_event)
    r = await bedside_client.post("/v1/events", json=elsewhere, headers=bearer("nurse"))
    assert r.status_code == 409
    assert procedure_id in r.json()["detail"]


async def test_the_answer_says_when_an_entry_is_late(
    bedside_client: httpx.AsyncClient, bearer: Bearer, new_event: Callable[..., dict[str, Any]]
) -> None:
    procedure_id = await schedule_implant(bedside_client, bearer)
    given = {"drug": "midazolam", "dose": 1, "unit": "mg", "route": "IV", "given_by": "dr.cole"}
    now = new_event("sedation.drug_administered", given, procedure_id=procedure_id)
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    late = new_event("sedation.drug_administered", given, procedure_id=procedure_id,
                     occurred_at=two_hours_ago)  # fmt: skip
    for raw, expected in ((now, False), (late, True)):
        r = await bedside_client.post("/v1/events", json=raw, headers=bearer("nurse"))
        assert r.status_code == 202
        assert r.json()["late"] is expected

"""Harvest and implant stamp each event of their phase and forward it to the audit exchange.

Nothing is silently dropped: a malformed event that still carries an event_id reaches the
ledger as a rejection with its reason; only a message with no usable event_id is dead-lettered.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import pytest

from shared.bus import Delivery, InMemoryBus, Settle
from shared.bus.topology import EVENTS, Q_AUDIT, Q_HARVEST, Q_IMPLANT
from shared.events import parse_event
from shared.events.record import AuditRecord, decode_record
from shared.phase import PhaseService

NewEvent = Callable[..., dict[str, Any]]


def send(bus: InMemoryBus, key: str, body: bytes, message_id: str = "m1") -> None:
    bus.publish(EVENTS, key, body, message_id=message_id).result(0)


def audit_records(bus: InMemoryBus) -> list[AuditRecord]:
    return [decode_record(d.body) for d in bus.messages(Q_AUDIT)]


@pytest.fixture
def harvesting(bus: InMemoryBus, harvest: PhaseService) -> InMemoryBus:
    """The bus with the harvest service consuming q.harvest, as services/harvest runs it."""
    bus.subscribe(Q_HARVEST, harvest.handle)
    return bus


def test_a_valid_harvest_event_is_forwarded_to_audit_as_accepted_and_stamped_by_harvest(
    harvesting: InMemoryBus, new_event: NewEvent
) -> None:
    envelope = parse_event(new_event("harvest.aspiration_performed"))
    send(harvesting, "harvest.harvest.aspiration_performed", envelope.to_bytes())

    harvesting.drain()

    (message,) = harvesting.messages(Q_AUDIT)
    record = decode_record(message.body)
    assert message.message_id == str(envelope.event_id)
    assert message.routing_key == "harvest.aspiration_performed"
    assert record.disposition == "accepted"
    assert record.stamped_by.service == "harvest"
    assert record.stamped_by.at.utcoffset() is not None
    assert record.reason is None
    assert record.event == envelope.to_json()
    assert harvesting.depth(Q_HARVEST) == 0
    assert harvesting.depth("q.harvest.dead") == 0


def test_the_stamp_is_the_time_the_service_handled_it(
    harvesting: InMemoryBus, new_event: NewEvent
) -> None:
    envelope = parse_event(new_event(occurred_at="2025-03-04T10:00:00+01:00"))
    send(harvesting, "harvest.sedation.drug_administered", envelope.to_bytes())
    before = datetime.now().astimezone()

    harvesting.drain()

    (record,) = audit_records(harvesting)
    assert before <= record.stamped_by.at <= datetime.now().astimezone()


def test_an_event_with_a_dose_in_words_reaches_the_audit_as_rejected_with_its_reason(
    harvesting: InMemoryBus, new_event: NewEvent, example: Callable[[str], dict[str, Any]]
) -> None:
    raw = new_event("sedation.drug_administered", example("sedation.drug_administered"))
    raw["payload"]["dose"] = "two"
    send(harvesting, "harvest.sedation.drug_administered", orjson.dumps(raw))

    harvesting.drain()

    (record,) = audit_records(harvesting)
    assert record.disposition == "rejected"
    assert record.stamped_by.service == "harvest"
    assert record.event == raw
    assert record.reason is not None
    assert record.reason.startswith("invalid event: payload.dose:")
    assert harvesting.depth("q.harvest.dead") == 0


def camel_case(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "".join(w if i == 0 else w.title() for i, w in enumerate(k.split("_"))): v
        for k, v in payload.items()
    }


def test_a_lot_release_with_camel_case_keys_from_an_integrator_is_recorded_as_rejected(
    bus: InMemoryBus,
    implant: PhaseService,
    new_event: NewEvent,
    example: Callable[[str], dict[str, Any]],
) -> None:
    """Seven misspelt keys make a long reason; the rejection must still reach the ledger."""
    bus.subscribe(Q_IMPLANT, implant.handle)
    raw = new_event("product.lot_released", camel_case(example("product.lot_released")))
    send(bus, "lab.product.lot_released", orjson.dumps(raw))

    bus.drain()

    assert bus.depth("q.implant.dead") == 0
    (record,) = audit_records(bus)
    assert record.disposition == "rejected"
    assert record.event == raw
    assert "payload.lot_id: Field required" in (record.reason or "")
    assert "payload.lotId: Extra inputs are not permitted" in (record.reason or "")


def test_a_message_without_an_event_id_goes_to_the_harvest_dead_letter_queue(
    harvesting: InMemoryBus, new_event: NewEvent
) -> None:
    raw = new_event()
    del raw["event_id"]
    send(harvesting, "harvest.sedation.drug_administered", orjson.dumps(raw))

    harvesting.drain()

    assert harvesting.depth(Q_AUDIT) == 0
    (dead,) = harvesting.messages("q.harvest.dead")
    assert orjson.loads(dead.body) == raw


@pytest.mark.parametrize("body", [b"not json at all", b"[1, 2, 3]", b'{"event_id": "42"}'])
def test_a_message_that_is_not_an_event_object_with_a_uuid_is_dead_lettered(
    harvesting: InMemoryBus, body: bytes
) -> None:
    send(harvesting, "harvest.sedation.drug_administered", body)

    harvesting.drain()

    assert harvesting.depth(Q_AUDIT) == 0
    assert [d.body for d in harvesting.messages("q.harvest.dead")] == [body]


def test_a_valid_event_of_another_phase_is_rejected_naming_the_phase(
    bus: InMemoryBus, harvest: PhaseService, new_event: NewEvent
) -> None:
    envelope = parse_event(new_event("implant.injected"))
    delivery = Delivery(envelope.to_bytes(), "implant.implant.injected", str(envelope.event_id))

    settles = harvest.handle([delivery])

    assert settles == [Settle.ACK]
    (record,) = audit_records(bus)
    assert record.disposition == "rejected"
    assert record.reason == "harvest does not handle phase 'implant'"
    assert record.event["event_id"] == str(envelope.event_id)


def test_implant_accepts_lab_events_that_belong_to_no_procedure(
    bus: InMemoryBus, implant: PhaseService, new_event: NewEvent
) -> None:
    bus.subscribe(Q_IMPLANT, implant.handle)
    envelope = parse_event(new_event("product.lot_released"))
    send(bus, "lab.product.lot_released", envelope.to_bytes())

    bus.drain()

    (record,) = audit_records(bus)
    assert record.disposition == "accepted"
    assert record.stamped_by.service == "implant"
    assert "procedure_id" not in record.event


def test_each_message_of_a_mixed_batch_is_settled_on_its_own(
    bus: InMemoryBus, harvest: PhaseService, new_event: NewEvent
) -> None:
    good = parse_event(new_event()).to_bytes()
    bad = orjson.dumps(new_event(schema=7))
    hopeless = b"{}"
    batch = [
        Delivery(body, "harvest.sedation.drug_administered", str(i))
        for i, body in enumerate([good, hopeless, bad])
    ]

    assert harvest.handle(batch) == [Settle.ACK, Settle.DEAD, Settle.ACK]
    assert [r.disposition for r in audit_records(bus)] == ["accepted", "rejected"]


def test_when_the_audit_exchange_cannot_be_reached_the_batch_is_retried_not_lost(
    bus: InMemoryBus, harvest: PhaseService, new_event: NewEvent
) -> None:
    batch = [
        Delivery(parse_event(new_event()).to_bytes(), "harvest.sedation.drug_administered", "1"),
        Delivery(parse_event(new_event()).to_bytes(), "harvest.sedation.drug_administered", "2"),
    ]
    bus.connected_flag = False

    assert harvest.handle(batch) == [Settle.RETRY, Settle.RETRY]
    assert bus.depth(Q_AUDIT) == 0


def test_a_redelivered_event_is_forwarded_again_with_the_same_event_id(
    bus: InMemoryBus, harvest: PhaseService, new_event: NewEvent
) -> None:
    event_id = str(uuid.uuid4())
    body = parse_event(new_event(event_id=event_id)).to_bytes()
    delivery = Delivery(body, "harvest.sedation.drug_administered", event_id)

    harvest.handle([delivery])
    harvest.handle([delivery])

    assert [d.message_id for d in bus.messages(Q_AUDIT)] == [event_id, event_id]

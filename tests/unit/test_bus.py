"""The in-memory bus routes, retries and dead-letters the way the RabbitMQ topology does."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from shared.bus import (
    BrokerUnavailable,
    Delivery,
    InMemoryBus,
    PublishRejected,
    Settle,
    default_topology,
    routing_key,
    topic_matches,
)
from shared.bus.topology import AUDIT, EVENTS, Q_AUDIT, Q_HARVEST, Q_IMAGING, Q_IMPLANT

ALL_QUEUES = (Q_HARVEST, Q_IMPLANT, Q_IMAGING, Q_AUDIT)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("harvest.#", "harvest.sedation.drug_administered", True),
        ("harvest.#", "harvest", True),
        ("harvest.#", "implant.sedation.drug_administered", False),
        ("harvest.#", "harvesting.procedure.opened", False),
        ("lab.#", "lab.product.lot_released", True),
        ("*.procedure.*", "harvest.procedure.scheduled", True),
        ("*.procedure.*", "implant.procedure.time_out", True),
        ("*.procedure.*", "harvest.procedure", False),
        ("*.procedure.*", "harvest.procedure.scheduled.extra", False),
        ("*.procedure.*", "lab.product.lot_released", False),
        ("*", "harvest", True),
        ("*", "harvest.procedure", False),
        ("#", "", True),
        ("#", "any.number.of.words", True),
        ("#.scheduled", "implant.procedure.scheduled", True),
        ("harvest.#.opened", "harvest.procedure.opened", True),
        ("harvest.#.opened", "harvest.opened", True),
        ("a.*.c", "a.c", False),
        ("a.b", "a.b", True),
        ("a.b", "a.B", False),
    ],
)
def test_topic_patterns_match_like_amqp(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


def test_a_routing_key_is_the_phase_then_the_event_type() -> None:
    assert routing_key("harvest", "sedation.drug_administered") == (
        "harvest.sedation.drug_administered"
    )


def publish(
    bus: InMemoryBus, exchange: str, key: str, body: bytes = b"{}", mid: str = "m1"
) -> None:
    bus.publish(exchange, key, body, message_id=mid).result(0)


def depths(bus: InMemoryBus) -> dict[str, int]:
    return {q: bus.depth(q) for q in ALL_QUEUES}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("harvest.sedation.drug_administered", {Q_HARVEST}),
        ("implant.implant.injected", {Q_IMPLANT}),
        ("lab.product.lot_released", {Q_IMPLANT}),
        ("harvest.procedure.scheduled", {Q_HARVEST, Q_IMAGING}),
        ("implant.procedure.closed", {Q_IMPLANT, Q_IMAGING}),
    ],
)
def test_an_event_lands_on_the_queues_its_phase_and_type_are_bound_to(
    bus: InMemoryBus, key: str, expected: set[str]
) -> None:
    publish(bus, EVENTS, key)

    assert depths(bus) == {q: int(q in expected) for q in ALL_QUEUES}


def test_the_audit_exchange_fans_out_to_q_audit_whatever_the_routing_key(
    bus: InMemoryBus,
) -> None:
    publish(bus, AUDIT, "sedation.drug_administered", mid="a")
    publish(bus, AUDIT, "anything at all", mid="b")

    assert [d.message_id for d in bus.messages(Q_AUDIT)] == ["a", "b"]
    assert depths(bus) == {Q_HARVEST: 0, Q_IMPLANT: 0, Q_IMAGING: 0, Q_AUDIT: 2}


def test_a_message_no_queue_is_bound_for_is_rejected_through_its_future(
    bus: InMemoryBus,
) -> None:
    future = bus.publish(EVENTS, "radiology.procedure_note", b"{}", message_id="m1")

    with pytest.raises(PublishRejected, match=r"radiology\.procedure_note"):
        future.result(0)
    assert bus.published == []


def test_publishing_while_disconnected_raises_broker_unavailable(bus: InMemoryBus) -> None:
    bus.connected_flag = False

    with pytest.raises(BrokerUnavailable):
        bus.publish(EVENTS, "harvest.procedure.opened", b"{}", message_id="m1")
    assert bus.connected is False
    assert bus.depth(Q_HARVEST) == 0


def test_a_delivery_keeps_its_body_key_message_id_and_headers(bus: InMemoryBus) -> None:
    bus.publish(
        EVENTS, "harvest.procedure.opened", b'{"x":1}', message_id="m1", headers={"h": "v"}
    ).result(0)

    (delivery,) = bus.messages(Q_HARVEST)
    assert delivery == Delivery(b'{"x":1}', "harvest.procedure.opened", "m1", {"h": "v"})


class Recorder:
    """A handler that answers from a script and remembers every delivery it was given."""

    def __init__(self, *answers: Settle | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[Delivery] = []

    def __call__(self, batch: Sequence[Delivery]) -> list[Settle]:
        self.seen.extend(batch)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return [answer] * len(batch)


def test_an_acked_message_leaves_the_queue_after_one_delivery(bus: InMemoryBus) -> None:
    handler = Recorder(Settle.ACK)
    bus.subscribe(Q_HARVEST, handler)
    publish(bus, EVENTS, "harvest.procedure.opened")

    bus.drain()

    assert len(handler.seen) == 1
    assert bus.depth(Q_HARVEST) == 0
    assert bus.depth("q.harvest.dead") == 0


@pytest.mark.parametrize("limit", [0, 1, 3, 5])
def test_a_message_retried_past_the_delivery_limit_is_delivered_limit_plus_one_times_then_dead(
    limit: int,
) -> None:
    bus = InMemoryBus(default_topology(delivery_limit=limit))
    handler = Recorder(Settle.RETRY)
    bus.subscribe(Q_HARVEST, handler)
    publish(bus, EVENTS, "harvest.procedure.opened")

    bus.drain()

    assert len(handler.seen) == limit + 1
    assert [d.delivery_count for d in handler.seen] == list(range(limit + 1))
    assert [d.redelivered for d in handler.seen] == [False] + [True] * limit
    assert bus.depth(Q_HARVEST) == 0
    (dead,) = bus.messages("q.harvest.dead")
    assert dead.message_id == "m1"
    assert dead.headers["x-first-death-queue"] == Q_HARVEST


def test_a_message_the_handler_calls_dead_goes_straight_to_the_dead_letter_queue(
    bus: InMemoryBus,
) -> None:
    handler = Recorder(Settle.DEAD)
    bus.subscribe(Q_HARVEST, handler)
    publish(bus, EVENTS, "harvest.procedure.opened")

    bus.drain()

    assert len(handler.seen) == 1
    assert [d.message_id for d in bus.messages("q.harvest.dead")] == ["m1"]


def test_a_handler_that_raises_gets_the_batch_again_and_can_then_ack_it(
    bus: InMemoryBus,
) -> None:
    handler = Recorder(RuntimeError("database is locked"), Settle.ACK)
    bus.subscribe(Q_HARVEST, handler)
    publish(bus, EVENTS, "harvest.procedure.opened", mid="a")
    publish(bus, EVENTS, "harvest.procedure.closed", mid="b")

    bus.drain()

    assert [d.message_id for d in handler.seen] == ["a", "b", "a", "b"]
    assert [d.redelivered for d in handler.seen] == [False, False, True, True]
    assert bus.depth(Q_HARVEST) == 0
    assert bus.depth("q.harvest.dead") == 0


def test_a_handler_that_always_raises_ends_in_the_dead_letter_queue(bus: InMemoryBus) -> None:
    handler = Recorder(RuntimeError("boom"))
    bus.subscribe(Q_HARVEST, handler)
    publish(bus, EVENTS, "harvest.procedure.opened")

    bus.drain()

    assert len(handler.seen) == 5 + 1  # default delivery limit is 5
    assert bus.depth("q.harvest.dead") == 1


def test_batches_are_no_larger_than_max_batch(bus: InMemoryBus) -> None:
    sizes: list[int] = []

    def handler(batch: Sequence[Delivery]) -> list[Settle]:
        sizes.append(len(batch))
        return [Settle.ACK] * len(batch)

    bus.subscribe(Q_HARVEST, handler, max_batch=2)
    for i in range(5):
        publish(bus, EVENTS, "harvest.procedure.opened", mid=str(i))

    bus.drain()

    assert sizes == [2, 2, 1]


def test_subscribing_to_a_queue_the_topology_does_not_declare_fails(bus: InMemoryBus) -> None:
    with pytest.raises(KeyError, match=r"q\.radiology"):
        bus.subscribe("q.radiology", Recorder(Settle.ACK))

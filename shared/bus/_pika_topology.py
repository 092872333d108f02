"""The topology on a channel: declared in order on every connection, and the queues' depths
read every few seconds for the metrics."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel

from shared.bus.topology import DEAD, Topology
from shared.metrics import QUEUE_MESSAGES


def declare(channel: Channel, topology: Topology, then: Callable[[], None]) -> None:
    """Declare exchanges, quorum queues, their dead-letter queues and bindings, in order, then
    call `then`."""
    steps: list[Callable[..., None]] = [
        partial(channel.exchange_declare, ex.name, ex.type, durable=True)
        for ex in topology.exchanges
    ]
    for q in topology.queues:
        dlq = q.dead_letter_queue
        steps += [
            partial(channel.queue_declare, q.name, durable=True, arguments=q.arguments()),
            partial(channel.queue_declare, dlq, durable=True, arguments={"x-queue-type": "quorum"}),
            partial(channel.queue_bind, dlq, DEAD, q.name),
        ]
        steps += [partial(channel.queue_bind, q.name, q.exchange, key) for key in q.bindings]
    steps += [
        partial(channel.exchange_bind, b.destination, b.source, routing_key=b.key)
        for b in topology.exchange_bindings
    ]

    def step(_frame: Any = None) -> None:
        if steps:
            steps.pop(0)(callback=step)
        else:
            then()

    step()


def watch_queues(
    conn: SelectConnection,
    channel: Channel,
    topology: Topology,
    every_s: float,
    current: Callable[[], bool],
) -> None:
    """Every `every_s`, a passive declare of each queue and dead-letter queue, for as long as
    `current()` says this connection is still the bus's."""
    names = [n for q in topology.queues for n in (q.name, q.dead_letter_queue)]

    def read(_frame: Any = None) -> None:
        if not current() or not channel.is_open:
            return
        for name in names:
            channel.queue_declare(name, passive=True, callback=record)
        conn.ioloop.call_later(every_s, read)

    def record(frame: Any) -> None:
        QUEUE_MESSAGES.labels(frame.method.queue).set(frame.method.message_count)

    read()

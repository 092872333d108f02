"""The bus as the services see it: publish with confirms, consume in batches, settle each."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol


class Settle(enum.Enum):
    """What a handler decides for each message it was given."""

    ACK = "ack"  # durably handled: remove from the queue
    RETRY = "retry"  # try again later; counted against the queue's delivery limit
    DEAD = "dead"  # can never succeed: straight to the queue's dead-letter queue


@dataclass(frozen=True)
class Delivery:
    body: bytes
    routing_key: str
    message_id: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    delivery_count: int = 0  # earlier deliveries that ended in a requeue (x-delivery-count)
    published_at: float | None = None  # the AMQP timestamp (POSIX seconds) its publisher set


BatchHandler = Callable[[Sequence[Delivery]], Sequence[Settle]]

Transient = tuple[type[Exception], ...]
"""Exception types that mean "not now" rather than "never": a subscription's `transient=`."""


class StoreUnavailable(Exception):
    """A handler could not make its durable write now: its database is unreachable or
    restarting. The bus keeps the batch and hands it to the handler again, with back-off,
    without returning it to the queue: an outage is not a poison message, and must not use up
    the messages' delivery limit and send them to the dead-letter queue.

    A handler may raise this itself; more simply, it subscribes with `transient=` the error
    types its store raises in an outage (`shared.storage.UNAVAILABLE`), and the bus treats
    those the same way."""


class BusError(Exception):
    """The bus could not take or confirm a message."""


class BrokerUnavailable(BusError):
    """Not connected to the broker (or too many messages already wait for it)."""


class PublishRejected(BusError):
    """The broker refused the message (nack) or no queue was bound to receive it."""


class Bus(Protocol):
    """One small interface; `PikaBus` talks to RabbitMQ, `InMemoryBus` serves unit tests."""

    @property
    def connected(self) -> bool: ...

    def subscribe(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        prefetch: int = 256,
        max_batch: int = 100,
        transient: Transient = (),
    ) -> None:
        """Register a consumer; it starts with the bus and resumes after every reconnect.

        A batch whose handler raises StoreUnavailable or one of the `transient` types is held
        and handed over again with back-off (0.2 s doubling to 5 s), not requeued: its
        messages' delivery count stays as it was. Any other exception requeues the batch."""

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> Future[None]:
        """Send a persistent message; the future completes when the broker confirmed it."""
        ...

    def start(self) -> None: ...

    def close(self) -> None: ...

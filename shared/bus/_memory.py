"""An in-memory bus with RabbitMQ's routing, delivery limits and dead-lettering, for unit tests.

Nothing runs in the background: `drain()` hands queued messages to the subscribed handlers
until every queue is idle, so a test reads like the story it tells.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from shared.bus._interface import (
    BatchHandler,
    BrokerUnavailable,
    Delivery,
    PublishRejected,
    Settle,
    StoreUnavailable,
    Transient,
)
from shared.bus.topology import DEAD, Topology


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: `*` is one word, `#` is zero or more words."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), key.split("."))


@dataclass
class _Subscription:
    handler: BatchHandler
    max_batch: int
    transient: Transient  # StoreUnavailable and the types the subscriber named


@dataclass
class _Queue:
    name: str
    delivery_limit: int | None
    messages: deque[Delivery] = field(default_factory=deque)


class InMemoryBus:
    def __init__(self, topology: Topology) -> None:
        self._topology = topology
        self._exchange_types = {e.name: e.type for e in topology.exchanges}
        self._queues: dict[str, _Queue] = {}
        self._bindings: list[tuple[str, str, str]] = []  # exchange, pattern, queue
        for q in topology.queues:
            self._queues[q.name] = _Queue(q.name, q.delivery_limit)
            self._queues[q.dead_letter_queue] = _Queue(q.dead_letter_queue, None)
            self._bindings += [(q.exchange, b, q.name) for b in q.bindings]
            self._bindings.append((DEAD, q.name, q.dead_letter_queue))
        self._exchange_bindings = [(b.source, b.key, b.destination)
                                   for b in topology.exchange_bindings]  # fmt: skip
        self._subscriptions: dict[str, _Subscription] = {}
        self._lock = threading.Lock()
        self.connected_flag = True
        self.published: list[tuple[str, str, bytes]] = []

    @property
    def connected(self) -> bool:
        return self.connected_flag

    def subscribe(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        prefetch: int = 256,
        max_batch: int = 100,
        transient: Transient = (),
    ) -> None:
        if queue not in self._queues:
            raise KeyError(f"no queue {queue!r} in the topology")
        self._subscriptions[queue] = _Subscription(
            handler, max_batch, (StoreUnavailable, *transient)
        )

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> Future[None]:
        future: Future[None] = Future()
        if not self.connected_flag:
            raise BrokerUnavailable("in-memory bus is marked disconnected")
        targets = self._route(exchange, routing_key)
        if not targets:
            future.set_exception(PublishRejected(f"no queue bound for {exchange}/{routing_key}"))
            return future
        delivery = Delivery(body, routing_key, message_id, dict(headers or {}))
        with self._lock:
            self.published.append((exchange, routing_key, body))
            for name in targets:
                self._queues[name].messages.append(delivery)
        future.set_result(None)
        return future

    def _route(
        self, exchange: str, routing_key: str, seen: frozenset[str] = frozenset()
    ) -> list[str]:
        """The queues a message reaches, through exchange-to-exchange bindings too (each
        queue once, as RabbitMQ delivers it)."""
        kind = self._exchange_types.get(exchange, "direct" if exchange == DEAD else None)
        if kind is None:
            raise KeyError(f"no exchange {exchange!r} in the topology")

        def matches(pattern: str) -> bool:
            return (
                kind == "fanout"
                or (kind == "topic" and topic_matches(pattern, routing_key))
                or (kind == "direct" and pattern == routing_key)
            )

        out = [q for ex, pattern, q in self._bindings if ex == exchange and matches(pattern)]
        for source, pattern, destination in self._exchange_bindings:
            if source == exchange and destination not in seen and matches(pattern):
                out += self._route(destination, routing_key, seen | {exchange})
        return list(dict.fromkeys(out))

    def depth(self, queue: str) -> int:
        return len(self._queues[queue].messages)

    def messages(self, queue: str) -> list[Delivery]:
        return list(self._queues[queue].messages)

    def drain(self, max_rounds: int = 10_000) -> None:
        """Deliver until no subscribed queue holds a message (or nothing makes progress)."""
        for _ in range(max_rounds):
            if not any(self._deliver_batch(q) for q in list(self._subscriptions)):
                return
        raise RuntimeError("bus did not settle: a handler keeps retrying")

    def _deliver_batch(self, queue_name: str) -> bool:
        queue = self._queues[queue_name]
        sub = self._subscriptions[queue_name]
        with self._lock:
            batch = [
                queue.messages.popleft() for _ in range(min(sub.max_batch, len(queue.messages)))
            ]
        if not batch:
            return False
        try:
            settles = list(sub.handler(batch))
        except sub.transient:  # as on RabbitMQ: held, tried again, not counted
            with self._lock:
                queue.messages.extendleft(reversed(batch))
            return True
        except Exception:  # noqa: BLE001 - as on RabbitMQ: a failing handler means retry
            settles = [Settle.RETRY] * len(batch)
        if len(settles) != len(batch):
            raise RuntimeError("handler must settle every message it was given")
        for delivery, settle in zip(batch, settles, strict=True):
            self._settle(queue, delivery, settle)
        return True

    def _settle(self, queue: _Queue, delivery: Delivery, settle: Settle) -> None:
        if settle is Settle.ACK:
            return
        count = delivery.delivery_count + 1
        # RabbitMQ dead-letters once a message was returned more times than the limit.
        over_limit = queue.delivery_limit is not None and count > queue.delivery_limit
        if settle is Settle.DEAD or over_limit:
            dead = replace(
                delivery, headers={**delivery.headers, "x-first-death-queue": queue.name}
            )
            self._queues[f"{queue.name}.dead"].messages.append(dead)
            return
        queue.messages.append(replace(delivery, redelivered=True, delivery_count=count))

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None

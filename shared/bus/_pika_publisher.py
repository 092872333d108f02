"""Publishing with confirms: a window of unconfirmed messages in flight on the bus's channel.

Any thread queues a message and gets a future; the I/O thread sends it and completes the
future on the broker's confirm (or fails it on a nack or an unroutable return). When the
connection goes, everything unconfirmed goes back to the front of the outbox, in its order,
and is sent again on the next connection.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pika
import structlog
from pika.channel import Channel

from shared.bus._interface import BrokerUnavailable, PublishRejected
from shared.metrics import EVENTS_OUT

log = structlog.get_logger("shared.bus")


@dataclass
class _Pending:
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    future: Future[None]
    returned: bool = False


class Publisher:
    def __init__(
        self,
        name: str,
        *,
        window: int,
        max_pending: int,
        call_threadsafe: Callable[[Callable[[], None]], None],
    ) -> None:
        self._name = name
        self._window = window
        self._max_pending = max_pending
        self._call_threadsafe = call_threadsafe  # run on the I/O thread
        self._lock = threading.Lock()
        self._outbox: deque[_Pending] = deque()  # waiting to be sent (any thread, under lock)
        self._unconfirmed: dict[int, _Pending] = {}  # delivery tag -> message (I/O thread)
        self._next_tag = 0
        self._flush_scheduled = False
        self._channel: Channel | None = None

    # --- any thread --------------------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None,
    ) -> Future[None]:
        if len(self._outbox) + len(self._unconfirmed) >= self._max_pending:
            raise BrokerUnavailable("too many messages wait for the broker's confirm")
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type="application/json",
            message_id=message_id,
            headers=dict(headers) if headers else None,
            timestamp=int(time.time()),
        )
        future: Future[None] = Future()
        with self._lock:
            self._outbox.append(_Pending(exchange, routing_key, body, properties, future))
            wake = not self._flush_scheduled  # one wake-up per burst, not per message
            self._flush_scheduled = True
        if wake:
            self._call_threadsafe(self.flush)
        return future

    def fail_all(self) -> None:
        """The bus closed: every message still waiting fails (after the I/O thread ended)."""
        with self._lock:
            left = list(self._unconfirmed.values()) + list(self._outbox)
            self._unconfirmed.clear()
            self._outbox.clear()
        for pending in left:
            if not pending.future.done():
                pending.future.set_exception(BrokerUnavailable("bus closed before the confirm"))

    # --- I/O thread --------------------------------------------------------------------------

    def enable_confirms(self, channel: Channel, then: Callable[[], None]) -> None:
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: then())

    def attach(self, channel: Channel) -> None:
        """Publish on this channel (confirms enabled) from now on."""
        self._channel = channel

    def detach(self) -> None:
        """The connection is gone: what it had not confirmed goes out again, first."""
        self._channel = None
        with self._lock:
            self._outbox.extendleft(reversed(list(self._unconfirmed.values())))
        self._unconfirmed.clear()
        self._next_tag = 0

    def flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
        channel = self._channel
        if channel is None or not channel.is_open:
            return
        while len(self._unconfirmed) < self._window:
            with self._lock:
                if not self._outbox:
                    return
                pending = self._outbox.popleft()
            channel.basic_publish(
                pending.exchange,
                pending.routing_key,
                pending.body,
                properties=pending.properties,
                mandatory=True,
            )
            self._next_tag += 1
            self._unconfirmed[self._next_tag] = pending

    def _on_return(
        self, _ch: Channel, method: Any, properties: pika.BasicProperties, _body: bytes
    ) -> None:
        for pending in self._unconfirmed.values():
            if pending.properties.message_id == properties.message_id and not pending.returned:
                pending.returned = True
                log.error(
                    "message unroutable",
                    bus=self._name,
                    exchange=method.exchange,
                    routing_key=method.routing_key,
                    event_id=properties.message_id,
                )
                return

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = (
            [t for t in self._unconfirmed if t <= method.delivery_tag]
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            pending = self._unconfirmed.pop(tag, None)
            if pending is None or pending.future.done():
                continue
            if not acked:
                outcome = "nacked"
                pending.future.set_exception(PublishRejected("the broker nacked the message"))
            elif pending.returned:
                outcome = "unroutable"
                pending.future.set_exception(
                    PublishRejected(f"no queue is bound for {pending.routing_key!r}")
                )
            else:
                outcome = "confirmed"
                pending.future.set_result(None)
            EVENTS_OUT.labels(pending.exchange, outcome).inc()
        self.flush()

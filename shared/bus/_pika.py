"""The RabbitMQ bus on pika's SelectConnection, run on one I/O thread per bus.

- Publishing keeps a window of unconfirmed messages in flight; each caller gets a future that
  completes on the broker's confirm (or fails on a nack or an unroutable return).
- Each subscription has a worker thread: handlers never run on the I/O thread, so heartbeats
  are never starved; settles go back through `add_callback_threadsafe`.
- On any connection loss the bus reconnects with back-off, re-declares the topology, resumes
  consuming and re-sends every message the broker had not confirmed. Settles for deliveries
  of an older connection are dropped: the broker redelivers those messages.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from queue import Empty, Queue
from typing import Any

import pika
import pika.exceptions
import structlog
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel

from shared.bus._interface import (
    BatchHandler,
    BrokerUnavailable,
    BusError,
    Delivery,
    PublishRejected,
    Settle,
    StoreUnavailable,
    Transient,
)
from shared.bus.topology import DEAD, Topology
from shared.metrics import CONSUMER_LAG, EVENTS_IN, EVENTS_OUT, QUEUE_MESSAGES

log = structlog.get_logger("shared.bus")


@dataclass
class _Pending:
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    future: Future[None]
    returned: bool = False


@dataclass(frozen=True)
class _Received:
    generation: int
    channel: Channel
    delivery_tag: int
    delivery: Delivery


@dataclass
class _Subscription:
    queue: str
    handler: BatchHandler
    prefetch: int
    max_batch: int
    transient: Transient  # StoreUnavailable and the types the subscriber named
    work: Queue[_Received] = field(default_factory=Queue)
    thread: threading.Thread | None = None


class PikaBus:
    def __init__(
        self,
        url: str,
        topology: Topology,
        *,
        name: str,
        confirm_window: int = 1024,
        max_pending: int = 50_000,
        reconnect_delay_s: float = 0.5,
        max_reconnect_delay_s: float = 5.0,
        watch_queues_s: float | None = None,
        declare: bool = True,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._params = pika.URLParameters(
            url if password is None else _with_password(url, password)
        )
        self._params.client_properties = {"connection_name": name}
        if tls is not None:
            self._params.ssl_options = pika.SSLOptions(tls, self._params.host)
        if self._params.blocked_connection_timeout is None:
            self._params.blocked_connection_timeout = 30
        self._topology = topology
        self._name = name
        self._window = confirm_window
        self._max_pending = max_pending
        self._delay = reconnect_delay_s
        self._max_delay = max_reconnect_delay_s
        self._watch_s = watch_queues_s  # read every queue's depth this often (metrics)
        self._declare_topology = declare  # False: the broker's definitions hold it already

        self._lock = threading.Lock()
        self._outbox: deque[_Pending] = deque()  # waiting to be sent (any thread, under lock)
        self._unconfirmed: dict[int, _Pending] = {}  # delivery tag -> message (I/O thread)
        self._next_tag = 0
        self._flush_scheduled = False
        self._subscriptions: list[_Subscription] = []
        self._conn: SelectConnection | None = None
        self._pub_channel: Channel | None = None
        self._generation = 0
        self._ready = threading.Event()
        self._stopping = threading.Event()  # workers take no new batch
        self._closing = threading.Event()  # no new publish; the connection goes
        self._io_thread: threading.Thread | None = None
        self._opened_this_round = False
        self.connections_opened = 0

    # --- public interface -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def subscribe(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        prefetch: int = 256,
        max_batch: int = 100,
        transient: Transient = (),
    ) -> None:
        if self._io_thread is not None:
            raise RuntimeError("subscribe before start()")
        self._topology.queue(queue)  # fail early on a name the topology does not declare
        transient = (StoreUnavailable, *transient)
        self._subscriptions.append(_Subscription(queue, handler, prefetch, max_batch, transient))

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> Future[None]:
        if self._closing.is_set() or not self._ready.is_set():
            raise BrokerUnavailable("not connected to RabbitMQ")
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
            self._call_threadsafe(self._flush)
        return future

    def start(self) -> None:
        if self._io_thread is not None:
            return
        for sub in self._subscriptions:
            sub.thread = threading.Thread(
                target=self._work, args=(sub,), name=f"{self._name}-{sub.queue}", daemon=True
            )
            sub.thread.start()
        self._io_thread = threading.Thread(target=self._run, name=f"{self._name}-io", daemon=True)
        self._io_thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Let handlers finish their batch (publishing and settling it), then disconnect."""
        self._stopping.set()
        for sub in self._subscriptions:
            if sub.thread is not None:
                sub.thread.join(timeout)
        self._closing.set()
        self._call_threadsafe(self._close_connection)
        if self._io_thread is not None:
            self._io_thread.join(timeout)
        with self._lock:
            left = list(self._unconfirmed.values()) + list(self._outbox)
            self._unconfirmed.clear()
            self._outbox.clear()
        for pending in left:
            if not pending.future.done():
                pending.future.set_exception(BrokerUnavailable("bus closed before the confirm"))

    # --- I/O thread: connection life cycle --------------------------------------------------

    def _run(self) -> None:
        delay = self._delay
        while not self._closing.is_set():
            conn = SelectConnection(
                self._params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self._conn = conn
            conn.ioloop.start()
            self._conn = None
            conn.ioloop.close()  # its wake-up socket pair
            if self._closing.is_set():
                break
            delay = self._delay if self._opened_this_round else min(delay * 2, self._max_delay)
            self._opened_this_round = False
            self._closing.wait(delay)

    def _on_open(self, conn: SelectConnection) -> None:
        self._opened_this_round = True
        conn.channel(on_open_callback=self._on_publish_channel_open)

    def _on_open_error(self, conn: SelectConnection, error: BaseException) -> None:
        log.warning("broker unreachable, retrying", bus=self._name, error=str(error))
        conn.ioloop.stop()

    def _on_closed(self, conn: SelectConnection, reason: BaseException) -> None:
        self._ready.clear()
        self._generation += 1
        self._pub_channel = None
        with self._lock:  # everything unconfirmed goes out again, first, in its order
            self._outbox.extendleft(reversed(list(self._unconfirmed.values())))
        self._unconfirmed.clear()
        self._next_tag = 0
        if not self._closing.is_set():
            log.warning("broker connection lost, reconnecting", bus=self._name, reason=str(reason))
        conn.ioloop.stop()

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        if self._closing.is_set():
            return
        log.error("channel closed by the broker", bus=self._name, reason=str(reason))
        conn = self._conn
        if conn is not None and conn.is_open:
            conn.close()

    def _close_connection(self) -> None:
        conn = self._conn
        if conn is not None and conn.is_open:
            conn.close()
        elif conn is not None:
            conn.ioloop.stop()

    def _call_threadsafe(self, callback: Callable[[], None]) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.ioloop.add_callback_threadsafe(callback)
        except (pika.exceptions.AMQPError, RuntimeError, OSError, AttributeError):
            return  # loop gone: the next connection picks the work up

    # --- I/O thread: topology and publishing ------------------------------------------------

    def _on_publish_channel_open(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        self._declare(channel, then=lambda: self._enable_confirms(channel))

    def _declare(self, channel: Channel, then: Callable[[], None]) -> None:
        """Declare exchanges, quorum queues, their dead-letter queues and bindings, in order.

        With `declare=False` (a user without configure permission, deploy/) nothing is
        declared: the broker loaded the same topology from its definitions."""
        if not self._declare_topology:
            then()
            return
        steps: list[Callable[..., None]] = [
            partial(channel.exchange_declare, ex.name, ex.type, durable=True)
            for ex in self._topology.exchanges
        ]
        for q in self._topology.queues:
            dlq = q.dead_letter_queue
            steps += [
                partial(channel.queue_declare, q.name, durable=True, arguments=q.arguments()),
                partial(
                    channel.queue_declare, dlq, durable=True, arguments={"x-queue-type": "quorum"}
                ),
                partial(channel.queue_bind, dlq, DEAD, q.name),
            ]
            steps += [partial(channel.queue_bind, q.name, q.exchange, key) for key in q.bindings]
        steps += [
            partial(channel.exchange_bind, b.destination, b.source, routing_key=b.key)
            for b in self._topology.exchange_bindings
        ]

        def step(_frame: Any = None) -> None:
            if steps:
                steps.pop(0)(callback=step)
            else:
                then()

        step()

    def _enable_confirms(self, channel: Channel) -> None:
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: self._on_ready(channel))

    def _on_ready(self, channel: Channel) -> None:
        self._pub_channel = channel
        self.connections_opened += 1
        conn = self._conn
        assert conn is not None
        for sub in self._subscriptions:
            conn.channel(on_open_callback=lambda ch, sub=sub: self._start_consuming(ch, sub))
        if self._watch_s is not None:
            conn.channel(on_open_callback=self._watch_queues)
        self._ready.set()
        log.info("bus ready", bus=self._name, connection=self.connections_opened)
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
        channel = self._pub_channel
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
        self._flush()

    # --- queue depths, for the metrics --------------------------------------------------------

    def _watch_queues(self, channel: Channel) -> None:
        """Every few seconds, a passive declare of each queue and dead-letter queue."""
        names = [n for q in self._topology.queues for n in (q.name, q.dead_letter_queue)]
        generation = self._generation

        def read(_frame: Any = None) -> None:
            if generation != self._generation or not channel.is_open:
                return
            for name in names:
                channel.queue_declare(name, passive=True, callback=record)
            conn = self._conn
            if conn is not None and self._watch_s is not None:
                conn.ioloop.call_later(self._watch_s, read)

        def record(frame: Any) -> None:
            QUEUE_MESSAGES.labels(frame.method.queue).set(frame.method.message_count)

        read()

    # --- consuming --------------------------------------------------------------------------

    def _start_consuming(self, channel: Channel, sub: _Subscription) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        generation = self._generation

        def on_message(ch: Channel, method: Any, props: pika.BasicProperties, body: bytes) -> None:
            headers = props.headers or {}
            delivery = Delivery(
                body=body,
                routing_key=method.routing_key,
                message_id=props.message_id,
                headers=headers,
                redelivered=bool(method.redelivered),
                delivery_count=int(headers.get("x-delivery-count", 0)),
                published_at=float(props.timestamp) if props.timestamp else None,
            )
            sub.work.put(_Received(generation, ch, method.delivery_tag, delivery))

        channel.basic_qos(
            prefetch_count=sub.prefetch,
            callback=lambda _f: channel.basic_consume(sub.queue, on_message, auto_ack=False),
        )

    def _work(self, sub: _Subscription) -> None:
        while not self._stopping.is_set():
            try:
                first = sub.work.get(timeout=0.2)
            except Empty:
                continue
            batch = [first]
            while len(batch) < sub.max_batch:
                try:
                    batch.append(sub.work.get_nowait())
                except Empty:
                    break
            batch = [r for r in batch if r.generation == self._generation]
            if batch:
                settles = self._handle(sub, batch)
                self._call_threadsafe(partial(self._settle, batch, settles))
                _count(sub.queue, batch, settles)

    def _handle(self, sub: _Subscription, batch: list[_Received]) -> list[Settle]:
        """The handler's settles; through a store outage, the same batch again with back-off.

        The outage is logged when it starts and when it ends, not at every attempt."""
        delay, attempts, since = 0.2, 0, 0.0
        while True:
            try:
                settles = list(sub.handler([r.delivery for r in batch]))
                if len(settles) != len(batch):
                    raise BusError(f"handler settled {len(settles)} of {len(batch)} messages")
            except sub.transient as exc:
                if self._stopping.is_set() or batch[0].generation != self._generation:
                    return [Settle.RETRY] * len(batch)  # the broker redelivers them anyway
                if not attempts:
                    since = time.monotonic()
                    log.warning("store unavailable; the batch waits and is tried again",
                                queue=sub.queue, error=str(exc), retry_in_s=delay)  # fmt: skip
                attempts += 1
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            except Exception:
                log.exception("handler failed; messages will be retried", queue=sub.queue)
                return [Settle.RETRY] * len(batch)
            if attempts:
                log.info("store available again", queue=sub.queue, attempts=attempts + 1,
                         waited_s=round(time.monotonic() - since, 1))  # fmt: skip
            return settles

    def _settle(self, batch: list[_Received], settles: list[Settle]) -> None:
        channel = batch[0].channel
        if batch[0].generation != self._generation or not channel.is_open:
            return  # that connection is gone; the broker redelivers these messages
        if all(s is Settle.ACK for s in settles):
            channel.basic_ack(batch[-1].delivery_tag, multiple=True)
            return
        for received, settle in zip(batch, settles, strict=True):
            if settle is Settle.ACK:
                channel.basic_ack(received.delivery_tag)
            else:
                channel.basic_reject(received.delivery_tag, requeue=settle is Settle.RETRY)


def _count(queue: str, batch: list[_Received], settles: list[Settle]) -> None:
    for settle in set(settles):
        EVENTS_IN.labels(queue, settle.name.lower()).inc(settles.count(settle))
    published = [r.delivery.published_at for r in batch if r.delivery.published_at]
    if published:
        CONSUMER_LAG.labels(queue).set(max(0.0, time.time() - min(published)))


def _with_password(url: str, password: str) -> str:
    """The URL with this password (a password kept in a file, not in the URL)."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.quote(urllib.parse.unquote(parts.username or ""), safe="")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:{urllib.parse.quote(password, safe='')}@{host}{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

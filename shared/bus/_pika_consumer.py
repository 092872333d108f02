"""Consuming: one subscription's deliveries, handed to its handler in batches and settled.

Each subscription has a worker thread: handlers never run on the I/O thread, so heartbeats
are never starved; settles go back to the I/O thread. Deliveries carry the generation of
the connection they came on: once it is gone, their settles are dropped (the broker
redelivers those messages).

A handler that raises StoreUnavailable or one of the subscription's transient types keeps
its batch: the worker hands it over again with back-off, without settling it, so an outage
does not use up the messages' delivery limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from queue import Empty, Queue
from typing import Any

import pika
import structlog
from pika.channel import Channel

from shared.bus._interface import BatchHandler, BusError, Delivery, Settle, Transient
from shared.metrics import CONSUMER_LAG, EVENTS_IN

log = structlog.get_logger("shared.bus")

FIRST_DELAY_S = 0.2  # the back-off through a store outage doubles from here...
MAX_DELAY_S = 5.0  # ...up to this


@dataclass(frozen=True)
class _Received:
    generation: int
    channel: Channel
    delivery_tag: int
    delivery: Delivery


class Consumer:
    def __init__(
        self,
        queue: str,
        handler: BatchHandler,
        *,
        prefetch: int,
        max_batch: int,
        transient: Transient,
        generation: Callable[[], int],
        stopping: threading.Event,
        call_threadsafe: Callable[[Callable[[], None]], None],
    ) -> None:
        self.queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self._max_batch = max_batch
        self._transient = transient  # StoreUnavailable and the types the subscriber named
        self._generation = generation  # the current connection's
        self._stopping = stopping  # set: take no new batch
        self._call_threadsafe = call_threadsafe  # run on the I/O thread
        self._work: Queue[_Received] = Queue()
        self._thread: threading.Thread | None = None

    def start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # --- I/O thread --------------------------------------------------------------------------

    def consume(self, channel: Channel) -> None:
        """Start consuming on a new channel of the current connection."""
        generation = self._generation()

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
            self._work.put(_Received(generation, ch, method.delivery_tag, delivery))

        channel.basic_qos(
            prefetch_count=self._prefetch,
            callback=lambda _f: channel.basic_consume(self.queue, on_message, auto_ack=False),
        )

    def _settle(self, batch: list[_Received], settles: list[Settle]) -> None:
        channel = batch[0].channel
        if batch[0].generation != self._generation() or not channel.is_open:
            return  # that connection is gone; the broker redelivers these messages
        if all(s is Settle.ACK for s in settles):
            channel.basic_ack(batch[-1].delivery_tag, multiple=True)
            return
        for received, settle in zip(batch, settles, strict=True):
            if settle is Settle.ACK:
                channel.basic_ack(received.delivery_tag)
            else:
                channel.basic_reject(received.delivery_tag, requeue=settle is Settle.RETRY)

    # --- worker thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                first = self._work.get(timeout=0.2)
            except Empty:
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._work.get_nowait())
                except Empty:
                    break
            batch = [r for r in batch if r.generation == self._generation()]
            if batch:
                settles = self._handle(batch)
                self._call_threadsafe(partial(self._settle, batch, settles))
                _count(self.queue, batch, settles)

    def _handle(self, batch: list[_Received]) -> list[Settle]:
        """The handler's settles; through a store outage, the same batch again with back-off.

        The outage is logged when it starts and when it ends, not at every attempt."""
        delay, attempts, since = FIRST_DELAY_S, 0, 0.0
        while True:
            try:
                settles = list(self._handler([r.delivery for r in batch]))
                if len(settles) != len(batch):
                    raise BusError(f"handler settled {len(settles)} of {len(batch)} messages")
            except self._transient as exc:
                if self._stopping.is_set() or batch[0].generation != self._generation():
                    return [Settle.RETRY] * len(batch)  # the broker redelivers them anyway
                if not attempts:
                    since = time.monotonic()
                    log.warning("store unavailable; the batch waits and is tried again",
                                queue=self.queue, error=str(exc), retry_in_s=delay)  # fmt: skip
                attempts += 1
                self._stopping.wait(delay)
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            except Exception:
                log.exception("handler failed; messages will be retried", queue=self.queue)
                return [Settle.RETRY] * len(batch)
            if attempts:
                log.info("store available again", queue=self.queue, attempts=attempts + 1,
                         waited_s=round(time.monotonic() - since, 1))  # fmt: skip
            return settles


def _count(queue: str, batch: list[_Received], settles: list[Settle]) -> None:
    for settle in set(settles):
        EVENTS_IN.labels(queue, settle.name.lower()).inc(settles.count(settle))
    published = [r.delivery.published_at for r in batch if r.delivery.published_at]
    if published:
        CONSUMER_LAG.labels(queue).set(max(0.0, time.time() - min(published)))

"""The RabbitMQ bus on pika's SelectConnection, run on one I/O thread per bus.

This module holds the connection's life cycle; publishing (_pika_publisher.py), consuming
(_pika_consumer.py) and the topology (_pika_topology.py) each have their own.

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
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import pika
import pika.exceptions
import structlog
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel

from shared.bus._interface import BatchHandler, BrokerUnavailable, StoreUnavailable, Transient
from shared.bus._pika_consumer import Consumer
from shared.bus._pika_publisher import Publisher
from shared.bus._pika_topology import declare as declare_topology
from shared.bus._pika_topology import watch_queues
from shared.bus.topology import Topology

log = structlog.get_logger("shared.bus")


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
        self._delay = reconnect_delay_s
        self._max_delay = max_reconnect_delay_s
        self._watch_s = watch_queues_s  # read every queue's depth this often (metrics)
        self._declare_topology = declare  # False: the broker's definitions hold it already

        self._publisher = Publisher(
            name,
            window=confirm_window,
            max_pending=max_pending,
            call_threadsafe=self._call_threadsafe,
        )
        self._consumers: list[Consumer] = []
        self._conn: SelectConnection | None = None
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
        consumer = Consumer(
            queue,
            handler,
            prefetch=prefetch,
            max_batch=max_batch,
            transient=(StoreUnavailable, *transient),
            generation=lambda: self._generation,
            stopping=self._stopping,
            call_threadsafe=self._call_threadsafe,
        )
        self._consumers.append(consumer)

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
        return self._publisher.publish(
            exchange, routing_key, body, message_id=message_id, headers=headers
        )

    def start(self) -> None:
        if self._io_thread is not None:
            return
        for consumer in self._consumers:
            consumer.start(f"{self._name}-{consumer.queue}")
        self._io_thread = threading.Thread(target=self._run, name=f"{self._name}-io", daemon=True)
        self._io_thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Let handlers finish their batch (publishing and settling it), then disconnect."""
        self._stopping.set()
        for consumer in self._consumers:
            consumer.join(timeout)
        self._closing.set()
        self._call_threadsafe(self._close_connection)
        if self._io_thread is not None:
            self._io_thread.join(timeout)
        self._publisher.fail_all()

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
        self._publisher.detach()  # everything unconfirmed goes out again, first, in its order
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

    # --- I/O thread: once connected ---------------------------------------------------------

    def _on_publish_channel_open(self, channel: Channel) -> None:
        """Declare the topology (unless `declare=False`: a user without configure permission,
        deploy/, whose broker loaded it from its definitions), then enable confirms."""
        channel.add_on_close_callback(self._on_channel_closed)

        def confirms() -> None:
            self._publisher.enable_confirms(channel, then=lambda: self._on_ready(channel))

        if self._declare_topology:
            declare_topology(channel, self._topology, then=confirms)
        else:
            confirms()

    def _on_ready(self, channel: Channel) -> None:
        self._publisher.attach(channel)
        self.connections_opened += 1
        conn = self._conn
        assert conn is not None
        for consumer in self._consumers:
            conn.channel(on_open_callback=lambda ch, c=consumer: self._consume(ch, c))
        if self._watch_s is not None:
            conn.channel(on_open_callback=lambda ch: self._watch(conn, ch))
        self._ready.set()
        log.info("bus ready", bus=self._name, connection=self.connections_opened)
        self._publisher.flush()

    def _consume(self, channel: Channel, consumer: Consumer) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        consumer.consume(channel)

    def _watch(self, conn: SelectConnection, channel: Channel) -> None:
        """Queue depths for the metrics, on this connection for as long as it lasts."""
        assert self._watch_s is not None
        generation = self._generation
        watch_queues(
            conn,
            channel,
            self._topology,
            self._watch_s,
            current=lambda: generation == self._generation,
        )


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

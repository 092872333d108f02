"""PikaBus on the real broker: confirms, dead-lettering, heartbeats, reconnect and re-send, and
a store outage held without using up the delivery limit."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from shared.bus import Delivery, PikaBus, PublishRejected, Settle
from shared.bus.topology import DEAD, Exchange, Queue, Topology
from shared.storage import UNAVAILABLE
from tests.integration.conftest import close_connections, take_messages, wait_until
from tests.locked_sqlite import LockedDatabase, Recording

pytestmark = pytest.mark.integration

LIMIT = 3
TOPOLOGY = Topology(
    exchanges=(Exchange("t.events", "topic"), Exchange(DEAD, "direct")),
    queues=(Queue("q.t", "t.events", ("work.#",), LIMIT),),
)


@pytest.fixture
def make_bus(amqp_url: str) -> Iterator[type[PikaBus]]:
    made: list[PikaBus] = []

    def make(url_suffix: str = "", **kw: object) -> PikaBus:
        bus = PikaBus(amqp_url + url_suffix, TOPOLOGY, name="test", **kw)  # type: ignore[arg-type]
        made.append(bus)
        return bus

    yield make  # type: ignore[misc]
    for bus in made:
        bus.close(timeout=10)


def test_a_message_whose_handler_always_fails_ends_in_the_dead_letter_queue(
    make_bus: type[PikaBus], amqp_url: str
) -> None:
    seen: list[int] = []

    def always_fails(batch: Sequence[Delivery]) -> list[Settle]:
        seen.extend(d.delivery_count for d in batch)
        raise RuntimeError("the database is on fire")

    bus = make_bus()
    bus.subscribe("q.t", always_fails)
    bus.start()
    assert bus.wait_ready(20)
    bus.publish("t.events", "work.x", b'{"poison": true}', message_id="m-1").result(10)

    letters = wait_until(lambda: take_messages(amqp_url, "q.t.dead"))
    assert letters == [b'{"poison": true}']
    assert seen == list(range(LIMIT + 1))  # first delivery + LIMIT redeliveries, then dead


def test_an_unroutable_message_is_refused_not_lost(make_bus: type[PikaBus]) -> None:
    bus = make_bus()
    bus.start()
    assert bus.wait_ready(20)
    with pytest.raises(PublishRejected):
        bus.publish("t.events", "nobody.listens", b"{}", message_id="m-2").result(10)


def test_a_slow_handler_does_not_starve_heartbeats(make_bus: type[PikaBus]) -> None:
    calls: list[bytes] = []

    def slow(batch: Sequence[Delivery]) -> list[Settle]:
        time.sleep(5)  # five heartbeat intervals of 1 s
        calls.extend(d.body for d in batch)
        return [Settle.ACK] * len(batch)

    bus = make_bus("?heartbeat=1")
    bus.subscribe("q.t", slow)
    bus.start()
    assert bus.wait_ready(20)
    bus.publish("t.events", "work.slow", b"slow", message_id="m-3").result(10)
    wait_until(lambda: calls, timeout=30)
    time.sleep(2)  # had the connection died, the broker would redeliver now
    assert calls == [b"slow"]
    assert bus.connections_opened == 1


def test_after_the_connection_drops_everything_is_resent_and_consumed(
    make_bus: type[PikaBus], amqp_url: str
) -> None:
    received: Counter[bytes] = Counter()
    lock = threading.Lock()

    def record(batch: Sequence[Delivery]) -> list[Settle]:
        with lock:
            received.update(d.body for d in batch)
        return [Settle.ACK] * len(batch)

    consumer = make_bus()
    consumer.subscribe("q.t", record)
    consumer.start()
    publisher = make_bus(confirm_window=64)
    publisher.start()
    assert consumer.wait_ready(20)
    assert publisher.wait_ready(20)

    total = 3000
    futures = []
    for i in range(total):
        if i == total // 3:
            close_connections(amqp_url)  # both buses lose their connection mid-stream
        while True:
            try:
                futures.append(
                    publisher.publish("t.events", "work.n", b"%d" % i, message_id=str(i))
                )
                break
            except Exception:  # not connected yet: the caller retries, as bedside's tablet does
                time.sleep(0.05)
    for future in futures:
        future.result(60)

    expected = {b"%d" % i for i in range(total)}
    wait_until(lambda: set(received) >= expected, timeout=60)
    assert publisher.connections_opened >= 2
    assert consumer.connections_opened >= 2


def test_a_locked_database_holds_the_batch_without_using_up_its_delivery_limit(
    make_bus: type[PikaBus], amqp_url: str, tmp_path: Path
) -> None:
    db = LockedDatabase(tmp_path / "store.sqlite3")
    handler = Recording(db)
    bus = make_bus()
    bus.subscribe("q.t", handler, transient=UNAVAILABLE)
    bus.start()
    assert bus.wait_ready(20)
    db.lock()
    with capture_logs() as logs:
        bus.publish("t.events", "work.x", b"{}", message_id="m-5").result(10)
        wait_until(lambda: handler.failures >= LIMIT + 2, timeout=30)  # past the limit
        db.unlock()
        wait_until(lambda: db.seen(), timeout=30)
        time.sleep(1)  # had the batch been requeued, it would come round again now

    assert db.seen() == ["m-5"]
    assert handler.attempts == [("m-5", 0, False)] * (handler.failures + 1)
    assert take_messages(amqp_url, "q.t.dead") == []
    assert take_messages(amqp_url, "q.t") == []
    outage = [e["event"] for e in logs if e.get("queue") == "q.t"]
    assert outage == [  # once when it starts, once when it ends: not at every attempt
        "store unavailable; the batch waits and is tried again",
        "store available again",
    ]

"""A database outage is not a poison message: while a service's store is unreachable the bus
holds the batch and hands it over again, without returning it to the queue, so the messages
do not use up their delivery limit and nothing lands in a dead-letter queue."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.bus import Delivery, InMemoryBus, Settle, StoreUnavailable
from shared.bus.topology import EVENTS, Q_AUDIT, Q_HARVEST, Q_IMPLANT
from shared.storage import UNAVAILABLE
from tests.locked_sqlite import LockedDatabase, Recording
from tests.unit.clinical_harness import Implant, Procedure


class Outage:
    """The store's `add` fails `times` times, as a restarting database would."""

    def __init__(self, implant: Implant, times: int) -> None:
        self.left = times
        store = implant.recorder.store
        self.real = store.add
        store.add = self.add  # type: ignore[method-assign]

    def add(self, *args: Any) -> None:
        if self.left > 0:
            self.left -= 1
            raise sqlite3.OperationalError("database is restarting")
        self.real(*args)


def test_an_outage_longer_than_the_delivery_limit_loses_nothing(
    bus: InMemoryBus, implant_rules: Implant, procedure: Procedure, example: Any
) -> None:
    outage = Outage(implant_rules, times=12)  # the delivery limit is 5
    given = procedure.post("sedation.drug_administered", example("sedation.drug_administered"),
                           minute=-5)  # fmt: skip

    assert outage.left == 0
    assert bus.depth("q.implant.dead") == 0
    forwarded = [d.message_id for d in bus.messages(Q_AUDIT)]
    assert forwarded.count(given["event_id"]) == 1
    assert bus.depth(Q_IMPLANT) == 0


def test_a_handler_that_only_fails_is_still_dead_lettered_after_the_limit(
    bus: InMemoryBus,
) -> None:
    calls = []

    def broken(batch: Sequence[Delivery]) -> list[Settle]:
        calls.append(len(batch))
        raise ValueError("a bug, not an outage")

    bus.subscribe(Q_HARVEST, broken)
    bus.publish(EVENTS, "harvest.x", b"{}", message_id="m1").result(0)
    bus.drain()
    assert bus.depth("q.harvest.dead") == 1
    assert len(calls) == 6  # the first delivery and five more


def test_an_outage_is_held_not_requeued(bus: InMemoryBus) -> None:
    attempts = []

    def flaky(batch: Sequence[Delivery]) -> list[Settle]:
        attempts.append(batch[0].delivery_count)
        if len(attempts) < 10:
            raise StoreUnavailable("down")
        return [Settle.ACK] * len(batch)

    bus.subscribe(Q_HARVEST, flaky)
    bus.publish(EVENTS, "harvest.x", b"{}", message_id="m1").result(0)
    bus.drain()
    assert attempts == [0] * 10
    assert bus.depth("q.harvest.dead") == 0
    assert bus.depth(Q_HARVEST) == 0


def test_a_locked_database_is_an_outage_when_the_subscriber_names_its_errors_transient(
    bus: InMemoryBus, tmp_path: Path
) -> None:
    db = LockedDatabase(tmp_path / "store.sqlite3")
    handler = Recording(db)

    def while_locked(batch: Sequence[Delivery]) -> list[Settle]:
        if handler.failures == 8:  # the lock goes after eight attempts (the limit is five)
            db.unlock()
        return handler(batch)

    bus.subscribe(Q_HARVEST, while_locked, transient=UNAVAILABLE)
    db.lock()
    bus.publish(EVENTS, "harvest.x", b"{}", message_id="m1").result(0)
    bus.drain()

    assert handler.attempts == [("m1", 0, False)] * 9  # held: never requeued, never counted
    assert db.seen() == ["m1"]
    assert bus.depth("q.harvest.dead") == 0
    assert bus.depth(Q_HARVEST) == 0


def test_a_locked_database_is_a_failure_like_any_other_to_a_subscriber_that_names_no_errors(
    bus: InMemoryBus, tmp_path: Path
) -> None:
    db = LockedDatabase(tmp_path / "store.sqlite3")
    handler = Recording(db)
    bus.subscribe(Q_HARVEST, handler)
    db.lock()
    bus.publish(EVENTS, "harvest.x", b"{}", message_id="m1").result(0)
    bus.drain()
    db.unlock()

    assert [count for _, count, _ in handler.attempts] == [0, 1, 2, 3, 4, 5]
    assert bus.depth("q.harvest.dead") == 1
    assert db.seen() == []

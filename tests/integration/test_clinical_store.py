"""The implant service's state store (the clinical store with the implant room's lots table)
behaves the same on SQLite and on PostgreSQL: facts kept once per event_id, lots once per lot
id, alerts once per key, the clock's watch list; and a procedure folds to the same state from
either."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.implant.lots import ImplantStateStore, open_implant_store
from services.implant.rules import fold
from shared.clinical.facts import Fact, Lot
from tests.integration.pg import fresh_database

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImplantStateStore]:
    if request.param == "sqlite":
        s = open_implant_store(tmp_path, "implant")
        yield s
        s.close()
        return
    with fresh_database() as db:
        s = open_implant_store(tmp_path, "implant", db.url)
        yield s
        s.close()


def fact(n: int, kind: str, payload: dict[str, object], minute: int = 0) -> Fact:
    return Fact(f"e{n}", kind, T0 + timedelta(minutes=minute), "rn", payload, 0)


def test_facts_lots_alerts_and_the_watch_list_are_kept_once(store: ImplantStateStore) -> None:
    dose = fact(1, "sedation.drug_administered", {"drug": "midazolam", "dose": 2, "unit": "mg"})
    assert store.add("p1", dose) is True
    assert store.add("p1", dose) is False  # a redelivery
    more = fact(2, "sedation.drug_administered", {"drug": "midazolam", "dose": 1, "unit": "mg"}, 3)
    assert store.add("p1", more) is True
    assert store.add("p2", fact(3, "procedure.opened", {"operator_id": "a"})) is True
    facts = store.facts("p1")
    assert [f.event_id for f in facts] == ["e1", "e2"]
    assert facts[0].payload == {"drug": "midazolam", "dose": 2, "unit": "mg"}
    assert facts[1].occurred_at == T0 + timedelta(minutes=3)
    assert fold("p1", facts).drugs["midazolam|mg"].total == 3.0

    lot = Lot("LOT-1", T0, "e9", {"lot_id": "LOT-1", "cell_count": 2.0e7})
    assert store.add_lot(lot) is True
    assert store.add_lot(Lot("LOT-1", T0 + timedelta(days=1), "e10", {})) is False  # first wins
    assert store.lots() == {"LOT-1": lot}
    assert store.lots(["LOT-1", "LOT-404"]) == {"LOT-1": lot}
    assert store.lots([]) == {}

    store.mark_raised("p1", [("k1", "a1"), ("k2", "a2")], T0.isoformat())
    store.mark_raised("p1", [("k1", "a1")], T0.isoformat())
    assert store.raised("p1") == {"k1", "k2"}
    assert store.raised("p2") == set()

    store.watch("p1", True)
    store.watch("p1", True)
    store.watch("p2", True)
    store.watch("p2", False)
    assert store.watched() == ["p1"]

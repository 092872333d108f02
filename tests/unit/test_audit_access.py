"""Every query of the ledger is itself appended to the ledger: who, which filters, how many."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest

from services.audit.consumer import Appender
from services.audit.ledger import Ledger
from shared.bus import InMemoryBus
from shared.bus.topology import Q_AUDIT
from shared.events.record import AuditRecord

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]


async def test_a_query_is_recorded_with_its_officer_filters_and_row_count(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    appender: Appender,
    bus: InMemoryBus,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    first = record()
    ledger.append([first, record(), record(procedure_id=first.event["procedure_id"])])
    procedure_id = first.event["procedure_id"]
    r = await audit_client.get(
        "/v1/audit/entries",
        params={"procedure_id": procedure_id, "limit": 50},
        headers=bearer("compliance", "officer.ben"),
    )
    assert r.status_code == 200
    (message,) = bus.messages(Q_AUDIT)
    logged = orjson.loads(message.body)["event"]
    assert logged["type"] == "audit.queried"
    assert logged["actor"] == {"id": "officer.ben", "role": "compliance"}
    assert logged["payload"] == {
        "filters": {"procedure_id": procedure_id, "limit": "50"},
        "rows": len(r.json()["entries"]),
    }
    bus.drain()
    assert ledger.store.by_event_id(logged["event_id"]) is not None


async def test_a_query_that_cannot_be_recorded_is_not_answered(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    bus: InMemoryBus,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    ledger.append([record()])
    bus.connected_flag = False
    r = await audit_client.get("/v1/audit/entries", headers=bearer("compliance"))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert "entries" not in r.json()

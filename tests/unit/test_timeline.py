"""A procedure's timeline: one story in clinical order, corrections applied, nothing hidden."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.audit.ledger import Ledger
from shared.events.record import AuditRecord
from tests.events import PROCEDURE_ID

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


async def story(client: httpx.AsyncClient, bearer: Bearer) -> dict[str, Any]:
    r = await client.get(f"/v1/procedures/{PROCEDURE_ID}/timeline", headers=bearer("compliance"))
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_events_are_told_in_clinical_order_even_when_entered_late(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    vitals = record("sedation.vitals_recorded", occurred_at=at(20))
    dose = record("sedation.drug_administered", occurred_at=at(5))  # entered after the vitals
    ledger.append([vitals, dose])
    body = await story(audit_client, bearer)
    assert [e["event_id"] for e in body["events"]] == [dose.event_id, vitals.event_id]
    assert [e["seq"] for e in body["events"]] == [1, 0]
    assert body["checkpoint"]["tree_size"] == 2


async def test_clinical_order_is_by_instant_whatever_offset_each_device_writes(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    # 09:30+01:00 is 08:30 UTC: before 09:00Z, though it sorts after it as text.
    capture = record("sedation.vitals_recorded", occurred_at="2026-11-21T09:30:00+01:00")
    dose = record("sedation.drug_administered", occurred_at="2026-11-21T09:00:00Z")
    ledger.append([dose, capture])
    body = await story(audit_client, bearer)
    assert [e["event_id"] for e in body["events"]] == [capture.event_id, dose.event_id]


async def test_a_correction_shows_the_new_value_and_keeps_the_original_and_the_reason(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    dose = record("sedation.drug_administered", occurred_at=at(5))
    fix = record(
        "record.corrected",
        occurred_at=at(30),
        payload={
            "supersedes": dose.event_id,
            "reason": "2 mg was charted; 1 mg was given",
            "changes": {
                "payload.dose": {"old": 2, "new": 1},
                "occurred_at": {"old": at(5), "new": at(6)},
            },
        },
    )
    ledger.append([dose, fix])
    events = {e["event_id"]: e for e in (await story(audit_client, bearer))["events"]}
    shown = events[dose.event_id]
    assert shown["payload"]["dose"] == 1
    assert shown["occurred_at"] == at(6)
    assert shown["original"]["payload"]["dose"] == dose.event["payload"]["dose"]
    assert shown["original"]["occurred_at"] == dose.event["occurred_at"]
    (correction,) = shown["corrections"]
    assert correction["event_id"] == fix.event_id
    assert correction["reason"] == "2 mg was charted; 1 mg was given"
    assert events[fix.event_id]["corrects"] == dose.event_id


async def test_a_signature_is_void_once_what_it_signed_is_corrected_and_a_new_one_is_valid(
    audit_client: httpx.AsyncClient,
    ledger: Ledger,
    record: Callable[..., AuditRecord],
    bearer: Bearer,
) -> None:
    dose = record("sedation.drug_administered", occurred_at=at(5))
    signed = {"event_ids": [dose.event_id], "meaning": "reviewed", "signer_id": "dr-khan"}
    first_signature = record("record.signed", occurred_at=at(10), payload=signed)
    fix = record(
        "record.corrected",
        occurred_at=at(30),
        payload={
            "supersedes": dose.event_id,
            "reason": "wrong unit",
            "changes": {"dose": {"old": 2, "new": 1}},
        },
    )
    second_signature = record("record.signed", occurred_at=at(40), payload=signed)
    ledger.append([dose, first_signature])
    ledger.append([fix, second_signature])
    events = {e["event_id"]: e for e in (await story(audit_client, bearer))["events"]}
    old, new = events[dose.event_id]["signatures"]
    assert (old["event_id"], old["valid"]) == (first_signature.event_id, False)
    assert old["invalidated_by_corrections_of"] == [dose.event_id]
    assert (new["event_id"], new["valid"]) == (second_signature.event_id, True)


async def test_an_unknown_procedure_has_no_timeline(
    audit_client: httpx.AsyncClient, bearer: Bearer
) -> None:
    r = await audit_client.get(
        "/v1/procedures/5e1b0c55-0000-4000-8000-000000000000/timeline",
        headers=bearer("compliance"),
    )
    assert r.status_code == 404
    r = await audit_client.get(f"/v1/procedures/{PROCEDURE_ID}/timeline", headers=bearer("nurse"))
    assert r.status_code == 403

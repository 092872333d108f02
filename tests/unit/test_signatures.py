"""E-signatures: the signer types their signing password again, and the signature is bound to
the SHA-256 of exactly what was signed; a later correction voids it on the timeline."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from services.audit.consumer import Appender
from shared.auth import TokenStore
from shared.bus import InMemoryBus
from shared.bus.topology import EVENTS, Q_HARVEST
from shared.events import content_sha256, parse_event, signed_content_sha256
from shared.phase import PhaseService
from tests.events import make_event

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]
PASSWORD = "correct horse battery"
HEADER = "Proctrail-Signing-Password"


@pytest.fixture
def doctor(tokens: TokenStore) -> dict[str, str]:
    tokens.set_signing_password("dr-khan", PASSWORD)
    return {"Authorization": f"Bearer {tokens.create('physician', 'dr-khan')}"}


def event(procedure_id: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An event Dr Khan's tablet posts."""
    return make_event(event_type, payload, procedure_id=procedure_id,
                      actor={"id": "dr-khan", "role": "physician"},
                      source={"kind": "tablet", "id": "tablet-1"})  # fmt: skip


DOSE = {"drug": "fentanyl", "dose": 50, "unit": "mcg", "route": "IV", "given_by": "dr-khan"}


async def charted_dose(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, dict]:
    r = await client.post(
        "/v1/procedures",
        json={"phase": "harvest", "patient": {"id": "MRN-7"}, "room": "IR-1"},
        headers=headers,
    )
    procedure_id = r.json()["procedure_id"]
    dose = event(procedure_id, "sedation.drug_administered", DOSE)
    assert (await client.post("/v1/events", json=dose, headers=headers)).status_code == 202
    return procedure_id, dose


def signature(procedure_id: str, dose: dict[str, Any], **extra: Any) -> dict[str, Any]:
    payload = {"event_ids": [dose["event_id"]], "meaning": "reviewed", "signer_id": "dr-khan"}
    return event(procedure_id, "record.signed", {**payload, **extra})


def published(bus: InMemoryBus, event_id: str) -> dict[str, Any]:
    for exchange, _key, body in bus.published:
        message = orjson.loads(body)
        if exchange == EVENTS and message["event_id"] == event_id:
            return dict(message)
    raise AssertionError(f"{event_id} was not published")


async def test_a_signature_binds_the_sha256_of_exactly_the_events_signed(
    bedside_client: httpx.AsyncClient, bus: InMemoryBus, doctor: dict[str, str]
) -> None:
    procedure_id, dose = await charted_dose(bedside_client, doctor)
    signed = signature(procedure_id, dose)
    r = await bedside_client.post("/v1/events", json=signed, headers={**doctor, HEADER: PASSWORD})
    assert r.status_code == 202, r.text
    as_recorded = parse_event(dose).to_json()
    expected = signed_content_sha256({dose["event_id"]: content_sha256(as_recorded)})
    assert published(bus, signed["event_id"])["payload"]["signed_sha256"] == expected


@pytest.mark.parametrize("password", [None, "wrong password!"])
async def test_signing_without_the_signers_password_is_refused(
    bedside_client: httpx.AsyncClient, doctor: dict[str, str], password: str | None
) -> None:
    procedure_id, dose = await charted_dose(bedside_client, doctor)
    headers = doctor if password is None else {**doctor, HEADER: password}
    r = await bedside_client.post("/v1/events", json=signature(procedure_id, dose), headers=headers)
    assert r.status_code == 401
    assert r.json()["title"] == "Re-authentication Required"


async def test_nobody_signs_in_someone_elses_name(
    bedside_client: httpx.AsyncClient, doctor: dict[str, str], bearer: Bearer
) -> None:
    procedure_id, dose = await charted_dose(bedside_client, doctor)
    nurse = bearer("nurse", "rn-lee")
    r = await bedside_client.post(
        "/v1/events", json=signature(procedure_id, dose), headers={**nurse, HEADER: PASSWORD}
    )
    assert r.status_code == 403


async def test_a_signature_over_something_else_than_what_was_recorded_is_refused(
    bedside_client: httpx.AsyncClient, doctor: dict[str, str]
) -> None:
    procedure_id, dose = await charted_dose(bedside_client, doctor)
    stale = signature(procedure_id, dose, signed_sha256="0" * 64)
    r = await bedside_client.post("/v1/events", json=stale, headers={**doctor, HEADER: PASSWORD})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["payload.signed_sha256"]
    unknown = signature(procedure_id, {"event_id": str(uuid.uuid4())})
    r = await bedside_client.post("/v1/events", json=unknown, headers={**doctor, HEADER: PASSWORD})
    assert [e["field"] for e in r.json()["errors"]] == ["payload.event_ids"]


async def test_on_the_timeline_the_signature_is_intact_until_a_correction_voids_it(
    bedside_client: httpx.AsyncClient,
    audit_client: httpx.AsyncClient,
    bus: InMemoryBus,
    harvest: PhaseService,
    appender: Appender,
    doctor: dict[str, str],
    bearer: Bearer,
) -> None:
    bus.subscribe(Q_HARVEST, harvest.handle)
    procedure_id, dose = await charted_dose(bedside_client, doctor)
    signed = signature(procedure_id, dose)
    await bedside_client.post("/v1/events", json=signed, headers={**doctor, HEADER: PASSWORD})
    bus.drain()
    officer = bearer("compliance")

    async def signature_shown() -> dict[str, Any]:
        r = await audit_client.get(f"/v1/procedures/{procedure_id}/timeline", headers=officer)
        bus.drain()  # the officer's read is itself appended
        shown = next(e for e in r.json()["events"] if e["event_id"] == dose["event_id"])
        (sig,) = shown["signatures"]
        return dict(sig)

    before = await signature_shown()
    assert (before["binding"], before["valid"]) == ("intact", True)
    fix = event(
        procedure_id,
        "record.corrected",
        {
            "supersedes": dose["event_id"],
            "reason": "50 mcg charted, 25 mcg given",
            "changes": {"dose": {"old": 50, "new": 25}},
        },
    )
    assert (await bedside_client.post("/v1/events", json=fix, headers=doctor)).status_code == 202
    bus.drain()
    after = await signature_shown()
    assert (after["binding"], after["valid"]) == ("intact", False)
    assert after["invalidated_by_corrections_of"] == [dose["event_id"]]

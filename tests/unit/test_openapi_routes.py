"""Each service's OpenAPI document is its routes: GET /openapi.json lists every route the app
serves (the web app's files too) and nothing else, each operation with the schema of every
answer; and each operation, called as a tablet or a compliance officer would, answers as its
document says (status, media type and body schema, checked by `openapi_conformance`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jsonschema_rs
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route

from services.audit.api import AuditApi
from services.audit.api import create_app as create_audit_app
from services.audit.ledger import Ledger
from services.bedside.api import Bedside
from services.bedside.api import create_app as create_bedside_app
from shared.events import utcnow
from shared.events.record import AuditRecord
from shared.http import PROBLEM
from shared.openapi import document
from tests.dicom_factory import rf_cine
from tests.unit.openapi_conformance import Conforming, conforming

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]
NewEvent = Callable[..., dict[str, Any]]
Record = Callable[..., AuditRecord]


def served(app: Starlette) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves; HEAD comes with GET."""
    out: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):  # the web app's files, at <mount>/{path}
            out.add(("GET", route.path_format))
        else:
            assert isinstance(route, Route)
            out |= {(method, route.path_format) for method in (route.methods or set()) - {"HEAD"}}
    return out


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), path, op) for path, ops in doc["paths"].items() for m, op in ops.items()]


@pytest.fixture
def bedside_app(bedside: Bedside) -> Conforming:
    return conforming(create_bedside_app(bedside))


@pytest.fixture
def audit_app(audit_api: AuditApi) -> Conforming:
    return conforming(create_audit_app(audit_api))


@pytest.fixture(params=["bedside", "audit"])
def app(request: pytest.FixtureRequest) -> Conforming:
    found: Conforming = request.getfixturevalue(f"{request.param}_app")
    return found


async def client(app: Conforming) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proctrail") as c:
        yield c


async def served_document(app: Conforming, bearer: Bearer) -> dict[str, Any]:
    async for c in client(app):
        response = await c.get("/openapi.json", headers=bearer("admin"))
        assert response.status_code == 200
        found: dict[str, Any] = response.json()
        return found
    raise AssertionError("no client")


async def test_the_document_lists_every_route_the_app_serves_and_no_other(
    app: Conforming, bearer: Bearer
) -> None:
    doc = await served_document(app, bearer)

    assert served(app.app) - documented(doc) == set(), "served but not documented"
    assert documented(doc) - served(app.app) == set(), "documented but not served"
    assert ("GET", "/openapi.json") in documented(doc)
    assert ("GET", "/") in documented(doc)
    assert ("GET", "/app/{path}") in documented(doc)


async def test_every_answer_of_every_operation_has_its_schema(
    app: Conforming, bearer: Bearer
) -> None:
    doc = await served_document(app, bearer)
    schemas = doc["components"]["schemas"]
    for name, schema in schemas.items():
        assert jsonschema_rs.meta.is_valid(schema), f"{name} is not a JSON schema"

    for method, path, op in operations(doc):
        responses = op["responses"]
        assert any(status.startswith("2") for status in responses), f"{method} {path}"
        for status, response in responses.items():
            content = response["content"]
            assert content, f"{method} {path} {status} has no content"
            for media, body in content.items():
                assert body["schema"], f"{method} {path} {status} {media} has no schema"
                ref = body["schema"].get("$ref", "")
                assert ref.removeprefix("#/components/schemas/") in schemas or not ref
            if status.startswith(("4", "5")) and media != "application/json":
                assert list(content) == [PROBLEM], f"{method} {path} {status}"
                assert content[PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
        if op.get("security") != []:
            assert {"401", "403"} <= set(responses), f"{method} {path} needs a token"


def test_a_route_without_an_operation_is_refused() -> None:
    async def hidden(request: object) -> Response:
        return Response()

    with pytest.raises(TypeError, match="/hidden"):
        document("t", "d", [Route("/hidden", hidden)])


async def test_every_bedside_operation_answers_as_documented(
    bedside_app: Conforming,
    bedside: Bedside,
    bearer: Bearer,
    new_event: NewEvent,
    example: Callable[[str], dict[str, Any]],
) -> None:
    nurse = bearer("nurse", "rn-lee")
    async for c in client(bedside_app):
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/openapi.json", headers=nurse)).status_code == 200
        scheduled = await c.post("/v1/procedures", json=example("procedure.scheduled"),
                                 headers={**nurse, "Idempotency-Key": "k-1"})  # fmt: skip
        pid = scheduled.json()["procedure_id"]
        for kind in ("sedation.assessed", "sedation.drug_administered"):
            posted = await c.post("/v1/events", json=new_event(kind, procedure_id=pid),
                                  headers=nurse)  # fmt: skip
            assert posted.status_code == 202, posted.text
        capture = new_event("imaging.capture_unmatched", procedure_id=None)
        bedside.store.add_unmatched({**capture, "recorded_at": utcnow().isoformat()})
        bedside.store.add_alert(new_event("alert.raised", procedure_id=pid))
        reconcile = {**example("imaging.capture_reconciled"), "procedure_id": pid}
        posted = await c.post("/v1/events", headers=nurse, json=new_event(
            "imaging.capture_reconciled", reconcile, procedure_id=pid))  # fmt: skip
        assert posted.status_code == 202, posted.text
        assert (await c.post("/v1/sample-ids", headers=nurse)).status_code == 201
        for path in ("/v1/procedures", "/v1/catalogue", f"/v1/procedures/{pid}/state",
                     "/v1/captures/unmatched?settled=true", "/", "/app/app.js"):  # fmt: skip
            answer = await c.get(path, headers=nurse)
            assert answer.status_code == 200, f"{path}: {answer.text}"
        state = (await c.get(f"/v1/procedures/{pid}/state", headers=nurse)).json()
        assert state["drugs"], "the state checked has drug totals"
        assert state["alerts"], "and alerts"
        settled = await c.get("/v1/captures/unmatched?settled=true", headers=nurse)
        assert settled.json()["captures"][0]["reconciled"]["procedure_id"] == pid

    answered_ok = {(m, p) for m, p, status in bedside_app.answered if 200 <= status < 300}
    assert documented(bedside_app.document) - answered_ok == set()


async def test_every_audit_operation_answers_as_documented(
    audit_app: Conforming,
    ledger: Ledger,
    bearer: Bearer,
    record: Record,
    audit_api: AuditApi,
) -> None:
    assert audit_api.imaging_root is not None
    (audit_api.imaging_root / "objects").mkdir(parents=True)
    stored = rf_cine(audit_api.imaging_root / "objects" / "cine.dcm", frames=2, rows=64, cols=64)
    dose = record("sedation.drug_administered")
    pid = str(dose.event["procedure_id"])
    capture = record("imaging.capture_received")
    capture.event["payload"]["stored_as"] = str(stored.relative_to(audit_api.imaging_root))
    fix = record("record.corrected", payload={
        "supersedes": dose.event_id, "reason": "2 mg was charted; 1 mg was given",
        "changes": {"payload.dose": {"old": 2, "new": 1}}})  # fmt: skip
    signed = record("record.signed", payload={
        "event_ids": [dose.event_id], "meaning": "reviewed", "signer_id": "dr-khan"})  # fmt: skip
    ledger.append([dose, capture, signed, fix])
    officer = bearer("compliance")
    async for c in client(audit_app):
        assert (await c.get("/healthz")).status_code == 200
        for path in (
            "/openapi.json", "/v1/audit/entries", f"/v1/audit/events/{dose.event_id}",
            f"/v1/procedures/{pid}/timeline", "/v1/audit/checkpoint", "/v1/audit/public-key",
            "/v1/audit/public-keys", "/v1/audit/proofs/inclusion?seq=1",
            "/v1/audit/proofs/consistency?from=1&to=4",
            f"/v1/audit/captures/{capture.event_id}/thumbnail",
            *(f"/v1/audit/export?format={f}&procedure_id={pid}"
              for f in ("csv", "ndjson", "fhir", "pdf")),
            "/", "/app/compliance.js",
        ):  # fmt: skip
            answer = await c.get(path, headers=officer)
            assert answer.status_code == 200, f"{path}: {answer.text}"
        assert (await c.post("/v1/audit/verify", headers=officer)).status_code == 200
        timeline = (await c.get(f"/v1/procedures/{pid}/timeline", headers=officer)).json()
        corrected = next(e for e in timeline["events"] if e["event_id"] == dose.event_id)
        assert set(corrected) >= {"corrections", "signatures", "original"}

    answered_ok = {(m, p) for m, p, status in audit_app.answered if 200 <= status < 300}
    assert documented(audit_app.document) - answered_ok == set()


async def test_an_unknown_path_is_a_problem(app: Conforming) -> None:
    async for c in client(app):
        answer = await c.get(f"/app/{uuid.uuid4()}.js")
        assert answer.status_code == 404
        assert answer.headers["content-type"] == PROBLEM

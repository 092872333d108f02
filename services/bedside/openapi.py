"""bedside's OpenAPI document (GET /openapi.json): one `Operation` per route, which
`create_app` hands to the route that serves it; the document is built from the app's routes."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from services.bedside import responses as r
from services.bedside.signatures import SIGNING_PASSWORD_HEADER
from shared import openapi as shared_openapi
from shared.events.catalogue import ProcedureScheduled
from shared.events.envelope import Envelope
from shared.openapi import OpenApiDocument, Operation

TITLE = "proctrail bedside"
DESCRIPTION = (
    "Tablets schedule procedures and post clinical events. Its Prometheus metrics are served on"
    " their own address (PROCTRAIL_BEDSIDE_METRICS_ADDR), not here."
)
_INVALID = {422: "invalid: the errors name each field"}
_UNCONFIRMED = {503: "the broker did not confirm: retry the same request"}

HEALTHZ = Operation("liveness and the broker connection", r.Health, public=True)
OPENAPI = Operation("this document", OpenApiDocument)
SCHEDULE = Operation(
    "schedule a procedure", r.ProcedureCreated, 201, body=ProcedureScheduled,
    header={"Idempotency-Key": {"type": "string"}},
    errors={**_INVALID, **_UNCONFIRMED, 409: "Idempotency-Key used for another procedure"},
)  # fmt: skip
POST_EVENT = Operation(
    "post an event; 202 once the broker confirmed it", r.EventAccepted, 202, body=Envelope,
    header={SIGNING_PASSWORD_HEADER: {"type": "string"}},
    errors={**_INVALID, **_UNCONFIRMED, 409: "event_id used for another event, or capture"
            " already reconciled", 401: "no valid bearer token, or a signature without the"
            f" signer's signing password in {SIGNING_PASSWORD_HEADER}",
            403: "this role may not post this type, or sign for someone else"},
)  # fmt: skip
NEW_SAMPLE_ID = Operation("a new sample id for a label (nothing is recorded)", r.NewSampleId, 201)
LIST_PROCEDURES = Operation(
    "the procedures scheduled here, newest first", r.Procedures,
    query={"day": {"type": "string", "format": "date"}}, errors=_INVALID,
)  # fmt: skip
CATALOGUE = Operation("what this token may post, with each payload's schema", r.Catalogue)
PROCEDURE_STATE = Operation("running totals, vitals overdue, alerts", r.ProcedureState)
UNMATCHED_CAPTURES = Operation(
    "the reconciliation list", r.UnmatchedCaptures,
    query={"settled": {"type": "string", "enum": ["true", "false"]}}, errors=_INVALID,
)  # fmt: skip


def served(app: Starlette) -> dict[str, Any]:
    return shared_openapi.served(app, TITLE, DESCRIPTION)

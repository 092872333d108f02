"""bedside's OpenAPI document (GET /openapi.json)."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.events.catalogue import ProcedureScheduled
from shared.events.envelope import Envelope
from shared.openapi import Document


@cache
def document() -> dict[str, Any]:
    doc = Document("proctrail bedside", "Tablets schedule procedures and post clinical events.")
    event = doc.model(Envelope)
    invalid = {422: "invalid: the errors name each field"}
    doc.operation("GET", "/healthz", "liveness and the broker connection", public=True)
    doc.operation("GET", "/openapi.json", "this document")
    doc.operation("POST", "/v1/procedures", "schedule a procedure", 201,
                  body=doc.model(ProcedureScheduled),
                  answers={**invalid, 409: "Idempotency-Key used for another procedure",
                           503: "the broker did not confirm"})  # fmt: skip
    doc.operation("POST", "/v1/events", "post an event; 202 once the broker confirmed it", 202,
                  body=event,
                  answers={**invalid, 409: "event_id used for another event",
                           503: "not confirmed: retry with the same event_id"})  # fmt: skip
    doc.operation("POST", "/v1/sample-ids", "a new sample id for a label", 201)
    doc.operation("GET", "/v1/procedures", "the procedures scheduled here, newest first",
                  query={"day": {"type": "string"}}, answers=invalid)  # fmt: skip
    doc.operation("GET", "/v1/catalogue", "what this token may post, with each payload's schema")
    doc.operation("GET", "/v1/procedures/{procedure_id}/state",
                  "running totals, vitals overdue, alerts")  # fmt: skip
    doc.operation("GET", "/v1/captures/unmatched", "the reconciliation list",
                  query={"settled": {"type": "string", "enum": ["true", "false"]}},
                  answers=invalid)  # fmt: skip
    return doc.to_json()

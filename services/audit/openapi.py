"""audit's OpenAPI document (GET /openapi.json)."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.audit.export import FORMATS
from services.audit.store import FILTERS
from shared.events import CATALOGUE
from shared.openapi import Document

_TEXT = "text/plain"


@cache
def document() -> dict[str, Any]:
    doc = Document("proctrail audit", "The append-only ledger: query, prove, verify, export.")
    bad = {422: "a parameter is invalid: the error names it"}
    filters: dict[str, dict[str, Any]] = {name: {"type": "string"} for name in FILTERS}
    filters["type"] = {"type": "string", "enum": sorted(CATALOGUE)}
    times = {"since": {"type": "string", "format": "date-time"},
             "until": {"type": "string", "format": "date-time"}}  # fmt: skip
    doc.operation("GET", "/healthz", "liveness", public=True)
    doc.operation("GET", "/openapi.json", "this document")
    doc.operation("GET", "/v1/audit/entries", "ledger entries, filtered, in sequence order",
                  query={**filters, **times, "after_seq": {"type": "integer"},
                         "limit": {"type": "integer"}}, answers=bad)  # fmt: skip
    doc.operation("GET", "/v1/audit/events/{event_id}", "one entry",
                  answers={404: "no such event"})  # fmt: skip
    doc.operation("GET", "/v1/audit/export", "the filtered ledger as a file",
                  query={"format": {"type": "string", "enum": list(FORMATS)}, **filters, **times},
                  required=("format",), media="application/octet-stream",
                  answers={**bad, 413: "too many entries: narrow the filters"})  # fmt: skip
    doc.operation("GET", "/v1/audit/checkpoint", "the latest signed checkpoint", media=_TEXT,
                  answers={404: "nothing appended yet"})  # fmt: skip
    doc.operation("GET", "/v1/procedures/{procedure_id}/timeline", "one procedure's story",
                  answers={404: "no such procedure"})  # fmt: skip
    doc.operation("GET", "/v1/audit/public-key", "the current verifier key", media=_TEXT)
    doc.operation("GET", "/v1/audit/public-keys", "every verifier key, current first",
                  media=_TEXT)  # fmt: skip
    doc.operation("GET", "/v1/audit/proofs/inclusion", "an RFC 9162 inclusion proof",
                  query={"seq": {"type": "integer"}, "tree_size": {"type": "integer"}},
                  required=("seq",), answers=bad)  # fmt: skip
    doc.operation("GET", "/v1/audit/proofs/consistency", "an RFC 9162 consistency proof",
                  query={"from": {"type": "integer"}, "to": {"type": "integer"}},
                  required=("from",), answers=bad)  # fmt: skip
    doc.operation("GET", "/v1/audit/captures/{event_id}/thumbnail", "a capture's first frame",
                  media="image/png", answers={404: "no stored capture"})  # fmt: skip
    doc.operation("POST", "/v1/audit/verify", "recompute the ledger now")
    return doc.to_json()

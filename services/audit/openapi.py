"""audit's OpenAPI document (GET /openapi.json): one `Operation` per route, which `create_app`
hands to the route that serves it; the document is built from the app's routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette

from services.audit import responses as r
from services.audit.export import FORMATS, MEDIA_TYPES
from services.audit.store import FILTERS
from shared import openapi as shared_openapi
from shared.events import CATALOGUE
from shared.openapi import OpenApiDocument, Operation, Schema, text

TITLE = "proctrail audit"
DESCRIPTION = (
    "The append-only ledger: query, prove, verify, export. Every query and export is itself"
    " appended (audit.queried, audit.exported) before it is answered. Its Prometheus metrics"
    " are served on their own address (PROCTRAIL_AUDIT_METRICS_ADDR), not here."
)
_BAD = {422: "a parameter is invalid: the error names it"}
_UNRECORDED = {503: "this access could not be recorded in the ledger, so it is not answered"}
_EMPTY = {404: "the ledger is empty"}
_SEQ = {"type": "integer", "minimum": 0, "maximum": 2**62}

_FILTERS: dict[str, Schema] = {name: {"type": "string"} for name in FILTERS}
_FILTERS["type"] = {"type": "string", "enum": sorted(CATALOGUE)}
_TIMES: dict[str, Schema] = {
    "since": {"type": "string", "format": "date-time"},
    "until": {"type": "string", "format": "date-time"},
    "after_seq": {"type": "integer", "minimum": -1, "maximum": 2**62},
}
_NOTE = "the latest signed checkpoint (C2SP signed note)"
_KEYS = "verifier keys (C2SP signed-note form), one a line"

_EXPORTED: dict[str, str | type[BaseModel]] = {
    "csv": "the checkpoint in leading # lines, then a header row and one entry a row",
    "ndjson": "the checkpoint first, then one entry a line with its inclusion proof",
    "fhir": r.FhirBundle,
    "pdf": "one procedure's timeline, the checkpoint on its last page",
}


def _export_bodies() -> dict[str, Schema | type[BaseModel]]:
    """Each format's media type (as served, without parameters) and its body."""
    out: dict[str, Schema | type[BaseModel]] = {}
    for fmt in FORMATS:
        media = MEDIA_TYPES[fmt].split(";")[0]
        what = _EXPORTED[fmt]
        out[media] = text(media, what) if isinstance(what, str) else what
    return out


HEALTHZ = Operation("liveness", r.Health, public=True)
OPENAPI = Operation("this document", OpenApiDocument)
ENTRIES = Operation(
    "ledger entries, filtered, in sequence order", r.Entries,
    query={**_FILTERS, **_TIMES, "limit": {"type": "integer", "minimum": 1, "maximum": 1000}},
    errors={**_BAD, **_UNRECORDED},
)  # fmt: skip
ENTRY = Operation("one entry", r.LedgerEntry,
                  errors={404: "no entry for this event", **_UNRECORDED})  # fmt: skip
EXPORT = Operation(
    "the filtered ledger as a file, cut against the latest checkpoint", _export_bodies(),
    query={"format": {"type": "string", "enum": list(FORMATS)}, **_FILTERS, **_TIMES},
    required=("format",),
    errors={**_BAD, **_EMPTY, **_UNRECORDED},
    response_headers={"Proctrail-Checkpoint": "<tree_size>:<base64 root> it was cut against",
                      "Content-Disposition": "attachment, with a file name"},
)  # fmt: skip
CHECKPOINT = Operation(_NOTE, {"text/plain": text("text/plain", _NOTE)}, errors=_EMPTY)
TIMELINE = Operation("one procedure's story, corrections applied, originals kept", r.Timeline,
                     errors={404: "no events for this procedure", **_UNRECORDED})  # fmt: skip
PUBLIC_KEY = Operation("the current verifier key", {"text/plain": text("text/plain", _KEYS)})
PUBLIC_KEYS = Operation("every verifier key, current first",
                        {"text/plain": text("text/plain", _KEYS)})  # fmt: skip
INCLUSION = Operation(
    "an RFC 9162 inclusion proof", r.InclusionProof,
    query={"seq": _SEQ, "tree_size": _SEQ}, required=("seq",), errors=_BAD,
)  # fmt: skip
CONSISTENCY = Operation(
    "an RFC 9162 consistency proof", r.ConsistencyProof,
    query={"from": {**_SEQ, "minimum": 1}, "to": _SEQ}, required=("from", "to"), errors=_BAD,
)  # fmt: skip
THUMBNAIL = Operation(
    "a capture's first frame, from the stored object", {"image/png": text("image/png", "PNG")},
    errors={404: "no stored capture for this event", **_UNRECORDED},
    response_headers={"Cache-Control": "private"},
)  # fmt: skip
VERIFY = Operation(
    "recompute the ledger now", r.Verification, also={409: "the ledger is not intact"},
    errors=_UNRECORDED,
)  # fmt: skip


def served(app: Starlette) -> dict[str, Any]:
    return shared_openapi.served(app, TITLE, DESCRIPTION)

"""The audit query API, for compliance and admin tokens only."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.audit.ledger import FILTERS, LedgerReader
from shared.auth import TokenStore
from shared.events import CATALOGUE, FieldError, Role
from shared.http import EXCEPTION_HANDLERS, Problem, authenticate, json_response

READERS: tuple[Role, ...] = ("compliance", "admin")
MAX_LIMIT = 1000


def _bad(field: str, message: str) -> Problem:
    return Problem(
        422, "Unprocessable Content", f"invalid: {field}", errors=[FieldError(field, message)]
    )


def _time(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(name, "must be an RFC 3339 time with offset") from None
    if parsed.tzinfo is None:
        raise _bad(name, "must carry a UTC offset")
    return parsed.astimezone(UTC).isoformat()


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, "must be an integer") from None
    if not low <= number <= high:
        raise _bad(name, f"must be between {low} and {high}")
    return number


class AuditApi:
    def __init__(self, reader: LedgerReader, tokens: TokenStore) -> None:
        self.reader = reader
        self.tokens = tokens

    async def entries(self, request: Request) -> Response:
        authenticate(request, self.tokens, READERS)
        filters = {k: v for k in FILTERS if (v := request.query_params.get(k))}
        if "type" in filters and filters["type"] not in CATALOGUE:
            raise _bad("type", f"unknown event type {filters['type']!r}")
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        after_seq = _int(request, "after_seq", -1, -1, 2**62)
        rows = self.reader.entries(
            filters, _time(request, "since"), _time(request, "until"), after_seq, limit
        )
        next_after = rows[-1].seq if len(rows) == limit else None
        return json_response({"entries": [r.to_json() for r in rows], "next_after_seq": next_after})

    async def entry(self, request: Request) -> Response:
        authenticate(request, self.tokens, READERS)
        event_id = request.path_params["event_id"]
        found = self.reader.by_event_id(event_id)
        if found is None:
            raise Problem(404, "Not Found", f"no ledger entry for event {event_id}")
        return json_response(found.to_json())

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})


def create_app(api: AuditApi) -> Starlette:
    return Starlette(
        routes=[
            Route("/healthz", api.healthz, methods=["GET"]),
            Route("/v1/audit/entries", api.entries, methods=["GET"]),
            Route("/v1/audit/events/{event_id}", api.entry, methods=["GET"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )

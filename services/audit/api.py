"""The audit API: queries and proofs for compliance and admin tokens; checkpoints for anyone
holding a token (an outside verifier needs only these endpoints)."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.audit import export, merkle, openapi, thumbnails, timeline
from services.audit.access import access_record
from services.audit.checkpoint import Keyring
from services.audit.store import FILTERS, Query, Store
from services.audit.verify import verify
from shared.auth import Principal, TokenStore
from shared.bus import Bus, BusError
from shared.bus.topology import AUDIT
from shared.events import CATALOGUE, ROLES, FieldError, Role
from shared.http import EXCEPTION_HANDLERS, Problem, authenticate, json_response, web_app_routes
from shared.openapi import DocumentedRoute

READERS: tuple[Role, ...] = ("compliance", "admin")
STATIC = Path(__file__).parent / "static"


QUERY_PARAMS = (*FILTERS, "since", "until", "after_seq", "limit", "format")
TIMELINE_MAX = 100_000
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


def _int(request: Request, name: str, default: int | None, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        if default is None:
            raise _bad(name, "is required")
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, "must be an integer") from None
    if not low <= number <= high:
        raise _bad(name, f"must be between {low} and {high}")
    return number


def _query(request: Request, limit: int) -> Query:
    filters = {k: v for k in FILTERS if (v := request.query_params.get(k))}
    if "type" in filters and filters["type"] not in CATALOGUE:
        raise _bad("type", f"unknown event type {filters['type']!r}")
    return Query(
        filters,
        _time(request, "since"),
        _time(request, "until"),
        _int(request, "after_seq", -1, -1, 2**62),
        limit,
    )


def _asked(request: Request) -> dict[str, str]:
    """The filters as the officer gave them, for the access record."""
    return {k: v for k, v in request.query_params.items() if k in QUERY_PARAMS}


def _b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode() for v in values]


class AuditApi:
    def __init__(
        self,
        store: Store,
        tokens: TokenStore,
        verifier: Keyring,
        bus: Bus,
        confirm_timeout_s: float = 5.0,
        imaging_root: Path | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.verifier = verifier
        self.bus = bus
        self.confirm_timeout_s = confirm_timeout_s
        self.imaging_root = imaging_root  # where the listener keeps objects (read only)

    async def record_access(
        self,
        principal: Principal,
        event_type: str,
        filters: dict[str, Any],
        rows: int,
        fmt: str | None = None,
    ) -> None:
        """Every query and export is itself appended; if that cannot be recorded, no answer."""
        record = access_record(principal.user, principal.role, event_type, filters, rows, fmt)
        try:
            body = record.to_bytes()
            future = self.bus.publish(AUDIT, event_type, body, message_id=record.event_id)
            await asyncio.wait_for(asyncio.wrap_future(future), self.confirm_timeout_s)
        except (BusError, TimeoutError):
            raise Problem(
                503,
                "Service Unavailable",
                "this access could not be recorded in the ledger, so it is not answered",
                headers={"Retry-After": "5"},
            ) from None

    async def entries(self, request: Request) -> Response:
        principal = authenticate(request, self.tokens, READERS)
        query = _query(request, limit=_int(request, "limit", 100, 1, MAX_LIMIT))
        rows = await run_in_threadpool(self.store.entries, query)
        await self.record_access(principal, "audit.queried", _asked(request), len(rows))
        next_after = rows[-1].seq if len(rows) == query.limit else None
        return json_response({"entries": [r.to_json() for r in rows], "next_after_seq": next_after})

    async def export(self, request: Request) -> Response:
        principal = authenticate(request, self.tokens, READERS)
        fmt = request.query_params.get("format", "")
        if fmt not in export.FORMATS:
            raise _bad("format", f"must be one of {', '.join(export.FORMATS)}")
        query = _query(request, limit=export.EXPORT_MAX)
        procedure_id = query.filters.get("procedure_id")
        if fmt == "pdf" and procedure_id is None:
            raise _bad("procedure_id", "a PDF tells one procedure's timeline: name it")
        try:
            c = await run_in_threadpool(export.cut, self.store, query, self.verifier.vkey())
        except export.ExportTooLarge as exc:
            raise _bad("limit", str(exc)) from None
        if c is None:
            raise Problem(404, "Not Found", "the ledger is empty: nothing to export")
        await self.record_access(principal, "audit.exported", _asked(request), len(c.entries), fmt)
        size = c.checkpoint.tree_size
        headers = {
            "Proctrail-Checkpoint": c.header,
            "Content-Disposition": (
                f'attachment; filename="proctrail-{size}.{export.EXTENSIONS[fmt]}"'
            ),
        }
        body = export.render(fmt, c, self.store, procedure_id)
        return StreamingResponse(
            iterate_in_threadpool(body), media_type=export.MEDIA_TYPES[fmt], headers=headers
        )

    async def entry(self, request: Request) -> Response:
        principal = authenticate(request, self.tokens, READERS)
        event_id = request.path_params["event_id"]
        found = await run_in_threadpool(self.store.by_event_id, event_id)
        await self.record_access(
            principal, "audit.queried", {"event_id": event_id}, 0 if found is None else 1
        )
        if found is None:
            raise Problem(404, "Not Found", f"no ledger entry for event {event_id}")
        return json_response(found.to_json())

    async def thumbnail(self, request: Request) -> Response:
        """A capture's first frame as PNG, rendered from the stored object (audited)."""
        principal = authenticate(request, self.tokens, READERS)
        event_id = request.path_params["event_id"]
        found = await run_in_threadpool(self.store.by_event_id, event_id)
        await self.record_access(principal, "audit.queried", {"thumbnail": event_id},
                                 0 if found is None else 1)  # fmt: skip
        event = found.content()["event"] if found else {}
        stored_as = event.get("payload", {}).get("stored_as")
        if event.get("type") != "imaging.capture_received" or not stored_as:
            raise Problem(404, "Not Found", f"no stored capture for event {event_id}")
        if self.imaging_root is None:
            raise Problem(404, "Not Found", "this audit service cannot read the imaging store")
        try:
            path = thumbnails.stored_path(self.imaging_root, str(stored_as))
            png = await run_in_threadpool(thumbnails.render, path)
        except thumbnails.NoThumbnail as exc:
            raise Problem(404, "Not Found", str(exc)) from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "private"})

    async def verify_now(self, request: Request) -> Response:
        """Recompute the ledger (the compliance app's "Verify" button); audited."""
        principal = authenticate(request, self.tokens, READERS)
        report = await run_in_threadpool(verify, self.store, self.verifier)
        await self.record_access(principal, "audit.queried", {"verify": True}, report.size)
        return json_response({
            "intact": report.intact, "size": report.size,
            "root": base64.b64encode(report.root).decode() if report.root else None,
            "checkpoints_compared": report.checkpoints, "signatures": report.signatures,
            "problem": report.problem, "first_bad_seq": report.first_bad_seq,
        }, status=200 if report.intact else 409)  # fmt: skip

    async def timeline(self, request: Request) -> Response:
        principal = authenticate(request, self.tokens, READERS)
        procedure_id = request.path_params["procedure_id"]
        latest = await run_in_threadpool(self.store.latest_checkpoint)
        cut = latest.tree_size if latest else 0
        story = Query({"procedure_id": procedure_id}, limit=TIMELINE_MAX)
        entries = [e for e in await run_in_threadpool(self.store.entries, story) if e.seq < cut]
        await self.record_access(
            principal, "audit.queried", {"timeline": procedure_id}, len(entries)
        )
        if not entries:
            raise Problem(404, "Not Found", f"no events for procedure {procedure_id}")
        assert latest is not None
        return json_response(
            {
                "procedure_id": procedure_id,
                "checkpoint": {
                    "tree_size": latest.tree_size,
                    "root": base64.b64encode(latest.root).decode(),
                    "note": latest.note,
                },
                "events": timeline.build(entries),
            }
        )

    async def checkpoint(self, request: Request) -> Response:
        authenticate(request, self.tokens, ROLES)
        latest = self.store.latest_checkpoint()
        if latest is None:
            raise Problem(404, "Not Found", "the ledger is empty: no checkpoint yet")
        return Response(latest.note, media_type="text/plain; charset=utf-8")

    async def public_key(self, request: Request) -> Response:
        authenticate(request, self.tokens, ROLES)
        return Response(self.verifier.vkey() + "\n", media_type="text/plain; charset=utf-8")

    async def public_keys(self, request: Request) -> Response:
        """Every key the log has signed with, current first: checkpoints from before a key
        rotation verify with the retired ones."""
        authenticate(request, self.tokens, ROLES)
        return Response("\n".join(self.verifier.vkeys()) + "\n",
                        media_type="text/plain; charset=utf-8")  # fmt: skip

    def _tree_size(self, request: Request, name: str) -> int:
        latest = self.store.latest_checkpoint()
        current = latest.tree_size if latest else 0
        size = _int(request, name, current if name == "tree_size" else None, 0, 2**62)
        if size > current:
            raise _bad(name, f"the ledger holds {current} entries")
        return size

    async def inclusion(self, request: Request) -> Response:
        authenticate(request, self.tokens, READERS)
        size = self._tree_size(request, "tree_size")
        seq = _int(request, "seq", None, 0, 2**62)
        if seq >= size:
            raise _bad("seq", f"must be below tree_size {size}")
        proof = await run_in_threadpool(merkle.inclusion_proof, seq, size, self.store.node)
        return json_response({"leaf_index": seq, "tree_size": size, "hashes": _b64(proof)})

    async def consistency(self, request: Request) -> Response:
        authenticate(request, self.tokens, READERS)
        new = self._tree_size(request, "to")
        old = _int(request, "from", None, 1, 2**62)
        if old > new:
            raise _bad("from", f"must not exceed to ({new})")
        proof = await run_in_threadpool(merkle.consistency_proof, old, new, self.store.node)
        return json_response({"from": old, "to": new, "hashes": _b64(proof)})

    async def openapi(self, request: Request) -> Response:
        authenticate(request, self.tokens, ROLES)
        return json_response(openapi.served(request.app))

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})


def create_app(api: AuditApi) -> Starlette:
    """Every route carries its operation (services/audit/openapi.py): GET /openapi.json is
    built from these routes."""
    doc = openapi
    return Starlette(
        routes=[
            DocumentedRoute("GET", "/healthz", api.healthz, doc.HEALTHZ),
            DocumentedRoute("GET", "/openapi.json", api.openapi, doc.OPENAPI),
            DocumentedRoute("GET", "/v1/audit/entries", api.entries, doc.ENTRIES),
            DocumentedRoute("GET", "/v1/audit/events/{event_id}", api.entry, doc.ENTRY),
            DocumentedRoute("GET", "/v1/audit/export", api.export, doc.EXPORT),
            DocumentedRoute("GET", "/v1/audit/checkpoint", api.checkpoint, doc.CHECKPOINT),
            DocumentedRoute("GET", "/v1/procedures/{procedure_id}/timeline", api.timeline,
                            doc.TIMELINE),
            DocumentedRoute("GET", "/v1/audit/public-key", api.public_key, doc.PUBLIC_KEY),
            DocumentedRoute("GET", "/v1/audit/public-keys", api.public_keys, doc.PUBLIC_KEYS),
            DocumentedRoute("GET", "/v1/audit/proofs/inclusion", api.inclusion, doc.INCLUSION),
            DocumentedRoute("GET", "/v1/audit/proofs/consistency", api.consistency,
                            doc.CONSISTENCY),
            DocumentedRoute("GET", "/v1/audit/captures/{event_id}/thumbnail", api.thumbnail,
                            doc.THUMBNAIL),
            DocumentedRoute("POST", "/v1/audit/verify", api.verify_now, doc.VERIFY),
            *web_app_routes(STATIC),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )  # fmt: skip

"""bedside's HTTP API: tablets schedule procedures and post events; 202 only once confirmed."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import structlog
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from services.bedside import openapi
from services.bedside.reconciliation import (
    RECONCILED,
    check_reconciliation,
    reconciliation_list,
    remember_reconciliation,
)
from services.bedside.signatures import bind_signature
from services.bedside.state import procedure_state, remember_fact
from services.bedside.store import BedsideStore, Procedure
from services.harvest.sample_ids import scheme as sample_id_scheme
from shared.auth import Principal, TokenStore
from shared.bus import (
    BrokerUnavailable,
    Bus,
    BusError,
    routing_key,
)
from shared.bus.topology import EVENTS
from shared.clinical.store import ClinicalStore
from shared.config import Settings
from shared.events import (
    CATALOGUE,
    LEVELS_IN_ORDER,
    ROLES,
    Actor,
    EnteredBy,
    Envelope,
    FieldError,
    InvalidEvent,
    Role,
    Source,
    content_sha256,
    parse_event,
    rfc3339,
    utcnow,
)
from shared.events.catalogue import ProcedureScheduled
from shared.events.envelope import field_errors
from shared.http import (
    EXCEPTION_HANDLERS,
    Problem,
    authenticate,
    invalid,
    json_response,
    read_json,
    web_app_routes,
)
from shared.metrics import EVENTS_IN
from shared.openapi import DocumentedRoute

log = structlog.get_logger("bedside")

SCHEDULERS: tuple[Role, ...] = ("nurse", "physician", "admin")
POSTERS: tuple[Role, ...] = ("nurse", "physician", "lab", "admin")
FUTURE_TOLERANCE = timedelta(minutes=5)
RETRY_AFTER_S = "5"


class Bedside:
    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        tokens: TokenStore,
        store: BedsideStore,
        facts: ClinicalStore | None = None,
    ):
        self.settings = settings
        self.bus = bus
        self.tokens = tokens
        self.store = store
        self.sample_ids = sample_id_scheme(settings.sample_id_scheme)
        # What this bedside accepted, per procedure: the tablets' running totals and banners.
        self.facts = facts or ClinicalStore(settings.service_dir("bedside") / "clinical.sqlite3")

    async def publish(self, envelope: Envelope, phase: str) -> None:
        """Publish and wait for the broker's confirm, or answer 503 with Retry-After."""
        unavailable = {"Retry-After": RETRY_AFTER_S}
        try:
            future = self.bus.publish(
                EVENTS,
                routing_key(phase, envelope.type),
                envelope.to_bytes(),
                message_id=str(envelope.event_id),
                headers={"procedure_id": str(envelope.procedure_id or "")},
            )
            await asyncio.wait_for(asyncio.wrap_future(future), self.settings.publish_timeout_s)
        except (BrokerUnavailable, TimeoutError) as exc:
            log.warning("broker unavailable", error=str(exc) or "no confirm in time")
            raise Problem(
                503,
                "Service Unavailable",
                "the message broker did not confirm the event; retry with the same event_id",
                headers=unavailable,
            ) from None
        except BusError as exc:
            log.error("broker refused the event", error=str(exc))
            raise Problem(503, "Service Unavailable", str(exc), headers=unavailable) from None

    async def schedule(self, request: Request) -> Response:
        principal = authenticate(request, self.tokens, SCHEDULERS)
        try:
            payload = ProcedureScheduled.model_validate(await read_json(request))
        except ValidationError as exc:
            raise invalid(field_errors(exc)) from None
        digest = _sha256(payload.model_dump(mode="json", exclude_unset=True))
        key = request.headers.get("idempotency-key") or None  # an empty key is no key
        known = self.store.procedure_by_key(key) if key else None
        if known is None:
            known = self._new_procedure(payload, digest, principal, key)
        elif known.request_digest != digest:
            raise Problem(
                409,
                "Conflict",
                "this Idempotency-Key was already used for another procedure",
                errors=[FieldError("Idempotency-Key", "already used for another procedure")],
            )
        structlog.contextvars.bind_contextvars(
            procedure_id=known.procedure_id, event_id=known.scheduled_event_id
        )
        if not known.confirmed:
            envelope = Envelope.model_validate(orjson.loads(known.scheduled_event))
            await self.publish(envelope, known.phase)
            self.store.confirm_procedure(known.procedure_id)
            log.info("procedure scheduled", phase=known.phase)
        return json_response({"procedure_id": known.procedure_id}, 201)

    def _new_procedure(
        self, payload: ProcedureScheduled, digest: str, principal: Principal, key: str | None
    ) -> Procedure:
        now = utcnow()
        envelope = Envelope.model_validate(
            {
                "event_id": uuid.uuid4(),
                "type": "procedure.scheduled",
                "schema": 1,
                "procedure_id": uuid.uuid4(),
                "occurred_at": now,
                "recorded_at": now,
                "actor": Actor(id=principal.user, role=principal.role),
                "source": Source(kind="service", id="bedside"),
                "payload": payload.model_dump(mode="json", exclude_unset=True),
                "entered_by": EnteredBy(user=principal.user, role=principal.role),
            }
        )
        proc = Procedure(
            str(envelope.procedure_id),
            payload.phase,
            str(envelope.event_id),
            envelope.to_bytes(),
            digest,
            confirmed=False,
        )
        self.store.add_procedure(proc, key)
        return proc

    async def post_event(self, request: Request) -> Response:
        principal = authenticate(request, self.tokens, POSTERS)
        raw = await read_json(request)
        try:
            envelope = parse_event(raw)
        except InvalidEvent as exc:
            raise invalid(exc.errors) from None
        structlog.contextvars.bind_contextvars(
            event_id=str(envelope.event_id), procedure_id=str(envelope.procedure_id or "")
        )
        if envelope.type in SAMPLE_ID_TYPES:
            problem = self.sample_ids.problem(str(envelope.payload.get("sample_id", "")))
            if problem is not None:
                raise invalid([FieldError("payload.sample_id", f"sample id {problem}")])
        spec = envelope.spec
        if not spec.posted_by:
            raise invalid([FieldError("type", f"{envelope.type} is recorded by the system itself")])
        if principal.role not in spec.posted_by:
            allowed = ", ".join(sorted(spec.posted_by))
            raise Problem(403, "Forbidden", f"{envelope.type} may be posted by: {allowed}")
        phase = self._phase_of(envelope)
        digest = content_sha256(envelope.to_json())
        seen = self.store.accepted(str(envelope.event_id))
        if seen is not None and seen.digest != digest:
            raise Problem(
                409,
                "Conflict",
                "this event_id was already used for a different event",
                errors=[FieldError("event_id", "already used for a different event")],
            )
        if seen is None and envelope.type == RECONCILED:
            check_reconciliation(envelope, self.store)
        recorded_at = seen.recorded_at if seen else utcnow()
        if envelope.occurred_at - recorded_at > FUTURE_TOLERANCE:
            raise invalid([FieldError("occurred_at", "is in the future")])
        if seen is None:
            self.store.accept(str(envelope.event_id), digest, recorded_at)
        if envelope.type == "record.signed":
            envelope = bind_signature(envelope, principal, request, self.tokens, self.store)
        late = recorded_at - envelope.occurred_at > timedelta(seconds=self.settings.late_after_s)
        if seen is None or not seen.confirmed:
            stamped = envelope.model_copy(
                update={
                    "recorded_at": recorded_at,
                    "late": late,
                    "entered_by": EnteredBy(user=principal.user, role=principal.role),
                }
            )
            await self.publish(stamped, phase)
            self.store.confirm_event(str(envelope.event_id))
            log.info("event accepted", type=envelope.type, phase=phase, late=late)
        else:
            log.info("event already accepted", type=envelope.type)
        EVENTS_IN.labels("http", "accepted" if seen is None else "repeated").inc()
        # On a re-send too (kept once per event_id): a crash after the confirm must not leave
        # the tablet's totals without this event.
        self._remember(envelope, principal, recorded_at)
        body = {"event_id": str(envelope.event_id), "recorded_at": rfc3339(recorded_at),
                "late": late}  # fmt: skip
        return json_response(body, 202)

    async def unmatched_captures(self, request: Request) -> Response:
        """The reconciliation list (`settled=true`: those already reconciled)."""
        authenticate(request, self.tokens, POSTERS)
        settled = request.query_params.get("settled", "false")
        return json_response(reconciliation_list(settled, self.store))

    def _remember(self, envelope: Envelope, principal: Principal, at: datetime) -> None:
        if envelope.type == RECONCILED:
            remember_reconciliation(envelope, principal, at, self.store)
        remember_fact(envelope, self.facts)

    async def procedure_state(self, request: Request) -> Response:
        """What the tablet shows beside its buttons: running totals, whether vitals are
        overdue, and the alerts the harvest and implant services raised for the procedure."""
        authenticate(request, self.tokens, POSTERS)
        procedure_id = request.path_params["procedure_id"]
        alerts = self.store.alerts(procedure_id)
        return json_response(procedure_state(procedure_id, self.facts, self.settings, alerts))

    def _phase_of(self, envelope: Envelope) -> str:
        if envelope.procedure_id is None:
            return "lab"
        proc = self.store.procedure(str(envelope.procedure_id))
        if proc is None or not proc.confirmed:
            raise invalid([FieldError("procedure_id", "no such procedure was scheduled here")])
        return proc.phase

    async def new_sample_id(self, request: Request) -> Response:
        """A fresh sample id of the configured scheme, for a label (nothing is recorded)."""
        authenticate(request, self.tokens, POSTERS)
        return json_response({"sample_id": self.sample_ids.new(),
                              "scheme": self.sample_ids.name}, status=201)  # fmt: skip

    async def list_procedures(self, request: Request) -> Response:
        """The procedures bedside scheduled, newest first; `day=YYYY-MM-DD` keeps those planned
        (or, unplanned, scheduled) on that day."""
        authenticate(request, self.tokens, POSTERS)
        day = request.query_params.get("day")
        if day is not None and not _DAY.fullmatch(day):
            raise invalid([FieldError("day", "is not a date such as 2026-11-21")])
        out = []
        for proc in self.store.procedures():
            event = orjson.loads(proc.scheduled_event)
            payload = event["payload"]
            when = str(payload.get("scheduled_start") or event["occurred_at"])
            if day is not None and not when.startswith(day):
                continue
            out.append({
                "procedure_id": proc.procedure_id, "phase": proc.phase,
                "patient": payload["patient"], "room": payload["room"],
                "accession_number": payload.get("accession_number"),
                "scheduled_start": payload.get("scheduled_start"),
                "scheduled_at": event["occurred_at"],
                "planned_targets": payload.get("planned_targets"),
            })  # fmt: skip
        return json_response({"procedures": out})

    async def catalogue(self, request: Request) -> Response:
        """What a tablet can post: each type's payload schema, who may post it, and the level
        vocabulary (in anatomical order) for pickers."""
        principal = authenticate(request, self.tokens, POSTERS)
        types = {
            name: {
                "schema": spec.payload.model_json_schema(),
                "needs_procedure": spec.needs_procedure,
                "yours": principal.role in spec.posted_by,
            }
            for name, spec in CATALOGUE.items()
            if spec.posted_by
        }
        return json_response({"types": types, "levels": list(LEVELS_IN_ORDER),
                              "role": principal.role, "user": principal.user,
                              "late_after_s": self.settings.late_after_s})  # fmt: skip

    async def openapi(self, request: Request) -> Response:
        authenticate(request, self.tokens, ROLES)
        return json_response(openapi.served(request.app))

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok", "broker_connected": self.bus.connected})


def _sha256(data: object) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


STATIC = Path(__file__).parent / "static"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


# Events whose payload names a harvest sample, checked against the sample id scheme.
SAMPLE_ID_TYPES = frozenset({"harvest.sample_labelled", "product.lot_released"})


def create_app(bedside: Bedside) -> Starlette:
    """Every route carries its operation (services/bedside/openapi.py): GET /openapi.json is
    built from these routes."""
    doc = openapi
    return Starlette(
        routes=[
            DocumentedRoute("GET", "/healthz", bedside.healthz, doc.HEALTHZ),
            DocumentedRoute("GET", "/openapi.json", bedside.openapi, doc.OPENAPI),
            DocumentedRoute("POST", "/v1/procedures", bedside.schedule, doc.SCHEDULE),
            DocumentedRoute("POST", "/v1/events", bedside.post_event, doc.POST_EVENT),
            DocumentedRoute("POST", "/v1/sample-ids", bedside.new_sample_id, doc.NEW_SAMPLE_ID),
            DocumentedRoute("GET", "/v1/procedures", bedside.list_procedures, doc.LIST_PROCEDURES),
            DocumentedRoute("GET", "/v1/catalogue", bedside.catalogue, doc.CATALOGUE),
            DocumentedRoute("GET", "/v1/procedures/{procedure_id}/state", bedside.procedure_state,
                            doc.PROCEDURE_STATE),
            DocumentedRoute("GET", "/v1/captures/unmatched", bedside.unmatched_captures,
                            doc.UNMATCHED_CAPTURES),
            *web_app_routes(STATIC),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )  # fmt: skip

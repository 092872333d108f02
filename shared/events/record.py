"""What the audit service appends: an event as a service stamped it, accepted or rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import AwareDatetime, ValidationError

from shared.events._types import Identifier, Model, Text
from shared.events.envelope import (
    Envelope,
    FieldError,
    InvalidEvent,
    check_envelope,
    field_errors,
)


class Stamp(Model):
    service: Identifier
    at: AwareDatetime


class AuditRecord(Model):
    disposition: Literal["accepted", "rejected"]
    stamped_by: Stamp
    reason: Text | None = None
    event: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


def accepted(envelope: Envelope, service: str, at: datetime) -> AuditRecord:
    return AuditRecord(
        disposition="accepted", stamped_by=Stamp(service=service, at=at), event=envelope.to_json()
    )


MAX_REASON = 500


def rejected(raw: dict[str, Any], reason: str, service: str, at: datetime) -> AuditRecord:
    """A message a service could not accept; it must still carry a usable event_id."""
    try:
        UUID(str(raw.get("event_id")))
    except ValueError:
        raise InvalidEvent([FieldError("event_id", "missing or not a UUID")]) from None
    reason = reason.strip() or "no reason given"
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    return AuditRecord(
        disposition="rejected", stamped_by=Stamp(service=service, at=at), reason=reason, event=raw
    )


def decode_record(body: bytes) -> AuditRecord:
    """Decode an audit-bound message; an accepted record must hold a valid event."""
    try:
        record = AuditRecord.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent([FieldError("body", f"not JSON: {exc}")]) from None
    except ValidationError as exc:
        raise InvalidEvent(field_errors(exc)) from None
    if record.disposition == "accepted":
        check_envelope(record.event)
    elif record.reason is None:
        raise InvalidEvent([FieldError("reason", "a rejected record must say why")])
    else:
        rejected(record.event, record.reason, record.stamped_by.service, record.stamped_by.at)
    return record

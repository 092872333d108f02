"""Event envelope and catalogue: typed, validated at the edge, orjson on the bus."""

from shared.events._types import LEVELS, LEVELS_IN_ORDER, Phase
from shared.events.envelope import (
    CATALOGUE,
    Actor,
    EnteredBy,
    Envelope,
    EventType,
    FieldError,
    InvalidEvent,
    Source,
    content_sha256,
    decode_event,
    parse_event,
    rfc3339,
    signed_content_sha256,
    utcnow,
)
from shared.roles import ROLES, Role

__all__ = [
    "CATALOGUE",
    "LEVELS",
    "LEVELS_IN_ORDER",
    "ROLES",
    "Actor",
    "EnteredBy",
    "Envelope",
    "EventType",
    "FieldError",
    "InvalidEvent",
    "Phase",
    "Role",
    "Source",
    "content_sha256",
    "decode_event",
    "parse_event",
    "rfc3339",
    "signed_content_sha256",
    "utcnow",
]

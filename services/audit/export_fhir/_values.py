"""FHIR values from the ledger's JSON: a rejected event may carry anything, so each reader
takes what it finds and answers None (or empty) for what is missing or malformed."""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference

from services.audit.export_fhir._codes import ACTOR_SYSTEM, EVENT_SYSTEM


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def base64_binary(data: bytes) -> bytes:
    """What a base64Binary field takes: the encoded form (the model keeps the decoded bytes)."""
    return base64.b64encode(data)


def nonblank(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def mapping_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def instant(value: Any) -> datetime | None:
    """An RFC 3339 time with an offset, or None (a rejected event may carry anything)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def sorted_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def event_ref(event_id: str, in_bundle: set[str]) -> Reference:
    identifier = Identifier(system=EVENT_SYSTEM, value=event_id)
    if event_id in in_bundle:
        return Reference(reference=f"urn:uuid:{event_id}", type="AuditEvent", identifier=identifier)
    return Reference(identifier=identifier)


@lru_cache(maxsize=4096)
def who(person_id: str) -> Reference:
    return Reference(identifier=Identifier(system=ACTOR_SYSTEM, value=person_id))


def role_of(role: Any) -> list[CodeableConcept] | None:
    text = nonblank(role)
    return [concept(text)] if text else None


@lru_cache(maxsize=1024)
def concept(text: str) -> CodeableConcept:
    return CodeableConcept(text=text)


def ids(value: Any) -> list[str]:
    return [str(i) for i in value if nonblank(i)] if isinstance(value, list) else []

"""Ledger values as an inspector reads them: times with their offset, payloads as
`key: value`, corrections as `from … to …`, signatures as VALID or VOID."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from services.audit.export_pdf._style import GREEN, RED

SEPARATOR = "  ·  "  # between the payload fields of one event
MAX_VALUE = 2000  # characters of one payload value before it is cut


def time_text(value: Any, utc: bool = False) -> str:
    """`2025-03-04 09:05:00 +01:00` (clinical, its own offset) or `… 08:05:00` (UTC)."""
    if not isinstance(value, str):
        return "—" if value is None else str(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        return parsed.strftime("%Y-%m-%d %H:%M:%S") + " (no offset)"
    if utc:
        return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    offset = parsed.strftime("%z")
    return parsed.strftime("%Y-%m-%d %H:%M:%S ") + f"{offset[:3]}:{offset[3:]}"


def scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return ", ".join(scalar(v) for v in value) if value else "none"
        return "; ".join(scalar(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {scalar(v)}" for k, v in value.items()) or "—"
    return str(value)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, readable value) for every leaf of a payload; lists stay on one line."""
    if isinstance(value, dict) and (value or not prefix):
        for key, child in value.items():
            yield from _flatten(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix or "value", scalar(value)


def cut_value(text: str) -> str:
    if len(text) <= MAX_VALUE:
        return text
    return f"{text[:MAX_VALUE]}… [{len(text) - MAX_VALUE} more characters in the full export]"


def person_text(person: Any) -> str:
    if isinstance(person, dict):
        name = person.get("id") or person.get("user") or "?"
        role = person.get("role")
        return f"{name} ({role})" if role else str(name)
    return "—" if person is None else str(person)


def readable(kind: Any, payload: Any) -> dict[str, str]:
    """A payload as (dotted key: readable value); a correction's changes as `from … to …`."""
    if kind == "record.corrected" and isinstance(payload, dict):
        rest = {k: v for k, v in payload.items() if k not in ("changes", "supersedes")}
        out = dict(_flatten(rest))
        if payload.get("changes"):
            out["changes"] = changes_text(payload.get("changes"))
        return out
    return dict(_flatten(payload))


def changes_text(changes: Any) -> str:
    """`payload.dose: from 2 to 1; …` from a correction's {field: {old, new}}."""
    if not isinstance(changes, dict):
        return scalar(changes)
    return "; ".join(
        f"{field}: from {scalar(c.get('old'))} to {scalar(c.get('new'))}"
        if isinstance(c, dict)
        else f"{field}: {scalar(c)}"
        for field, c in changes.items()
    )


def label(event: dict[str, Any] | None, event_id: str) -> str:
    if event is None:
        return f"event {event_id} (not in this report)"
    return f"{event.get('type')} #{event.get('seq')} at {time_text(event.get('occurred_at'))}"


def signature_status(signature: dict[str, Any]) -> tuple[str, str]:
    """VALID or VOID and why, as the timeline judged it."""
    binding = signature.get("binding")
    if signature.get("valid"):
        bound = " (bound to exactly the content signed)" if binding == "intact" else ""
        return f"VALID{bound}", GREEN
    reasons = []
    if signature.get("invalidated_by_corrections_of"):
        reasons.append("what it signed was corrected after signing")
    if binding == "mismatch":
        reasons.append("the signed content does not match what was recorded")
    return f"VOID ({'; '.join(reasons) or 'not valid'})", RED

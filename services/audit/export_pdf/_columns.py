"""What each column of a timeline row says: times, event, who, details, disposition."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from reportlab.lib.units import mm

from services.audit.export_pdf._row import Cell, Line, Row
from services.audit.export_pdf._style import (
    AMBER,
    BOLD,
    GREY,
    HEADER_SHADE,
    MARGIN,
    PAGE,
    RED,
    SANS,
    SHADES,
    WHITE,
)
from services.audit.export_pdf._values import (
    SEPARATOR,
    changes_text,
    cut_value,
    label,
    person_text,
    readable,
    signature_status,
    time_text,
)

COLUMNS = ("Clinical time", "Recorded (UTC)", "Event", "Who", "Details", "Disposition")
WIDTHS = (26 * mm, 24 * mm, 50 * mm, 36 * mm, None, 20 * mm)  # every catalogue type fits


def _clock(value: Any, utc: bool = False) -> list[str]:
    """A time on two lines (date, then time and offset) so it fits its column."""
    shown = time_text(value, utc)
    date, sep, rest = shown.partition(" ")
    return [date, rest] if sep else [shown]


def _details(
    item: dict[str, Any],
    by_id: dict[str, dict[str, Any]],
    signature_of: dict[str, dict[str, Any]],
) -> Cell:
    """Payload fields, then what corrected them, what it corrects or signs, its signatures."""
    out = _fields(item) + _corrections(item)
    if item.get("corrects"):
        target = str(item["corrects"])
        out.append(Line(f"corrects: {label(by_id.get(target), target)}", BOLD))
    out += _signatures(item, by_id, signature_of)
    if item.get("rejection_reason"):
        out.append(Line(f"Rejected: {cut_value(str(item['rejection_reason']))}", BOLD, RED))
    return out or [Line("—")]


def _fields(item: dict[str, Any]) -> Cell:
    """The payload as it reads now; a corrected value (or actor) with what it was."""
    out: Cell = []
    original = item.get("original")
    kind = item.get("type")
    was = readable(kind, original.get("payload")) if isinstance(original, dict) else {}
    now = readable(kind, item.get("payload"))
    same = [f"{k}: {cut_value(v)}" for k, v in now.items() if not was or was.get(k) == v]
    if same:
        out.append(Line(SEPARATOR.join(same)))
    for key, value in now.items():
        if was and was.get(key) != value:
            shown = f"{key}: {cut_value(value)} (was: {cut_value(was.get(key, '—'))})"
            out.append(Line(shown, BOLD, AMBER))
    out += [
        Line(f"{k}: — (was: {cut_value(v)})", BOLD, AMBER) for k, v in was.items() if k not in now
    ]
    if isinstance(original, dict) and original.get("actor") != item.get("actor"):
        shown = (
            f"actor: {person_text(item.get('actor'))} (was: {person_text(original.get('actor'))})"
        )
        out.append(Line(shown, BOLD, AMBER))
    return out


def _corrections(item: dict[str, Any]) -> Cell:
    """Each correction of this event: who, when, why, and what it changed."""
    out: Cell = []
    for fix in item.get("corrections", []):
        changes = changes_text(fix.get("changes"))
        at = time_text(fix.get("recorded_at"), utc=True)
        out.append(
            Line(
                f"Corrected by {person_text(fix.get('by'))} at {at} "
                f"UTC (entry #{fix.get('seq')}), reason: {cut_value(str(fix.get('reason')))}",
                BOLD,
                AMBER,
            )
        )
        if changes:
            out.append(Line(f"  changes: {cut_value(changes)}", SANS, AMBER))
    return out


def _signatures(
    item: dict[str, Any],
    by_id: dict[str, dict[str, Any]],
    signature_of: dict[str, dict[str, Any]],
) -> Cell:
    """A signature: what it signs and whether it holds; a signed event: each signature on it."""
    out: Cell = []
    payload = item.get("payload")
    if item.get("type") == "record.signed" and item.get("disposition") == "accepted":
        signed = payload.get("event_ids", []) if isinstance(payload, dict) else []
        for event_id in signed if isinstance(signed, list) else []:
            out.append(Line(f"signs: {label(by_id.get(str(event_id)), str(event_id))}"))
        own = signature_of.get(str(item.get("event_id")))
        if own is not None:
            status, color = signature_status(own)
            out.append(Line(f"this signature: {status}", BOLD, color))
    for signature in item.get("signatures", []):
        status, color = signature_status(signature)
        out.append(
            Line(
                f"Signed ({signature.get('meaning')}) by {signature.get('signer_id')} at "
                f"{time_text(signature.get('recorded_at'), utc=True)} UTC: {status}",
                BOLD,
                color,
            )
        )
    return out


def _cells(
    item: dict[str, Any],
    by_id: dict[str, dict[str, Any]],
    signature_of: dict[str, dict[str, Any]],
) -> list[Cell]:
    clinical = [Line(t) for t in _clock(item.get("occurred_at"))]
    original = item.get("original")
    if isinstance(original, dict) and original.get("occurred_at") != item.get("occurred_at"):
        before = _clock(original.get("occurred_at"))
        clinical += [Line(f"(was: {before[0]}", SANS, AMBER)]
        clinical += [Line(f"{t})", SANS, AMBER) for t in before[1:]]
    if item.get("late"):
        clinical.append(Line("LATE ENTRY", BOLD, AMBER))
    who = [Line(person_text(item.get("actor")))]
    if item.get("entered_by"):
        who.append(Line(f"entered by {person_text(item.get('entered_by'))}"))
    source = item.get("source")
    if isinstance(source, dict):
        who.append(Line(f"via {source.get('kind')}:{source.get('id')}", SANS, GREY))
    disposition = str(item.get("disposition"))
    return [
        clinical,
        [Line(t) for t in _clock(item.get("recorded_at"), utc=True)],
        [Line(str(item.get("type")), BOLD), Line(f"entry #{item.get('seq')}", SANS, GREY)],
        who,
        _details(item, by_id, signature_of),
        [Line(disposition)]
        if disposition == "accepted"
        else [Line(disposition.upper(), BOLD, RED)],
    ]


@lru_cache(maxsize=2)
def column_widths() -> list[float]:
    width = PAGE[0] - 2 * MARGIN
    fixed = sum(w for w in WIDTHS if w is not None)
    return [w if w is not None else width - fixed for w in WIDTHS]


def header_row() -> Row:
    return Row([[Line(c, BOLD, WHITE)] for c in COLUMNS], column_widths(), HEADER_SHADE)


def event_rows(events: list[dict[str, Any]], split_min: float) -> list[Row]:
    by_id = {str(e.get("event_id")): e for e in events}
    signature_of = {
        str(s.get("event_id")): s
        for e in events
        for s in e.get("signatures", [])
        if "event_id" in s
    }
    widths = column_widths()
    return [
        Row(_cells(event, by_id, signature_of), widths, SHADES[index % 2], split_min)
        for index, event in enumerate(events)
    ]

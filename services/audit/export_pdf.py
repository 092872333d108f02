"""A procedure's audit timeline as a PDF an inspector can read, print and file.

Landscape A4, built with reportlab's platypus. One row per timeline event (the list
`services.audit.timeline.build` returns: clinical order, corrections applied, originals
kept): clinical and recorded time, type, who, the payload in readable form and the
disposition. Late entries say LATE ENTRY; a corrected value reads `new (was: old)` and each
correction names who, when and why; every signature shows its meaning, signer and VALID or
VOID. A last section prints the signed checkpoint the export was cut against, verbatim in a
monospace font, with the verifier key and how to check it. Every page repeats the column
header; the footer carries "page N of M" (so a missing page shows) and the generation time.

Rows are drawn as plain lines of text (one font and colour per line) rather than as
reportlab Paragraphs: that keeps 10,000 events to seconds, not minutes. Long values wrap
(long words are broken); a row that does not fit moves whole to the next page unless at
least half a page is left, where it starts and then continues on the next page (so a row
taller than a page always prints). A single value longer than MAX_VALUE characters is cut
with a note of how much was left out (the NDJSON and FHIR exports carry every byte).
Text is set in Bitstream Vera (shipped with reportlab, embedded as a subset) so accents, µ,
², ≥ and the like print; a character the font lacks prints as `?`.
"""

from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepTogether,
    NextPageTemplate,
    PageTemplate,
    Paragraph,
    Preformatted,
    Spacer,
)

from services.audit.store import StoredCheckpoint

SANS = "ProctrailSans"
BOLD = "ProctrailSans-Bold"
MONO = "Courier"  # the signed note is ASCII but for its em dash, which Courier has
PAGE = landscape(A4)
MARGIN = 12 * mm
FOOTER_GAP = 8 * mm
FONT_SIZE = 7.5
LEADING = 9.2
PAD = 3.0  # points inside each cell
SEPARATOR = "  ·  "  # between the payload fields of one event
MAX_VALUE = 2000  # characters of one payload value before it is cut
COLUMNS = ("Clinical time", "Recorded (UTC)", "Event", "Who", "Details", "Disposition")
WIDTHS = (26 * mm, 24 * mm, 50 * mm, 36 * mm, None, 20 * mm)  # every catalogue type fits
BLACK = "#111827"
RED = "#b91c1c"
GREEN = "#15803d"
AMBER = "#b45309"
GREY = "#555555"
WHITE = "#ffffff"
SHADES = ("#ffffff", "#f3f4f6")
GRID = "#9ca3af"
HEADER_SHADE = "#1f2937"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@lru_cache(maxsize=1)
def _fonts() -> frozenset[int]:
    """Register Vera (regular, bold, italic) once; return the code points it can print."""
    folder = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
    faces = {
        SANS: "Vera.ttf",
        BOLD: "VeraBd.ttf",
        f"{SANS}-Italic": "VeraIt.ttf",
        f"{SANS}-BoldItalic": "VeraBI.ttf",
    }
    fonts = {name: TTFont(name, os.path.join(folder, file)) for name, file in faces.items()}
    for font in fonts.values():
        pdfmetrics.registerFont(font)
    pdfmetrics.registerFontFamily(
        SANS, normal=SANS, bold=BOLD, italic=f"{SANS}-Italic", boldItalic=f"{SANS}-BoldItalic"
    )
    return frozenset(fonts[SANS].face.charToGlyph)


def _clean(text: str) -> str:
    """Printable in Vera: control characters and glyphs it lacks become `?`."""
    text = _CONTROL.sub("?", text)
    if text.isascii():
        return text
    printable = _fonts()
    return "".join(c if ord(c) in printable or c == "\n" else "?" for c in text)


def _x(value: Any) -> str:
    """Text for a Paragraph: printable and XML-escaped."""
    return escape(_clean(str(value)))


# --- formatting of values ----------------------------------------------------------------------


def _time(value: Any, utc: bool = False) -> str:
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


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return ", ".join(_scalar(v) for v in value) if value else "none"
        return "; ".join(_scalar(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items()) or "—"
    return str(value)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, readable value) for every leaf of a payload; lists stay on one line."""
    if isinstance(value, dict) and (value or not prefix):
        for key, child in value.items():
            yield from _flatten(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix or "value", _scalar(value)


def _cut(text: str) -> str:
    if len(text) <= MAX_VALUE:
        return text
    return f"{text[:MAX_VALUE]}… [{len(text) - MAX_VALUE} more characters in the full export]"


def _who(person: Any) -> str:
    if isinstance(person, dict):
        name = person.get("id") or person.get("user") or "?"
        role = person.get("role")
        return f"{name} ({role})" if role else str(name)
    return "—" if person is None else str(person)


def _readable(kind: Any, payload: Any) -> dict[str, str]:
    """A payload as (dotted key: readable value); a correction's changes as `from … to …`."""
    if kind == "record.corrected" and isinstance(payload, dict):
        rest = {k: v for k, v in payload.items() if k not in ("changes", "supersedes")}
        out = dict(_flatten(rest))
        if payload.get("changes"):
            out["changes"] = _changes(payload.get("changes"))
        return out
    return dict(_flatten(payload))


def _changes(changes: Any) -> str:
    """`payload.dose: from 2 to 1; …` from a correction's {field: {old, new}}."""
    if not isinstance(changes, dict):
        return _scalar(changes)
    return "; ".join(
        f"{field}: from {_scalar(c.get('old'))} to {_scalar(c.get('new'))}"
        if isinstance(c, dict)
        else f"{field}: {_scalar(c)}"
        for field, c in changes.items()
    )


def _label(event: dict[str, Any] | None, event_id: str) -> str:
    if event is None:
        return f"event {event_id} (not in this report)"
    return f"{event.get('type')} #{event.get('seq')} at {_time(event.get('occurred_at'))}"


def _status(signature: dict[str, Any]) -> tuple[str, str]:
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


# --- a row: cells of lines, each line one font and one colour -----------------------------------


@dataclass(frozen=True)
class Line:
    text: str
    font: str = SANS
    color: str = BLACK


Cell = list[Line]


@lru_cache(maxsize=65536)
def _width(text: str, font: str) -> float:
    """Widths add up glyph by glyph (TrueType, no kerning), so words are measured once."""
    return float(pdfmetrics.stringWidth(text, font, FONT_SIZE))


def _wrap(line: Line, width: float) -> list[Line]:
    """Break at newlines, at spaces where it can, inside a word where it must."""
    text = _clean(line.text.replace("\t", " "))
    if "\n" in text:
        return [
            part
            for piece in text.split("\n")
            for part in _wrap(Line(piece, line.font, line.color), width)
        ]
    font = line.font
    space = _width(" ", font)
    out: list[str] = []
    current: list[str] = []
    used = 0.0
    for word in text.split(" "):
        size = _width(word, font) if len(word) < 64 else _measure(word, font)
        if current and used + space + size <= width:
            current.append(word)
            used += space + size
            continue
        if current:
            out.append(" ".join(current))
        while size > width:
            cut = _fit(word, font, width)
            out.append(word[:cut])
            word = word[cut:]
            size = _measure(word, font)
        current, used = [word], size
    out.append(" ".join(current))
    return [Line(part, font, line.color) for part in out]


def _measure(text: str, font: str) -> float:
    """Width of a long word, not cached."""
    return float(pdfmetrics.stringWidth(text, font, FONT_SIZE))


def _fit(word: str, font: str, width: float) -> int:
    """How many leading characters of `word` fit in `width` (at least one)."""
    low, high = 1, len(word)
    while low < high:
        mid = (low + high + 1) // 2
        if _measure(word[:mid], font) <= width:
            low = mid
        else:
            high = mid - 1
    return low


@lru_cache(maxsize=64)
def _color(hex_color: str) -> colors.Color:
    return colors.HexColor(hex_color)


class Row(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """One table row drawn straight onto the canvas; splits between lines if it must."""

    def __init__(
        self, cells: list[Cell], widths: list[float], shade: str, split_min: float = 0.0
    ) -> None:
        super().__init__()
        self.cells = cells
        self.widths = widths
        self.shade = shade
        self.split_min = split_min
        self._lines: list[list[Line]] | None = None

    def _layout(self) -> list[list[Line]]:
        if self._lines is None:
            self._lines = [
                [part for line in cell for part in _wrap(line, width - 2 * PAD)]
                for cell, width in zip(self.cells, self.widths, strict=True)
            ]
            self.height = max(len(c) for c in self._lines) * LEADING + 2 * PAD
            self.width = sum(self.widths)
        return self._lines

    def wrap(self, aW: float, aH: float) -> tuple[float, float]:
        self._layout()
        return self.width, self.height

    def split(self, aW: float, aH: float) -> list[Flowable]:
        lines = self._layout()
        fit = int((aH - 2 * PAD) // LEADING)
        if self.height <= aH or aH < self.split_min or fit < 1:
            return []
        first = [c[:fit] for c in lines]
        rest = [c[fit:] for c in lines]
        rest[4] = [Line("(continued)", SANS, GREY), *rest[4]]
        return [self._part(first), self._part(rest)]

    def _part(self, lines: list[list[Line]]) -> Row:
        part = Row([[]] * len(lines), self.widths, self.shade, self.split_min)
        part._lines = lines
        part.height = max(max(len(c) for c in lines), 1) * LEADING + 2 * PAD
        part.width = self.width
        return part

    def draw(self) -> None:
        canvas = self.canv
        lines = self._layout()
        height = self.height
        canvas.saveState()
        canvas.setFillColor(_color(self.shade))
        canvas.setStrokeColor(_color(GRID))
        canvas.setLineWidth(0.25)
        canvas.rect(0, 0, self.width, height, stroke=1, fill=1)
        edges = [sum(self.widths[:i]) for i in range(1, len(self.widths))]
        canvas.lines([(x, 0, x, height) for x in edges])
        x = 0.0
        top = height - PAD - FONT_SIZE * 0.8
        for cell, width in zip(lines, self.widths, strict=True):
            if cell:
                text = canvas.beginText(x + PAD, top)
                font = color = ""
                for line in cell:
                    if line.font != font:
                        font = line.font
                        text.setFont(font, FONT_SIZE, LEADING)
                    if line.color != color:
                        color = line.color
                        text.setFillColor(_color(color))
                    text.textLine(line.text)
                canvas.drawText(text)
            x += width
        canvas.restoreState()


# --- what each column says ---------------------------------------------------------------------


def _clock(value: Any, utc: bool = False) -> list[str]:
    """A time on two lines (date, then time and offset) so it fits its column."""
    shown = _time(value, utc)
    date, sep, rest = shown.partition(" ")
    return [date, rest] if sep else [shown]


def _details(
    item: dict[str, Any],
    by_id: dict[str, dict[str, Any]],
    signature_of: dict[str, dict[str, Any]],
) -> Cell:
    """Payload fields, then what corrected them, what it corrects or signs, its signatures."""
    out: Cell = []
    payload = item.get("payload")
    original = item.get("original")
    kind = item.get("type")
    was = _readable(kind, original.get("payload")) if isinstance(original, dict) else {}
    now = _readable(kind, payload)
    same = [f"{k}: {_cut(v)}" for k, v in now.items() if not was or was.get(k) == v]
    if same:
        out.append(Line(SEPARATOR.join(same)))
    for key, value in now.items():
        if was and was.get(key) != value:
            shown = f"{key}: {_cut(value)} (was: {_cut(was.get(key, '—'))})"
            out.append(Line(shown, BOLD, AMBER))
    out += [Line(f"{k}: — (was: {_cut(v)})", BOLD, AMBER) for k, v in was.items() if k not in now]
    if isinstance(original, dict) and original.get("actor") != item.get("actor"):
        shown = f"actor: {_who(item.get('actor'))} (was: {_who(original.get('actor'))})"
        out.append(Line(shown, BOLD, AMBER))
    for fix in item.get("corrections", []):
        changes = _changes(fix.get("changes"))
        out.append(
            Line(
                f"Corrected by {_who(fix.get('by'))} at {_time(fix.get('recorded_at'), utc=True)} "
                f"UTC (entry #{fix.get('seq')}), reason: {_cut(str(fix.get('reason')))}",
                BOLD,
                AMBER,
            )
        )
        if changes:
            out.append(Line(f"  changes: {_cut(changes)}", SANS, AMBER))
    if item.get("corrects"):
        target = str(item["corrects"])
        out.append(Line(f"corrects: {_label(by_id.get(target), target)}", BOLD))
    if item.get("type") == "record.signed" and item.get("disposition") == "accepted":
        signed = payload.get("event_ids", []) if isinstance(payload, dict) else []
        for event_id in signed if isinstance(signed, list) else []:
            out.append(Line(f"signs: {_label(by_id.get(str(event_id)), str(event_id))}"))
        own = signature_of.get(str(item.get("event_id")))
        if own is not None:
            status, color = _status(own)
            out.append(Line(f"this signature: {status}", BOLD, color))
    for signature in item.get("signatures", []):
        status, color = _status(signature)
        out.append(
            Line(
                f"Signed ({signature.get('meaning')}) by {signature.get('signer_id')} at "
                f"{_time(signature.get('recorded_at'), utc=True)} UTC: {status}",
                BOLD,
                color,
            )
        )
    if item.get("rejection_reason"):
        out.append(Line(f"Rejected: {_cut(str(item['rejection_reason']))}", BOLD, RED))
    return out or [Line("—")]


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
    who = [Line(_who(item.get("actor")))]
    if item.get("entered_by"):
        who.append(Line(f"entered by {_who(item.get('entered_by'))}"))
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
def _widths() -> list[float]:
    width = PAGE[0] - 2 * MARGIN
    fixed = sum(w for w in WIDTHS if w is not None)
    return [w if w is not None else width - fixed for w in WIDTHS]


def _header() -> Row:
    return Row([[Line(c, BOLD, WHITE)] for c in COLUMNS], _widths(), HEADER_SHADE)


def _rows(events: list[dict[str, Any]], split_min: float) -> list[Row]:
    by_id = {str(e.get("event_id")): e for e in events}
    signature_of = {
        str(s.get("event_id")): s
        for e in events
        for s in e.get("signatures", [])
        if "event_id" in s
    }
    widths = _widths()
    return [
        Row(_cells(event, by_id, signature_of), widths, SHADES[index % 2], split_min)
        for index, event in enumerate(events)
    ]


# --- the checkpoint ----------------------------------------------------------------------------


def _styles() -> dict[str, ParagraphStyle]:
    _fonts()
    return {
        "title": ParagraphStyle("title", fontName=BOLD, fontSize=16, leading=20),
        "h2": ParagraphStyle(
            "h2", fontName=BOLD, fontSize=13, leading=17, spaceBefore=10, spaceAfter=4
        ),
        "body": ParagraphStyle("body", fontName=SANS, fontSize=9, leading=12, spaceAfter=4),
        "mono": ParagraphStyle("mono", fontName=MONO, fontSize=8.5, leading=10.5),
    }


def _checkpoint(
    checkpoint: StoredCheckpoint, verifier_key: str, styles: dict[str, ParagraphStyle]
) -> list[Flowable]:
    root = base64.b64encode(checkpoint.root).decode()
    width = PAGE[0] - 2 * MARGIN
    mono = styles["mono"]
    per_line = int(width / pdfmetrics.stringWidth("M", MONO, mono.fontSize))
    body = styles["body"]
    size = checkpoint.tree_size
    code = "<font face='Courier'>{}</font>".format
    return [
        KeepTogether(
            [
                Paragraph("Checkpoint", styles["h2"]),
                Paragraph(
                    f"This report was cut against the signed checkpoint below: tree size "
                    f"<b>{size}</b> (ledger entries #0 to #{size - 1}), root hash "
                    f"<b>{_x(root)}</b>, signed {_x(_time(checkpoint.created_at, utc=True))} UTC."
                    " The signed note, verbatim:",
                    body,
                ),
                Preformatted(_clean(checkpoint.note), mono, maxLineLength=per_line),
                Spacer(1, 4 * mm),
                Paragraph(
                    "Verifier key (Ed25519, in the C2SP signed-note verifier key form):", body
                ),
                Preformatted(_clean(verifier_key), mono, maxLineLength=per_line),
                Spacer(1, 4 * mm),
            ]
        ),
        Paragraph("How to verify", styles["h2"]),
        Paragraph(
            "1. Save the signed note exactly as printed above (origin, tree size and root hash "
            f"lines, a blank line, the signature line) to a file, e.g. {code('checkpoint.txt')}, "
            "and check it against the ledger with "
            f"{code('proctrail verify --checkpoint checkpoint.txt --key ' + _x(verifier_key))}: "
            "it checks the note's signature, recomputes the whole ledger and confirms that this "
            "checkpoint is part of it (exit status 0), or names the first entry that differs.",
            body,
        ),
        Paragraph(
            "2. Without access to the ledger's database, ask the audit service: "
            f"{code('GET /v1/audit/checkpoint')} and {code('GET /v1/audit/public-key')} give "
            "its current signed checkpoint and this key; "
            f"{code(f'GET /v1/audit/proofs/consistency?from={size}&amp;to=&lt;current size&gt;')}"
            " proves that this checkpoint is a prefix of the current log; for any entry, "
            f"{code(f'GET /v1/audit/proofs/inclusion?seq=&lt;entry #&gt;&amp;tree_size={size}')}"
            f" with the entry's leaf from {code('GET /v1/audit/events/&lt;event_id&gt;')} "
            "proves that it is in this tree (RFC 9162: leaf hash = SHA-256(0x00 || leaf), node "
            "hash = SHA-256(0x01 || left || right)).",
            body,
        ),
        Paragraph(
            "The signature line is Ed25519 over the note's text (the lines before the blank "
            "line) by the key it names; its first four bytes are the key hash that the verifier "
            "key shows after the name.",
            body,
        ),
    ]


# --- pages -------------------------------------------------------------------------------------


class _NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped
    """Holds every page until the end so each footer can say "page N of M"."""

    generated = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for page in self._pages:
            self.__dict__.update(page)
            self._footer(total)
            super().showPage()
        super().save()

    def _footer(self, total: int) -> None:
        self.saveState()
        self.setFont(SANS, 7.5)
        self.setFillColor(_color(GREY))
        y = MARGIN - FOOTER_GAP / 2
        self.drawString(MARGIN, y, f"proctrail audit report — generated {self.generated}")
        self.drawRightString(PAGE[0] - MARGIN, y, f"page {self._pageNumber} of {total}")
        self.restoreState()


def pdf_report(
    procedure_id: str,
    events: list[dict[str, Any]],
    checkpoint: StoredCheckpoint,
    verifier_key: str,
    *,
    generated_at: datetime | None = None,
) -> bytes:
    """The timeline `events` (as `timeline.build` returns them) of one procedure, as PDF bytes."""
    styles = _styles()
    stamp = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = (
        f"Procedure {procedure_id} — audit timeline"
        if procedure_id
        else "Audit timeline — all exported events"
    )
    width = PAGE[0] - 2 * MARGIN
    bottom = MARGIN + FOOTER_GAP / 2
    height = PAGE[1] - MARGIN - bottom
    header = _header()
    _, header_height = header.wrap(width, height)

    def column_header(canvas: Canvas, doc: BaseDocTemplate) -> None:
        header.drawOn(canvas, MARGIN, PAGE[1] - MARGIN - header_height)

    def frame(top_gap: float) -> Frame:
        return Frame(
            MARGIN, bottom, width, height - top_gap,
            leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0,
        )  # fmt: skip

    buffer = io.BytesIO()
    doc = BaseDocTemplate(
        buffer,
        pagesize=PAGE,
        pageTemplates=[
            PageTemplate("plain", [frame(0)]),
            PageTemplate("rows", [frame(header_height)], onPage=column_header),
        ],
        title=_clean(title),
        author="proctrail",
        subject=f"audit timeline cut against checkpoint {checkpoint.tree_size}",
        creator="proctrail",
    )
    late = sum(1 for e in events if e.get("late"))
    corrected = sum(1 for e in events if e.get("corrections"))
    rejected = sum(1 for e in events if e.get("disposition") != "accepted")
    story: list[Flowable] = [
        Paragraph(_x(title), styles["title"]),
        Spacer(1, 2 * mm),
        Paragraph(
            f"{len(events)} events in clinical order (late entries: {late}, corrected: "
            f"{corrected}, rejected: {rejected}), cut against checkpoint tree size "
            f"{checkpoint.tree_size}; "
            f"generated {stamp}. Clinical times are as recorded, with their UTC offset; "
            "recorded times are the server's, in UTC. A corrected value reads "
            "<i>new (was: old)</i>.",
            styles["body"],
        ),
        Spacer(1, 2 * mm),
    ]
    if events:
        rows = _rows(events, split_min=(height - header_height) / 2)
        story += [
            NextPageTemplate("rows"),
            KeepTogether([_header(), rows[0]]),
            *rows[1:],
            NextPageTemplate("plain"),
        ]
    else:
        story.append(Paragraph("No events in this report.", styles["body"]))
    story += _checkpoint(checkpoint, verifier_key, styles)

    class Numbered(_NumberedCanvas):
        generated = stamp

    doc.build(story, canvasmaker=Numbered)
    return buffer.getvalue()

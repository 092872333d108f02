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

import io
from datetime import UTC, datetime
from typing import Any

from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, NextPageTemplate, Paragraph, Spacer

from services.audit.export_pdf._checkpoint import checkpoint_section
from services.audit.export_pdf._columns import event_rows, header_row
from services.audit.export_pdf._pages import numbered_canvas, report_template
from services.audit.export_pdf._style import clean_text, para_text, paragraph_styles
from services.audit.store import StoredCheckpoint


def pdf_report(
    procedure_id: str,
    events: list[dict[str, Any]],
    checkpoint: StoredCheckpoint,
    verifier_key: str,
    *,
    generated_at: datetime | None = None,
) -> bytes:
    """The timeline `events` (as `timeline.build` returns them) of one procedure, as PDF bytes."""
    styles = paragraph_styles()
    stamp = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = (
        f"Procedure {procedure_id} — audit timeline"
        if procedure_id
        else "Audit timeline — all exported events"
    )
    header = header_row()
    buffer = io.BytesIO()
    doc, room = report_template(
        buffer,
        header,
        title=clean_text(title),
        subject=f"audit timeline cut against checkpoint {checkpoint.tree_size}",
    )
    story = [
        *_summary(title, events, checkpoint, stamp, styles),
        *_timeline(events, room, styles),
        *checkpoint_section(checkpoint, verifier_key, styles),
    ]
    doc.build(story, canvasmaker=numbered_canvas(stamp))
    return buffer.getvalue()


def _summary(
    title: str,
    events: list[dict[str, Any]],
    checkpoint: StoredCheckpoint,
    stamp: str,
    styles: dict[str, ParagraphStyle],
) -> list[Flowable]:
    """The title, and what the report holds: how many events, late, corrected and rejected."""
    late = sum(1 for e in events if e.get("late"))
    corrected = sum(1 for e in events if e.get("corrections"))
    rejected = sum(1 for e in events if e.get("disposition") != "accepted")
    return [
        Paragraph(para_text(title), styles["title"]),
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


def _timeline(
    events: list[dict[str, Any]], room: float, styles: dict[str, ParagraphStyle]
) -> list[Flowable]:
    """One row per event on pages with the column header; a row may split once it has at
    least half a page (`room` is a page's height below the header)."""
    if not events:
        return [Paragraph("No events in this report.", styles["body"])]
    rows = event_rows(events, split_min=room / 2)
    return [
        NextPageTemplate("rows"),
        KeepTogether([header_row(), rows[0]]),
        *rows[1:],
        NextPageTemplate("plain"),
    ]

"""The report's last section: the signed checkpoint it was cut against, verbatim, the
verifier key, and how to check both."""

from __future__ import annotations

import base64

from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.platypus import Flowable, KeepTogether, Paragraph, Preformatted, Spacer

from services.audit.export_pdf._style import MARGIN, MONO, PAGE, clean_text, para_text
from services.audit.export_pdf._values import time_text
from services.audit.store import StoredCheckpoint


def checkpoint_section(
    checkpoint: StoredCheckpoint, verifier_key: str, styles: dict[str, ParagraphStyle]
) -> list[Flowable]:
    """The checkpoint and key (kept on one page), then how to verify them."""
    return [
        _verbatim(checkpoint, verifier_key, styles),
        *_how_to_verify(checkpoint, verifier_key, styles),
    ]


def _verbatim(
    checkpoint: StoredCheckpoint, verifier_key: str, styles: dict[str, ParagraphStyle]
) -> Flowable:
    """What the report was cut against: the signed note and the verifier key, verbatim."""
    root = base64.b64encode(checkpoint.root).decode()
    width = PAGE[0] - 2 * MARGIN
    mono = styles["mono"]
    per_line = int(width / pdfmetrics.stringWidth("M", MONO, mono.fontSize))
    body = styles["body"]
    size = checkpoint.tree_size
    signed = para_text(time_text(checkpoint.created_at, utc=True))
    return KeepTogether(
        [
            Paragraph("Checkpoint", styles["h2"]),
            Paragraph(
                f"This report was cut against the signed checkpoint below: tree size "
                f"<b>{size}</b> (ledger entries #0 to #{size - 1}), root hash "
                f"<b>{para_text(root)}</b>, signed {signed} UTC."
                " The signed note, verbatim:",
                body,
            ),
            Preformatted(clean_text(checkpoint.note), mono, maxLineLength=per_line),
            Spacer(1, 4 * mm),
            Paragraph("Verifier key (Ed25519, in the C2SP signed-note verifier key form):", body),
            Preformatted(clean_text(verifier_key), mono, maxLineLength=per_line),
            Spacer(1, 4 * mm),
        ]
    )


def _how_to_verify(
    checkpoint: StoredCheckpoint, verifier_key: str, styles: dict[str, ParagraphStyle]
) -> list[Flowable]:
    """With the ledger (proctrail verify), or with the audit service's proofs alone."""
    body = styles["body"]
    size = checkpoint.tree_size
    code = "<font face='Courier'>{}</font>".format
    verify = code("proctrail verify --checkpoint checkpoint.txt --key " + para_text(verifier_key))
    return [
        Paragraph("How to verify", styles["h2"]),
        Paragraph(
            "1. Save the signed note exactly as printed above (origin, tree size and root hash "
            f"lines, a blank line, the signature line) to a file, e.g. {code('checkpoint.txt')}, "
            "and check it against the ledger with "
            f"{verify}: "
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

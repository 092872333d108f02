"""Exports an inspector can take away, each cut against one signed checkpoint.

Only entries inside the checkpoint's tree (seq < tree_size) are exported, and every format
carries that checkpoint: CSV in its leading `#` lines, NDJSON in its first line (and an
inclusion proof on every entry), FHIR in the Bundle's identifier and a Binary, PDF on its
last page. HTTP answers also name it in the `Proctrail-Checkpoint` header.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import orjson

from services.audit import merkle, timeline
from services.audit.store import Entry, Query, Store, StoredCheckpoint

FORMATS = ("csv", "ndjson", "fhir", "pdf")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "fhir": "application/fhir+json",
    "pdf": "application/pdf",
}
EXTENSIONS = {"csv": "csv", "ndjson": "ndjson", "fhir": "fhir.json", "pdf": "pdf"}
EXPORT_MAX = 1_000_000
PAGE = 5000
CSV_COLUMNS = (
    "seq", "event_id", "type", "procedure_id", "occurred_at", "recorded_at", "late",
    "actor_id", "actor_role", "entered_by", "source", "disposition", "reason", "payload",
    "leaf_hash",
)  # fmt: skip


class ExportTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class Cut:
    checkpoint: StoredCheckpoint
    entries: list[Entry]
    verifier_key: str

    @property
    def header(self) -> str:
        return f"{self.checkpoint.tree_size}:{base64.b64encode(self.checkpoint.root).decode()}"


def cut(store: Store, query: Query, verifier_key: str) -> Cut | None:
    """The entries matching `query` inside the latest checkpoint; None if the log is empty."""
    checkpoint = store.latest_checkpoint()
    if checkpoint is None:
        return None
    entries: list[Entry] = []
    after = query.after_seq
    while True:
        page = store.entries(
            Query(query.filters, query.since, query.until, after_seq=after, limit=PAGE)
        )
        entries += [e for e in page if e.seq < checkpoint.tree_size]
        if len(entries) > EXPORT_MAX:
            raise ExportTooLarge(f"more than {EXPORT_MAX} entries: narrow the filters")
        if len(page) < PAGE or page[-1].seq >= checkpoint.tree_size:
            return Cut(checkpoint, entries, verifier_key)
        after = page[-1].seq


def csv_export(c: Cut) -> Iterator[bytes]:
    for line in (
        "proctrail audit export",
        "checkpoint (signed note):",
        *c.checkpoint.note.split("\n"),
        f"verifier key: {c.verifier_key}",
    ):
        yield f"# {line}\n".encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in c.entries:
        content = entry.content()
        event = content["event"]
        actor = event.get("actor", {})
        entered = event.get("entered_by")
        writer.writerow(
            (
                entry.seq, event.get("event_id"), event.get("type"), event.get("procedure_id", ""),
                event.get("occurred_at"), event.get("recorded_at"), event.get("late", ""),
                actor.get("id"), actor.get("role"),
                f"{entered['user']} ({entered['role']})" if entered else "",
                f"{event.get('source', {}).get('kind')}:{event.get('source', {}).get('id')}",
                content["disposition"], content.get("reason", ""),
                orjson.dumps(event.get("payload", {}), option=orjson.OPT_SORT_KEYS).decode(),
                base64.b64encode(entry.leaf_hash).decode(),
            )
        )  # fmt: skip
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


def ndjson_export(c: Cut, store: Store) -> Iterator[bytes]:
    size = c.checkpoint.tree_size
    node = lru_cache(maxsize=65536)(store.node)  # upper tree levels are shared by every proof
    yield (
        orjson.dumps(
            {
                "checkpoint": {
                    "tree_size": size,
                    "root": base64.b64encode(c.checkpoint.root).decode(),
                    "note": c.checkpoint.note,
                    "verifier_key": c.verifier_key,
                }
            }
        )
        + b"\n"
    )
    for entry in c.entries:
        proof = merkle.inclusion_proof(entry.seq, size, node)
        line = entry.to_json()
        line["inclusion_proof"] = {
            "leaf_index": entry.seq,
            "tree_size": size,
            "hashes": [base64.b64encode(h).decode() for h in proof],
        }
        yield orjson.dumps(line) + b"\n"


def render(fmt: str, c: Cut, store: Store, procedure_id: str | None) -> Iterator[bytes]:
    if fmt == "csv":
        return csv_export(c)
    if fmt == "ndjson":
        return ndjson_export(c, store)
    if fmt == "fhir":
        from services.audit.export_fhir import fhir_bundle

        return iter([fhir_bundle(c.entries, c.checkpoint, c.verifier_key)])
    from services.audit.export_pdf import pdf_report

    events = timeline.build(c.entries)
    return iter([pdf_report(procedure_id or "", events, c.checkpoint, c.verifier_key)])

"""The ledger: an RFC 9162 Merkle tree over append-only entries, signed after every batch.

Each leaf is the canonical JSON (sorted keys) of
    {seq, prev_root, appended_at, disposition, stamped_by, reason?, event}
and is stored verbatim with leaf_hash = SHA-256(0x00 || leaf). `prev_root` is the tree's
root before this leaf, so the entries form a hash chain as well as a tree: `proctrail verify`
can name the first entry that differs from what was appended. Appending is O(log n): the
frontier of perfect subtrees lives in memory and every interior node it completes is stored
for proofs. A batch is one transaction, ending with its signed checkpoint.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from services.audit.checkpoint import Checkpoint, Signer
from services.audit.merkle import Frontier, leaf_hash
from services.audit.store import NewEntry, Store, StoredCheckpoint, lots_named
from shared.events.record import AuditRecord


class LedgerCorrupt(RuntimeError):
    """The stored tree does not match its own latest checkpoint: refuse to append to it."""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _utc(value: Any) -> str | None:
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC).isoformat()
    except ValueError:
        return None


def _not_after(recorded_at: str | None, now: str) -> str | None:
    """The query column never runs ahead of the append (a rejected record keeps a client's
    clock); `since` queries rely on it. The leaf keeps the value as sent."""
    if recorded_at is None:
        return None
    return min(recorded_at, now, key=datetime.fromisoformat)


def encode_leaf(content: dict[str, Any]) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


class Ledger:
    """The single writer of one log."""

    def __init__(self, store: Store, signer: Signer) -> None:
        self.store = store
        self.signer = signer
        size = store.size()
        self.frontier = Frontier.load(size, store.node)
        self._stale = False
        latest = store.latest_checkpoint()
        if size and (latest is None or latest.tree_size != size):
            raise LedgerCorrupt(f"the store holds {size} entries but no checkpoint for that size")
        if latest is not None and latest.root != self.frontier.root():
            raise LedgerCorrupt("the stored tree does not match its latest checkpoint")

    def append(self, records: Sequence[AuditRecord]) -> list[int | None]:
        """Append in one transaction (group commit). Returns each record's seq, None if known."""
        if self._stale:  # an append failed: whether its commit landed, only the store knows
            self.frontier = Frontier.load(self.store.size(), self.store.node)
            self._stale = False
        known = self.store.known([r.event_id for r in records])
        frontier = Frontier(self.frontier.size, list(self.frontier.nodes))
        new_links, links = self._links(records)
        now = datetime.now(UTC).isoformat()
        rows: list[NewEntry] = []
        nodes: list[tuple[int, int, bytes]] = []
        out: list[int | None] = []
        for record in records:
            if record.event_id in known:
                out.append(None)
                continue
            known.add(record.event_id)
            seq = frontier.size
            content = {
                "seq": seq,
                "prev_root": base64.b64encode(frontier.root()).decode(),
                "appended_at": now,
                **record.model_dump(mode="json", exclude_none=True),
            }
            leaf = encode_leaf(content)
            digest = leaf_hash(leaf)
            nodes.extend(frontier.append(digest))
            rows.append(self._row(seq, leaf, digest, record, links, now))
            out.append(seq)
        if rows:
            root = frontier.root()
            note = self.signer.sign(Checkpoint(self.signer.name, frontier.size, root))
            checkpoint = StoredCheckpoint(frontier.size, root, note, now)
            try:
                self.store.append(rows, nodes, new_links, checkpoint)
            except BaseException:
                # The commit may have landed before the connection failed: the next append
                # reads the tree back from the store (which may be unreachable just now).
                self._stale = True
                raise
            self.frontier = frontier
        return out

    def _links(self, records: Sequence[AuditRecord]) -> tuple[dict[str, str], dict[str, str]]:
        """procedure -> patient: (new in this batch, everything this batch needs)."""
        links: dict[str, str] = {}
        wanted = []
        for record in records:
            event = record.event
            procedure_id = _text(event.get("procedure_id"))
            patient = _mapping(_mapping(event.get("payload")).get("patient"))
            if event.get("type") == "procedure.scheduled" and procedure_id and patient.get("id"):
                links[procedure_id] = str(patient["id"])
            elif procedure_id:
                wanted.append(procedure_id)
        return links, {**self.store.patients([p for p in wanted if p not in links]), **links}

    @staticmethod
    def _row(
        seq: int,
        leaf: bytes,
        digest: bytes,
        record: AuditRecord,
        links: dict[str, str],
        now: str,
    ) -> NewEntry:
        event = record.event
        procedure_id = _text(event.get("procedure_id"))
        patient = _mapping(_mapping(event.get("payload")).get("patient"))
        patient_id = _text(patient.get("id")) or (links.get(procedure_id) if procedure_id else None)
        return NewEntry(
            seq=seq,
            event_id=record.event_id,
            leaf=leaf,
            leaf_hash=digest,
            type=_text(event.get("type")),
            procedure_id=procedure_id,
            patient_id=patient_id,
            actor_id=_text(_mapping(event.get("actor")).get("id")),
            recorded_at=_not_after(_utc(event.get("recorded_at")), now),
            disposition=record.disposition,
            lots=lots_named(event),
        )

"""What the ledger needs from a database: the rows it reads and writes, and the `Store`."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

TABLES = ("entries", "tree_nodes", "checkpoints", "procedure_patients", "entry_lots")

COLUMN_FILTERS = ("procedure_id", "patient_id", "type", "actor_id")  # columns of `entries`
FILTERS = (*COLUMN_FILTERS, "lot_id")  # lot_id: through the `entry_lots` index table

# Payload keys that name a product lot: what "search by lot" finds (a recall, a complaint).
LOT_KEYS = ("lot_id", "related_lot_id")


def lots_named(event: dict[str, Any]) -> tuple[str, ...]:
    """The lots an event's payload names, each once."""
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return ()
    found = (payload.get(k) for k in LOT_KEYS)
    return tuple(dict.fromkeys(str(v) for v in found if isinstance(v, str) and v))


@dataclass(frozen=True)
class Entry:
    seq: int
    leaf: bytes
    leaf_hash: bytes

    def content(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.leaf)
        return parsed

    def to_json(self) -> dict[str, Any]:
        content = self.content()
        out = {
            "seq": self.seq,
            "leaf": base64.b64encode(self.leaf).decode(),
            "leaf_hash": base64.b64encode(self.leaf_hash).decode(),
            "event": content["event"],
            "disposition": content["disposition"],
        }
        if "reason" in content:
            out["reason"] = content["reason"]
        return out


@dataclass(frozen=True)
class NewEntry:
    """One row to append, with the columns the queries filter on."""

    seq: int
    event_id: str
    leaf: bytes
    leaf_hash: bytes
    type: str | None
    procedure_id: str | None
    patient_id: str | None
    actor_id: str | None
    recorded_at: str | None
    disposition: str
    lots: tuple[str, ...] = ()  # rows of `entry_lots`, not a column

    def columns(self) -> tuple[object, ...]:
        """The values in the order of the `entries` table's columns. Spelled out: astuple()
        deep-copies every field, which cost the audit consumer ~8 us of its ~55 us an event."""
        return (
            self.seq,
            self.event_id,
            self.leaf,
            self.leaf_hash,
            self.type,
            self.procedure_id,
            self.patient_id,
            self.actor_id,
            self.recorded_at,
            self.disposition,
        )


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root: bytes
    note: str
    created_at: str


@dataclass(frozen=True)
class Query:
    filters: dict[str, str]
    since: str | None = None
    until: str | None = None
    after_seq: int = -1
    limit: int = 100


class Store(Protocol):
    # --- the single writer -------------------------------------------------------------------
    def known(self, event_ids: Sequence[str]) -> set[str]: ...

    def patients(self, procedure_ids: Sequence[str]) -> dict[str, str]: ...

    def append(
        self,
        entries: Sequence[NewEntry],
        nodes: Sequence[tuple[int, int, bytes]],
        links: dict[str, str],
        checkpoint: StoredCheckpoint,
    ) -> None:
        """All of it in one transaction, or nothing."""

    # --- readers -----------------------------------------------------------------------------
    def size(self) -> int: ...

    def node(self, level: int, index: int) -> bytes: ...

    def entries(self, query: Query) -> list[Entry]: ...

    def by_event_id(self, event_id: str) -> Entry | None: ...

    def latest_checkpoint(self) -> StoredCheckpoint | None: ...

    def checkpoint(self, tree_size: int) -> StoredCheckpoint | None: ...

    def checkpoints(self) -> Iterator[StoredCheckpoint]: ...

    def scan(self, start: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        """(seq, leaf, leaf_hash) from seq `start` on, in seq order, for `proctrail verify`."""
        ...

    def scan_nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        """(index, hash) of the stored interior nodes of one level, in index order."""
        ...

    def close(self) -> None: ...

"""What the rules read and what they raise: a procedure's facts, released lots and alerts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Fact:
    """One accepted event as the rules see it."""

    event_id: str
    type: str
    occurred_at: datetime
    actor_id: str
    payload: Mapping[str, Any]
    seq: int  # arrival order, to break ties in clinical time


@dataclass(frozen=True)
class Alert:
    key: str  # stable within the procedure: the same facts give the same key
    code: str
    severity: Severity
    message: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True)
class Lot:
    """A released product lot (product.lot_released), as the implant rules check it."""

    lot_id: str
    released_at: datetime
    event_id: str
    payload: Mapping[str, Any]


@runtime_checkable
class LotTable(Protocol):
    """Where a phase service keeps the released lots its rules check (services/implant/lots.py)."""

    def add_lot(self, lot: Lot) -> bool: ...
    def lots(self, lot_ids: Iterable[str] | None = None) -> dict[str, Lot]: ...

"""Needle confirmation: every needle placement needs confirming images of this procedure within
the policy's window, one CT or ultrasound image, or a fluoroscopic AP and lateral pair. The clock
alerts on a placement still unconfirmed once the window has passed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.clinical.chain import Context
from shared.clinical.facts import Alert, Fact
from shared.clinical.policy import Policy

if TYPE_CHECKING:
    from services.implant.rules import ImplantState

_CROSS_SECTIONAL = frozenset({"CT", "US"})  # one image shows where the needle is


@dataclass(frozen=True)
class Capture:
    event_id: str
    sop_instance_uid: str
    modality: str
    angle: float | None  # positioner primary angle: ~0 AP, ~90 lateral
    at: datetime


@dataclass(frozen=True)
class Needle:
    event_id: str
    at: datetime
    level: str


def capture_received(state: ImplantState, fact: Fact, _: Context) -> None:
    p = fact.payload
    angle = p.get("positioner_primary_angle_deg")
    acquired = p.get("acquired_at")
    state.captures.append(Capture(
        fact.event_id, str(p.get("sop_instance_uid")), str(p.get("modality", "")),
        float(angle) if isinstance(angle, (int, float)) else None,
        datetime.fromisoformat(acquired) if isinstance(acquired, str) else fact.occurred_at,
    ))  # fmt: skip


def needle_placed(state: ImplantState, fact: Fact, _: Context) -> None:
    target = fact.payload.get("target")
    level = target.get("level") if isinstance(target, Mapping) else None
    state.needles.append(Needle(fact.event_id, fact.occurred_at, str(level or "target")))


def needle_confirmed(needle: Needle, captures: Iterable[Capture], window: timedelta) -> bool:
    """Confirmed by this procedure's captures within the window: one CT or ultrasound image,
    or a fluoroscopic AP (primary angle within 30 degrees of 0) and lateral (60 to 120) pair.
    Fluoroscopy that reports no angle counts as a pair when there are two such images."""
    near = [c for c in captures if abs(c.at - needle.at) <= window]
    if any(c.modality in _CROSS_SECTIONAL for c in near):
        return True
    angles = [abs(c.angle) for c in near if c.angle is not None]
    if any(a <= 30 for a in angles) and any(60 <= a <= 120 for a in angles):
        return True
    return len({c.sop_instance_uid for c in near if c.angle is None}) >= 2


def unconfirmed(state: ImplantState, now: datetime, policy: Policy) -> list[Alert]:
    """Placements whose window has passed with no confirming image."""
    window = policy.needle_window
    out = []
    for placement in state.needles:
        if now > placement.at + window and not state.confirmed(placement, window):
            out.append(Alert(
                f"needle_unconfirmed:{placement.event_id}", "needle_unconfirmed", "warning",
                f"needle at {placement.level} has no confirming image (AP and lateral, or "
                f"CT/US) within {window.total_seconds() / 60:g} min", (placement.event_id,),
            ))  # fmt: skip
    return out


def pending(state: ImplantState, policy: Policy) -> bool:
    return any(not state.confirmed(n, policy.needle_window) for n in state.needles)

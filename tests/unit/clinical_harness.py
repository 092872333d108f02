"""An implant procedure driven event by event through the implant service on the in-memory
bus, as bedside, the lab and the imaging listener post them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.implant.lots import ImplantStore
from services.implant.rules import RULES
from shared.bus import InMemoryBus
from shared.bus.topology import EVENTS, Q_AUDIT, Q_IMPLANT
from shared.clinical.clock import FakeClock
from shared.clinical.recorder import Recorder
from shared.events import parse_event
from shared.events.record import decode_record
from shared.phase import PhaseService

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
NewEvent = Callable[..., dict[str, Any]]
Example = Callable[[str], dict[str, Any]]


def at(minute: float) -> str:
    return (T0 + timedelta(minutes=minute)).isoformat()


@dataclass
class Implant:
    service: PhaseService
    recorder: Recorder


def start_implant(bus: InMemoryBus, path: Path, clock: FakeClock) -> Implant:
    """The implant service with the implant room's rules, consuming q.implant as services/implant
    does."""
    store = ImplantStore(path)
    recorder = Recorder("implant", store, clock, rules=RULES, lots=store)
    service = PhaseService("implant", ("implant", "lab"), bus, 5.0, recorder)
    service.subscribe(Q_IMPLANT)
    return Implant(service, recorder)


class Procedure:
    """An implant procedure for patient MRN-0042, posted event by event."""

    def __init__(self, bus: InMemoryBus, new_event: NewEvent, example: Example) -> None:
        self.bus, self.new_event, self.example = bus, new_event, example
        self.id = str(uuid.uuid4())
        self.post("procedure.scheduled", {"phase": "implant", "patient": {"id": "MRN-0042"},
                                          "room": "OR-2"}, minute=-120)  # fmt: skip

    def post(self, kind: str, payload: dict[str, Any], minute: float, **kw: Any) -> dict[str, Any]:
        raw = self.new_event(kind, payload, occurred_at=at(minute), **kw)
        if kind != "product.lot_released":
            raw["procedure_id"] = self.id
        envelope = parse_event(raw)
        phase = "lab" if kind == "product.lot_released" else "implant"
        self.bus.publish(EVENTS, f"{phase}.{kind}", envelope.to_bytes(),
                         message_id=str(envelope.event_id)).result(0)  # fmt: skip
        self.bus.drain()
        return raw

    def release(self, minute: float = -60, **changes: Any) -> None:
        self.post("product.lot_released", self.example("product.lot_released") | {
            "expires_at": at(24 * 60), **changes}, minute=minute)  # fmt: skip

    def verify(self, minute: float = 5, **changes: Any) -> dict[str, Any]:
        payload = self.example("implant.product_verified") | changes
        return self.post("implant.product_verified", payload, minute=minute)

    def alerts(self) -> list[dict[str, Any]]:
        records = [decode_record(d.body).event for d in self.bus.messages(Q_AUDIT)]
        mine = [r for r in records if r.get("procedure_id") == self.id]
        return [r for r in mine if r.get("type") == "alert.raised"]

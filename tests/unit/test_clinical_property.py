"""Property: any order of valid events through the harvest and implant services, on the
in-memory bus, is consumed to the end: every event reaches the audit once, nothing is
dead-lettered or left queued, no alert is duplicated, and a second delivery of everything
changes nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bus import InMemoryBus
from shared.bus.topology import EVENTS, Q_AUDIT, Q_HARVEST, Q_IMPLANT, default_topology
from shared.clinical.clock import FakeClock
from shared.clinical.recorder import Recorder
from shared.clinical.store import ClinicalStore
from shared.events import parse_event
from shared.events.record import decode_record
from shared.phase import PhaseService
from tests.events import EXAMPLE_PAYLOADS, PROCEDURE_ID, make_event

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
CLINICAL = sorted(
    t for t in EXAMPLE_PAYLOADS
    if t.split(".")[0] in ("procedure", "sedation", "anaesthesia", "recovery", "harvest",
                           "custody", "implant", "adverse_event")
    and t != "procedure.scheduled"
)  # fmt: skip


@st.composite
def stories(draw: st.DrawFn) -> list[dict[str, Any]]:
    events = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(CLINICAL))
        minute = draw(st.integers(-60, 300))
        raw = make_event(kind, occurred_at=(T0 + timedelta(minutes=minute)).isoformat())
        raw["procedure_id"] = PROCEDURE_ID
        events.append(raw)
    return events


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(stories(), st.sampled_from(["harvest", "implant"]), st.integers(0, 600))
def test_any_story_is_consumed_to_the_end_and_redelivery_changes_nothing(
    tmp_path: Path, events: list[dict[str, Any]], phase: str, later_min: int
) -> None:
    bus = InMemoryBus(default_topology())
    clock = FakeClock(T0)
    store = ClinicalStore(tmp_path / f"{uuid.uuid4().hex}.sqlite3")
    service = PhaseService(phase, (phase, "lab"), bus, 5.0, Recorder(phase, store, clock))
    queue = Q_HARVEST if phase == "harvest" else Q_IMPLANT
    bus.subscribe(queue, service.handle)
    for _ in range(2):  # everything delivered twice
        for raw in events:
            envelope = parse_event(raw)
            bus.publish(EVENTS, f"{phase}.{envelope.type}", envelope.to_bytes(),
                        message_id=str(envelope.event_id)).result(0)  # fmt: skip
        bus.drain()
        clock.advance(minutes=later_min)
        service.tick()
    assert bus.depth(queue) == 0
    assert bus.depth(f"{queue}.dead") == 0
    records = [decode_record(d.body) for d in bus.messages(Q_AUDIT)]
    assert all(r.disposition == "accepted" for r in records)
    events_seen = Counter(r.event_id for r in records if r.event["type"] != "alert.raised")
    assert set(events_seen) == {e["event_id"] for e in events}  # each at least once
    alert_ids = Counter(r.event_id for r in records if r.event["type"] == "alert.raised")
    assert all(n == 1 for n in alert_ids.values())  # each alert published exactly once
    store.close()

"""`proctrail rebuild implant`: the implant service's state, lost, comes back from the ledger
alone: the same facts, lots and raised alerts, and nothing is raised a second time."""

from __future__ import annotations

import pytest

from proctrail.cli import main
from services.audit.consumer import Appender
from services.implant.lots import ImplantStore
from shared.bus import InMemoryBus
from shared.clinical.clock import FakeClock
from shared.config import Settings
from tests.unit.clinical_harness import T0, Example, NewEvent, Procedure, start_implant


def test_the_state_comes_back_from_the_ledger_and_raises_nothing_again(
    bus: InMemoryBus, settings: Settings, appender: Appender, new_event: NewEvent,
    example: Example, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("PROCTRAIL_DATABASE_URL", raising=False)
    path = settings.service_dir("implant") / "clinical.sqlite3"
    implant = start_implant(bus, path, FakeClock(T0))
    procedure = Procedure(bus, new_event, example)
    procedure.release()
    procedure.post("procedure.opened", example("procedure.opened"), minute=0)
    procedure.verify(verifier_ids=["rn-lee"])  # chain_of_identity_mismatch
    procedure.post("implant.needle_placed", example("implant.needle_placed"), minute=6)
    procedure.post("sedation.drug_administered", example("sedation.drug_administered"), 7)
    bus.drain()
    before = implant.recorder.store
    facts, lots = before.facts(procedure.id), before.lots()
    raised = before.raised(procedure.id)
    assert "coi:" in " ".join(raised)
    before.close()
    path.rename(path.with_suffix(".lost"))

    assert main(["rebuild", "implant", "--data-dir", str(settings.data_dir)]) == 0

    rebuilt = ImplantStore(path)
    assert [(f.event_id, f.type, f.payload) for f in rebuilt.facts(procedure.id)] == [
        (f.event_id, f.type, f.payload) for f in facts
    ]
    assert rebuilt.lots() == lots
    assert rebuilt.raised(procedure.id) == raised
    assert rebuilt.watched() == [procedure.id]  # sedated: the clock watches it again
    rebuilt.close()
    assert main(["rebuild", "implant", "--data-dir", str(settings.data_dir)]) == 2  # not empty

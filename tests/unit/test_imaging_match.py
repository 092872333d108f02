"""Which open procedure a capture belongs to: accession, then study, then patient + room +
time; never a guess between two."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.imaging.store import ImagingStore

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImagingStore]:
    s = ImagingStore(tmp_path / "imaging")
    s.index_procedure("p-harvest", "harvest", "MRN-1", "ACC-1", "OR-1", T0.isoformat())
    s.index_procedure(
        "p-implant", "implant", "MRN-1", None, "OR-2", (T0 + timedelta(days=21)).isoformat()
    )
    yield s
    s.close()


def test_an_accession_number_decides(store: ImagingStore) -> None:
    found = store.match("ACC-1", None, "MRN-1", None, None, 12)
    assert found is not None
    assert (found[0].procedure_id, found[1]) == ("p-harvest", "accession_number")


def test_a_known_study_joins_its_procedure(store: ImagingStore) -> None:
    store.link_study("1.2.3", "p-implant")
    found = store.match(None, "1.2.3", None, None, None, 12)
    assert found is not None
    assert (found[0].procedure_id, found[1]) == ("p-implant", "study_instance_uid")


def test_patient_room_and_time_pick_the_one_procedure_that_fits(store: ImagingStore) -> None:
    by_room = store.match(None, None, "MRN-1", "OR-2", None, 12)
    by_time = store.match(None, None, "MRN-1", None, T0 + timedelta(hours=1), 12)
    assert by_room is not None
    assert by_time is not None
    assert (by_room[0].procedure_id, by_room[1]) == ("p-implant", "patient_room_time")
    assert by_time[0].procedure_id == "p-harvest"


def test_two_procedures_that_both_fit_are_not_guessed_between(store: ImagingStore) -> None:
    assert store.match(None, None, "MRN-1", None, None, 12) is None
    store.close_procedure("p-implant")
    found = store.match(None, None, "MRN-1", None, None, 12)
    assert found is not None
    assert found[0].procedure_id == "p-harvest"

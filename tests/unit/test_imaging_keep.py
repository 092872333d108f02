"""Keeping a received object: under its SOP Instance UID, never over other bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.imaging.files import StoredObject, file_stem
from services.imaging.store import ImagingStore

UID = "1.2.826.0.1.3680043.8.498.1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImagingStore]:
    s = ImagingStore(tmp_path / "imaging")
    yield s
    s.close()


def keep(store: ImagingStore, data: bytes, name: str) -> StoredObject:
    path = store.incoming / name
    path.write_bytes(data)
    return store.keep(path, UID, hashlib.sha256(data).hexdigest(), len(data))


def test_other_bytes_under_a_uid_not_yet_indexed_are_kept_beside_never_over(
    store: ImagingStore,
) -> None:
    # Two associations deliver different bytes for one UID before either has committed.
    first = keep(store, b"first version", "a")
    second = keep(store, b"second version", "b")
    assert first.path != second.path
    assert first.path.read_bytes() == b"first version"
    assert second.path.read_bytes() == b"second version"
    assert second.conflicts_with == hashlib.sha256(b"first version").hexdigest()
    assert list(store.incoming.iterdir()) == []


def test_the_same_bytes_left_by_an_earlier_attempt_are_reused_not_duplicated(
    store: ImagingStore,
) -> None:
    orphan = keep(store, b"same", "a")  # kept, then the commit failed
    again = keep(store, b"same", "b")
    assert again.path == orphan.path
    assert again.already_had  # so a failure of this attempt does not delete it either
    assert len([p for p in store.objects.rglob("*") if p.is_file()]) == 1


def test_a_uid_that_breaks_the_rules_is_kept_under_a_digest_and_recognised_again(
    store: ImagingStore,
) -> None:
    odd = "dccc9599087131742838cc1162a630fea87ba9bf61ac09bf/../x"  # letters, even a slash
    data = b"odd device"
    path = store.incoming / "a"
    path.write_bytes(data)
    first = store.keep(path, odd, hashlib.sha256(data).hexdigest(), len(data))
    assert first.path.parent.parent == store.objects  # never outside the store
    assert first.path.name == f"{file_stem(odd)}.dcm"
    assert first.path.name.startswith("uid-")
    assert first.path.read_bytes() == data
    assert file_stem("1.2.840.10008.1") == "1.2.840.10008.1"  # conformant UIDs name themselves

"""The listener against a fuzz corpus of broken objects (tests/dicom_fuzz.py), sent as raw
bytes over real associations: it answers each with a failure status, keeps no file of any
(and nothing half-received), announces none, and is still up at the end, storing a good
object as before.

CI sends FUZZ_PER_KIND mutants of each kind per base object (3 by default); the long form
is `PROCTRAIL_FUZZ_PER_KIND=200 ./dev test tests/integration/test_dicom_fuzz.py`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, XRayAngiographicImageStorage

from tests import dicom_factory
from tests.dicom_fuzz import KINDS, Mutant, corpus
from tests.integration.imaging_listener import RunningListener, running_listener

pytestmark = pytest.mark.integration

PER_KIND = int(os.environ.get("PROCTRAIL_FUZZ_PER_KIND", "3"))


@pytest.fixture
def listener(amqp_url: str, tmp_path: Path) -> Iterator[RunningListener]:
    with running_listener(amqp_url, tmp_path / "var") as running:
        yield running


@pytest.fixture
def raw_sends() -> Iterator[None]:
    """pynetdicom sends a file's dataset bytes as they are, without decoding them."""
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    yield
    _config.STORE_SEND_CHUNKED_DATASET = before


def bases(folder: Path) -> list[Path]:
    ct = dicom_factory.ct_series(folder / "ct", 1)[0]
    xa = dicom_factory.xa_cine(folder / "xa.dcm", frames=2, rows=32, cols=32)
    return [ct, xa]


def send(port: int, folder: Path, mutants: list[Mutant]) -> dict[str, int | None]:
    """Each mutant on one association (as a modality would retry it); the status, or None
    when the listener dropped the association instead of answering."""
    ae = AE(ae_title="STORESCU")
    for sop_class in (CTImageStorage, XRayAngiographicImageStorage):
        ae.add_requested_context(sop_class, ["1.2.840.10008.1.2.1"])
    answers: dict[str, int | None] = {}
    folder.mkdir(parents=True, exist_ok=True)
    assoc = ae.associate("127.0.0.1", port, ae_title="PROCTRAIL")
    for mutant in mutants:
        if not assoc.is_established:
            assoc = ae.associate("127.0.0.1", port, ae_title="PROCTRAIL")
        path = folder / f"{mutant.name}.dcm"
        path.write_bytes(mutant.data)
        status = assoc.send_c_store(path)
        answers[mutant.name] = int(status.Status) if "Status" in status else None
    if assoc.is_established:
        assoc.release()
    return answers


def test_every_broken_object_is_refused_and_leaves_nothing_behind(
    listener: RunningListener, raw_sends: None, tmp_path: Path
) -> None:
    originals = bases(tmp_path / "bases")
    mutants = list(corpus(originals, PER_KIND))
    assert len(mutants) == len(originals) * len(KINDS) * PER_KIND

    answers = send(listener.port, tmp_path / "sent", mutants)

    accepted = {name: status for name, status in answers.items() if status == 0x0000}
    unanswered = [name for name, status in answers.items() if status is None]
    assert accepted == {}
    assert unanswered == []
    assert not any((listener.root / "objects").rglob("*.dcm"))  # no file kept, none partial
    assert not [p for p in (listener.root / "incoming").iterdir() if p.stat().st_size]
    assert listener.alive()
    good = dicom_factory.ct_series(tmp_path / "good", 1)[0]  # and it still stores
    assert send(listener.port, tmp_path / "good-sent",
                [Mutant("good", good.read_bytes())]) == {"good": 0x0000}  # fmt: skip
    uid = str(dcmread(good, stop_before_pixels=True).SOPInstanceUID)
    assert any((listener.root / "objects").rglob(f"{uid}*"))

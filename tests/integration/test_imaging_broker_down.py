"""The broker goes away mid-run: the listener keeps answering Success (the outbox holds the
events), and once the broker is back every capture event is published exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests import dicom_factory
from tests.integration.conftest import ledger_bound, wait_until
from tests.integration.imaging_listener import running_listener
from tests.integration.own_broker import OwnBroker, own_broker

pytestmark = pytest.mark.integration


@pytest.fixture
def broker() -> Iterator[OwnBroker]:
    with own_broker() as node:
        yield node


def test_captures_stored_while_the_broker_is_down_are_published_once_it_returns(
    broker: OwnBroker, tmp_path: Path
) -> None:
    before = dicom_factory.ct_series(tmp_path / "before", 10)
    during = dicom_factory.ct_series(tmp_path / "during", 10)
    after = dicom_factory.ct_series(tmp_path / "after", 5)
    with running_listener(broker.url, tmp_path / "var") as listener:
        for path in before:
            assert listener.storescu(path).returncode == 0
        broker.stop()
        for path in during:
            assert listener.storescu(path).returncode == 0  # Success, into the outbox
        assert len(listener.logged("C-STORE stored")) == 20
        wait_until(lambda: listener.logged("outbox holding events until the broker is back"))
        broker.start()
        for path in after:
            assert listener.storescu(path).returncode == 0
        sent = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                for p in (*before, *during, *after)}  # fmt: skip
        seen: Counter[str] = Counter()

        def all_published() -> bool:
            for event in ledger_bound(broker.url):
                if event["type"] == "imaging.capture_received":
                    seen[event["payload"]["sop_instance_uid"]] += 1
            return set(seen) >= sent

        wait_until(all_published, timeout=120, every=0.5)
        assert set(seen) == sent
        assert max(seen.values()) == 1  # none twice
        wait_until(lambda: listener.logged("outbox drained: the broker has every event again"))

"""pynetdicom's reactors, woken by work instead of napping: still correct, and really woken."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from services.imaging import reactor
from tests import dicom_factory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_waiting_reactor_thread_is_woken_by_a_notify_not_by_its_timeout() -> None:
    waker = reactor._EventWaker()
    done = threading.Event()

    def nap() -> None:
        waker.wait(60)  # far longer than the test may take
        done.set()

    thread = threading.Thread(target=nap, daemon=True)
    thread.start()
    waker.notify()
    assert done.wait(10)


def test_the_dul_waker_returns_when_a_primitive_is_queued_for_sending() -> None:
    class FakeDul:
        socket = None

    waker = reactor._SocketWaker(FakeDul())
    done = threading.Event()
    thread = threading.Thread(target=lambda: (waker.wait(60), done.set()), daemon=True)
    thread.start()
    waker.notify()
    assert done.wait(10)


def test_associations_run_on_the_woken_reactors_and_store_every_object(tmp_path: Path) -> None:
    reactor.install()
    assert reactor.installed()
    before = reactor.wakers_made
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="WOKEN")
    ae.add_supported_context(Verification)
    ae.add_supported_context(CTImageStorage)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        files = dicom_factory.ct_series(tmp_path / "ct", 20)
        scu = AE(ae_title="SCU")
        scu.add_requested_context(Verification)
        scu.add_requested_context(CTImageStorage)
        assoc = scu.associate("127.0.0.1", port, ae_title="WOKEN")
        assert assoc.is_established
        try:
            assert assoc.send_c_echo().Status == 0x0000
            statuses = [assoc.send_c_store(os.fspath(f)).Status for f in files]
        finally:
            assoc.release()
    finally:
        server.shutdown()
    assert statuses == [0x0000] * len(files)
    assert len(received) == len(files)
    # The acceptor's association and DUL threads (and the requestor's) each got a waker.
    assert reactor.wakers_made - before >= 2


@pytest.fixture(autouse=True)
def _stock_reactors_after() -> object:
    """Leave pynetdicom as other tests expect it."""
    import time

    from pynetdicom import association, dul

    yield None
    dul.time = time  # type: ignore[attr-defined]
    association.time = time  # type: ignore[attr-defined]

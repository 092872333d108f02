"""`python -m services.imaging`: the DICOM listener (C-ECHO, C-STORE) and its outbox relay."""

from __future__ import annotations

import structlog

from services.imaging.listener import Listener, ProcedureIndex, Relay
from services.imaging.store import ImagingDb, ObjectStore
from shared.bus.topology import Q_IMAGING
from shared.runtime import boot, make_bus, wait_for_stop

log = structlog.get_logger("imaging")


def main() -> None:
    settings = boot("imaging")
    root = settings.service_dir("imaging")
    db = ImagingDb(root / "imaging.sqlite3")
    bus = make_bus(settings, "imaging")
    bus.subscribe(Q_IMAGING, ProcedureIndex(db).handle)
    bus.start()
    listener = Listener(settings, bus, db, ObjectStore(root))
    relay = Relay(bus, db, settings.publish_timeout_s)
    relay.start()
    server = listener.build_ae().start_server(
        settings.dicom_addr, block=False, evt_handlers=listener.handlers()
    )
    assert server is not None  # block=False returns the running server
    log.info(
        "listening",
        addr=f"{settings.dicom_addr[0]}:{settings.dicom_addr[1]}",
        ae_title=settings.dicom_ae_title,
    )
    wait_for_stop()
    server.shutdown()
    relay.stop()
    bus.close()
    db.close()


if __name__ == "__main__":
    main()

"""`python -m services.imaging`: the DICOM listener (C-ECHO, C-STORE) and its outbox relay."""

from __future__ import annotations

import structlog

from services.imaging.config import ImagingSettings
from services.imaging.index import ProcedureIndex
from services.imaging.listener import Listener
from services.imaging.relay import Relay
from services.imaging.store import ImagingStore
from shared.bus.topology import Q_IMAGING
from shared.runtime import boot, make_bus, wait_for_stop

log = structlog.get_logger("imaging")


def main() -> None:
    settings = boot("imaging")
    imaging = ImagingSettings.from_env()
    store = ImagingStore(settings.service_dir("imaging"))
    bus = make_bus(settings, "imaging")
    bus.subscribe(Q_IMAGING, ProcedureIndex(store).handle)
    bus.start()
    relay = Relay(bus, store, settings.publish_timeout_s)
    relay.start()
    listener = Listener(settings, imaging, store, relay)
    server = listener.build_ae().start_server(
        settings.dicom_addr,
        block=False,
        evt_handlers=listener.handlers(),
        ssl_context=imaging.ssl_context(),
    )
    assert server is not None  # block=False returns the running server
    log.info(
        "listening",
        addr=f"{settings.dicom_addr[0]}:{settings.dicom_addr[1]}",
        ae_title=settings.dicom_ae_title,
        tls=imaging.tls_cert is not None,
    )
    wait_for_stop()
    server.shutdown()
    listener.close()
    relay.stop()
    bus.close()
    store.close()


if __name__ == "__main__":
    main()

"""`python -m services.bedside`: the tablets' HTTP API."""

from __future__ import annotations

import structlog

from services.bedside.api import Bedside, create_app
from services.bedside.feed import TabletFeed
from services.bedside.store import BedsideStore
from shared.auth import TokenStore
from shared.bus.topology import Q_BEDSIDE
from shared.runtime import boot, make_bus, serve_http, serve_metrics
from shared.storage import UNAVAILABLE

log = structlog.get_logger("bedside")


def main() -> None:
    settings = boot("bedside")
    bus = make_bus(settings, "bedside")
    path = settings.service_dir("bedside") / "bedside.sqlite3"
    bus.subscribe(Q_BEDSIDE, TabletFeed(BedsideStore(path)).handle, transient=UNAVAILABLE)
    bus.start()
    store = BedsideStore(path)
    bedside = Bedside(settings, bus, TokenStore(settings.data_dir), store)
    metrics = serve_metrics(settings, "bedside")
    log.info("listening", addr=f"{settings.bedside_addr[0]}:{settings.bedside_addr[1]}")
    try:
        serve_http(create_app(bedside), settings.bedside_addr)
    finally:
        if metrics is not None:
            metrics.stop()
        bus.close()
        store.close()
        bedside.facts.close()


if __name__ == "__main__":
    main()

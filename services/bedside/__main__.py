"""`python -m services.bedside`: the tablets' HTTP API."""

from __future__ import annotations

import structlog

from services.bedside.api import Bedside, create_app
from services.bedside.store import BedsideStore
from shared.auth import TokenStore
from shared.runtime import boot, make_bus, serve_http

log = structlog.get_logger("bedside")


def main() -> None:
    settings = boot("bedside")
    bus = make_bus(settings, "bedside")
    bus.start()
    store = BedsideStore(settings.service_dir("bedside") / "bedside.sqlite3")
    bedside = Bedside(settings, bus, TokenStore(settings.data_dir), store)
    log.info("listening", addr=f"{settings.bedside_addr[0]}:{settings.bedside_addr[1]}")
    try:
        serve_http(create_app(bedside), settings.bedside_addr)
    finally:
        bus.close()
        store.close()


if __name__ == "__main__":
    main()

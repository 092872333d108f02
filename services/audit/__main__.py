"""`python -m services.audit`: appends q.audit to the ledger and answers compliance queries."""

from __future__ import annotations

import structlog

from services.audit.api import AuditApi, create_app
from services.audit.consumer import Appender
from services.audit.ledger import Ledger, LedgerReader
from shared.auth import TokenStore
from shared.bus.topology import Q_AUDIT
from shared.runtime import boot, make_bus, serve_http

log = structlog.get_logger("audit")

BATCH = 300


def main() -> None:
    settings = boot("audit")
    path = settings.service_dir("audit") / "ledger.sqlite3"
    ledger = Ledger(path)
    bus = make_bus(settings, "audit")
    bus.subscribe(Q_AUDIT, Appender(ledger).handle, prefetch=BATCH, max_batch=BATCH)
    bus.start()
    reader = LedgerReader(path)
    log.info("listening", addr=f"{settings.audit_addr[0]}:{settings.audit_addr[1]}")
    try:
        serve_http(create_app(AuditApi(reader, TokenStore(settings.data_dir))), settings.audit_addr)
    finally:
        bus.close()
        reader.close()
        ledger.close()


if __name__ == "__main__":
    main()

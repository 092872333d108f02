"""`python -m services.audit`: appends q.audit to the ledger and answers compliance queries."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from prometheus_client import Gauge

from services.audit.api import AuditApi, create_app
from services.audit.checkpoint import KEY_FILE, Signer, load_keyring
from services.audit.consumer import Appender
from services.audit.ledger import Ledger
from services.audit.store import Store, open_store
from shared.auth import TokenStore
from shared.bus.topology import Q_AUDIT
from shared.runtime import boot, make_bus, serve_http, serve_metrics
from shared.storage import UNAVAILABLE

log = structlog.get_logger("audit")

BATCH = 300

LEDGER_ENTRIES = Gauge("proctrail_ledger_entries", "Entries in the ledger (its tree size)")
CHECKPOINT_AGE = Gauge(
    "proctrail_checkpoint_age_seconds", "Seconds since the ledger's latest signed checkpoint"
)


def watch_ledger(reader: Store) -> None:
    """The ledger's size and the age of its latest checkpoint, read at every scrape."""

    def age() -> float:
        latest = reader.latest_checkpoint()
        if latest is None:
            return float("nan")
        created = datetime.fromisoformat(latest.created_at)
        return max(0.0, (datetime.now(UTC) - created).total_seconds())

    LEDGER_ENTRIES.set_function(lambda: float(reader.size()))
    CHECKPOINT_AGE.set_function(age)


def main() -> None:
    settings = boot("audit")
    signer = Signer.load_or_create(settings.service_dir("audit") / KEY_FILE, settings.log_origin)
    writer = open_store(settings.data_dir, settings.database_url)
    ledger = Ledger(writer, signer)
    bus = make_bus(settings, "audit")
    appender = Appender(ledger)
    bus.subscribe(Q_AUDIT, appender.handle, prefetch=BATCH, max_batch=BATCH, transient=UNAVAILABLE)
    bus.start()
    reader = open_store(settings.data_dir, settings.database_url, readonly=True)
    watch_ledger(reader)
    metrics = serve_metrics(settings, "audit")
    log.info(
        "listening",
        addr=f"{settings.audit_addr[0]}:{settings.audit_addr[1]}",
        tree_size=ledger.frontier.size,
        verifier_key=signer.verifier.vkey(),
    )
    try:
        tokens = TokenStore(settings.data_dir)
        api = AuditApi(
            reader, tokens, load_keyring(settings.service_dir("audit"), signer.verifier), bus,
            settings.publish_timeout_s,
            imaging_root=settings.data_dir / "imaging",
        )  # fmt: skip
        serve_http(create_app(api), settings.audit_addr)
    finally:
        if metrics is not None:
            metrics.stop()
        bus.close()
        reader.close()
        writer.close()


if __name__ == "__main__":
    main()

"""What bedside keeps for the tablets from q.bedside: the alerts harvest and implant raise,
and the captures imaging could not match (the reconciliation list)."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import structlog

from services.bedside.store import BedsideStore
from shared.bus import Delivery, Settle

log = structlog.get_logger("bedside")


class TabletFeed:
    """Consumes q.bedside: the alerts harvest and implant raise, and the captures imaging could
    not match (as the ledger records them), kept for the tablets. Its store's outage errors
    reach the bus, which holds the batch (bedside subscribes with `transient=UNAVAILABLE`)."""

    def __init__(self, store: BedsideStore) -> None:
        self.store = store  # its own connection: this runs on the bus's worker thread

    def handle(self, batch: Sequence[Delivery]) -> list[Settle]:
        settles = []
        for delivery in batch:
            try:
                message = orjson.loads(delivery.body)
                event = message["event"] if "disposition" in message else message
                if event.get("type") == "alert.raised":
                    self.store.add_alert(event)
                elif event.get("type") == "imaging.capture_unmatched":
                    self.store.add_unmatched(event)
                settles.append(Settle.ACK)
            except (orjson.JSONDecodeError, KeyError, AttributeError, AssertionError, TypeError):
                log.error("unreadable message sent to the dead-letter queue",
                          message_id=delivery.message_id)  # fmt: skip
                settles.append(Settle.DEAD)
        return settles

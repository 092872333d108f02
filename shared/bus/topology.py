"""The RabbitMQ topology, declared in code. docs/messaging.md draws it; this is the source of
truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENTS = "proctrail.events"  # topic, routing key <phase>.<event type>
AUDIT = "proctrail.audit"  # fanout: everything the ledger must append
DEAD = "proctrail.dead"  # direct, routing key = the queue a message died in

Q_HARVEST = "q.harvest"
Q_IMPLANT = "q.implant"
Q_IMAGING = "q.imaging"
Q_AUDIT = "q.audit"
Q_BEDSIDE = "q.bedside"  # for the tablets: alerts (alert.<service>) and unmatched captures

# Captures that match no procedure belong to no phase: imaging publishes them to EVENTS under
# `unmatched.<type>`, already stamped as ledger records. An exchange-to-exchange binding takes
# every one to AUDIT (the ledger), and q.bedside takes the capture_unmatched ones for the
# tablets' reconciliation list: one publish, two readers.
UNMATCHED = "unmatched"


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str  # topic | fanout | direct


@dataclass(frozen=True)
class Queue:
    name: str
    exchange: str
    bindings: tuple[str, ...]
    delivery_limit: int

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dead"

    def arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": DEAD,
            "x-dead-letter-routing-key": self.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


@dataclass(frozen=True)
class ExchangeBinding:
    """Messages published to `source` with a key matching `key` also go to `destination`."""

    destination: str
    source: str
    key: str


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    exchange_bindings: tuple[ExchangeBinding, ...] = ()

    def queue(self, name: str) -> Queue:
        for q in self.queues:
            if q.name == name:
                return q
        raise KeyError(name)


def routing_key(phase: str, event_type: str) -> str:
    """`harvest.sedation.drug_administered`; lab events that belong to no procedure use `lab`."""
    return f"{phase}.{event_type}"


def default_topology(delivery_limit: int = 5) -> Topology:
    return Topology(
        exchanges=(Exchange(EVENTS, "topic"), Exchange(AUDIT, "fanout"), Exchange(DEAD, "direct")),
        queues=(
            Queue(Q_HARVEST, EVENTS, ("harvest.#",), delivery_limit),
            Queue(Q_IMPLANT, EVENTS, ("implant.#", "lab.#"), delivery_limit),
            Queue(
                Q_IMAGING,
                EVENTS,
                ("*.procedure.*", "*.imaging.capture_reconciled"),
                delivery_limit,
            ),
            Queue(Q_AUDIT, AUDIT, ("",), delivery_limit),
            Queue(
                Q_BEDSIDE,
                EVENTS,
                ("alert.#", f"{UNMATCHED}.imaging.capture_unmatched"),
                delivery_limit,
            ),
        ),
        exchange_bindings=(ExchangeBinding(AUDIT, EVENTS, f"{UNMATCHED}.#"),),
    )

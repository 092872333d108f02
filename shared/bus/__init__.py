"""The message bus: one small interface, RabbitMQ (pika) behind it, an in-memory twin for tests."""

from shared.bus._interface import (
    BatchHandler,
    BrokerUnavailable,
    Bus,
    BusError,
    Delivery,
    PublishRejected,
    Settle,
    StoreUnavailable,
    Transient,
)
from shared.bus._memory import InMemoryBus, topic_matches
from shared.bus._pika import PikaBus
from shared.bus.topology import Topology, default_topology, routing_key

__all__ = [
    "BatchHandler",
    "BrokerUnavailable",
    "Bus",
    "BusError",
    "Delivery",
    "InMemoryBus",
    "PikaBus",
    "PublishRejected",
    "Settle",
    "StoreUnavailable",
    "Topology",
    "Transient",
    "default_topology",
    "routing_key",
    "topic_matches",
]

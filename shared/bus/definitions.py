"""The topology as RabbitMQ definitions (the JSON a broker loads at boot), for a deployment
where the broker owns the topology and each service logs in as its own user with the least
it needs: no configure permission at all, write on the exchanges it publishes to, read on the
one queue it consumes.

`proctrail broker-definitions` prints them; deploy/rabbitmq/definitions.json is its output
(without passwords), and a test keeps the two equal.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any

from shared.bus.topology import (
    AUDIT,
    DEAD,
    EVENTS,
    Q_AUDIT,
    Q_BEDSIDE,
    Q_HARVEST,
    Q_IMAGING,
    Q_IMPLANT,
    Topology,
)

VHOST = "proctrail"

# service -> (exchanges it publishes to, the queue it consumes)
GRANTS: dict[str, tuple[tuple[str, ...], str]] = {
    "imaging": ((EVENTS, AUDIT), Q_IMAGING),
    "bedside": ((EVENTS,), Q_BEDSIDE),
    "harvest": ((EVENTS, AUDIT), Q_HARVEST),
    "implant": ((EVENTS, AUDIT), Q_IMPLANT),
    "audit": ((AUDIT,), Q_AUDIT),
}


def user_name(service: str) -> str:
    return f"proctrail-{service}"


def password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt ‖ SHA-256(salt ‖ password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _exactly(*names: str) -> str:
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def definitions(
    topology: Topology, vhost: str = VHOST, passwords: dict[str, str] | None = None
) -> dict[str, Any]:
    """Users without a password (`passwords` gives some) cannot log in until one is set."""
    queues, bindings = _queues_and_bindings(topology, vhost)
    return {
        "users": _users(passwords or {}),
        "vhosts": [{"name": vhost}],
        "permissions": _permissions(vhost),
        "policies": _policies(topology.queues[0].delivery_limit, vhost),
        "exchanges": _exchanges(topology, vhost),
        "queues": queues,
        "bindings": bindings,
    }


def _users(passwords: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": user_name(service),
            "password_hash": password_hash(passwords[service]) if service in passwords else "",
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],
            "limits": {},
        }
        for service in GRANTS
    ]


def _permissions(vhost: str) -> list[dict[str, Any]]:
    return [
        {"user": user_name(service), "vhost": vhost, "configure": "^$",
         "write": _exactly(*exchanges), "read": _exactly(queue)}
        for service, (exchanges, queue) in GRANTS.items()
    ]  # fmt: skip


def _policies(limit: int, vhost: str) -> list[dict[str, Any]]:
    return [
        {  # the same as each queue's own arguments: a queue declared without them still gets them
            "vhost": vhost, "name": "proctrail-queues", "pattern": r"^q\.[a-z]+$",
            "apply-to": "queues", "priority": 0,
            "definition": {"delivery-limit": limit, "dead-letter-exchange": DEAD,
                           "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"},
        },
        {  # dead letters are never dropped: a full DLQ pushes back on dead-lettering instead
            "vhost": vhost, "name": "proctrail-dead-letters", "pattern": r"^q\.[a-z]+\.dead$",
            "apply-to": "queues", "priority": 0,
            "definition": {"max-length": 1_000_000, "overflow": "reject-publish"},
        },
    ]  # fmt: skip


def _exchanges(topology: Topology, vhost: str) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "vhost": vhost, "type": e.type, "durable": True, "auto_delete": False,
         "internal": False, "arguments": {}}
        for e in topology.exchanges
    ]  # fmt: skip


def _queues_and_bindings(
    topology: Topology, vhost: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each queue and its dead-letter queue, and every binding: to queues, then exchanges."""
    queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    for q in topology.queues:
        queues.append({"name": q.name, "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": q.arguments()})  # fmt: skip
        queues.append({"name": q.dead_letter_queue, "vhost": vhost, "durable": True,
                       "auto_delete": False, "arguments": {"x-queue-type": "quorum"}})  # fmt: skip
        bindings.append(_binding(DEAD, q.dead_letter_queue, "queue", q.name, vhost))
        bindings += [_binding(q.exchange, q.name, "queue", key, vhost) for key in q.bindings]
    bindings += [
        _binding(b.source, b.destination, "exchange", b.key, vhost)
        for b in topology.exchange_bindings
    ]
    return queues, bindings


def _binding(source: str, destination: str, kind: str, key: str, vhost: str) -> dict[str, Any]:
    return {"source": source, "vhost": vhost, "destination": destination,
            "destination_type": kind, "routing_key": key, "arguments": {}}  # fmt: skip

"""An empty Idempotency-Key is no key (schemathesis found the second such request answered
500: the empty key was stored as a key, and the next one collided with it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.bus import InMemoryBus
from shared.bus.topology import Q_HARVEST

pytestmark = pytest.mark.anyio


async def test_two_schedulings_with_an_empty_idempotency_key_are_two_procedures(
    bedside_client: httpx.AsyncClient,
    bus: InMemoryBus,
    bearer: Callable[..., dict[str, str]],
    example: Callable[[str], dict[str, Any]],
) -> None:
    headers = bearer("nurse") | {"Idempotency-Key": ""}

    first = await bedside_client.post("/v1/procedures", json=example("procedure.scheduled"),
                                      headers=headers)  # fmt: skip
    second = await bedside_client.post("/v1/procedures", json=example("procedure.scheduled"),
                                       headers=headers)  # fmt: skip

    assert first.status_code == second.status_code == 201
    assert first.json()["procedure_id"] != second.json()["procedure_id"]
    assert bus.depth(Q_HARVEST) == 2

"""Shared fixtures: the in-memory bus, tmp_path stores, services built as their __main__ does.

Nothing here needs RabbitMQ: every bus is an `InMemoryBus(default_topology())` and every
message moves only when a test calls `bus.drain()`.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.audit.api import AuditApi
from services.audit.api import create_app as create_audit_app
from services.audit.checkpoint import Signer, load_keyring
from services.audit.consumer import Appender
from services.audit.ledger import Ledger
from services.audit.store import SqliteStore
from services.bedside.api import Bedside
from services.bedside.api import create_app as create_bedside_app
from services.bedside.store import BedsideStore
from shared.auth import TokenStore
from shared.bus import InMemoryBus, default_topology
from shared.bus.topology import Q_AUDIT
from shared.clinical.clock import FakeClock
from shared.config import Settings
from shared.events import parse_event, utcnow
from shared.events.record import AuditRecord, accepted
from shared.phase import PhaseService
from shared.storage import UNAVAILABLE
from tests.events import EXAMPLE_PAYLOADS, example_payload, make_event
from tests.unit.clinical_harness import T0, Implant, Procedure, start_implant
from tests.unit.openapi_conformance import conforming


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus(default_topology())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, late_after_s=600.0, publish_timeout_s=5.0)


@pytest.fixture
def tokens(settings: Settings) -> Iterator[TokenStore]:
    store = TokenStore(settings.data_dir)
    yield store
    store.close()


@pytest.fixture
def bearer(tokens: TokenStore) -> Callable[..., dict[str, str]]:
    """Headers carrying a fresh token of the given role."""

    def headers(role: str, user: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.create(role, user or f'{role}-1')}"}

    return headers


@pytest.fixture
def bedside(settings: Settings, bus: InMemoryBus, tokens: TokenStore) -> Iterator[Bedside]:
    store = BedsideStore(settings.service_dir("bedside") / "bedside.sqlite3")
    yield Bedside(settings, bus, tokens, store)
    store.close()


@pytest.fixture
async def bedside_client(bedside: Bedside) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=conforming(create_bedside_app(bedside)))
    async with httpx.AsyncClient(transport=transport, base_url="http://bedside") as client:
        yield client


@pytest.fixture
def harvest(settings: Settings, bus: InMemoryBus) -> PhaseService:
    return PhaseService("harvest", ("harvest",), bus, settings.publish_timeout_s)


@pytest.fixture
def implant(settings: Settings, bus: InMemoryBus) -> PhaseService:
    return PhaseService("implant", ("implant", "lab"), bus, settings.publish_timeout_s)


@pytest.fixture
def ledger_path(settings: Settings) -> Path:
    return settings.service_dir("audit") / "ledger.sqlite3"


@pytest.fixture
def signer(settings: Settings) -> Signer:
    return Signer.load_or_create(settings.service_dir("audit") / "key.pem", settings.log_origin)


@pytest.fixture
def ledger(ledger_path: Path, signer: Signer) -> Iterator[Ledger]:
    store = SqliteStore(ledger_path)
    yield Ledger(store, signer)
    store.close()


@pytest.fixture
def appender(ledger: Ledger, bus: InMemoryBus) -> Appender:
    """The audit consumer, subscribed to q.audit as services/audit/__main__.py does it."""
    consumer = Appender(ledger)
    bus.subscribe(Q_AUDIT, consumer.handle, prefetch=300, max_batch=300, transient=UNAVAILABLE)
    return consumer


@pytest.fixture
def reader(ledger: Ledger, ledger_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(ledger_path, readonly=True)
    yield store
    store.close()


@pytest.fixture
def audit_api(
    reader: SqliteStore, tokens: TokenStore, signer: Signer, bus: InMemoryBus, settings: Settings
) -> AuditApi:
    """The audit API as services/audit/__main__.py builds it (its keyring from the data dir)."""
    keyring = load_keyring(settings.service_dir("audit"), signer.verifier)
    return AuditApi(reader, tokens, keyring, bus, imaging_root=settings.data_dir / "imaging")


@pytest.fixture
async def audit_client(audit_api: AuditApi) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=conforming(create_audit_app(audit_api)))
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        yield client


@pytest.fixture(name="new_event")
def new_event_fixture() -> Callable[..., dict[str, Any]]:
    """`new_event(type, payload=None, **envelope_keys)`: a raw envelope as a tablet posts it."""
    return make_event


@pytest.fixture(name="example")
def example_fixture() -> Callable[[str], dict[str, Any]]:
    """`example(type)`: a fresh copy of that type's valid example payload."""
    return example_payload


@pytest.fixture(name="example_payloads")
def example_payloads_fixture() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(EXAMPLE_PAYLOADS)


@pytest.fixture
def record(new_event: Callable[..., dict[str, Any]]) -> Callable[..., AuditRecord]:
    """`record(type="…", payload=None, **envelope_keys)`: an accepted record stamped by harvest."""

    def make(event_type: str = "sedation.drug_administered", **fields: Any) -> AuditRecord:
        payload = fields.pop("payload", None)
        return accepted(parse_event(new_event(event_type, payload, **fields)), "harvest", utcnow())

    return make


@pytest.fixture
def signer_vkey(signer: Signer) -> str:
    return signer.verifier.vkey()


# --- the clinical rules on the in-memory bus (tests/unit/test_clinical_*.py) ----------------


@pytest.fixture
def clock() -> FakeClock:
    """The clinical services' clock; tests move it instead of sleeping."""
    return FakeClock(T0)


@pytest.fixture
def implant_rules(bus: InMemoryBus, tmp_path: Path, clock: FakeClock) -> Implant:
    """The implant service with its clinical rules, consuming q.implant."""
    return start_implant(bus, tmp_path / "clinical.sqlite3", clock)


@pytest.fixture
def procedure(
    bus: InMemoryBus,
    implant_rules: Implant,
    new_event: Callable[..., dict[str, Any]],
    example: Callable[[str], dict[str, Any]],
) -> Procedure:
    """An implant procedure for MRN-0042, scheduled; post its events with `.post`."""
    return Procedure(bus, new_event, example)
